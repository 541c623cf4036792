/**
 * Renders the end-of-run health check that runs on the server.
 */
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
    /** A hash of everything checked; a change re-runs the check. */
    revision: string;
}

export const HEALTH_PY = `import hashlib, http.client, json, socket, ssl, sys
domain, http_port, https_port, want_sha, indexes, replication = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6] == "true"
ca = sys.stdin.read()
ctx = ssl.create_default_context()
if ca.strip():
    ctx.load_verify_locations(cadata=ca)
ctx.minimum_version = ssl.TLSVersion.TLSv1_2


class Conn(http.client.HTTPSConnection):
    def connect(self):
        self.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", https_port), 10), server_hostname=domain)


host = domain if https_port == 443 else "%s:%d" % (domain, https_port)
problems = []


def get(path):
    c = Conn(domain, https_port, timeout=30)
    c.request("GET", path, headers={"Host": host, "Accept": "application/json"})
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
    const args = [s.domain, String(s.httpPort), String(s.httpsPort), s.certSha256, s.indexes.join(","), String(s.replication)]
        .map(shellQuote)
        .join(" ");
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
  exit 1
fi
rm -f "$problems"
`;
}
