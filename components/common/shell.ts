/**
 * Pure helpers for the shell scripts that remote steps run on the server.
 *
 * Scripts are rendered in full into each `remote.Command`'s `create` string, so `pulumi preview
 * --diff` shows exactly what will run. They never contain secrets: those travel on stdin.
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

/**
 * Shell functions every step script starts with.
 * - `svc ACTION NAME`: systemd when it runs as init, `service` otherwise (containers, chroots).
 * - `svc_enable NAME`: starts NAME at boot under systemd (a server that reboots must come back by
 *   itself); without systemd there is no boot to prepare for.
 * - `svc_running NAME`: whether the service's daemon is up, without trusting init scripts' exit codes.
 * - `write_if_changed DEST MODE OWNER`: installs stdin at DEST atomically; prints "changed" or "unchanged".
 */
export const PRELUDE = `set -euo pipefail
umask 022
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
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
write_if_changed() {
  local dest=$1 mode=$2 owner=$3 tmp
  tmp=$(mktemp "$(dirname "$dest")/.$(basename "$dest").XXXXXX")
  cat >"$tmp"
  chmod "$mode" "$tmp"
  chown "$owner" "$tmp"
  if [ -f "$dest" ] && cmp -s "$tmp" "$dest" && [ "$(stat -c %a:%U:%G "$tmp")" = "$(stat -c %a:%U:%G "$dest")" ]; then
    rm -f "$tmp"
    echo unchanged
  else
    mv -f "$tmp" "$dest"
    echo changed
  fi
}
`;

/**
 * Wraps a bash script into the command line a `remote.Command` runs: as root, through `sudo -n`
 * unless the SSH user is root. The script travels as one argument of `bash -c`; stdin is left
 * for secrets.
 */
export function asRoot(script: string, sshUser: string): string {
    const run = `bash -c ${shellQuote(PRELUDE + script)}`;
    return sshUser === "root" ? run : `sudo -n ${run}`;
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
