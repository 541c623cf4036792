/**
 * Renders the commands that manage devpi's root password, users and indexes over its HTTP API.
 *
 * They run a small Python program (python3 is on every Debian/Ubuntu server that runs devpi)
 * talking to devpi-server on loopback. Secrets (passwords) arrive as JSON on stdin; the program
 * and its arguments carry none, so nothing secret shows in `ps`. Root's credential is kept on the
 * server in a root-only file, so users and indexes can be managed (and root's password rotated)
 * without sending the root password to every step.
 */
import { shellQuote } from "../common/shell";
import { TOKEN_PY } from "./devpiTokenApi";
import { READ_ACL_KEY } from "../devpi/readAclPlugin";

/** The Python program. argv: BASE_URL CREDENTIAL_FILE ACTION [NAME]. Exit 1 with a message on failure. */
export const DEVPI_API_PY = `import base64, json, os, sys, urllib.error, urllib.request

BASE, CRED, ACTION = sys.argv[1], sys.argv[2], sys.argv[3]
NAME = sys.argv[4] if len(sys.argv) > 4 else None


def die(msg):
    print(msg, file=sys.stderr)
    sys.exit(1)


def call(method, path, body=None, auth=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method)
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if auth:
        req.add_header("X-Devpi-Auth", base64.b64encode(("%s:%s" % auth).encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            raw = resp.read()
            return resp.status, (json.loads(raw) if raw else {})
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, {"message": raw.decode("utf-8", "replace")[:300]}


def login(user, password):
    status, reply = call("POST", "/+login", {"user": user, "password": password})
    if status == 200:
        return (user, reply["result"]["password"])
    return None


def stored_root_password():
    try:
        with open(CRED) as f:
            return json.load(f)["password"]
    except FileNotFoundError:
        return None


def store_root_password(password):
    old = os.umask(0o077)
    try:
        tmp = CRED + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"password": password}, f)
        os.chmod(tmp, 0o600)
        os.replace(tmp, CRED)
    finally:
        os.umask(old)


def root_auth():
    password = stored_root_password()
    auth = login("root", password) if password is not None else None
    if auth is None:
        die("cannot log in to devpi as root with the stored credential %s; run 'pulumi up' after fixing devpi:rootPassword" % CRED)
    return auth


def read_stdin():
    raw = sys.stdin.read()
    return json.loads(raw) if raw.strip() else {}


def expect(status, reply, ok, what):
    if status not in ok:
        die("%s failed: HTTP %s: %s" % (what, status, reply.get("message", reply)))


def root_password():
    new = read_stdin()["password"]
    if login("root", new):
        if stored_root_password() != new:
            store_root_password(new)
        print("root password unchanged")
        return
    for old in (stored_root_password(), ""):
        if old is None:
            continue
        auth = login("root", old)
        if auth:
            status, reply = call("PATCH", "/root", {"password": new}, auth)
            expect(status, reply, (200,), "setting root's password")
            if not login("root", new):
                die("root's new password was not accepted after setting it")
            store_root_password(new)
            print("root password set")
            return
    die("cannot log in to devpi as root with the configured, the stored or an empty password; "
        "if root's password was changed by hand, put it in devpi:rootPassword")


def user_ensure():
    spec = read_stdin()
    auth = root_auth()
    status, reply = call("GET", "/" + NAME)
    if status == 404:
        body = {"password": spec["password"]}
        if spec.get("email"):
            body["email"] = spec["email"]
        status, reply = call("PUT", "/" + NAME, body, auth)
        expect(status, reply, (200, 201), "creating user %s" % NAME)
        print("user %s created" % NAME)
        return
    expect(status, reply, (200,), "reading user %s" % NAME)
    changes = {}
    if (reply["result"].get("email") or None) != (spec.get("email") or None):
        changes["email"] = spec.get("email") or ""
    if not login(NAME, spec["password"]):
        changes["password"] = spec["password"]
    if changes:
        status, reply = call("PATCH", "/" + NAME, changes, auth)
        expect(status, reply, (200,), "updating user %s" % NAME)
        print("user %s updated: %s" % (NAME, ", ".join(sorted(changes))))
    else:
        print("user %s unchanged" % NAME)


def user_delete():
    auth = root_auth()
    status, reply = call("GET", "/" + NAME)
    if status == 404:
        print("user %s absent" % NAME)
        return
    indexes = sorted((reply.get("result") or {}).get("indexes") or {})
    if indexes:
        print("KEPT user %s: it still owns index(es) %s, which hold uploads and are never deleted "
              "implicitly. Delete them with devpi-client first, then the user: "
              "devpi user -y --delete %s" % (NAME, ", ".join(NAME + "/" + i for i in indexes), NAME))
        return
    status, reply = call("DELETE", "/" + NAME, None, auth)
    expect(status, reply, (200,), "deleting user %s" % NAME)
    print("user %s deleted" % NAME)


INDEX_KEYS = ("bases", "volatile", "acl_upload", "mirror_whitelist")


def index_ensure():
    spec = read_stdin()
    auth = root_auth()
    status, reply = call("GET", "/" + NAME)
    if status == 404:
        body = dict(spec, type="stage")
        status, reply = call("PUT", "/" + NAME, body, auth)
        expect(status, reply, (200, 201), "creating index %s" % NAME)
        print("index %s created" % NAME)
        return
    expect(status, reply, (200,), "reading index %s" % NAME)
    current = reply["result"]
    changes = {k: spec[k] for k in INDEX_KEYS if k in spec and current.get(k) != spec[k]}
    if changes:
        merged = {k: current[k] for k in current if k not in ("projects", "name", "user")}
        merged.update(changes)
        status, reply = call("PATCH", "/" + NAME, merged, auth)
        expect(status, reply, (200,), "updating index %s" % NAME)
        print("index %s updated: %s" % (NAME, ", ".join(sorted(changes))))
    else:
        print("index %s unchanged" % NAME)


def index_delete():
    auth = root_auth()
    status, reply = call("GET", "/" + NAME)
    if status == 404:
        print("index %s absent" % NAME)
        return
    expect(status, reply, (200,), "reading index %s" % NAME)
    projects = reply["result"].get("projects") or []
    if projects:
        print("KEPT index %s: it holds %d project(s) (%s); removing it from the stack config never "
              "deletes uploads. To delete it for good: devpi index -y --delete %s (after "
              "'devpi index %s volatile=True')" % (NAME, len(projects), ", ".join(sorted(projects)[:5]), NAME, NAME))
        return
    if not reply["result"].get("volatile"):
        status, reply = call("PATCH", "/" + NAME, dict(reply["result"], volatile=True), auth)
        expect(status, reply, (200,), "making empty index %s volatile before deleting it" % NAME)
    status, reply = call("DELETE", "/" + NAME, None, auth)
    expect(status, reply, (200, 201), "deleting index %s" % NAME)
    print("index %s deleted (it was empty)" % NAME)


ACTIONS = {
    "root-password": root_password,
    "user-ensure": user_ensure,
    "user-delete": user_delete,
    "index-ensure": index_ensure,
    "index-delete": index_delete,
}
if ACTION not in ACTIONS:
    die("unknown action %s" % ACTION)
ACTIONS[ACTION]()
`;

/**
 * The same program with the token actions (devpiTokenApi.ts) added: only token steps run it, so the
 * other steps' scripts stay as they were before tokens existed.
 */
export const DEVPI_TOKEN_API_PY = DEVPI_API_PY.replace("\n\nACTIONS = {\n", `\n\nimport time\n\n${TOKEN_PY}\n\n\nACTIONS = {\n    "token-ensure": token_ensure,\n    "token-delete": token_delete,\n`);

/**
 * Mirror indexes (root/pypi and `type: mirror`): stdin is the wanted `mirror_*` settings (only the set
 * ones). The index is created as a mirror if absent; otherwise the managed keys that differ are
 * set or dropped (devpi's list form of PATCH) and every other key (title, volatile, custom_data)
 * is kept. Asked with `no_projects`, so
 * a mirror's project list is never transferred. Deleting a mirror drops its cache only (a mirror
 * holds no uploads); root/pypi is never deleted.
 */
const MIRROR_PY = `MIRROR_KEYS = ("mirror_url", "mirror_web_url_fmt", "mirror_no_project_list", "mirror_use_external_urls",
               "mirror_ignore_serial_header", "mirror_cache_expiry")


def mirror_ensure():
    spec = read_stdin()
    auth = root_auth()
    status, reply = call("GET", "/" + NAME + "?no_projects=")
    if status == 404:
        status, reply = call("PUT", "/" + NAME, dict(spec, type="mirror"), auth)
        expect(status, reply, (200, 201), "creating mirror index %s" % NAME)
        print("mirror index %s created: %s" % (NAME, spec["mirror_url"]))
        return
    expect(status, reply, (200,), "reading index %s" % NAME)
    current = reply["result"]
    if current.get("type") != "mirror":
        die("index %s exists as a %s index, and devpi cannot turn an index into a mirror: delete it "
            "(devpi index -y --delete %s) or choose another name" % (NAME, current.get("type"), NAME))
    changes = sorted(k for k in MIRROR_KEYS if current.get(k) != spec.get(k))
    if not changes:
        print("mirror index %s unchanged" % NAME)
        return
    # devpi merges a PATCH with a mapping into the config; only its list form can also drop a key.
    ops = []
    for k in changes:
        if k not in spec:
            ops.append(k + "-=")
        elif isinstance(spec[k], bool):
            ops.append("%s=%s" % (k, "True" if spec[k] else "False"))
        else:
            ops.append("%s=%s" % (k, spec[k]))
    status, reply = call("PATCH", "/" + NAME, ops, auth)
    expect(status, reply, (200,), "updating mirror index %s" % NAME)
    print("mirror index %s updated: %s" % (NAME, ", ".join(changes)))


def mirror_delete():
    if NAME == "root/pypi":
        print("root/pypi is kept: it is devpi's own PyPI mirror")
        return
    auth = root_auth()
    status, reply = call("GET", "/" + NAME + "?no_projects=")
    if status == 404:
        print("mirror index %s absent" % NAME)
        return
    expect(status, reply, (200,), "reading index %s" % NAME)
    if reply["result"].get("type") != "mirror":
        print("KEPT index %s: it is a %s index now, not the mirror this step made" % (NAME, reply["result"].get("type")))
        return
    status, reply = call("DELETE", "/" + NAME, None, auth)
    expect(status, reply, (200, 201), "deleting mirror index %s" % NAME)
    print("mirror index %s deleted (a cache: it held no uploads)" % NAME)`;

/**
 * Stage index steps' program: index-ensure also manages who may read (`pulumi_acl_read`, see
 * devpi/readAclPlugin.ts) when the step's stdin has it, and never sends that key back when it does
 * not: left from an earlier run whose plugin is gone, devpi would refuse it as unknown. Only stage
 * index steps run it, so the other steps' scripts stay as they were.
 */
export const DEVPI_INDEX_API_PY = DEVPI_API_PY.replace(
    'INDEX_KEYS = ("bases", "volatile", "acl_upload", "mirror_whitelist")',
    `INDEX_KEYS = ("bases", "volatile", "acl_upload", "mirror_whitelist", "${READ_ACL_KEY}")`,
)
    .replace(
        'merged = {k: current[k] for k in current if k not in ("projects", "name", "user")}',
        `merged = {k: current[k] for k in current if k not in ("projects", "name", "user") and (k != "${READ_ACL_KEY}" or k in spec)}`,
    )
    .replace(
        'call("PATCH", "/" + NAME, dict(reply["result"], volatile=True), auth)',
        `call("PATCH", "/" + NAME, dict({k: v for k, v in reply["result"].items() if k != "${READ_ACL_KEY}"}, volatile=True), auth)`,
    );

/**
 * The same program with the mirror actions: only mirror index steps run it, so the other steps'
 * scripts stay as they were before mirrors were managed.
 */
export const DEVPI_MIRROR_API_PY = DEVPI_API_PY.replace("\n\nACTIONS = {\n", `\n\n${MIRROR_PY}\n\n\nACTIONS = {\n    "mirror-ensure": mirror_ensure,\n    "mirror-delete": mirror_delete,\n`);

export interface ApiTarget {
    /** devpi-server's loopback URL, e.g. http://127.0.0.1:4040. */
    devpiUrl: string;
    /** Root-only file holding root's current password on the server. */
    credentialFile: string;
}

export type ApiAction = "root-password" | "user-ensure" | "user-delete" | "index-ensure" | "index-delete" | "token-ensure" | "token-delete" | "mirror-ensure" | "mirror-delete";

/** The script of one API step. Stdin (JSON) is handed through to the Python program. */
export function renderApiScript(t: ApiTarget, action: ApiAction, name?: string): string {
    const args = [t.devpiUrl, t.credentialFile, action, ...(name ? [name] : [])].map(shellQuote).join(" ");
    const program = action.startsWith("token-") ? DEVPI_TOKEN_API_PY : action.startsWith("mirror-") ? DEVPI_MIRROR_API_PY : action.startsWith("index-") ? DEVPI_INDEX_API_PY : DEVPI_API_PY;
    return `exec python3 -c ${shellQuote(program)} ${args}\n`;
}
