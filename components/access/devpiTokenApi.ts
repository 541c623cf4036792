/**
 * The token actions of the API program (devpiApi.ts): devpi-tokens tokens made and revoked as
 * root over devpi's HTTP API. Each token of the stack is recorded on the server in a root-only
 * file, `CONFIGDIR/tokens/NAME.json` (its spec, id, expiry and the token itself), so a re-run with
 * the same spec hands back the same token instead of making a new one, and a new token revokes
 * the one it replaces. The token leaves the server only on the step's stdout, which the step keeps
 * secret and never logs.
 */

/** Python (part of DEVPI_API_PY): `token-ensure NAME` (stdin: the spec) and `token-delete NAME`. */
export const TOKEN_PY = `def token_path():
    return os.path.join(os.path.dirname(CRED), "tokens", NAME + ".json")


def stored_token():
    try:
        with open(token_path()) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def token_ids(user, auth):
    status, reply = call("GET", "/%s/+tokens" % user, None, auth)
    expect(status, reply, (200,), "listing the tokens of %s (is devpi-tokens installed?)" % user)
    return set((reply.get("result") or {}).get("tokens") or {})


def revoke(user, token_id, auth):
    status, reply = call("DELETE", "/%s/+tokens/%s" % (user, token_id), None, auth)
    if status == 404:
        return False
    expect(status, reply, (200,), "revoking token %s of %s" % (token_id, user))
    return True


def token_reply(t):
    return json.dumps({"token": t["token"], "id": t["id"], "user": t["spec"]["user"], "expires": t["expires"]})


def token_ensure():
    spec = read_stdin()
    want = {k: spec[k] for k in ("user", "allowed", "indexes", "seconds", "generation")}
    auth = root_auth()
    old = stored_token()
    now = int(time.time())
    if old and old.get("spec") == want and old["expires"] > now + 60 and old["id"] in token_ids(want["user"], auth):
        print(token_reply(old))
        return
    user = want["user"]
    before = token_ids(user, auth)
    body = {"allowed": want["allowed"], "indexes": want["indexes"], "expires": now + want["seconds"]}
    status, reply = call("POST", "/%s/+token-create" % user, body, auth)
    expect(status, reply, (200,), "creating token %s for %s" % (NAME, user))
    made = token_ids(user, auth) - before
    if len(made) != 1:
        die("creating token %s for %s: cannot tell its id (new ids: %s)" % (NAME, user, sorted(made)))
    new = {"spec": want, "token": reply["result"]["token"], "id": made.pop(), "expires": body["expires"]}
    path = token_path()
    old_umask = os.umask(0o077)
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(new, f)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    finally:
        os.umask(old_umask)
    # The token it replaces stops working now: CI gets the new one from this run's outputs.
    if old and old.get("id") and old["id"] != new["id"]:
        revoke(old["spec"]["user"], old["id"], auth)
    print(token_reply(new))


def token_delete():
    auth = root_auth()
    old = stored_token()
    if old is None:
        print("token %s absent" % NAME)
        return
    user = old["spec"]["user"]
    status, _ = call("GET", "/%s/+tokens" % user, None, auth)
    if call("GET", "/" + user)[0] == 404:
        print("token %s of %s is gone with its user" % (NAME, user))
    elif status == 404:
        print("KEPT token %s of %s: devpi-tokens is no longer installed, so devpi accepts no token now; "
              "its key stays in the user's record until it expires at %s (or until the user is deleted)"
              % (NAME, user, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(old["expires"]))))
    elif revoke(user, old["id"], auth):
        print("token %s of %s revoked" % (NAME, user))
    else:
        print("token %s of %s was already gone" % (NAME, user))
    os.remove(token_path())`;
