/**
 * Renders devpi-metrics, the collector that feeds node-exporter's textfile collector with devpi's
 * state every 15 s: a Python program (python3 is on every server), run by supervisor as the
 * service user, which writes one file in Prometheus's text format.
 */

export interface MetricsCollectorSettings {
    /** devpi-server's loopback URL (its /+status). */
    devpiUrl: string;
    /** nginx's HTTPS port on this host and the name it serves: the served certificate is read there. */
    httpsPort: number;
    domain: string;
    serverDir: string;
    /** The scheduled backups' directory; absent where none are taken (replicas). */
    backupDir?: string;
    /** nginx's stub_status, on a unix socket only local processes reach. */
    nginxStatusSocket: string;
    /** devpi-backup's and devpi-offsite's last results (`ok|failed EPOCH`). */
    backupResultFile: string;
    offsiteResultFile: string;
    /** The file node-exporter's textfile collector reads (written atomically). */
    outFile: string;
    /** Seconds between two collections. */
    intervalSeconds: number;
}

/** The metrics' names and meaning, for the README's table and the alert rules (one place). */
export const COLLECTOR_METRICS: Record<string, string> = {
    devpi_up: "1 when devpi-server answers /+status on loopback, else 0",
    devpi_serial: "devpi's current serial (its number of commits)",
    devpi_event_serial: "the serial devpi's event hooks (devpi-web's indexing among them) have processed",
    devpi_event_lag: "devpi_serial - devpi_event_serial: commits not processed yet",
    devpi_last_commit_timestamp_seconds: "when devpi last committed anything",
    devpi_web_whoosh_index_queue_size: "devpi-web's search indexing queue (from devpi's own metrics, as are the other devpi_server_* and devpi_web_* ones)",
    devpi_replica: "1 on a replica, 0 on a primary or a single server",
    devpi_replica_serial_lag: "replica only: the primary's serial minus this replica's",
    devpi_replica_seconds_since_in_sync: "replica only: seconds since it was last in sync with its primary (grows while its devpi is down)",
    devpi_replication_errors: "replica only: replication errors devpi reports",
    devpi_polling_replicas: "primary only: replicas that have polled it",
    devpi_backups: "exports kept in the backup directory",
    devpi_backup_last_success_timestamp_seconds: "when the newest complete export was taken (0: none)",
    devpi_backup_last_size_bytes: "size of the newest complete export",
    devpi_backup_last_run_success: "1 when the last scheduled backup succeeded, 0 when it failed (absent before the first run)",
    devpi_backup_last_run_timestamp_seconds: "when the last scheduled backup ended",
    devpi_offsite_last_run_success: "1 when the last off-host copy (restic) succeeded, 0 when it failed (absent without devpi:offsite)",
    devpi_offsite_last_run_timestamp_seconds: "when the last off-host copy ended",
    devpi_certificate_expiry_timestamp_seconds: "when the certificate nginx serves expires",
    devpi_dir_avail_bytes: "free space (for unprivileged users) on the file system of the data (dir=server) and backup (dir=backup) directories",
    devpi_dir_size_bytes: "size of that file system",
    nginx_connections_active: "nginx's open client connections (stub_status)",
    nginx_connections_accepted_total: "connections nginx accepted",
    nginx_http_requests_total: "requests nginx served",
    devpi_metrics_last_run_timestamp_seconds: "when this collector last ran (a stale value: the collector stopped)",
};

/** The collector's code after its settings (DEVPI_URL, ..., HELP; see {@link renderMetricsCollector}). */
const COLLECTOR_PY = `state = {"in_sync_at": None, "sizes": {}, "certificate": (None, None)}


class Metrics:
    def __init__(self):
        self.lines = {}

    def add(self, name, value, labels=None, kind="gauge", help_text=None):
        if value is None:
            return
        key = name
        if key not in self.lines:
            text = help_text or HELP.get(name, name)
            self.lines[key] = ["# HELP %s %s" % (name, text.replace("\\n", " ")), "# TYPE %s %s" % (name, kind)]
        label = ""
        if labels:
            label = "{" + ",".join('%s="%s"' % (k, str(v).replace("\\\\", "\\\\\\\\").replace('"', '\\\\"')) for k, v in sorted(labels.items())) + "}"
        self.lines[key].append("%s%s %s" % (name, label, repr(float(value))))

    def text(self):
        return "".join(line + "\\n" for lines in self.lines.values() for line in lines)


def devpi_status():
    req = urllib.request.Request(DEVPI_URL + "/+status", headers={"Accept": "application/json"})
    with urllib.request.urlopen(req, timeout=15) as r:
        return json.load(r)["result"]


def collect_devpi(m, now):
    try:
        st = devpi_status()
    except Exception:
        m.add("devpi_up", 0)
        if state["in_sync_at"] is not None:
            m.add("devpi_replica_seconds_since_in_sync", now - state["in_sync_at"])
        return
    m.add("devpi_up", 1)
    serial, event = st.get("serial"), st.get("event-serial")
    m.add("devpi_serial", serial)
    m.add("devpi_event_serial", event)
    if isinstance(serial, int) and isinstance(event, int):
        m.add("devpi_event_lag", serial - event)
    m.add("devpi_last_commit_timestamp_seconds", st.get("last-commit-timestamp"))
    for metric in st.get("metrics") or []:
        name, kind, value = metric[0], metric[1], metric[2]
        if isinstance(name, str) and name.replace("_", "").isalnum() and kind in ("gauge", "counter"):
            # Prometheus names counters NAME_total; devpi does not.
            exported = name + "_total" if kind == "counter" and not name.endswith("_total") else name
            m.add(exported, value, kind=kind, help_text=HELP.get(name, "devpi's own metric %s" % name))
    replica = st.get("role") == "REPLICA"
    m.add("devpi_replica", 1 if replica else 0)
    if replica:
        primary = st.get("primary-serial")
        if isinstance(primary, int) and isinstance(serial, int):
            m.add("devpi_replica_serial_lag", max(0, primary - serial))
        in_sync = st.get("replica-in-sync-at")
        if in_sync:
            state["in_sync_at"] = in_sync
        since = in_sync or state["in_sync_at"] or st.get("replica-started-at")
        if since:
            m.add("devpi_replica_seconds_since_in_sync", max(0.0, now - since))
        m.add("devpi_replication_errors", len(st.get("replication-errors") or {}))
    else:
        m.add("devpi_polling_replicas", len(st.get("polling_replicas") or {}))


def collect_backups(m):
    d = DIRS.get("backup")
    if d is None:
        return
    try:
        names = sorted(e.name for e in os.scandir(d) if e.name.startswith("devpi-export-") and e.is_dir(follow_symlinks=False))
    except OSError:
        return
    m.add("devpi_backups", len(names))
    if names:
        newest = os.path.join(d, names[-1])
        try:
            stamp = time.strptime(names[-1][len("devpi-export-"):], "%Y%m%dT%H%M%SZ")
            m.add("devpi_backup_last_success_timestamp_seconds", calendar.timegm(stamp))
        except ValueError:
            m.add("devpi_backup_last_success_timestamp_seconds", os.lstat(newest).st_mtime)
        # An export never changes once renamed into place: its size is measured once.
        if newest not in state["sizes"]:
            state["sizes"] = {newest: tree_size(newest)}
        m.add("devpi_backup_last_size_bytes", state["sizes"][newest])
    else:
        m.add("devpi_backup_last_success_timestamp_seconds", 0)
    for path, prefix in ((BACKUP_RESULT, "devpi_backup"), (OFFSITE_RESULT, "devpi_offsite")):
        try:
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode) and st.st_size < 4096:
                with open(path, "rb") as f:
                    words = f.read().decode("ascii", "replace").split()
                if len(words) >= 2 and words[0] in ("ok", "failed"):
                    m.add(prefix + "_last_run_success", 1 if words[0] == "ok" else 0)
                    m.add(prefix + "_last_run_timestamp_seconds", float(words[1]))
        except (OSError, ValueError):
            pass


def tree_size(top):
    total = 0
    for root, dirs, files in os.walk(top, followlinks=False):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def collect_disks(m):
    for label, d in DIRS.items():
        try:
            v = os.statvfs(d)
        except OSError:
            continue
        m.add("devpi_dir_avail_bytes", v.f_bavail * v.f_frsize, {"dir": label, "path": d})
        m.add("devpi_dir_size_bytes", v.f_blocks * v.f_frsize, {"dir": label, "path": d})


def collect_certificate(m):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection(("127.0.0.1", HTTPS_PORT), timeout=10) as sock:
            with ctx.wrap_socket(sock, server_hostname=DOMAIN) as tls:
                der = tls.getpeercert(binary_form=True)
        if state["certificate"][0] != der:
            out = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-enddate"], input=der, capture_output=True, timeout=10, check=True).stdout.decode()
            state["certificate"] = (der, ssl.cert_time_to_seconds(out.strip().split("=", 1)[1]))
        m.add("devpi_certificate_expiry_timestamp_seconds", state["certificate"][1])
    except Exception:
        pass


def collect_nginx(m):
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(NGINX_STATUS_SOCKET)
            sock.sendall(b"GET /stub_status HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n")
            data = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        body = data.decode("ascii", "replace").split("\\r\\n\\r\\n", 1)[1].split()
        # Active connections: A / server accepts handled requests / X Y Z / Reading: R Writing: W Waiting: T
        m.add("nginx_connections_active", int(body[2]))
        m.add("nginx_connections_accepted_total", int(body[7]), kind="counter")
        m.add("nginx_http_requests_total", int(body[9]), kind="counter")
    except Exception:
        pass


def collect_once():
    now = time.time()
    m = Metrics()
    collect_devpi(m, now)
    collect_backups(m)
    collect_disks(m)
    collect_certificate(m)
    collect_nginx(m)
    m.add("devpi_metrics_last_run_timestamp_seconds", now)
    tmp = OUT + ".tmp"
    with open(tmp, "w") as f:
        f.write(m.text())
    os.chmod(tmp, 0o644)
    os.replace(tmp, OUT)


def main():
    if "--once" in sys.argv:
        collect_once()
        return
    while True:
        started = time.time()
        try:
            collect_once()
        except Exception as e:
            print("devpi-metrics: %s" % e, file=sys.stderr, flush=True)
        time.sleep(max(1.0, INTERVAL - (time.time() - started)))


if __name__ == "__main__":
    main()
`;

/**
 * The collector: `--once` writes the file once (the install step's check), otherwise it loops.
 * Every source is optional: what cannot be read is left out (devpi_up says whether devpi
 * answered); it never follows links under the service user's directories (lstat, no reads of
 * file contents there but the backup result, which the service user writes anyway).
 */
export function renderMetricsCollector(s: MetricsCollectorSettings): string {
    return `#!/usr/bin/python3
"""devpi-metrics: devpi's state for Prometheus (node-exporter's textfile collector).
Managed by Pulumi (devpi). Local edits are overwritten."""
import calendar
import json
import os
import socket
import ssl
import stat
import subprocess
import sys
import time
import urllib.request

DEVPI_URL = ${JSON.stringify(s.devpiUrl)}
HTTPS_PORT = ${s.httpsPort}
DOMAIN = ${JSON.stringify(s.domain)}
DIRS = {"server": ${JSON.stringify(s.serverDir)}${s.backupDir ? `, "backup": ${JSON.stringify(s.backupDir)}` : ""}}
NGINX_STATUS_SOCKET = ${JSON.stringify(s.nginxStatusSocket)}
OUT = ${JSON.stringify(s.outFile)}
BACKUP_RESULT = ${JSON.stringify(s.backupResultFile)}
OFFSITE_RESULT = ${JSON.stringify(s.offsiteResultFile)}
INTERVAL = ${s.intervalSeconds}
HELP = ${JSON.stringify(COLLECTOR_METRICS)}

${COLLECTOR_PY}`;
}
