/**
 * Renders the host preparation scripts: Debian packages, the service user and its directories.
 */
import { renderSpaceCheck, shellQuote } from "../common/shell";

/**
 * Debian packages the server needs. `cron` runs the scheduled backups; `libnginx-mod-http-js`
 * (njs) computes the key of nginx's index page cache.
 */
export const HOST_PACKAGES = ["nginx", "libnginx-mod-http-js", "supervisor", "python3", "python3-venv", "ca-certificates", "curl", "cron"] as const;

/**
 * The packages devpi's virtualenv needs (python3 -m venv, and pip's trust in PyPI): installed
 * first, so pip can run while apt installs the rest.
 */
export const PYTHON_PACKAGES = ["python3", "python3-venv", "ca-certificates"] as const;

/**
 * nginx's worker user in Debian's nginx package (`user www-data;` in its nginx.conf), the nginx
 * this program installs ({@link HOST_PACKAGES}). It joins devpi's group to serve release files;
 * it owns nothing TLS: the key and certificate are root's (see renderRootOnlyDirLines).
 */
export const NGINX_WORKER_USER = "www-data";

export interface HostLayout {
    serviceUser: string;
    /** The service user's home: the parent of serverDir. */
    homeDir: string;
    serverDir: string;
    backupDir: string;
    secretFile: string;
    configDir: string;
    /** nginx's worker user, which must read release files under serverDir/+files. */
    webUser: string;
}

/** The locks Debian's package tools take (apt's frontend lock, dpkg's database, apt's lists and archives). */
export const PACKAGE_LOCKS = ["/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock", "/var/lib/apt/lists/lock", "/var/cache/apt/archives/lock"] as const;

export interface PackagesOptions {
    /** Seconds to wait for another apt/dpkg (e.g. unattended-upgrades after first boot) to finish. Default 600. */
    lockTimeout?: number;
    /** The package lists count as fresh this many minutes after our last `apt-get update`. Default 60. */
    listsMaxAgeMinutes?: number;
    /** Lock files to wait for (tests point these elsewhere). Default {@link PACKAGE_LOCKS}. */
    locks?: readonly string[];
    /** Where the time of our last successful `apt-get update` is kept. */
    updateStamp?: string;
    /** dpkg's journal of an unfinished operation (tests point this elsewhere). Default /var/lib/dpkg/updates. */
    dpkgUpdatesDir?: string;
}

/**
 * Shell functions that wait, a bounded time, until no other process holds one of `locks`,
 * printing which process holds which lock. apt and dpkg lock with fcntl() (not flock()), and
 * only apt-get install can itself wait for a lock (`DPkg::Lock::Timeout`); dpkg and
 * apt-get update fail at once. The check asks the kernel (F_GETLK) through perl, which every
 * Debian and Ubuntu system has (perl-base is essential).
 */
export function renderLockWait(locks: readonly string[], timeoutSeconds: number): string {
    return `lock_timeout=${timeoutSeconds}
package_locks=(${locks.map(shellQuote).join(" ")})
# Prints "LOCKFILE PID" for the first lock another process holds; fails when none is held.
lock_holder() {
  perl -MFcntl -e 'for my $p (@ARGV) { open(my $f, "<", $p) or next; my $l = pack("ssx4qqix4", F_WRLCK, 0, 0, 0, 0); fcntl($f, F_GETLK, $l) or next; my ($t, $pid) = (unpack("ssx4qqix4", $l))[0, 4]; if ($t != F_UNLCK) { print "$p $pid\\n"; exit 0 } } exit 1' "\${package_locks[@]}"
}
describe_pid() {
  local args=""
  if [ "$1" -gt 0 ] && [ -r "/proc/$1/cmdline" ]; then args=$(tr '\\0' ' ' <"/proc/$1/cmdline" | cut -c1-160); fi
  printf 'process %s (%s)' "$1" "\${args% }"
}
wait_for_package_manager() {
  local waited=0 held
  while held=$(lock_holder); do
    if [ "$waited" -ge "$lock_timeout" ]; then
      fail "another package manager still holds \${held% *} after \${lock_timeout}s: $(describe_pid "\${held##* }"). Let it finish (on a new server: unattended-upgrades) or stop it, then run pulumi up again."
    fi
    if [ $((waited % 10)) -eq 0 ]; then
      note "waiting for another package manager: \${held% *} is held by $(describe_pid "\${held##* }") (\${waited}s of \${lock_timeout}s)"
    fi
    sleep 1
    waited=$((waited + 1))
  done
}
`;
}

/**
 * Installs the missing packages only (a no-op without network when all are present), after
 * repairing what an interrupted apt or dpkg left behind:
 * - waits (bounded, saying for whom) while another apt/dpkg holds the package locks;
 * - `dpkg --configure -a` when dpkg was interrupted or packages are half installed/configured;
 * - `apt-get -f install` when dependencies are left broken;
 * - `apt-get update` only when a package is missing and the lists are older than
 *   `listsMaxAgeMinutes` (since our last update) or do not know it, or a download then fails.
 * apt's and dpkg's output goes to the step's log on the server; failures name the cause.
 */
export function renderPackagesScript(packages: readonly string[] = HOST_PACKAGES, o: PackagesOptions = {}): string {
    const stamp = o.updateStamp ?? "/var/lib/devpi-pulumi/apt-update-stamp";
    return `${renderLockWait(o.locks ?? PACKAGE_LOCKS, o.lockTimeout ?? 600)}pkgs=(${packages.map(shellQuote).join(" ")})
apt_opts=(-y -q -o "DPkg::Lock::Timeout=$lock_timeout" -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
update_stamp=${shellQuote(stamp)}
updated=0
apt_update() {
  note "refreshing the package lists (apt-get update)"
  wait_for_package_manager
  run_logged "apt-get update" apt-get "\${apt_opts[@]}" update
  mkdir -p "$(dirname "$update_stamp")"
  touch "$update_stamp"
  updated=1
}
# 1. Repair what an interrupted run left (a cut connection, a crash, a reboot mid-install).
wait_for_package_manager
if [ -n "$(ls -A ${shellQuote(o.dpkgUpdatesDir ?? "/var/lib/dpkg/updates")} 2>/dev/null)" ] || [ -n "$(dpkg --audit 2>/dev/null)" ]; then
  note "an earlier package operation was interrupted: running dpkg --configure -a"
  run_logged "dpkg --configure -a" dpkg --force-confdef --force-confold --configure -a
fi
if ! apt-get check >/dev/null 2>&1; then
  note "broken dependencies left behind: running apt-get -f install"
  wait_for_package_manager
  run_logged "apt-get -f install" apt-get "\${apt_opts[@]}" -f install
fi
# 2. Install what is missing.
missing=()
for p in "\${pkgs[@]}"; do
  case "$(dpkg-query -W -f='\${Status}' "$p" 2>/dev/null || true)" in *" ok installed") ;; *) missing+=("$p") ;; esac
done
if [ \${#missing[@]} -gt 0 ]; then
  stale=1
  if [ -n "$(find "$update_stamp" -mmin -${o.listsMaxAgeMinutes ?? 60} 2>/dev/null)" ]; then stale=0; fi
  for p in "\${missing[@]}"; do
    # (no grep -q: it would stop reading early, and pipefail would count apt-cache's SIGPIPE.)
    apt-cache policy "$p" 2>/dev/null | grep 'Candidate: [^(]' >/dev/null || stale=1
  done
  if [ "$stale" = 1 ]; then apt_update; fi
  # A full disk makes apt say "Unable to locate package"; say what is wrong instead.
${renderSpaceCheck("/var/cache/apt/archives", 300, "the Debian packages' downloads")}${renderSpaceCheck("/usr", 300, "the Debian packages")}
  note "installing \${missing[*]} (apt's output: $DEVPI_LOG)"
  wait_for_package_manager
  if [ "$updated" = 0 ]; then
    # Lists we did not refresh may point at files the mirror has dropped: update once and retry.
    if ! (run_logged "apt-get install" apt-get "\${apt_opts[@]}" --no-install-recommends install "\${missing[@]}") 2>/dev/null; then
      apt_update
      wait_for_package_manager
      run_logged "apt-get install" apt-get "\${apt_opts[@]}" --no-install-recommends install "\${missing[@]}"
    fi
  else
    run_logged "apt-get install" apt-get "\${apt_opts[@]}" --no-install-recommends install "\${missing[@]}"
  fi
  echo "installed: \${missing[*]}"
else
  echo "all present"
fi
# Debian's default site answers every name on port 80 and would shadow the redirect to HTTPS.
if [ -L /etc/nginx/sites-enabled/default ]; then rm -f /etc/nginx/sites-enabled/default; fi
`;
}

/**
 * Creates the service user and the directories devpi writes to. Release files are served by
 * nginx straight from disk, so nginx's worker user joins the service user's group and every
 * ancestor of serverDir keeps its search bit.
 */
export function renderServiceUserScript(l: HostLayout): string {
    const u = shellQuote(l.serviceUser);
    return `if ! getent passwd ${u} >/dev/null; then
  useradd --system --user-group --home-dir ${shellQuote(l.homeDir)} --shell /usr/sbin/nologin ${u}
  echo "created user ${l.serviceUser}"
fi
if getent passwd ${shellQuote(l.webUser)} >/dev/null && ! id -nG ${shellQuote(l.webUser)} | tr ' ' '\\n' | grep -qx ${u}; then
  usermod -aG ${u} ${shellQuote(l.webUser)}
fi
# The service user's data: created as (or handed to) it, never re-owned once there.
service_dir ${u} 0750 ${shellQuote(l.homeDir)}
service_dir ${u} 0750 ${shellQuote(l.serverDir)}
service_dir ${u} 0700 ${shellQuote(l.backupDir)}
# Root's: devpi's configuration, and the directory of the secret file (the service user may read
# the secret but never replace it with a link to something root later chowns).
for d in ${shellQuote(l.configDir)} "$(dirname ${shellQuote(l.secretFile)})"; do
  if [ ! -e "$d" ]; then install -d -m 0755 -o root -g root "$d"; fi
  root_path "$d" || fail "$d must be a directory owned by root alone (with every directory above it): devpi's configuration and secret live there"
done
# nginx must traverse every ancestor of serverDir; grant search (not listing) where missing,
# only on directories that are root's alone (never through a link).
d=$(dirname ${shellQuote(l.homeDir)})
while [ "$d" != / ]; do
  if root_path "$d" && ! [ "$(( 0$(stat -c %a "$d") & 01 ))" -eq 1 ]; then chmod o+x "$d"; fi
  d=$(dirname "$d")
done
echo "user ${l.serviceUser} ready"
`;
}
