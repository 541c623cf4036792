/**
 * Renders the host preparation scripts: Debian packages, the service user and its directories.
 */
import { shellQuote } from "../common/shell";

/** Debian packages the server needs. `cron` runs the scheduled backups. */
export const HOST_PACKAGES = ["nginx", "supervisor", "python3", "python3-venv", "ca-certificates", "curl", "cron"] as const;

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

/** Installs missing packages only (a no-op without network when all are present). */
export function renderPackagesScript(packages: readonly string[] = HOST_PACKAGES): string {
    return `pkgs=(${packages.map(shellQuote).join(" ")})
missing=()
for p in "\${pkgs[@]}"; do
  dpkg-query -W -f='\${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ \${#missing[@]} -gt 0 ]; then
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends "\${missing[@]}" >&2
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
install -d -m 0750 -o ${u} -g ${u} ${shellQuote(l.homeDir)} ${shellQuote(l.serverDir)} ${shellQuote(l.backupDir)}
install -d -m 0750 -o ${u} -g ${u} "$(dirname ${shellQuote(l.secretFile)})"
install -d -m 0755 -o root -g root ${shellQuote(l.configDir)}
# nginx must traverse every ancestor of serverDir; grant search (not listing) where missing.
d=$(dirname ${shellQuote(l.homeDir)})
while [ "$d" != / ]; do
  if [ "$(stat -c %U "$d")" != ${u} ] && ! [ "$(( 0$(stat -c %a "$d") & 01 ))" -eq 1 ]; then chmod o+x "$d"; fi
  d=$(dirname "$d")
done
echo "user ${l.serviceUser} ready"
`;
}
