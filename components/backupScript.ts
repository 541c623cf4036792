/**
 * Renders the scheduled backup: a script that runs devpi-export into a timestamped directory and
 * keeps the newest N, and the cron entry that runs it as the service user.
 */
import { shellQuote } from "./shell";

export interface BackupSettings {
    venvDir: string;
    configFile: string;
    backupDir: string;
    keep: number;
}

/** /usr/local/sbin/devpi-backup: an export that is complete or absent, never half-written. */
export function renderBackupScript(s: BackupSettings): string {
    const dir = shellQuote(s.backupDir);
    return `#!/bin/bash
# Managed by Pulumi (devpi). Exports devpi's data; restore with devpi-import (see README).
set -euo pipefail
umask 027
stamp=$(date -u +%Y%m%dT%H%M%SZ)
dest=${dir}/devpi-export-"$stamp"
rm -rf -- ${dir}/.partial-*
${shellQuote(s.venvDir)}/bin/devpi-export -c ${shellQuote(s.configFile)} ${dir}/.partial-"$stamp" >/dev/null
mv -- ${dir}/.partial-"$stamp" "$dest"
find ${dir} -maxdepth 1 -name 'devpi-export-*' -type d | sort | head -n -${s.keep} | xargs -r rm -rf --
echo "$dest"
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

/** Installs the script and cron entry and makes sure cron runs. */
export function renderBackupInstallScript(scriptPath: string, script: string, cronPath: string, cron: string): string {
    return `a=$(write_if_changed ${shellQuote(scriptPath)} 0755 root:root <<'DEVPI_BACKUP'
${script.replace(/\n?$/, "\n")}DEVPI_BACKUP
)
b=$(write_if_changed ${shellQuote(cronPath)} 0644 root:root <<'DEVPI_CRON'
${cron.replace(/\n?$/, "\n")}DEVPI_CRON
)
if ! svc_running cron; then svc start cron >&2; fi
echo "backup script $a, schedule $b"
`;
}

/** Removes the schedule on destroy; existing backups stay. */
export function renderBackupRemoveScript(scriptPath: string, cronPath: string): string {
    return `rm -f ${shellQuote(cronPath)} ${shellQuote(scriptPath)}\necho "backup schedule removed; backups kept"\n`;
}
