/**
 * Renders the scheduled backup: a script that runs devpi-export into a timestamped directory and
 * keeps the newest N, and the cron entry that runs it as the service user.
 */
import { renderDataLock } from "../common/dataLock";
import * as path from "node:path";
import { renderSpaceCheck, shellQuote, writeFileLines } from "../common/shell";
import { BACKUP_RESULT_FILE } from "../constants";
import { OFFSITE_SCRIPT } from "./offsiteScript";

export interface BackupSettings {
    venvDir: string;
    configFile: string;
    backupDir: string;
    keep: number;
}

/**
 * /usr/local/sbin/devpi-backup: an export that is complete or absent, never half-written, taken
 * under the data lock (never while a restore or an upgrade moves the data).
 */
export function renderBackupScript(s: BackupSettings): string {
    const dir = shellQuote(s.backupDir);
    return `#!/bin/bash
# Managed by Pulumi (devpi). Exports devpi's data; restore with devpi-import (see README).
set -euo pipefail
# Backups hold password hashes and every private package: the service user's alone (0600/0700).
umask 077
stamp=$(date -u +%Y%m%dT%H%M%SZ)
dest=${dir}/devpi-export-"$stamp"
partial=${dir}/.partial-"$stamp"
# A failure says why in one line, on stderr and in the system log (journalctl -t devpi-backup),
# removes its partial export (it only takes space), and leaves every older backup alone.
# The last run's result, for devpi-metrics (devpi_backup_last_run_success), kept outside the backup
# directory: a full backup file system must not hide its own failure.
result() {
  [ -d ${shellQuote(path.posix.dirname(BACKUP_RESULT_FILE))} ] || return 0
  if printf '%s %s\\n' "$1" "$(date +%s)" >${shellQuote(BACKUP_RESULT_FILE + ".tmp")} 2>/dev/null; then
    mv -f -- ${shellQuote(BACKUP_RESULT_FILE + ".tmp")} ${shellQuote(BACKUP_RESULT_FILE)} 2>/dev/null || true
  fi
}
fail() {
  printf 'devpi-backup failed: %s\\n' "$1" >&2
  logger -t devpi-backup -p user.err "failed: $1" 2>/dev/null || true
  rm -rf -- "$partial"
  result failed
  exit 1
}
${renderDataLock(s.backupDir, "fail")}rm -rf -- ${dir}/.partial-*
# An export needs about what the newest one took (plus a tenth); the first one at least 1 MiB.
last=$(find ${dir} -maxdepth 1 -name 'devpi-export-*' -type d | sort | tail -n 1)
need=1
if [ -n "$last" ]; then need=$(( $(du -sm -- "$last" | cut -f1) * 11 / 10 + 1 )); fi
space_free=$(df -Pm -- ${dir} | awk 'NR == 2 { print $4 }')
if [ "\${space_free:-0}" -lt "$need" ]; then fail "not enough free space in ${s.backupDir}: \${space_free:-0} MiB free, about $need MiB needed (the newest export's size). Older backups are kept; free space there and run it again."; fi
if ! out=$(${shellQuote(s.venvDir)}/bin/devpi-export -c ${shellQuote(s.configFile)} "$partial" 2>&1); then
  reason=$(printf '%s\\n' "$out" | grep -E 'Error|error|No space' | tail -n 1 | cut -c1-300)
  df=$(df -h --output=avail,target ${dir} 2>/dev/null | tail -n 1 | awk '{print $1 " free on " $2}')
  fail "devpi-export into ${s.backupDir} failed: \${reason:-$(printf '%s\\n' "$out" | tail -n 1)} ($df). Older backups are kept; free space there and run it again."
fi
mv -- "$partial" "$dest" || fail "could not rename $partial to $dest"
find ${dir} -maxdepth 1 -name 'devpi-export-*' -type d | sort | head -n -${s.keep} | xargs -r rm -rf --
result ok
# The off-host copy, when configured (devpi:offsiteRepository): its own result is kept for the metrics.
if [ -x ${shellQuote(OFFSITE_SCRIPT)} ]; then ${shellQuote(OFFSITE_SCRIPT)} "$dest" >&2 || exit 1; fi
echo "$dest"
`;
}

export interface RestoreSettings {
    venvDir: string;
    configFile: string;
    backupDir: string;
    serverDir: string;
    serviceUser: string;
    /** supervisor program running devpi-server. */
    program: string;
    /** devpi-server's loopback URL: the restore is done once it answers there. */
    devpiUrl: string;
    /** Seconds to wait for devpi-server to answer after the import (default 600). */
    readyTimeout?: number;
}

/**
 * /usr/local/sbin/devpi-restore NAME: imports BACKUPDIR/NAME into a fresh serverDir. The current
 * data is moved aside (SERVERDIR.before-restore-STAMP), never deleted; a failed import puts it back.
 * Waits for a running backup or upgrade first (the data lock), and says "restored" only once
 * devpi-server answers on the restored data (a client right after the command gets it, not a 502).
 */
export function renderRestoreScript(s: RestoreSettings): string {
    const q = shellQuote;
    return `#!/bin/bash
# Managed by Pulumi (devpi). Usage: devpi-restore BACKUP_NAME (a directory in ${s.backupDir}); as root.
set -euo pipefail
name=\${1:-}
if [ -z "$name" ] || [[ $name == */* ]] || [[ $name == .* ]]; then
  echo "usage: devpi-restore BACKUP_NAME; backups in ${s.backupDir}:" >&2
  ls -1 ${q(s.backupDir)} >&2 || true
  exit 2
fi
[ "$(id -u)" = 0 ] || { echo "devpi-restore must run as root" >&2; exit 1; }
fail() { printf 'devpi-restore failed: %s\\n' "$1" >&2; exit 1; }
# The lock (which also refuses a backup directory that is a link) before anything is looked up there.
${renderDataLock(s.backupDir, "fail")}src=${q(s.backupDir)}/$name
# Looked at as the service user: the backups are its own, and root follows nothing of theirs.
runuser -u ${q(s.serviceUser)} -- test -d "$src" || fail "no backup named $name in ${s.backupDir}"
# The import writes about the backup's size (plus a tenth) while the current data stays beside it.
need=$(( $(runuser -u ${q(s.serviceUser)} -- du -sm -- "$src" | cut -f1) * 11 / 10 + 1 ))
${renderSpaceCheck(s.serverDir, "$need", "the import of $name")}sd=${q(s.serverDir)}
aside=$sd.before-restore-$(date -u +%Y%m%dT%H%M%SZ)
supervisorctl stop ${q(s.program)}
# The server directory is the service user's: moved, made and removed only as that user.
runuser -u ${q(s.serviceUser)} -- mv -T -- "$sd" "$aside"
runuser -u ${q(s.serviceUser)} -- mkdir -m 0750 -- "$sd"
if ! runuser -u ${q(s.serviceUser)} -- ${q(s.venvDir)}/bin/devpi-import -c ${q(s.configFile)} "$src"; then
  echo "import failed; the previous data is back in place" >&2
  runuser -u ${q(s.serviceUser)} -- rm -rf -- "$sd"
  runuser -u ${q(s.serviceUser)} -- mv -T -- "$aside" "$sd"
  supervisorctl start ${q(s.program)}
  exit 1
fi
supervisorctl start ${q(s.program)}
for _ in $(seq 1 ${(s.readyTimeout ?? 600) * 5}); do
  if curl -fsS -o /dev/null -H 'Accept: application/json' ${q(`${s.devpiUrl}/+api`)} 2>/dev/null; then
    echo "restored $name; the previous data is kept in $aside"
    exit 0
  fi
  # supervisor gave up on it (it keeps exiting): no need to wait out the timeout.
  case $(supervisorctl status ${q(s.program)} 2>/dev/null || true) in *FATAL*) break ;; esac
  sleep 0.2
done
fail "imported $name, but devpi-server does not answer on ${s.devpiUrl} (supervisorctl status ${s.program}; its log); the previous data is kept in $aside"
`;
}

/** /etc/cron.d/devpi-backup */
export function renderCronEntry(schedule: string, user: string, scriptPath: string): string {
    return `# Managed by Pulumi (devpi).
SHELL=/bin/bash
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
${schedule} ${user} ${scriptPath} >/dev/null
`;
}

/** Installs the backup and restore scripts and the cron entry, and makes sure cron runs. */
export function renderBackupInstallScript(scriptPath: string, script: string, cronPath: string, cron: string, restorePath: string, restore: string): string {
    return `a=$(${writeFileLines(scriptPath, "0755", "root:root", script)})
r=$(${writeFileLines(restorePath, "0755", "root:root", restore)})
b=$(${writeFileLines(cronPath, "0644", "root:root", cron)})
svc_enable cron
if ! svc_running cron; then svc start cron >&2; fi
echo "backup script $a, restore script $r, schedule $b"
`;
}

/** Removes the schedule and scripts on destroy; existing backups stay. */
export function renderBackupRemoveScript(scriptPath: string, cronPath: string, restorePath: string): string {
    return `rm -f ${shellQuote(cronPath)} ${shellQuote(scriptPath)} ${shellQuote(restorePath)}\necho "backup schedule removed; backups kept"\n`;
}
