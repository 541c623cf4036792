/**
 * Renders the off-host copy of the scheduled backups: restic (Debian's package) sends each new
 * export to a repository on another machine (SFTP, or an S3-compatible store), encrypted with
 * the repository password, and applies the retention policy; and the restore from that copy alone.
 */
import { renderPackagesScript } from "../host/hostPreparationScript";
import { renderSpaceCheck, shellQuote, writeFileLines } from "../common/shell";
import { TEXTFILE_DIR } from "../constants";

/** Where the off-host settings live on the server: root's directory, readable by the service user's group. */
export const OFFSITE_DIR = "/etc/devpi/offsite";
export const OFFSITE_SCRIPT = "/usr/local/sbin/devpi-offsite";
export const OFFSITE_RESTORE_SCRIPT = "/usr/local/sbin/devpi-restore-offsite";
/** Free space (MiB) devpi-offsite wants where restic keeps its cache (the backup directory) before a copy. */
export const RESTIC_CACHE_MIB = 64;
/** The last off-host copy's result (`ok|failed EPOCH`), for devpi-metrics. */
export const OFFSITE_RESULT_FILE = `${TEXTFILE_DIR}/offsite-result`;

export interface OffsiteSettings {
    /** restic's repository: `sftp:USER@HOST:/PATH` or `s3:https://HOST/BUCKET[/PREFIX]`. */
    repository: string;
    /** SFTP: the target's SSH port and host key line (`ssh-ed25519 AAAA...`). */
    sshPort?: number;
    sshHostKey?: string;
    /** How many snapshots restic keeps (`forget --keep-*`). */
    keep: { daily: number; weekly: number; monthly: number };
    serviceUser: string;
    backupDir: string;
}

/** The target's name in known_hosts: `HOST`, or `[HOST]:PORT` off port 22. */
function knownHostsName(s: OffsiteSettings): string {
    const host = /^sftp:[^@]+@([^:]+):/.exec(s.repository)![1];
    return (s.sshPort ?? 22) === 22 ? host : `[${host}]:${s.sshPort}`;
}

/** `ssh` as restic's sftp.command, with the key and the pinned host key in the settings directory. */
function sftpCommand(s: OffsiteSettings): string {
    const m = /^sftp:([^@]+)@([^:]+):/.exec(s.repository)!;
    return `ssh -p ${s.sshPort ?? 22} -i ${OFFSITE_DIR}/ssh_key -o UserKnownHostsFile=${OFFSITE_DIR}/known_hosts -o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=30 ${m[1]}@${m[2]} -s sftp`;
}

/**
 * /usr/local/sbin/devpi-offsite EXPORT_DIR (as the service user; devpi-backup runs it after each
 * export): `restic backup` of that export, then `restic forget --prune` with the retention counts.
 * `--init` makes the repository when it does not exist yet. Secrets come from files, never argv.
 * Snapshots are grouped by host and tag, not by path: each export has a directory of its own, and
 * restic's default grouping would keep every one of them.
 */
export function renderOffsiteScript(s: OffsiteSettings): string {
    const sftp = s.repository.startsWith("sftp:") ? ` -o ${shellQuote(`sftp.command=${sftpCommand(s)}`)}` : "";
    return `#!/bin/bash
# Managed by Pulumi (devpi). Copies a devpi export off this server with restic; see the README.
set -euo pipefail
umask 077
export RESTIC_REPOSITORY=${shellQuote(s.repository)} RESTIC_PASSWORD_FILE=${OFFSITE_DIR}/password RESTIC_CACHE_DIR=${shellQuote(`${s.backupDir}/.restic-cache`)}
# shellcheck disable=SC1091 # the S3 keys, written by the setup step (root's file, this user's group)
if [ -r ${OFFSITE_DIR}/s3.env ]; then set -a; . ${OFFSITE_DIR}/s3.env; set +a; fi
result() {
  [ -d ${shellQuote(TEXTFILE_DIR)} ] || return 0
  if printf '%s %s\\n' "$1" "$(date +%s)" >${shellQuote(`${OFFSITE_RESULT_FILE}.tmp`)} 2>/dev/null; then
    mv -f -- ${shellQuote(`${OFFSITE_RESULT_FILE}.tmp`)} ${shellQuote(OFFSITE_RESULT_FILE)} 2>/dev/null || true
  fi
}
fail() {
  printf 'devpi-offsite failed: %s\n' "$1" >&2
  logger -t devpi-offsite -p user.err "failed" 2>/dev/null || true
  result failed
  exit 1
}
r() { restic --quiet${sftp} "$@"; }
if [ "\${1:-}" = --init ]; then
  if ! r cat config >/dev/null 2>&1; then r init >/dev/null; echo "made the off-host repository"; else echo "the off-host repository is there"; fi
  exit 0
fi
if [ "\${1:-}" = --restic ]; then shift; r "$@"; exit; fi
export_dir=\${1:?usage: devpi-offsite EXPORT_DIR | --init | --restic ARGS}
cd -- "$(dirname -- "$export_dir")"
# restic's cache (indexes, trees) grows in the backup directory: fail here, not half way.
${renderSpaceCheck(`${s.backupDir}/.restic-cache`, RESTIC_CACHE_MIB, "restic's cache")}if ! out=$(r backup --tag devpi --host devpi -- "$(basename -- "$export_dir")" 2>&1) || ! out=$(r forget --tag devpi --host devpi --group-by host,tags --keep-daily ${s.keep.daily} --keep-weekly ${s.keep.weekly} --keep-monthly ${s.keep.monthly} --prune 2>&1); then
  fail "$(printf '%s\\n' "$out" | tail -n 3 | tr '\\n' ' ')"
fi
result ok
echo "copied $(basename -- "$export_dir") off the server"
`;
}

/**
 * /usr/local/sbin/devpi-restore-offsite [SNAPSHOT] (as root): restores a snapshot (default the
 * newest) of the off-host repository into the backup directory, as the service user, then imports
 * it with devpi-restore. Needs nothing but this server's off-host settings (a fresh server works).
 */
export function renderOffsiteRestoreScript(s: OffsiteSettings & { restoreScript: string }): string {
    const u = shellQuote(s.serviceUser);
    return `#!/bin/bash
# Managed by Pulumi (devpi). Usage: devpi-restore-offsite [SNAPSHOT]; as root.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "devpi-restore-offsite must run as root" >&2; exit 1; }
snapshot=\${1:-latest}
[[ $snapshot =~ ^[A-Za-z0-9]+$ ]] || { echo "usage: devpi-restore-offsite [SNAPSHOT ID]" >&2; exit 2; }
fail() { printf 'devpi-restore-offsite failed: %s\\n' "$1" >&2; exit 1; }
stage=${shellQuote(s.backupDir)}/.offsite-restore-$(date -u +%Y%m%dT%H%M%SZ)
# The snapshot's size (restic's restore size) must fit in the backup directory first.
size=$(runuser -u ${u} -- ${OFFSITE_SCRIPT} --restic stats "$snapshot" --tag devpi --host devpi --mode restore-size --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["total_size"] // 1048576)') || fail "the off-host repository does not answer (restic stats); see the error above"
need=$(( size * 11 / 10 + 1 ))
${renderSpaceCheck(s.backupDir, "$need", "the snapshot $snapshot")}runuser -u ${u} -- ${OFFSITE_SCRIPT} --restic restore "$snapshot" --tag devpi --host devpi --target "$stage"
name=$(runuser -u ${u} -- find "$stage" -mindepth 1 -maxdepth 1 -type d -name 'devpi-export-*' -printf '%f\\n' | head -n 1)
[ -n "$name" ] || { echo "devpi-restore-offsite: snapshot $snapshot holds no devpi export" >&2; exit 1; }
if runuser -u ${u} -- test -e ${shellQuote(s.backupDir)}/"$name"; then
  runuser -u ${u} -- rm -rf -- "$stage"
else
  runuser -u ${u} -- mv -T -- "$stage/$name" ${shellQuote(s.backupDir)}/"$name"
  runuser -u ${u} -- rm -rf -- "$stage"
fi
echo "restored $name from the off-host repository into ${s.backupDir}"
${s.restoreScript} "$name"
`;
}

/**
 * The setup step (secrets on stdin as JSON: password, sshKey, s3AccessKeyId, s3SecretAccessKey):
 * restic installed, the settings files root's and readable by the service user's group only, the
 * scripts in place, the repository made when missing.
 */
export function renderOffsiteSetupScript(s: OffsiteSettings & { script: string; restore: string }): string {
    const g = shellQuote(s.serviceUser);
    return `${renderPackagesScript(["restic", "openssh-client"])}
if [ ! -d ${OFFSITE_DIR} ]; then install -d -m 0750 -o root -g ${g} ${OFFSITE_DIR}; fi
root_path ${OFFSITE_DIR} || fail "${OFFSITE_DIR} must be root's alone"
chown root:${g} ${OFFSITE_DIR}; chmod 0750 ${OFFSITE_DIR}
secrets=$(cat)
field() { printf '%s' "$secrets" | python3 -c 'import json, sys; v = json.load(sys.stdin).get(sys.argv[1]); sys.stdout.write(v if v else "")' "$1"; }
changed=""
# put NAME MODE CONTENT: OFFSITE_DIR/NAME (root, group ${s.serviceUser}); builtins only, so no argv holds CONTENT.
put() {
  local state
  state=$(printf '%s\\n' "$3" | write_if_changed ${OFFSITE_DIR}/"$1" "$2" root:${g})
  [ "$state" = unchanged ] || changed="$changed $1"
}
put password 0640 "$(field password)"
${
    s.repository.startsWith("sftp:")
        ? `put ssh_key 0640 "$(field sshKey)"
put known_hosts 0644 ${shellQuote(`${knownHostsName(s)} ${s.sshHostKey ?? ""}`)}`
        : `put s3.env 0640 "AWS_ACCESS_KEY_ID=$(field s3AccessKeyId)
AWS_SECRET_ACCESS_KEY=$(field s3SecretAccessKey)"`
}
a=$(${writeFileLines(OFFSITE_SCRIPT, "0755", "root:root", s.script)})
b=$(${writeFileLines(OFFSITE_RESTORE_SCRIPT, "0755", "root:root", s.restore)})
runuser -u ${g} -- ${OFFSITE_SCRIPT} --init
echo "off-host copy to ${s.repository}: scripts $a/$b, settings changed:\${changed:- none}"
`;
}

/** Removes the scripts and settings (the off-host repository and its snapshots stay). */
export function renderOffsiteRemoveScript(): string {
    return `rm -f ${OFFSITE_SCRIPT} ${OFFSITE_RESTORE_SCRIPT}
rm -rf ${OFFSITE_DIR}
echo "off-host copy removed (the repository keeps its snapshots)"
`;
}
