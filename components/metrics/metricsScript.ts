/**
 * Renders what the metrics step installs: Debian's prometheus-node-exporter and our collector
 * (metricsCollector.ts), both run by supervisor, and the script that puts them in place.
 */
import { renderPackagesScript } from "../host/hostPreparationScript";
import { shellQuote, writeFileLines } from "../common/shell";
import { NGINX_STATUS_SOCKET, TEXTFILE_DIR } from "../constants";

export { NGINX_STATUS_SOCKET, TEXTFILE_DIR };

/** Debian's package; its binary and the user it runs as. */
export const NODE_EXPORTER_PACKAGE = "prometheus-node-exporter";
export const NODE_EXPORTER_BIN = "/usr/bin/prometheus-node-exporter";
export const NODE_EXPORTER_USER = "prometheus";
/** Where our collector is installed (root's), and the directory node-exporter's textfile collector reads. */
export const COLLECTOR_PATH = "/usr/local/lib/devpi-pulumi/devpi-metrics.py";
/** supervisor's section with both programs. */
export const METRICS_SUPERVISOR_CONF = "/etc/supervisor/conf.d/devpi-metrics.conf";

export interface MetricsProgramSettings {
    /** node-exporter's listen address, HOST:PORT (loopback). */
    listen: string;
    serviceUser: string;
}

/**
 * supervisor's section: node-exporter as `prometheus` on the configured address with the textfile
 * collector pointed at {@link TEXTFILE_DIR}, and the collector as the service user (the one user
 * that may read the backup directory; it writes only the textfile directory).
 */
export function renderMetricsPrograms(s: MetricsProgramSettings): string {
    const common = `autostart = true
autorestart = true
startsecs = 3
startretries = 10
redirect_stderr = true
stdout_logfile_maxbytes = 10MB
stdout_logfile_backups = 2`;
    return `; Managed by Pulumi (devpi). Local edits are overwritten.
[program:devpi-node-exporter]
command = ${NODE_EXPORTER_BIN} --web.listen-address=${s.listen} --collector.textfile.directory=${TEXTFILE_DIR}
user = ${NODE_EXPORTER_USER}
directory = /
${common}
stdout_logfile = /var/log/supervisor/devpi-node-exporter.log

[program:devpi-metrics]
command = /usr/bin/python3 ${COLLECTOR_PATH}
user = ${s.serviceUser}
directory = /
umask = 022
${common}
stdout_logfile = /var/log/supervisor/devpi-metrics.log
`;
}

export interface MetricsScriptSettings extends MetricsProgramSettings {
    collector: string;
}

/**
 * Installs node-exporter's Debian package; on systemd hosts Debian's own unit is masked first (it
 * would listen on every address). A step of its own, so apt runs while pip installs devpi.
 */
export function renderNodeExporterPackageScript(): string {
    return `# Debian's unit would listen on every address as soon as the package is in: masked before it is.
if [ -d /run/systemd/system ]; then
  systemctl mask --quiet ${NODE_EXPORTER_PACKAGE}.service
  systemctl stop ${NODE_EXPORTER_PACKAGE}.service 2>/dev/null || true
fi
${renderPackagesScript([NODE_EXPORTER_PACKAGE])}`;
}

/**
 * Writes the collector and supervisor's section (node-exporter is installed by
 * {@link renderNodeExporterPackageScript}); (re)starts both programs when anything changed, runs
 * the collector once, and waits until node-exporter serves devpi_up.
 */
export function renderMetricsScript(s: MetricsScriptSettings): string {
    const user = shellQuote(s.serviceUser);
    return `[ -x ${NODE_EXPORTER_BIN} ] || fail "${NODE_EXPORTER_BIN} is missing: the ${NODE_EXPORTER_PACKAGE} package step did not install it"
if [ ! -d ${shellQuote(COLLECTOR_PATH.replace(/\/[^/]+$/, ""))} ]; then install -d -m 0755 -o root -g root ${shellQuote(COLLECTOR_PATH.replace(/\/[^/]+$/, ""))}; fi
collector=$(${writeFileLines(COLLECTOR_PATH, "0755", "root:root", s.collector)})
service_dir ${user} 0755 ${TEXTFILE_DIR}
programs=$(${writeFileLines(METRICS_SUPERVISOR_CONF, "0644", "root:root", renderMetricsPrograms(s))})
svc_enable supervisor
if ! svc_running supervisor; then svc start supervisor >&2 || true; fi
supervisorctl reread >&2
# update starts new programs and restarts those whose section changed, without waiting for them;
# only a new collector under an unchanged section needs a restart of its own.
supervisorctl update devpi-node-exporter devpi-metrics >&2
if [ "$collector" != unchanged ] && [ "$programs" = unchanged ]; then supervisorctl restart devpi-metrics >&2 || true; fi
supervisorctl start devpi-node-exporter devpi-metrics >/dev/null 2>&1 || true
runuser -u ${user} -- /usr/bin/python3 ${COLLECTOR_PATH} --once
for _ in $(seq 1 60); do
  if curl -fsS --max-time 5 http://${s.listen}/metrics 2>/dev/null | grep '^devpi_up ' >/dev/null; then
    echo "node-exporter serves devpi's metrics on ${s.listen} (collector $collector, programs $programs)"
    exit 0
  fi
  sleep 0.5
done
echo "node-exporter does not serve devpi_up on ${s.listen}; its log:" >&2
tail -n 20 /var/log/supervisor/devpi-node-exporter.log >&2 || true
exit 1
`;
}

/** Stops both programs and removes what the step installed (the package and the textfile directory stay). */
export function renderMetricsRemoveScript(): string {
    return `rm -f ${METRICS_SUPERVISOR_CONF}
if svc_running supervisor; then supervisorctl reread >&2 || true; supervisorctl update >&2 || true; fi
rm -f ${COLLECTOR_PATH}
echo "metrics removed"
`;
}
