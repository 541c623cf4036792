/**
 * Renders the upgrade step: switching devpi-server to a newly installed version without losing
 * a package, and going back automatically when the new version does not come up.
 */
import { renderDataLock } from "../common/dataLock";
import { renderSpaceCheck, shellQuote } from "../common/shell";
import { versionsDir } from "./devpiServerConfig";

export type UpgradeStrategy = "auto" | "export-import";

export interface UpgradeSettings {
    venvDir: string;
    /** Where the virtualenvs live (default `VENVDIR.versions`; see InstallSettings.versionsDir). */
    versionsDir?: string;
    /** `versionsDir(venvDir)/KEY` of the version to run. */
    key: string;
    configFile: string;
    serverDir: string;
    backupDir: string;
    serviceUser: string;
    /** supervisor program name. */
    program: string;
    devpiUrl: string;
    /** `auto`: in place when the data format matches, else export/import. */
    strategy: UpgradeStrategy;
    allowDowngrade: boolean;
    readyTimeout: number;
    /** devpi-server's log (supervisor's stdout_logfile), shown when the new version fails. */
    logFile: string;
    /**
     * A replica: its data is a copy of the primary's, so it takes no backup and never
     * exports/imports (an imported replica would no longer match its primary's changelog).
     * When the data format changes it starts over from an empty server directory and syncs
     * again from the primary; `strategy` does not apply.
     */
    replica?: boolean;
}

/** What `pulumi preview` shows for an upgrade: the rule, since the installed version is on the server. */
export function describeUpgrade(s: Pick<UpgradeSettings, "key" | "strategy" | "replica">): string {
    if (s.replica) return `switch to ${s.key} in place when the data format matches, by a fresh sync from the primary otherwise`;
    return s.strategy === "export-import" ? `switch to ${s.key} by export/import (forced)` : `switch to ${s.key} in place when the data format matches, by export/import otherwise`;
}

/** Where an export/import (or a replica's fresh sync) in progress is recorded: root's alone. */
export const UPGRADE_STATE_DIR = "/var/lib/devpi-pulumi";

/** Shell variables, helpers, the repair of an interrupted upgrade, and the early exit. */
function upgradeHead(s: UpgradeSettings, extraVars = ""): string {
    const q = shellQuote;
    const vdir = s.versionsDir ?? versionsDir(s.venvDir);
    return `link=${q(s.venvDir)}
new=${q(`${vdir}/${s.key}`)}
sd=${q(s.serverDir)}
cfg=${q(s.configFile)}
user=${q(s.serviceUser)}
prog=${q(s.program)}
marker=${q(`${UPGRADE_STATE_DIR}/upgrade-${s.program}.state`)}
recovered=""
${extraVars}# The server directory and backups are the service user's: root moves and removes them only as
# that user, and runs nothing from a virtualenv (version probes included) as root.
as_user() { runuser -u "$user" -- "$@"; }
version_of() { as_user "$1/bin/python" -c 'import importlib.metadata as m; print(m.version("devpi-server"))'; }
db_version_of() { as_user "$1/bin/python" -c 'from devpi_server.main import DATABASE_VERSION; print(DATABASE_VERSION)'; }
install -d -m 0755 ${q(UPGRADE_STATE_DIR)}
root_path ${q(UPGRADE_STATE_DIR)} || fail "${UPGRADE_STATE_DIR} must be a directory owned by root alone"
# mark STAGE KEY=VALUE...: records (atomically) that the data is moved aside and where.
mark() {
  local tmp
  tmp=$(mktemp "$marker.XXXXXX")
  printf '%s\n' "stage=$1" "\${@:2}" >"$tmp"
  mv -fT "$tmp" "$marker"
}
# data_modes: devpi's database (users' password hashes, private indexes' metadata) is the service
# user's alone; nginx (www-data, in the service group to serve release files) must not read it.
# sqlite gives its journal files the database's mode. Done as the service user, on every run.
# (find runs from /: it fails in a working directory the service user cannot enter, such as root's home.)
data_modes() { (cd / && as_user find "$sd" -maxdepth 1 -name '.sqlite*' -type f -perm /077 -exec chmod 0600 {} +) || echo "could not make devpi's database in $sd private (0600)" >&2; }
${upgradeFunctions(s)}${renderRecovery(s)}data_modes
cur=$(readlink -f "$link")
if [ "$cur" = "$(readlink -f "$new")" ]; then echo "\${recovered:+$recovered; }${s.key} is active"; exit 0; fi
old_ver=$(version_of "$cur")
new_ver=$(version_of "$new")
`;
}

/**
 * The repair of an upgrade that was killed (the step's shell and all, by a cut connection, a
 * crash or a reboot) after it moved the server directory aside: the marker says where the old
 * data and versions are. Before the new data was complete (`moved`), the old data goes back and
 * the old version serves it; once it was (`imported`), the new version is started on it, and put
 * back like a failed upgrade if it does not come up. Only a version whose /+status answered is
 * said to serve. The upgrade itself then runs again as usual.
 */
function renderRecovery(s: UpgradeSettings): string {
    return `if [ -f "$marker" ]; then
  m_stage="" m_aside="" m_old="" m_new="" m_old_ver="" m_new_ver=""
  while IFS='=' read -r k v; do
    case $k in
      stage) m_stage=$v ;; aside) m_aside=$v ;; old) m_old=$v ;; new) m_new=$v ;; old_ver) m_old_ver=$v ;; new_ver) m_new_ver=$v ;;
    esac
  done <"$marker"
  if [ -z "$m_old" ] || [ -z "$m_new" ] || [ -z "$m_aside" ]; then fail "$marker is incomplete; the old data should be in ${s.serverDir}.pre-*: see the README's recovery section"; fi
  ${s.replica ? "" : renderDataLock(s.backupDir, "fail").replace(/\n/g, "\n  ")}note "an earlier upgrade $m_old_ver -> $m_new_ver was interrupted (stage $m_stage); repairing it"
  supervisorctl stop "$prog" >&2 || true
  done_new=0
  if [ "$m_stage" = imported ]; then
    switch_to "$m_new"
    supervisorctl start "$prog" >&2 || true
    if wait_version "$m_new_ver"; then
      done_new=1
      recovered="completed the interrupted upgrade $m_old_ver -> $m_new_ver: its new data was complete, $m_new_ver answers; old data kept in $m_aside"
    else
      note "devpi-server $m_new_ver did not come up on the new data; putting $m_old_ver and the old data back"
      supervisorctl stop "$prog" >&2 || true
    fi
  fi
  if [ "$done_new" = 0 ]; then
    if as_user test -d "$m_aside"; then
      as_user rm -rf -- "$sd"
      as_user mv -T -- "$m_aside" "$sd"
    fi
    switch_to "$m_old"
    supervisorctl start "$prog" >&2 || true
    wait_version "$m_old_ver" || fail "repairing the interrupted upgrade $m_old_ver -> $m_new_ver: the old data is back in ${s.serverDir} and $m_old is active again, but devpi-server $m_old_ver does not answer; see ${s.logFile}"
    recovered="undid the interrupted upgrade $m_old_ver -> $m_new_ver (stopped before its new data was complete): $m_old_ver answers again on the old data"
  fi
  rm -f -- "$marker"
  note "$recovered"
fi
`;
}

/** `wait_version VERSION` (bounded, ends at once on FATAL) and `switch_to VENV`. */
function upgradeFunctions(s: UpgradeSettings): string {
    return `# Exit 0 when /+status (stdin) reports devpi-server version argv[1]; quietly 1 otherwise (not up yet).
status_is='
import json, sys
try:
    sys.exit(json.load(sys.stdin)["result"]["versioninfo"]["devpi-server"] != sys.argv[1])
except ValueError:
    sys.exit(1)
'
wait_version() {
  for _ in $(seq 1 ${s.readyTimeout * 5}); do
    if curl -fsS -H 'Accept: application/json' ${shellQuote(`${s.devpiUrl}/+status`)} 2>/dev/null | python3 -c "$status_is" "$1"; then return 0; fi
    # supervisor gave up on it (it keeps exiting): no need to wait out the timeout.
    # (supervisorctl exits non-zero for a stopped program, hence no pipe under pipefail.)
    st=$(supervisorctl status "$prog" 2>/dev/null || true)
    case $st in *FATAL*) return 1 ;; esac
    sleep 0.2
  done
  return 1
}
switch_to() { set_link "$1" "$link"; }
`;
}

/** Switch, start, roll back (old data in $aside, if any, and the old venv) when the new version does not come up; prune old venvs. */
function upgradeSwitch(s: UpgradeSettings): string {
    const q = shellQuote;
    return `switch_to "$new"
supervisorctl start "$prog" >&2 || true
if ! wait_version "$new_ver"; then
  echo "devpi-server $new_ver did not come up; rolling back to $old_ver. Tail of its log:" >&2
  tail -n 30 ${q(s.logFile)} >&2 || true
  supervisorctl stop "$prog" >&2 || true
  if [ -n "$aside" ]; then as_user rm -rf -- "$sd"; as_user mv -T -- "$aside" "$sd"; fi
  switch_to "$cur"
  rm -f -- "$marker"
  supervisorctl start "$prog" >&2 || true
  if wait_version "$old_ver"; then echo "devpi-server $old_ver answers again" >&2; else echo "the old version did not come back either; see the log" >&2; fi
  exit 1
fi
rm -f -- "$marker"
data_modes
# Keep the previous version for a manual rollback; older ones go.
for d in ${q(s.versionsDir ?? versionsDir(s.venvDir))}/*; do
  [ "$(readlink -f "$d")" = "$(readlink -f "$new")" ] || [ "$(readlink -f "$d")" = "$cur" ] || rm -rf -- "$d"
done
`;
}

/**
 * 1. Nothing to do when VENVDIR already points at KEY (a fresh install, or a re-run).
 * 2. Refuse a downgrade unless allowed.
 * 3. Take the data lock (wait for a running scheduled backup or restore). Export devpi's data
 *    with the OLD version into BACKUPDIR/pre-upgrade-OLD-to-NEW-STAMP: with devpi stopped first
 *    for export/import, while it still serves for the in-place path. A failed export removes its
 *    partial copy, starts the old version again and fails the step.
 * 4. In place (same data format, not forced): switch VENVDIR. Otherwise move SERVERDIR aside
 *    (kept as SERVERDIR.pre-upgrade-STAMP), import the export with the NEW version, switch.
 * 5. Start devpi and wait until /+status reports the new version. If it does not, stop it, put
 *    the old data and version back, start the old server and fail the step.
 */
export function renderUpgradeScript(s: UpgradeSettings): string {
    if (s.replica) return renderReplicaUpgradeScript(s);
    const q = shellQuote;
    return `# ${describeUpgrade(s)}
${upgradeHead(s, `allow_downgrade=${s.allowDowngrade ? "1" : "0"}\n`)}if [ "$old_ver" != "$new_ver" ] && [ "$(printf '%s\\n' "$old_ver" "$new_ver" | sort -V | tail -n 1)" = "$old_ver" ] && [ "$allow_downgrade" = 0 ]; then
  echo "refusing to downgrade devpi-server from $old_ver to $new_ver: its data may not be readable by the older version. Set devpi:allowDowngrade to true to force it (a backup is taken first)." >&2
  exit 1
fi
old_db=$(as_user cat "$sd/.serverversion" 2>/dev/null || echo unknown)
new_db=$(db_version_of "$new")
path=${s.strategy === "export-import" ? "export-import" : `in-place; [ "$old_db" = "$new_db" ] || path=export-import`}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
backup=${q(s.backupDir)}/pre-upgrade-$old_ver-to-$new_ver-$stamp
echo "upgrading devpi-server $old_ver -> $new_ver ($path; data format $old_db -> $new_db)" >&2
service_dir "$user" 0700 ${q(s.backupDir)}
${renderDataLock(s.backupDir, "fail")}# Export/import needs the data frozen before the export (nothing uploaded after it may be lost).
# In place, the data stays where it is: devpi keeps serving while the backup is taken (devpi-export
# reads one consistent serial, as the scheduled backups of the running server do) and is stopped
# only for the switch itself.
# The export takes about the data's size (plus a tenth) in the backup directory.
need=$(( $(as_user du -sm -- "$sd" | cut -f1) * 11 / 10 + 1 ))
${renderSpaceCheck(s.backupDir, "$need", `the backup taken before the upgrade to $new_ver`)}space_fail() { supervisorctl start "$prog" >&2 || true; fail "$1"; }
if [ "$path" = export-import ]; then supervisorctl stop "$prog" >&2; fi
# A failed export (devpi-export killed, a full disk) switches nothing: the old version serves
# again (export/import stopped it) and the next pulumi up starts the upgrade over.
if ! (umask 077 && as_user "$cur/bin/devpi-export" -c "$cfg" "$backup.partial" >&2); then
  as_user rm -rf -- "$backup.partial"
  supervisorctl start "$prog" >&2 || true
  if wait_version "$old_ver"; then
    fail "devpi-export with $old_ver into $backup.partial failed; nothing was switched, $old_ver serves again. Run pulumi up again to retry the upgrade."
  fi
  tail -n 30 ${q(s.logFile)} >&2 || true
  fail "devpi-export with $old_ver into $backup.partial failed; nothing was switched, but devpi-server $old_ver does not answer either (its log's tail is above). Run pulumi up again once it does."
fi
as_user mv -T -- "$backup.partial" "$backup"
if [ "$path" != export-import ]; then supervisorctl stop "$prog" >&2; fi
aside=""
if [ "$path" = export-import ]; then
  aside="$sd.pre-upgrade-$stamp"
  # The import writes about the export's size beside the old data, which is kept until it succeeds.
  need=$(( $(as_user du -sm -- "$backup" | cut -f1) * 11 / 10 + 1 ))
${renderSpaceCheck(s.serverDir, "$need", `the import into $new_ver (nothing was switched; $old_ver serves again)`, "space_fail")}  # Recorded first: a kill from here on is repaired by the next run (see the start of this script).
  mark moved "aside=$aside" "old=$cur" "new=$new" "old_ver=$old_ver" "new_ver=$new_ver"
  as_user mv -T -- "$sd" "$aside"
  as_user mkdir -m 0750 -- "$sd"
  if ! as_user "$new/bin/devpi-import" -c "$cfg" "$backup" >&2; then
    echo "devpi-import with $new_ver failed; restoring the old data" >&2
    as_user rm -rf -- "$sd"; as_user mv -T -- "$aside" "$sd"; rm -f -- "$marker"; supervisorctl start "$prog" >&2 || true
    if wait_version "$old_ver"; then echo "devpi-server $old_ver answers again on the old data" >&2; fi
    exit 1
  fi
  mark imported "aside=$aside" "old=$cur" "new=$new" "old_ver=$old_ver" "new_ver=$new_ver"
fi
${upgradeSwitch(s)}echo "\${recovered:+$recovered; }upgraded devpi-server $old_ver -> $new_ver ($path); backup: $backup\${aside:+; old data kept in $aside}"
`;
}

/**
 * A replica's upgrade: the same switch and rollback as {@link renderUpgradeScript}, without a
 * backup, and with a fresh sync instead of export/import: SERVERDIR moves aside
 * (SERVERDIR.pre-resync-STAMP, only the newest kept) and the new version starts from
 * `devpi-init`, fetching everything from the primary again. Serving resumes once devpi answers;
 * the replica's re-sync and health steps wait for the catch-up.
 */
function renderReplicaUpgradeScript(s: UpgradeSettings): string {
    return `# ${describeUpgrade(s)}
${upgradeHead(s)}old_db=$(as_user cat "$sd/.serverversion" 2>/dev/null || echo unknown)
new_db=$(db_version_of "$new")
path=in-place
[ "$old_db" = "$new_db" ] || path=resync
echo "upgrading replica devpi-server $old_ver -> $new_ver ($path; data format $old_db -> $new_db)" >&2
supervisorctl stop "$prog" >&2
aside=""
if [ "$path" = resync ]; then
  aside="$sd.pre-resync-$(date -u +%Y%m%dT%H%M%SZ)"
  mark moved "aside=$aside" "old=$cur" "new=$new" "old_ver=$old_ver" "new_ver=$new_ver"
  as_user mv -T -- "$sd" "$aside"
  as_user mkdir -m 0750 -- "$sd"
  if ! as_user "$new/bin/devpi-init" -c "$cfg" >&2; then
    echo "devpi-init with $new_ver failed; restoring the replica's old data" >&2
    as_user rm -rf -- "$sd"; as_user mv -T -- "$aside" "$sd"; rm -f -- "$marker"; supervisorctl start "$prog" >&2 || true
    exit 1
  fi
  mark imported "aside=$aside" "old=$cur" "new=$new" "old_ver=$old_ver" "new_ver=$new_ver"
fi
${upgradeSwitch(s)}if [ -n "$aside" ]; then
  for d in "$sd".pre-resync-*; do [ "$d" = "$aside" ] || as_user rm -rf -- "$d"; done
fi
echo "\${recovered:+$recovered; }upgraded replica devpi-server $old_ver -> $new_ver ($path)\${aside:+; old data kept in $aside}"
`;
}
