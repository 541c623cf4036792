/**
 * Renders the end-of-run health check that runs on the server.
 */
import { READ_CREDENTIAL_PY } from "../common/readCredential";
import { shellQuote } from "../common/shell";

export interface HealthCheckSettings {
    domain: string;
    httpPort: number;
    httpsPort: number;
    /** sha256 (hex, lower case) of the DER certificate nginx must present. */
    certSha256: string;
    /** Indexes (USER/INDEX) that must answer through nginx. */
    indexes: string[];
    replication: boolean;
    devpiLog: string;
    /** sslMode acme: certbot's log, whose tail a failure shows too. */
    certbotLog?: string;
    /** A hash of everything checked; a change re-runs the check. */
    revision: string;
}

export const HEALTH_PY = `import base64, hashlib, http.client, json, socket, ssl, sys
domain, http_port, https_port, want_sha, indexes, replication = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6] == "true"
${READ_CREDENTIAL_PY}
ctx = ssl.create_default_context()
if ca.strip():
    ctx.load_verify_locations(cadata=ca)
ctx.minimum_version = ssl.TLSVersion.TLSv1_2


class Conn(http.client.HTTPSConnection):
    def connect(self):
        self.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", https_port), 10), server_hostname=domain)


host = domain if https_port == 443 else "%s:%d" % (domain, https_port)
problems = []


def get(path, anonymous=False):
    c = Conn(domain, https_port, timeout=30)
    headers = {"Host": host, "Accept": "application/json"}
    if auth and not anonymous:
        headers["Authorization"] = auth
    c.request("GET", path, headers=headers)
    r = c.getresponse()
    body = r.read()
    der = c.sock.getpeercert(binary_form=True)
    c.close()
    return r.status, body, hashlib.sha256(der).hexdigest()


try:
    status, body, got_sha = get("/+api")
    if got_sha != want_sha:
        problems.append("nginx presents certificate sha256 %s, expected %s" % (got_sha, want_sha))
    if status != 200 or "login" not in json.loads(body)["result"]:
        problems.append("/+api answered %s" % status)
    # Per user, not per index: an index's own JSON lists its projects, which for root/pypi
    # means fetching PyPI's whole project list.
    wanted = [i.split("/") for i in indexes.split(",") if i]
    for user in sorted({u for u, _ in wanted}):
        status, body, _ = get("/" + user)
        have = json.loads(body)["result"].get("indexes", {}) if status == 200 else {}
        for u, ix in wanted:
            if u == user and ix not in have:
                problems.append("index %s/%s is missing (GET /%s answered %s)" % (u, ix, user, status))
    if auth:
        # Reads need a user here: nginx must refuse an anonymous one (devpi-lockdown answers it).
        status, _, _ = get("/root", anonymous=True)
        if status != 401:
            problems.append("an anonymous read of /root answered %s, not 401: reads are not restricted" % status)
    status, _, _ = get("/+changelog/0")
    if not replication and status != 403:
        problems.append("/+changelog is not blocked (HTTP %s)" % status)
except (OSError, ssl.SSLError, ValueError, KeyError) as e:
    problems.append("HTTPS request to %s failed: %s" % (host, e))
try:
    c = http.client.HTTPConnection("127.0.0.1", http_port, timeout=10)
    c.request("GET", "/simple/", headers={"Host": domain})
    r = c.getresponse()
    if r.status != 301 or not r.getheader("Location", "").startswith("https://"):
        problems.append("HTTP does not redirect to HTTPS (status %s)" % r.status)
except OSError as e:
    problems.append("HTTP request failed: %s" % e)
if problems:
    print("\\n".join(problems), file=sys.stderr)
    sys.exit(1)
print("healthy: https://%s/ answers with the expected certificate" % host)
`;

/**
 * Checks through nginx, over HTTPS with the expected certificate, that devpi answers and every
 * index serves its simple page. On failure it shows the tails of nginx's error log and
 * devpi-server's log, and fails the step (and so `pulumi up`). Stdin: the CA certificate to
 * trust (empty: the system's trust store).
 */
export function renderHealthCheckScript(s: HealthCheckSettings): string {
    const args = [s.domain, String(s.httpPort), String(s.httpsPort), s.certSha256, s.indexes.join(","), String(s.replication)].map(shellQuote).join(" ");
    return `# revision ${s.revision}
problems=$(mktemp)
if ! python3 -c ${shellQuote(HEALTH_PY)} ${args} 2>"$problems"; then
  summary=$(sed 's/$/;/' "$problems" | tr '\\n' ' ' | sed 's/; *$//')
  rm -f "$problems"
  if ! svc_running nginx; then summary="nginx is not running (start it: systemctl start nginx, or service nginx start); $summary"; fi
  printf 'devpi step %s failed: %s\\n' "$DEVPI_STEP" "$summary" >&2
  echo "--- tail of /var/log/nginx/error.log" >&2
  tail -n 20 /var/log/nginx/error.log >&2 || true
  echo "--- tail of ${s.devpiLog}" >&2
  tail -n 30 ${shellQuote(s.devpiLog)} >&2 || true
${
    s.certbotLog
        ? `  echo "--- tail of ${s.certbotLog}" >&2
  tail -n 30 ${shellQuote(s.certbotLog)} >&2 || true
`
        : ""
}  exit 1
fi
`;
}

export const REPLICA_SYNC_PY = `import base64, http.client, json, socket, ssl, sys, time, urllib.parse
primary_url, domain, https_port, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
${READ_CREDENTIAL_PY}
ctx = ssl.create_default_context()
if ca.strip():
    ctx.load_verify_locations(cadata=ca)


class Local(http.client.HTTPSConnection):
    def connect(self):
        self.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", https_port), 10), server_hostname=domain)


def status(conn, host):
    headers = {"Host": host, "Accept": "application/json"}
    if auth:
        headers["Authorization"] = auth
    conn.request("GET", "/+status", headers=headers)
    r = conn.getresponse()
    body = r.read()
    conn.close()
    if r.status != 200:
        raise OSError("GET /+status answered %s" % r.status)
    return json.loads(body)["result"]


u = urllib.parse.urlsplit(primary_url)
try:
    primary = status(http.client.HTTPSConnection(u.hostname, u.port or 443, context=ctx, timeout=30), u.netloc)
except (OSError, ssl.SSLError, ValueError, KeyError) as e:
    print("cannot read the primary's /+status at %s: %s" % (primary_url, e), file=sys.stderr)
    sys.exit(1)
want = primary["serial"]
local_host = domain if https_port == 443 else "%s:%d" % (domain, https_port)
start = time.monotonic()
mine, last_error = None, None
while time.monotonic() - start < timeout:
    try:
        mine = status(Local(domain, https_port, timeout=30), local_host)
        last_error = None
        if mine.get("role") != "REPLICA":
            print("%s is not a replica (role %s)" % (local_host, mine.get("role")), file=sys.stderr)
            sys.exit(1)
        # A serial alone is not enough: a primary rebuilt by export/import starts a new
        # changelog (a new uuid) whose serial may be below what the replica already has.
        if mine["serial"] >= want and mine.get("primary-uuid") == primary.get("uuid"):
            print("in sync: replica serial %d, primary serial %d (read from %s), after %.1fs" % (mine["serial"], want, primary_url, time.monotonic() - start))
            sys.exit(0)
    except (OSError, ssl.SSLError, ValueError, KeyError) as e:
        last_error = e
    time.sleep(1)
print("replica https://%s/ did not reach the primary's serial %d (primary %s) within %ds" % (local_host, want, primary.get("uuid"), timeout), file=sys.stderr)
if last_error is not None:
    print("last error: %s" % last_error, file=sys.stderr)
if mine is not None:
    print("replica serial %s, primary-serial %s, primary-contacted-at %s" % (mine.get("serial"), mine.get("primary-serial"), mine.get("primary-contacted-at")), file=sys.stderr)
    if mine.get("primary-uuid") != primary.get("uuid"):
        print("the replica follows primary %s, but the primary is %s" % (mine.get("primary-uuid"), primary.get("uuid")), file=sys.stderr)
    print("replication-errors: %s" % json.dumps(mine.get("replication-errors"), indent=1), file=sys.stderr)
sys.exit(1)
`;

export interface ReplicaSyncSettings {
    /** The primary's public HTTPS URL. */
    primaryUrl: string;
    /** Seconds to wait for the replica to catch up. */
    timeout: number;
}

/**
 * A replica's health check: first it must answer over HTTPS and catch up with the primary (its
 * `/+status` serial at least the primary's, read in the same step), then the same checks as
 * every server. On failure it shows devpi's log tail and the replica's `replication-errors`.
 * Stdin: the CA certificate to trust.
 */
export function renderReplicaHealthCheckScript(s: HealthCheckSettings, sync: ReplicaSyncSettings): string {
    const args = [s.domain, String(s.httpPort), String(s.httpsPort), s.certSha256, s.indexes.join(","), String(s.replication)].map(shellQuote).join(" ");
    const syncArgs = [sync.primaryUrl, s.domain, String(s.httpsPort), String(sync.timeout)].map(shellQuote).join(" ");
    return `# revision ${s.revision}
# Stdin (the CA, maybe a credential) is fed to both checks from memory (printf is a builtin: no argv, no file).
payload=$(cat)
if ! printf '%s' "$payload" | python3 -c ${shellQuote(REPLICA_SYNC_PY)} ${syncArgs} || ! printf '%s' "$payload" | python3 -c ${shellQuote(HEALTH_PY)} ${args}; then
  echo "--- tail of /var/log/nginx/error.log" >&2
  tail -n 20 /var/log/nginx/error.log >&2 || true
  echo "--- tail of ${s.devpiLog}" >&2
  tail -n 40 ${shellQuote(s.devpiLog)} >&2 || true
  exit 1
fi
`;
}
