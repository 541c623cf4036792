/**
 * Rules shared by the stack config reader and the Devpi component's own argument checks: name
 * and path patterns, the system directories root must never hand to the service user, and the
 * rules between the layout paths.
 */
import * as path from "node:path";
import { FALLBACK_VENV_VERSIONS_DIR } from "../components/constants";
import { fail } from "./errors";

/**
 * Directories no path key may name as a directory the program creates: host preparation runs as
 * root and sets the owner and mode of serverDir, backupDir, homeDir (= the parent of serverDir) and
 * the secret file's directory (`install -d -m 0750 -o SERVICEUSER`), and of venvDir, configDir and
 * sslDir. Handed to the service user (or re-moded), any of these would let that user replace files
 * root reads or runs (e.g. `serverDir: /var/lib/devpi` would give it /var/lib; `secretFile:
 * /etc/devpi-secret` would give it /etc). Exact matches only: a directory of its own below one of
 * these (/var/lib/devpi, /etc/devpi) is fine.
 */
export const SYSTEM_DIRS: readonly string[] = [
    "/",
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/home",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/media",
    "/mnt",
    "/opt",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/srv",
    "/sys",
    "/tmp",
    "/usr",
    "/usr/bin",
    "/usr/include",
    "/usr/lib",
    "/usr/lib32",
    "/usr/lib64",
    "/usr/libexec",
    "/usr/local",
    "/usr/local/bin",
    "/usr/local/etc",
    "/usr/local/lib",
    "/usr/local/sbin",
    "/usr/local/share",
    "/usr/sbin",
    "/usr/share",
    "/usr/src",
    "/var",
    "/var/backups",
    "/var/cache",
    "/var/lib",
    "/var/local",
    "/var/lock",
    "/var/log",
    "/var/mail",
    "/var/opt",
    "/var/run",
    "/var/spool",
    "/var/tmp",
    "/var/www",
    "/etc/apt",
    "/etc/cron.d",
    "/etc/cron.daily",
    "/etc/default",
    "/etc/letsencrypt",
    "/etc/logrotate.d",
    "/etc/nginx",
    "/etc/nginx/conf.d",
    "/etc/nginx/sites-available",
    "/etc/nginx/sites-enabled",
    "/etc/pam.d",
    "/etc/profile.d",
    "/etc/ssh",
    "/etc/ssl",
    "/etc/ssl/certs",
    "/etc/ssl/private",
    "/etc/sudoers.d",
    "/etc/supervisor",
    "/etc/supervisor/conf.d",
    "/etc/systemd",
    "/etc/systemd/system",
];

/** What the program creates as root from a path key, which decides the rules {@link Reader.path} adds. */
export type PathUse =
    /** Nothing: a file it only reads (upstreamCaBundle). */
    | "read"
    /** The directory itself (venvDir, configDir, backupDir, sslDir): not a system directory. */
    | "dir"
    /** serverDir: the directory and its parent, homeDir, which becomes the service user's: neither a system directory. */
    | "dir+home"
    /** A file whose directory it creates (secretFile): that directory is not a system directory. */
    | "file";

export const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$/;
// Linux user names as Debian's adduser accepts them by default.
export const UNIX_USER_RE = /^[a-z_][a-z0-9_-]{0,31}$/;
export const VERSION_RE = /^\d+(\.\d+){1,3}([a-z]+\d*)?$/;
export const HOSTNAME_RE = /^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;
// Absolute paths made of ordinary characters: they are interpolated into shell scripts and configs.
export const ABS_PATH_RE = /^\/[A-Za-z0-9._/+-]*$/;
export const CRON_FIELD_RE = /^[0-9*,/-]+$/;

/** A server's public name: a fully qualified DNS name, or `localhost`. */
export function isPublicName(domain: string): boolean {
    return HOSTNAME_RE.test(domain) && (domain.includes(".") || domain === "localhost");
}
export const PUBLIC_NAME_RULE = "must be a fully qualified DNS name such as devpi.example.com";

/** A replica's name: a DNS label (it names resources and the replica's client settings). */
export const REPLICA_NAME_RE = /^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/;
export const REPLICA_NAME_RULE = "must be a DNS label: lower-case letters, digits and -, at most 32 characters";

export function isIpAddress(s: string): boolean {
    return /^(\d{1,3})(\.\d{1,3}){3}$/.test(s) ? s.split(".").every((o) => Number(o) <= 255) : /^[0-9a-fA-F:]+$/.test(s) && s.includes(":");
}

export function validateCron(key: string, schedule: string): string {
    const fields = schedule.trim().split(/\s+/);
    if (fields.length !== 5 || !fields.every((f) => CRON_FIELD_RE.test(f))) {
        fail(key, schedule, 'must be a 5-field cron schedule such as "17 3 * * *" (digits, * , / - only)');
    }
    return fields.join(" ");
}

/** Whether `p` is `dir` or inside it (both normalised first, so `.` and `//` cannot dodge it). */
export function isWithin(p: string, dir: string): boolean {
    const a = path.posix.normalize(p).replace(/\/+$/, "");
    const d = path.posix.normalize(dir).replace(/\/+$/, "");
    return a === d || a.startsWith(`${d}/`);
}

/**
 * Rules between the layout keys (each already a normalised path, see {@link Reader.path}):
 * what root manages (configDir, sslDir, the secret file, the virtualenvs) stays out of the
 * directories the service user owns, since the owner of a directory can rename, replace or
 * symlink whatever is in it. Returns `venvVersionsDir` (see {@link DevpiConfig}).
 */
export function checkLayout(l: { venvDir: string; serverDir: string; configDir: string; secretFile: string; backupDir: string; sslDir: string }): string {
    const homeDir = path.posix.dirname(l.serverDir);
    // Host preparation creates these and chowns them to the service user.
    const owned: [string, string][] = [
        [`homeDir = parent of serverDir = ${homeDir}`, homeDir],
        [`serverDir = ${l.serverDir}`, l.serverDir],
        [`backupDir = ${l.backupDir}`, l.backupDir],
    ];
    const ownedList = owned.map(([name]) => name).join(", ");
    if (isWithin(l.backupDir, l.serverDir)) fail("backupDir", l.backupDir, "must be outside serverDir");
    for (const [key, dir, example] of [
        ["configDir", l.configDir, "/etc/devpi"],
        ["sslDir", l.sslDir, "/srv/ssl/devpi"],
    ] as const) {
        const inside = owned.find(([, d]) => isWithin(dir, d));
        if (inside) {
            fail(key, dir, `must not be inside a directory the service user owns (${inside[0]}): ${key} is root-managed and the owner of a directory can replace what is in it; use e.g. ${example}`);
        }
    }
    if (isWithin(l.secretFile, l.serverDir)) {
        fail("secretFile", l.secretFile, `must be outside serverDir (an import needs an empty serverDir), in a root-owned directory outside the service user's (${ownedList}), e.g. /etc/devpi/secret`);
    }
    if (owned.some(([, d]) => isWithin(l.secretFile, d))) {
        fail("secretFile", l.secretFile, `must be in a root-owned directory outside the service user's (${ownedList}), e.g. /etc/devpi/secret`);
    }
    // The program replaces venvDir by a symlink and moves a plain directory there aside.
    const swallowed = owned.find(([, d]) => isWithin(d, l.venvDir));
    if (swallowed) fail("venvDir", l.venvDir, `must not be or contain a directory the service user owns (${swallowed[0]}): the program replaces venvDir by a symlink`);
    // A venvDir inside the service user's directories is the seed's layout and is kept; the root-owned virtualenvs go elsewhere.
    const venvInOwned = owned.some(([, d]) => isWithin(l.venvDir, d));
    const venvVersionsDir = venvInOwned ? FALLBACK_VENV_VERSIONS_DIR : `${l.venvDir}.versions`;
    const clash = owned.find(([, d]) => isWithin(venvVersionsDir, d) || isWithin(d, venvVersionsDir));
    if (clash) {
        fail(
            "venvDir",
            l.venvDir,
            `its root-owned virtualenvs would go to ${venvVersionsDir}, which overlaps a directory the service user owns (${clash[0]}): move serverDir (e.g. /srv/devpi/data) or backupDir elsewhere`,
        );
    }
    return venvVersionsDir;
}
