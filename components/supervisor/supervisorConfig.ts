/**
 * Renders supervisor's program section for devpi-server and the script that installs it.
 */
import { shellQuote, writeFileLines } from "../common/shell";

export interface SupervisorProgramSettings {
    /** Program name; the file is /etc/supervisor/conf.d/NAME.conf (seed: devpi). */
    name: string;
    venvDir: string;
    configFile: string;
    serviceUser: string;
    homeDir: string;
    /** Adds --debug: the seed's first trouble-shooting step. */
    debug: boolean;
    logFile: string;
    /** CA bundle for devpi's outbound HTTPS (its PyPI mirror), for networks that inspect TLS. */
    caBundle?: string;
}

/** The `[program:NAME]` section. devpi-server reads everything else from its YAML config. */
export function renderSupervisorProgram(s: SupervisorProgramSettings): string {
    const command = [`${s.venvDir}/bin/devpi-server`, "-c", s.configFile, ...(s.debug ? ["--debug"] : [])].join(" ");
    return `; Managed by Pulumi (devpi). Local edits are overwritten.
[program:${s.name}]
command = ${command}
user = ${s.serviceUser}
directory = ${s.homeDir}
environment = HOME="${s.homeDir}",USER="${s.serviceUser}"${s.caBundle ? `,REQUESTS_CA_BUNDLE="${s.caBundle}",SSL_CERT_FILE="${s.caBundle}"` : ""}
umask = 022
priority = 999
autostart = true
autorestart = true
startsecs = 5
startretries = 3
stopsignal = INT
stopwaitsecs = 30
redirect_stderr = true
stdout_logfile = ${s.logFile}
stdout_logfile_maxbytes = 50MB
stdout_logfile_backups = 5
`;
}

export interface SupervisorScriptSettings {
    name: string;
    confPath: string;
    program: string;
    /** Loopback URL of devpi-server, polled until it answers. */
    devpiUrl: string;
    logFile: string;
    /** Seconds to wait for devpi-server to answer after (re)start. */
    readyTimeout: number;
}

/**
 * Installs the program section, makes sure supervisord runs, (re)starts devpi-server and waits
 * until it answers. This step only runs when its config or the restart token changed, so it
 * always restarts the program; on failure it shows the tail of devpi-server's log.
 */
export function renderSupervisorScript(s: SupervisorScriptSettings): string {
    const n = shellQuote(s.name);
    return `state=$(${writeFileLines(s.confPath, "0644", "root:root", s.program)})
svc_enable supervisor
if ! svc_running supervisor; then
  svc start supervisor >&2 || true
  for _ in $(seq 1 30); do svc_running supervisor && break; sleep 1; done
  svc_running supervisor || { echo "supervisord does not start" >&2; exit 1; }
fi
supervisorctl reread >&2
supervisorctl update ${n} >&2
if [ "$state" = unchanged ]; then supervisorctl restart ${n} >&2 || true; fi
supervisorctl start ${n} >/dev/null 2>&1 || true
# Polled every 0.2 s: devpi's start is what the index's downtime and a first pulumi up wait on.
for i in $(seq 1 ${s.readyTimeout * 5}); do
  if curl -fsS -o /dev/null -H 'Accept: application/json' ${shellQuote(s.devpiUrl + "/+api")}; then
    echo "devpi-server answers after $((i / 5))s (config $state)"
    exit 0
  fi
  # supervisor gave up on it (it keeps exiting): no need to wait out the timeout.
  # (supervisorctl exits non-zero for a stopped program, hence no pipe under pipefail.)
  st=$(supervisorctl status ${n} 2>/dev/null || true)
  case $st in *FATAL*) echo "devpi-server keeps exiting (supervisor: FATAL)" >&2; break ;; esac
  sleep 0.2
done
echo "devpi-server did not answer on ${s.devpiUrl} within ${s.readyTimeout}s; supervisorctl status:" >&2
supervisorctl status ${n} >&2 || true
echo "--- tail of ${s.logFile}" >&2
tail -n 40 ${shellQuote(s.logFile)} >&2 || true
exit 1
`;
}

/** Stops the program and removes its section; devpi's data stays. */
export function renderSupervisorRemoveScript(s: { name: string; confPath: string }): string {
    const n = shellQuote(s.name);
    return `if [ -f ${shellQuote(s.confPath)} ]; then
  supervisorctl stop ${n} >&2 || true
  rm -f ${shellQuote(s.confPath)}
  if svc_running supervisor; then supervisorctl reread >&2; supervisorctl update >&2; fi
fi
echo "removed ${s.name}"
`;
}
