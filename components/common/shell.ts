/**
 * Pure helpers for the shell scripts that remote steps run on the server.
 *
 * A step's script travels on the command's stdin, behind a one-line header, and a short loader
 * in the `create`/`delete` command reads it back (see {@link stepCommand}, {@link stepStdin}).
 * So a failing step's error starts with a short command that names the step, followed by the
 * step's own one-line summary, instead of the whole script; `pulumi preview --diff` shows the
 * script as the `stdin` diff. Scripts never contain secrets: those follow the script on stdin.
 */
import * as crypto from "node:crypto";

/** Quotes `s` as one word for a POSIX shell. */
export function shellQuote(s: string): string {
    return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** A short, stable content hash (hex) used to tie restarts and reloads to what changed. */
export function contentHash(...parts: string[]): string {
    const h = crypto.createHash("sha256");
    for (const p of parts) h.update(p).update("\0");
    return h.digest("hex").slice(0, 16);
}

/** Where steps keep the full output of the long commands they run (apt, pip), one file per step. */
export const STEP_LOG_DIR = "/var/log/devpi-pulumi";

/**
 * Shell functions every step script starts with. `$DEVPI_STEP` is the step's name.
 * - `fail MESSAGE`: exits 1 after printing `devpi step NAME failed: MESSAGE` on stderr.
 * - an ERR trap that does the same for any other failing command: its text, status and line.
 * - `note MESSAGE`: a progress line on stderr.
 * - `run_logged WHAT CMD...`: runs CMD with its output appended to the step's log; when it fails,
 *   fails with WHAT, its status and its own error lines, then the log's last lines.
 * - `svc ACTION NAME`: systemd when it runs as init, `service` otherwise (containers, chroots).
 * - `svc_enable NAME`: starts NAME at boot under systemd (a server that reboots must come back by
 *   itself); without systemd there is no boot to prepare for.
 * - `svc_running NAME`: whether the service's daemon is up, without trusting init scripts' exit codes.
 * - `write_if_changed DEST MODE OWNER`: installs stdin at DEST atomically; prints "changed" or
 *   "unchanged". DEST's directory must be root's alone (`root_path`); a link at DEST is
 *   replaced, never written through.
 * - `root_path DIR`: whether DIR and every directory above it is root's alone.
 * - `service_dir USER MODE DIR`: DIR as one of USER's data directories (see the function).
 * - `set_link TARGET LINK`: points LINK at TARGET atomically, acting as the owner of LINK's directory.
 *
 * The privilege rule these enforce: root never writes, chowns, chmods or runs anything through a
 * path the service user could change. What lives in the service user's directories is touched
 * only as the service user (runuser), who can then do no more than it already could.
 */
export const PRELUDE = `set -Eeuo pipefail
umask 022
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
DEVPI_STEP=\${DEVPI_STEP:-$0}
DEVPI_LOG=${STEP_LOG_DIR}/\${DEVPI_STEP//\//_}.log
# shellcheck disable=SC2317 # helpers a script may not call
fail() {
  trap - ERR
  printf 'devpi step %s failed: %s\\n' "$DEVPI_STEP" "$1" >&2
  exit 1
}
# shellcheck disable=SC2317 # helpers a script may not call
note() { printf '%s\\n' "$*" >&2; }
# shellcheck disable=SC2317 # helpers a script may not call
on_err() {
  local rc=$1 line=$2 cmd=\${3%%$'\\n'*}
  trap - ERR
  if [ "$cmd" != "$3" ] || [ \${#cmd} -gt 160 ]; then cmd="\${cmd:0:160}..."; fi
  printf 'devpi step %s failed: command exited with status %s (script line %s): %s\\n' "$DEVPI_STEP" "$rc" "$line" "$cmd" >&2
  exit "$rc"
}
trap 'on_err "$?" "$LINENO" "$BASH_COMMAND"' ERR
# shellcheck disable=SC2317 # helpers a script may not call
run_logged() {
  local what=$1 rc=0 start cause
  shift
  mkdir -p ${STEP_LOG_DIR}
  start=1
  if [ -f "$DEVPI_LOG" ]; then start=$(($(wc -l <"$DEVPI_LOG") + 1)); fi
  printf '== %s %s\\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >>"$DEVPI_LOG"
  "$@" >>"$DEVPI_LOG" 2>&1 </dev/null || rc=$?
  if [ "$rc" -ne 0 ]; then
    cause=$(tail -n +"$start" "$DEVPI_LOG" | grep -E '^(E:|W: Failed|dpkg: error|ERROR:|error:|Err:)' | head -n 3 | cut -c1-240 | tr '\\n' ' ' || true)
    [ -n "$cause" ] || cause=$(tail -n 1 "$DEVPI_LOG")
    trap - ERR
    printf 'devpi step %s failed: %s exited with status %s: %s\\n' "$DEVPI_STEP" "$what" "$rc" "$cause" >&2
    printf 'last lines of %s:\\n' "$DEVPI_LOG" >&2
    tail -n 15 "$DEVPI_LOG" >&2
    exit "$rc"
  fi
}
svc() {
  if [ -d /run/systemd/system ]; then systemctl "$1" "$2"; else service "$2" "$1"; fi
}
svc_enable() {
  if [ -d /run/systemd/system ] && ! systemctl is-enabled --quiet "$1" 2>/dev/null; then systemctl enable --quiet "$1"; fi
}
svc_running() {
  case "$1" in
    nginx) [ -s /run/nginx.pid ] && kill -0 "$(cat /run/nginx.pid)" 2>/dev/null ;;
    supervisor) [ -S /var/run/supervisor.sock ] && supervisorctl pid >/dev/null 2>&1 ;;
    cron) pidof cron >/dev/null 2>&1 ;;
    *) return 1 ;;
  esac
}
# Root's alone: DIR and each directory above it is a real directory (no link), owned by root and
# writable by nobody else (a root-owned sticky directory such as /tmp is fine: others cannot
# rename or remove what root made there).
root_path() {
  local d=$1 st m
  while :; do
    if [ -L "$d" ] || [ ! -d "$d" ]; then return 1; fi
    st=$(stat -c '%u %a' -- "$d")
    [ "\${st% *}" = 0 ] || return 1
    m=$((8#\${st#* }))
    if (( (m & 8#022) != 0 && (m & 8#1000) == 0 )); then return 1; fi
    if [ "$d" = / ]; then return 0; fi
    d=$(dirname -- "$d")
  done
}
write_if_changed() {
  local dest=$1 mode=$2 owner=$3 tmp dir
  dir=$(dirname -- "$dest")
  root_path "$dir" || fail "refusing to write $dest: $dir (or a directory above it) is a link, or is not owned by root alone, so another user could redirect the write"
  tmp=$(mktemp "$dir/.$(basename "$dest").XXXXXX")
  cat >"$tmp"
  chmod "$mode" "$tmp"
  chown -h "$owner" "$tmp"
  if [ -f "$dest" ] && [ ! -L "$dest" ] && cmp -s "$tmp" "$dest" && [ "$(stat -c %a:%U:%G "$tmp")" = "$(stat -c %a:%U:%G "$dest")" ]; then
    rm -f "$tmp"
    echo unchanged
  else
    mv -fT "$tmp" "$dest"
    echo changed
  fi
}
# service_dir USER MODE DIR: DIR as one of USER's data directories. Made as USER inside a directory
# USER owns; inside one that is root's alone, made by root and handed to USER. A DIR that exists
# must be a real directory of USER's (it is never re-owned: the program hands over only what it
# creates); its mode is set as USER. Anything else fails, naming the path.
# shellcheck disable=SC2317 # helpers a script may not call
service_dir() {
  local user=$1 mode=$2 d=$3 parent
  parent=$(dirname -- "$d")
  if [ -L "$d" ]; then fail "$d is a symbolic link; refusing to use it as $user's directory (remove it, or point the setting at a real directory)"; fi
  if [ -e "$d" ]; then
    [ -d "$d" ] || fail "$d exists and is not a directory"
    [ "$(stat -c %U -- "$d")" = "$user" ] || fail "$d exists but belongs to $(stat -c %U -- "$d"), not $user; the program hands over only directories it creates: chown it to $user yourself or pick another path"
    runuser -u "$user" -- chmod "$mode" -- "$d"
    return 0
  fi
  if [ -d "$parent" ] && [ ! -L "$parent" ] && [ "$(stat -c %U -- "$parent")" = "$user" ]; then
    runuser -u "$user" -- mkdir -m "$mode" -- "$d"
  else
    local a=$parent
    while [ ! -e "$a" ]; do a=$(dirname -- "$a"); done
    root_path "$a" || fail "cannot make $d: $a is neither $user's nor root's alone"
    (umask 022 && mkdir -p -- "$parent")
    root_path "$parent" || fail "cannot make $d: $parent is neither $user's nor root's alone"
    mkdir -m "$mode" -- "$d"
    chown -h "$user:" -- "$d"
  fi
  echo "made $d for $user" >&2
}
# set_link TARGET LINK: as the owner of LINK's directory (root only when it is root's alone).
# shellcheck disable=SC2317 # helpers a script may not call
set_link() {
  local dir owner
  dir=$(dirname -- "$2")
  if root_path "$dir"; then
    ln -sfn -- "$1" "$2.tmp" && mv -fT -- "$2.tmp" "$2"
  else
    owner=$(stat -c %U -- "$dir")
    [ "$owner" != root ] || fail "$dir is owned by root but writable by others; refusing to place $2 there"
    # shellcheck disable=SC2016 # expanded by the inner shell
    runuser -u "$owner" -- sh -c 'ln -sfn -- "$1" "$2.tmp" && mv -fT -- "$2.tmp" "$2"' sh "$1" "$2"
  fi
}
`;

/**
 * Loader that reads a step's scripts from stdin. The header line holds the byte lengths of the
 * create and delete scripts; `which` picks one, the other is skipped, and the chosen script runs
 * with stdin positioned at the payload (the secrets) after both. `read` and `dd` read no more
 * than they are asked to, so nothing of the payload is lost.
 */
function loader(which: "create" | "delete"): string {
    const order = which === "create" ? `s=$(r "$c") && r "$d" >/dev/null` : `r "$c" >/dev/null && s=$(r "$d")`;
    return `r() { [ "$1" = 0 ] || dd bs="$1" count=1 iflag=fullblock status=none; } && read -r c d && ${order} && exec bash -c "$s" "$0"`;
}

/**
 * The command line of a step: as root (through `sudo -n` unless the SSH user is root), running
 * the script that arrives on stdin. It names the step and the script's hash, so the first line
 * of a failure says which step, and a changed script changes the command too.
 */
export function stepCommand(step: string, which: "create" | "delete", script: string, sshUser: string): string {
    const run = `bash -c ${shellQuote(loader(which))} ${shellQuote(step)}`;
    return `${sshUser === "root" ? run : `sudo -n ${run}`} # devpi step ${step} (${which} script ${contentHash(script)})`;
}

/** Stdin of a step: header, the create script, the delete script (both with the prelude), the payload. */
export function stepStdin(create: string, del: string | undefined, payload = ""): string {
    const c = PRELUDE + create;
    const d = del === undefined ? "" : PRELUDE + del;
    return `${Buffer.byteLength(c)} ${Buffer.byteLength(d)}\n${c}${d}${payload}`;
}

/**
 * Renders script lines that install fixed text at `dest` through write_if_changed, printing
 * "changed" or "unchanged". The quoted heredoc's delimiter is derived from the content, so no
 * line of the content can end it early. Ends with a newline, so it also works inside `$(...)`.
 */
export function writeFileLines(dest: string, mode: string, owner: string, content: string): string {
    const marker = `DEVPI_EOF_${contentHash(content)}`;
    return `write_if_changed ${shellQuote(dest)} ${mode} ${shellQuote(owner)} <<'${marker}'\n${content.replace(/\n?$/, "\n")}${marker}\n`;
}

/**
 * Shell lines that fail at once, naming the path and both sizes, when the file system holding
 * `dir` (or its nearest existing parent) has less than `mib` MiB free for `what`; `mib` is a number
 * or a shell variable computed before (`$need`); `fail` is the script's own failure function. A full
 * disk otherwise shows up as a misleading later error (apt: "Unable to locate package"), or as a
 * half-written file.
 */
export function renderSpaceCheck(dir: string, mib: number | `$${string}`, what: string, fail = "fail"): string {
    return `space_dir=${shellQuote(dir)}
while [ ! -d "$space_dir" ]; do space_dir=$(dirname -- "$space_dir"); done
space_free=$(df -Pk -- "$space_dir" | awk 'NR == 2 { print int($4 / 1024) }')
if [ "\${space_free:-0}" -lt "${mib}" ]; then
  ${fail} "not enough free space for ${what} in ${dir}: \${space_free:-0} MiB free on $(df -P -- "$space_dir" | awk 'NR == 2 { print $6 }'), at least ${mib} MiB needed; free space there and run it again"
fi
`;
}
