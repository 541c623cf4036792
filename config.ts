/**
 * The stack's configuration, read once and validated before any resource is created.
 *
 * {@link loadConfig} is synchronous and pure apart from reading local files named by the stack
 * (certificate and key paths): bad input throws a {@link ConfigError} naming the key, the bad
 * value and what is allowed, so `pulumi preview`/`up` stop before any server is touched.
 * {@link readStackConfig} feeds it the running stack's config.
 */
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import * as runtimeConfig from "@pulumi/pulumi/runtime/config";

/** Thrown for any invalid stack configuration. */
export class ConfigError extends Error {
    constructor(message: string) {
        super(message);
        this.name = "ConfigError";
    }
}

/** A devpi user as declared in `devpi:users`. */
export interface UserConfig {
    name: string;
    /** Plain text here; wrapped as a Pulumi secret by the composition root. */
    password: string;
    email?: string;
}

/** A devpi index as declared in `devpi:indexes`. */
export interface IndexConfig {
    /** `USER/INDEX`. */
    name: string;
    owner: string;
    index: string;
    bases: string[];
    volatile: boolean;
    aclUpload: string[];
    mirrorWhitelist: string[];
}

export type SslMode = "self-signed" | "provided" | "acme";

/** Let's Encrypt's production directory, the default ACME server. */
export const LETSENCRYPT_DIRECTORY = "https://acme-v02.api.letsencrypt.org/directory";

export interface SslConfig {
    mode: SslMode;
    /** Directory on the server holding the key and chain (seed: /srv/ssl/devpi). */
    dir: string;
    /** Extra subject alternative names (DNS) besides the domain. */
    extraDnsNames: string[];
    /** Extra subject alternative names (IP addresses). */
    extraIpAddresses: string[];
    certValidityDays: number;
    certRenewBeforeDays: number;
    caValidityDays: number;
    /** A `pulumi up` within this many days of the CA's expiry re-issues the CA (same key) and re-signs the server certificates. */
    caRenewBeforeDays: number;
    /** For `provided`: PEM certificate chain (leaf first). */
    providedChainPem?: string;
    /** For `provided`: PEM private key (plain text here; secret in Pulumi). */
    providedKeyPem?: string;
    /** For `provided` by a private CA: that CA's certificate (health check trust, client output). */
    providedCaPem?: string;
    /** For `acme`: the ACME account's contact address (expiry notices). */
    acmeEmail?: string;
    /** For `acme`: the RFC 8555 directory URL (https). */
    acmeDirectoryUrl?: string;
    /** For `acme` with a private CA: PEM certificates the server trusts for the ACME server's HTTPS and the issued chain. */
    acmeCaBundlePem?: string;
}

/** SSH access to one server. */
export interface SshConfig {
    host: string;
    port: number;
    user: string;
    /** Plain text here; wrapped as a Pulumi secret by the composition root. */
    privateKey: string;
    /** The pinned host key; absent only with `devpi:insecureSkipHostKeyCheck: true` (then any key is accepted, with a warning). */
    hostKey?: string;
}

/**
 * One replica as declared in `devpi:replicas`: its own SSH target, public name(s) and ports;
 * everything else (versions, layout, TLS mode, users, indexes) is the primary's.
 */
export interface ReplicaConfig {
    /** Short label (DNS label); its resources are named `replica-NAME-...`. Default: the domain's first label. */
    name: string;
    ssh: SshConfig;
    domain: string;
    extraDnsNames: string[];
    extraIpAddresses: string[];
    httpPort: number;
    httpsPort: number;
    devpiPort: number;
    /** Provided mode: this replica's own chain and key; absent means the primary's (shared) certificate. */
    providedChainPem?: string;
    providedKeyPem?: string;
}

/** The whole validated configuration. */
export interface DevpiConfig {
    ssh: SshConfig;
    domain: string;
    httpPort: number;
    httpsPort: number;
    /** Whether nginx also listens on IPv6. */
    listenIpv6: boolean;
    devpi: {
        host: string;
        port: number;
        serverVersion: string;
        webVersion: string;
        web: boolean;
        serviceUser: string;
        venvDir: string;
        /**
         * Where the root-owned virtualenvs (one per version set) belong: `VENVDIR.versions` when
         * venvDir is outside every directory the service user owns (homeDir = the parent of
         * serverDir, serverDir, backupDir), else {@link FALLBACK_VENV_VERSIONS_DIR}
         * (`/opt/devpi/versions`). The seed layout keeps venvDir inside the service user's home
         * (`/home/web/repo/devpi/venv_devpi`): the service user could rename or replace anything
         * there, so root must never run, install into or follow links in code kept there; venvDir
         * itself then only serves as the service's (symlinked) entry point.
         */
        venvVersionsDir: string;
        serverDir: string;
        configDir: string;
        /** In a root-owned directory outside the service user's (default `/etc/devpi/secret`). */
        secretFile: string;
        backupDir: string;
        backupSchedule: string;
        backupKeep: number;
        upgradeStrategy: "auto" | "export-import";
        allowDowngrade: boolean;
        mirrorCacheExpiry: number;
        maxUploadMb: number;
        restrictModify: string;
        replication: boolean;
        debug: boolean;
        pythonPackageIndex?: string;
        /** CA bundle on the server for outbound HTTPS (pip, devpi's PyPI mirror). */
        upstreamCaBundle?: string;
    };
    ssl: SslConfig;
    rootPassword: string;
    users: UserConfig[];
    indexes: IndexConfig[];
    /** Whether the `.pypirc` output carries the password of {@link clientUser}. */
    clientIncludePassword: boolean;
    /** The user whose index the client outputs point at (default: owner of the first index). */
    clientIndex?: string;
    /** Servers that follow the primary through devpi's replication (empty: a single server). */
    replicas: ReplicaConfig[];
    /** Things worth a warning that do not stop the run (e.g. a provided certificate about to expire). */
    warnings: string[];
}

/** Reads one raw (plain text) config value of this project, e.g. `get("host")`. */
export type RawConfigGetter = (key: string) => string | undefined;

/** Tells whether a key's value is stored encrypted (set with `pulumi config set --secret`). */
export type SecretKeyCheck = (key: string) => boolean;


/** Every key this program understands; anything else under `devpi:` is rejected. */
export const KNOWN_KEYS = [
    "host", "sshPort", "sshUser", "sshPrivateKey", "sshPrivateKeyFile", "hostKey", "insecureSkipHostKeyCheck",
    "domain", "httpPort", "httpsPort", "listenIpv6",
    "devpiHost", "devpiPort", "devpiServerVersion", "devpiWebVersion", "web",
    "serviceUser", "venvDir", "serverDir", "configDir", "secretFile",
    "backupDir", "backupSchedule", "backupKeep", "upgradeStrategy", "allowDowngrade",
    "mirrorCacheExpiry", "maxUploadMb", "restrictModify", "replication", "debug", "pythonPackageIndex", "upstreamCaBundle",
    "sslMode", "sslDir", "sslOwner", "extraDnsNames", "extraIpAddresses",
    "certValidityDays", "certRenewBeforeDays", "caValidityDays", "caRenewBeforeDays",
    "sslCertificate", "sslCertificateFile", "sslPrivateKey", "sslPrivateKeyFile", "sslCaCertificate", "sslCaCertificateFile",
    "acmeEmail", "acmeDirectoryUrl", "acmeCaBundle", "acmeCaBundleFile",
    "rootPassword", "users", "indexes", "clientIndex", "clientIncludePassword", "replicas",
] as const;

/** Keys of one `devpi:replicas` entry. */
export const REPLICA_KEYS = [
    "name", "host", "sshPort", "sshUser", "sshPrivateKey", "sshPrivateKeyFile", "hostKey",
    "domain", "extraDnsNames", "extraIpAddresses", "httpPort", "httpsPort", "devpiPort",
    "sslCertificate", "sslCertificateFile", "sslPrivateKey", "sslPrivateKeyFile",
] as const;

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
    "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32", "/media", "/mnt", "/opt",
    "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp",
    "/usr", "/usr/bin", "/usr/include", "/usr/lib", "/usr/lib32", "/usr/lib64", "/usr/libexec", "/usr/local",
    "/usr/local/bin", "/usr/local/etc", "/usr/local/lib", "/usr/local/sbin", "/usr/local/share", "/usr/sbin", "/usr/share", "/usr/src",
    "/var", "/var/backups", "/var/cache", "/var/lib", "/var/local", "/var/lock", "/var/log", "/var/mail", "/var/opt",
    "/var/run", "/var/spool", "/var/tmp", "/var/www",
    "/etc/apt", "/etc/cron.d", "/etc/cron.daily", "/etc/default", "/etc/letsencrypt", "/etc/logrotate.d",
    "/etc/nginx", "/etc/nginx/conf.d", "/etc/nginx/sites-available", "/etc/nginx/sites-enabled", "/etc/pam.d",
    "/etc/profile.d", "/etc/ssh", "/etc/ssl", "/etc/ssl/certs", "/etc/ssl/private", "/etc/sudoers.d",
    "/etc/supervisor", "/etc/supervisor/conf.d", "/etc/systemd", "/etc/systemd/system",
];

/**
 * The default secretFile before it moved to `/etc/devpi/secret`: a file in `/srv/devpi`, the
 * service user's home directory (which that user could replace with a symlink). The server step
 * migrates a secret found there, so logins survive the move.
 */
export const LEGACY_SECRET_FILE = "/srv/devpi/.secret";

/**
 * Where the root-owned virtualenvs go when venvDir lies inside a directory the service user owns
 * (the seed layout): see `venvVersionsDir` in {@link DevpiConfig}.
 */
export const FALLBACK_VENV_VERSIONS_DIR = "/opt/devpi/versions";

/** What the program creates as root from a path key, which decides the rules {@link Reader.path} adds. */
type PathUse =
    /** Nothing: a file it only reads (upstreamCaBundle). */
    | "read"
    /** The directory itself (venvDir, configDir, backupDir, sslDir): not a system directory. */
    | "dir"
    /** serverDir: the directory and its parent, homeDir, which becomes the service user's: neither a system directory. */
    | "dir+home"
    /** A file whose directory it creates (secretFile): that directory is not a system directory. */
    | "file";

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$/;
// Linux user names as Debian's adduser accepts them by default.
const UNIX_USER_RE = /^[a-z_][a-z0-9_-]{0,31}$/;
const VERSION_RE = /^\d+(\.\d+){1,3}([a-z]+\d*)?$/;
const HOSTNAME_RE = /^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;
// Absolute paths made of ordinary characters: they are interpolated into shell scripts and configs.
const ABS_PATH_RE = /^\/[A-Za-z0-9._/+-]*$/;
const CRON_FIELD_RE = /^[0-9*,/-]+$/;

function fail(key: string, value: unknown, allowed: string): never {
    const shown = JSON.stringify(value) ?? String(value);
    throw new ConfigError(`devpi:${key}: invalid value ${shown}: ${allowed}`);
}

class Reader {
    constructor(private readonly raw: RawConfigGetter) {}

    str(key: string, def?: string): string {
        const v = this.raw(key);
        if (v === undefined || v === "") {
            if (def === undefined) {
                throw new ConfigError(`devpi:${key} is required but not set: set it with \`pulumi config set ${key} VALUE\``);
            }
            return def;
        }
        return v;
    }

    optStr(key: string): string | undefined {
        const v = this.raw(key);
        return v === undefined || v === "" ? undefined : v;
    }

    int(key: string, def: number, min: number, max: number): number {
        const v = this.raw(key);
        if (v === undefined || v === "") return def;
        if (!/^-?\d+$/.test(v.trim())) fail(key, v, `must be an integer from ${min} to ${max}`);
        const n = Number(v.trim());
        if (n < min || n > max) fail(key, n, `must be an integer from ${min} to ${max}`);
        return n;
    }

    bool(key: string, def: boolean): boolean {
        const v = this.raw(key);
        if (v === undefined || v === "") return def;
        if (v === "true") return true;
        if (v === "false") return false;
        return fail(key, v, "must be true or false");
    }

    json(key: string): unknown {
        const v = this.raw(key);
        if (v === undefined || v === "") return undefined;
        try {
            return JSON.parse(v);
        } catch {
            return fail(key, v, "must be structured YAML/JSON (see README: Configuration)");
        }
    }

    stringList(key: string, check?: (s: string) => boolean, allowed?: string): string[] {
        const v = this.json(key);
        if (v === undefined) return [];
        if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) {
            fail(key, v, "must be a list of strings");
        }
        const list = v;
        for (const item of list) {
            if (check && !check(item)) fail(key, item, allowed ?? "invalid list item");
        }
        return list;
    }

    /**
     * An absolute path: ordinary characters only (it is interpolated into shell scripts and
     * configs), normalised (no `.`, `..` or empty segments, so comparisons between keys cannot be
     * dodged; trailing slashes are dropped) and not `/`. `use` adds the system-directory rules
     * ({@link SYSTEM_DIRS}) for what the program creates from it as root. Returns the path
     * without trailing slashes.
     */
    path(key: string, def: string, use: PathUse): string {
        const raw = this.str(key, def);
        if (!ABS_PATH_RE.test(raw)) fail(key, raw, "must be an absolute path of letters, digits and . _ - + /");
        const p = raw.replace(/\/+$/, "");
        if (p === "") fail(key, raw, "must be an absolute path below /, not / itself");
        const odd = p.slice(1).split("/").find((s) => s === "" || s === "." || s === "..");
        if (odd !== undefined) {
            fail(key, raw, `must be a normalised absolute path: no '.' or '..' segments and no empty ones ('//'); found ${odd === "" ? "'//'" : `'${odd}'`}`);
        }
        const parent = path.posix.dirname(p);
        if ((use === "dir" || use === "dir+home") && SYSTEM_DIRS.includes(p)) {
            fail(key, raw, `must not be a system directory: the program creates ${key} as root and sets its owner and mode; use a directory of its own, e.g. ${def}`);
        }
        if (use === "dir+home" && SYSTEM_DIRS.includes(parent)) {
            fail(key, raw, `homeDir = parent of serverDir (${parent}) becomes the service user's (its home directory, created and chowned to it as root), and ${parent} is a system directory: use a directory two levels below one, e.g. ${p}/data or /srv/devpi/data`);
        }
        if (use === "file" && SYSTEM_DIRS.includes(parent)) {
            fail(key, raw, `its directory ${parent} is a system directory, which the program would create as root and set the owner and mode of: use a file in a directory of its own, e.g. ${def}`);
        }
        return p;
    }
}

function isIpAddress(s: string): boolean {
    return /^(\d{1,3})(\.\d{1,3}){3}$/.test(s) ? s.split(".").every((o) => Number(o) <= 255) : /^[0-9a-fA-F:]+$/.test(s) && s.includes(":");
}

function validateCron(key: string, schedule: string): string {
    const fields = schedule.trim().split(/\s+/);
    if (fields.length !== 5 || !fields.every((f) => CRON_FIELD_RE.test(f))) {
        fail(key, schedule, "must be a 5-field cron schedule such as \"17 3 * * *\" (digits, * , / - only)");
    }
    return fields.join(" ");
}

function readLocalFile(key: string, file: string): string {
    const resolved = path.resolve(file);
    try {
        return fs.readFileSync(resolved, "utf8");
    } catch (e) {
        return fail(key, file, `must name a readable local file (${(e as Error).message})`);
    }
}

function parseUsers(r: Reader): UserConfig[] {
    const v = r.json("users");
    if (v === undefined) return [];
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
        fail("users", v, "must be a map of user name to {password, email}");
    }
    const users: UserConfig[] = [];
    for (const [name, spec] of Object.entries(v as Record<string, unknown>)) {
        if (!NAME_RE.test(name) || name === "root") {
            fail(`users.${name}`, name, "user names must match [a-zA-Z0-9][a-zA-Z0-9._-]{0,63} and not be 'root' (see rootPassword)");
        }
        if (typeof spec !== "object" || spec === null || Array.isArray(spec)) {
            fail(`users.${name}`, spec, "must be an object with a secret 'password' and an optional 'email'");
        }
        const s = spec as Record<string, unknown>;
        for (const k of Object.keys(s)) {
            if (!["password", "email"].includes(k)) fail(`users.${name}.${k}`, s[k], "unknown key; allowed: password, email");
        }
        if (typeof s.password !== "string" || s.password.length === 0) {
            throw new ConfigError(
                `devpi:users.${name}.password is required: set it with \`pulumi config set --secret --path 'users.${name}.password' VALUE\``,
            );
        }
        if (s.email !== undefined && (typeof s.email !== "string" || !/^[^@\s]+@[^@\s]+$/.test(s.email))) {
            fail(`users.${name}.email`, s.email, "must be an e-mail address like name@example.com");
        }
        users.push({ name, password: s.password, email: s.email });
    }
    return users;
}

function parseIndexes(r: Reader, users: UserConfig[]): IndexConfig[] {
    const v = r.json("indexes");
    if (v === undefined) return [];
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
        fail("indexes", v, "must be a map of USER/INDEX to {bases, volatile, acl_upload}");
    }
    const owners = new Set(["root", ...users.map((u) => u.name)]);
    const entries = Object.entries(v as Record<string, unknown>);
    const declared = new Set(entries.map(([k]) => k));
    const indexes: IndexConfig[] = [];
    for (const [name, spec] of entries) {
        const parts = name.split("/");
        if (parts.length !== 2 || !NAME_RE.test(parts[0]) || !NAME_RE.test(parts[1]) || parts[1].startsWith("+")) {
            fail(`indexes.${name}`, name, "index names must be USER/INDEX, each part matching [a-zA-Z0-9][a-zA-Z0-9._-]{0,63}");
        }
        const [owner, index] = parts;
        if (name === "root/pypi") {
            fail(`indexes.${name}`, name, "root/pypi is devpi's built-in PyPI mirror and is not managed here");
        }
        if (!owners.has(owner)) {
            fail(`indexes.${name}`, name, `owner '${owner}' is not a declared user (declared: ${[...owners].join(", ")})`);
        }
        const s = (spec ?? {}) as Record<string, unknown>;
        if (typeof s !== "object" || Array.isArray(s)) fail(`indexes.${name}`, spec, "must be an object");
        const allowedKeys = ["bases", "volatile", "acl_upload", "mirror_whitelist"];
        for (const k of Object.keys(s)) {
            if (!allowedKeys.includes(k)) fail(`indexes.${name}.${k}`, s[k], `unknown key; allowed: ${allowedKeys.join(", ")}`);
        }
        const list = (k: string, def: string[]): string[] => {
            const x = s[k];
            if (x === undefined) return def;
            if (!Array.isArray(x) || !x.every((i) => typeof i === "string")) fail(`indexes.${name}.${k}`, x, "must be a list of strings");
            return x;
        };
        const bases = list("bases", ["root/pypi"]);
        for (const b of bases) {
            if (b === name) fail(`indexes.${name}.bases`, b, "an index cannot be its own base");
            if (b !== "root/pypi" && !declared.has(b)) {
                fail(`indexes.${name}.bases`, b, `must be root/pypi or an index declared in devpi:indexes (declared: ${[...declared].join(", ")})`);
            }
        }
        if (s.volatile !== undefined && typeof s.volatile !== "boolean") fail(`indexes.${name}.volatile`, s.volatile, "must be true or false");
        const aclUpload = list("acl_upload", [owner]);
        for (const a of aclUpload) {
            // devpi's special principals are spelled :NAME: (e.g. :ANONYMOUS:, :AUTHENTICATED:).
            if (!owners.has(a) && !/^:[A-Z]+:$/.test(a)) {
                fail(`indexes.${name}.acl_upload`, a, `must name declared users (${[...owners].join(", ")}) or a principal like :ANONYMOUS:`);
            }
        }
        const mirrorWhitelist = list("mirror_whitelist", []);
        for (const m of mirrorWhitelist) {
            if (!/^([a-zA-Z0-9][a-zA-Z0-9._-]*|\*)$/.test(m)) fail(`indexes.${name}.mirror_whitelist`, m, "must be project names or *");
        }
        indexes.push({ name, owner, index, bases, volatile: s.volatile === true, aclUpload, mirrorWhitelist });
    }
    // Bases must form no cycle: devpi resolves them recursively.
    const byName = new Map(indexes.map((i) => [i.name, i]));
    const visiting = new Set<string>();
    const done = new Set<string>();
    const visit = (n: string, trail: string[]): void => {
        if (done.has(n) || n === "root/pypi") return;
        if (visiting.has(n)) fail(`indexes.${n}.bases`, [...trail, n].join(" -> "), "bases must not form a cycle");
        visiting.add(n);
        for (const b of byName.get(n)?.bases ?? []) visit(b, [...trail, n]);
        visiting.delete(n);
        done.add(n);
    };
    for (const i of indexes) visit(i.name, []);
    return indexes;
}

function pemBlocks(pem: string, label: RegExp): string[] {
    return [...pem.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g)]
        .filter((m) => label.test(m[1]))
        .map((m) => m[0]);
}

/**
 * Checks a provided key and chain: parseable, matching, and not expired at `now`. Returns a
 * warning when the certificate expires within `warnDays` days of `now` (it still works; the run
 * goes on), else undefined.
 */
export function checkProvidedCertificate(chainPem: string, keyPem: string, now: Date, warnDays = 30): string | undefined {
    const certs = pemBlocks(chainPem, /^CERTIFICATE$/);
    if (certs.length === 0) {
        throw new ConfigError("devpi:sslCertificate: no PEM certificate found: must be a PEM chain, server certificate first");
    }
    let leaf: crypto.X509Certificate;
    try {
        leaf = new crypto.X509Certificate(certs[0]);
    } catch (e) {
        throw new ConfigError(`devpi:sslCertificate: the first certificate cannot be parsed (${(e as Error).message})`);
    }
    let key: crypto.KeyObject;
    try {
        key = crypto.createPrivateKey(keyPem);
    } catch (e) {
        throw new ConfigError(`devpi:sslPrivateKey: not a readable unencrypted PEM private key (${(e as Error).message})`);
    }
    if (!leaf.checkPrivateKey(key)) {
        throw new ConfigError(
            `devpi:sslPrivateKey: does not match the certificate for ${leaf.subject.replace(/\n/g, ", ")} (serial ${leaf.serialNumber}): provide the key the certificate was issued for`,
        );
    }
    const notAfter = new Date(leaf.validTo);
    if (notAfter.getTime() <= now.getTime()) {
        throw new ConfigError(`devpi:sslCertificate: the certificate expired on ${notAfter.toISOString()}: provide a current certificate`);
    }
    const daysLeft = (notAfter.getTime() - now.getTime()) / 86_400_000;
    if (daysLeft < warnDays) {
        return `devpi:sslCertificate: the certificate for ${leaf.subject.replace(/\n/g, ", ")} expires on ${notAfter.toISOString()} (in ${daysLeft.toFixed(1)} days, less than devpi:certRenewBeforeDays = ${warnDays}): nginx serves it until then; set a renewed certificate and run pulumi up before that date`;
    }
    return undefined;
}

/** Checks that the chain's last certificate was issued by (or is) the given CA certificate. */
export function checkIssuedBy(chainPem: string, caPem: string): void {
    let ca: crypto.X509Certificate;
    try {
        ca = new crypto.X509Certificate(caPem);
    } catch (e) {
        throw new ConfigError(`devpi:sslCaCertificate: not a PEM certificate (${(e as Error).message})`);
    }
    const certs = pemBlocks(chainPem, /^CERTIFICATE$/).map((c) => new crypto.X509Certificate(c));
    const top = certs[certs.length - 1];
    if (!(top.fingerprint256 === ca.fingerprint256 || (top.checkIssued(ca) && top.verify(ca.publicKey)))) {
        throw new ConfigError(
            `devpi:sslCaCertificate: ${ca.subject.replace(/\n/g, ", ")} did not issue the chain's last certificate (issuer ${top.issuer.replace(/\n/g, ", ")})`,
        );
    }
}

/** How a server's missing hostKey is handled (the top-level `devpi:insecureSkipHostKeyCheck`). */
interface HostKeyPolicy {
    /** Accept any host key where hostKey is unset (with a warning) instead of refusing the config. */
    insecureSkipHostKeyCheck: boolean;
    /** Where that warning goes. */
    warnings: string[];
}

/**
 * SSH access under `P` + host, sshPort, sshUser, sshPrivateKey(File), hostKey (P: "" or
 * "replicas[i]."). hostKey is required unless `policy.insecureSkipHostKeyCheck`: without it
 * whoever answers on the SSH port gets the login and the secrets sent on stdin.
 */
function parseSsh(r: Reader, p: string, defaults: { user: string }, policy: HostKeyPolicy): SshConfig {
    const host = r.str(`${p}host`);
    if (!HOSTNAME_RE.test(host) && !isIpAddress(host)) fail(`${p}host`, host, "must be a host name or an IP address");
    const port = r.int(`${p}sshPort`, 22, 1, 65535);
    const user = r.str(`${p}sshUser`, defaults.user);
    if (!UNIX_USER_RE.test(user)) fail(`${p}sshUser`, user, "must be a Unix user name ([a-z_][a-z0-9_-]{0,31})");
    let privateKey = r.optStr(`${p}sshPrivateKey`);
    const keyFile = r.optStr(`${p}sshPrivateKeyFile`);
    if (privateKey && keyFile) fail(`${p}sshPrivateKeyFile`, keyFile, "set either sshPrivateKey or sshPrivateKeyFile, not both");
    if (!privateKey && keyFile) privateKey = readLocalFile(`${p}sshPrivateKeyFile`, keyFile);
    if (!privateKey) {
        throw new ConfigError(
            p === ""
                ? "devpi:sshPrivateKey is required: `pulumi config set --secret sshPrivateKey < ~/.ssh/id_ed25519` or set devpi:sshPrivateKeyFile to a local path"
                : `devpi:${p}sshPrivateKey is required: \`pulumi config set --secret --path '${p}sshPrivateKey' < ~/.ssh/id_ed25519\` or set devpi:${p}sshPrivateKeyFile to a local path`,
        );
    }
    if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(privateKey)) {
        fail(keyFile ? `${p}sshPrivateKeyFile` : `${p}sshPrivateKey`, keyFile ?? "(secret)", "must be a PEM or OpenSSH private key");
    }
    const hostKey = r.optStr(`${p}hostKey`);
    if (hostKey !== undefined && !/^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/=]+( .*)?$/.test(hostKey)) {
        fail(`${p}hostKey`, hostKey, "must be the server's public host key, e.g. \"ssh-ed25519 AAAA...\" (from /etc/ssh/ssh_host_ed25519_key.pub)");
    }
    if (hostKey === undefined) {
        const keyscan = `"$(ssh-keyscan -p ${port} -t ed25519 ${host} 2>/dev/null | cut -d' ' -f2-)"`;
        const setCommand = p === "" ? `pulumi config set hostKey ${keyscan}` : `pulumi config set --path '${p}hostKey' ${keyscan}`;
        if (!policy.insecureSkipHostKeyCheck) {
            throw new ConfigError(
                `devpi:${p}hostKey is required: pin the server's SSH host key with \`${setCommand}\` (or set devpi:insecureSkipHostKeyCheck true to trust whatever answers, which sends secrets to it)`,
            );
        }
        policy.warnings.push(
            `devpi:${p}hostKey is not set and devpi:insecureSkipHostKeyCheck is true: the SSH host key of ${host}:${port} is not checked, so whoever answers there gets the login and the secrets sent to the server; pin it with \`${setCommand}\``,
        );
    }
    return { host, port, user, privateKey, hostKey };
}

/** One server's public name and ports under `P` (P: "" or "replicas[i]."). */
function parseSite(
    r: Reader,
    p: string,
    defaults: { domain?: string; httpPort: number; httpsPort: number; devpiPort: number },
): { domain: string; httpPort: number; httpsPort: number; devpiPort: number } {
    const domain = r.str(`${p}domain`, defaults.domain);
    if (!HOSTNAME_RE.test(domain) || !domain.includes(".") && domain !== "localhost") {
        fail(`${p}domain`, domain, "must be a fully qualified DNS name such as devpi.example.com");
    }
    const httpPort = r.int(`${p}httpPort`, defaults.httpPort, 1, 65535);
    const httpsPort = r.int(`${p}httpsPort`, defaults.httpsPort, 1, 65535);
    const devpiPort = r.int(`${p}devpiPort`, defaults.devpiPort, 1, 65535);
    if (httpPort === httpsPort) fail(`${p}httpsPort`, httpsPort, "must differ from httpPort");
    if (devpiPort === httpPort || devpiPort === httpsPort) fail(`${p}devpiPort`, devpiPort, "must differ from httpPort and httpsPort");
    return { domain, httpPort, httpsPort, devpiPort };
}

interface PrimaryForReplicas {
    ssh: SshConfig;
    domain: string;
    httpPort: number;
    httpsPort: number;
    devpiPort: number;
    ssl: SslConfig;
    now: Date;
    /** Warnings found while reading the replicas are added here. */
    warnings: string[];
    isSecret?: SecretKeyCheck;
    insecureSkipHostKeyCheck: boolean;
}

/**
 * `devpi:replicas`: a list of servers that follow the primary. Each entry is read with the same
 * rules as the primary's keys (errors name `replicas[i].KEY`); SSH user and ports default to the
 * primary's. Two entries (or an entry and the primary) on the same SSH target, with the same
 * name or the same public URL are refused.
 */
function parseReplicas(r: Reader, primary: PrimaryForReplicas): ReplicaConfig[] {
    const v = r.json("replicas");
    if (v === undefined) return [];
    if (!Array.isArray(v)) fail("replicas", v, "must be a list of {host, domain, sshPrivateKey or sshPrivateKeyFile, ...} entries");
    const list = v as unknown[];
    if (primary.isSecret && list.some((e) => typeof e === "object" && e !== null && "sshPrivateKey" in e) && !primary.isSecret("replicas")) {
        throw new ConfigError("devpi:replicas holds an SSH private key in plain text: set it with `pulumi config set --secret --path 'replicas[i].sshPrivateKey' < KEYFILE`");
    }
    const replicas: ReplicaConfig[] = [];
    const sshTargets = new Map<string, string>([[`${primary.ssh.host}:${primary.ssh.port}`, "the primary"]]);
    const urls = new Map<string, string>([[`${primary.domain}:${primary.httpsPort}`, "the primary"]]);
    const names = new Map<string, string>();
    list.forEach((entry, i) => {
        const p = `replicas[${i}].`;
        if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
            fail(`replicas[${i}]`, entry, "must be an object such as {host: ..., domain: ..., sshPrivateKeyFile: ...}");
        }
        const e = entry as Record<string, unknown>;
        for (const k of Object.keys(e)) {
            if (!(REPLICA_KEYS as readonly string[]).includes(k)) fail(`${p}${k}`, k.includes("Key") ? "(secret)" : e[k], `unknown key; allowed: ${REPLICA_KEYS.join(", ")}`);
        }
        // The same reader rules as top-level keys: values as the CLI would pass them (strings, JSON for lists).
        const rr = new Reader((key) => {
            if (!key.startsWith(p)) return undefined;
            const x = e[key.slice(p.length)];
            if (x === undefined || x === null) return undefined;
            return typeof x === "string" ? x : typeof x === "number" || typeof x === "boolean" ? String(x) : JSON.stringify(x);
        });
        const ssh = parseSsh(rr, p, { user: primary.ssh.user }, primary);
        const site = parseSite(rr, p, { httpPort: primary.httpPort, httpsPort: primary.httpsPort, devpiPort: primary.devpiPort });
        const name = rr.str(`${p}name`, site.domain.split(".")[0]);
        if (!/^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/.test(name)) fail(`${p}name`, name, "must be a DNS label: lower-case letters, digits and -, at most 32 characters");
        const extraDnsNames = rr.stringList(`${p}extraDnsNames`, (s) => HOSTNAME_RE.test(s), "must be DNS names");
        const extraIpAddresses = rr.stringList(`${p}extraIpAddresses`, isIpAddress, "must be IPv4 or IPv6 addresses");
        const target = `${ssh.host}:${ssh.port}`;
        if (sshTargets.has(target)) fail(`${p}host`, target, `must be a different server: ${sshTargets.get(target)} is already reached at ${target}`);
        sshTargets.set(target, `replicas[${i}]`);
        const url = `${site.domain}:${site.httpsPort}`;
        if (urls.has(url)) fail(`${p}domain`, url, `must differ (with httpsPort) from every other server's: ${urls.get(url)} already serves https://${url}`);
        urls.set(url, `replicas[${i}]`);
        if (names.has(name)) fail(`${p}name`, name, `must be unique: ${names.get(name)} has the same name`);
        names.set(name, `replicas[${i}]`);

        const replica: ReplicaConfig = { name, ssh, ...site, extraDnsNames, extraIpAddresses };
        const sslKeys = ["sslCertificate", "sslCertificateFile", "sslPrivateKey", "sslPrivateKeyFile"];
        if (primary.ssl.mode === "provided") {
            const chain = rr.optStr(`${p}sslCertificate`) ?? (rr.optStr(`${p}sslCertificateFile`) ? readLocalFile(`${p}sslCertificateFile`, rr.str(`${p}sslCertificateFile`)) : undefined);
            const key = rr.optStr(`${p}sslPrivateKey`) ?? (rr.optStr(`${p}sslPrivateKeyFile`) ? readLocalFile(`${p}sslPrivateKeyFile`, rr.str(`${p}sslPrivateKeyFile`)) : undefined);
            if ((chain === undefined) !== (key === undefined)) {
                fail(`${p}${chain ? "sslPrivateKey" : "sslCertificate"}`, "(missing)", "a replica's own certificate needs both its chain and its key; leave both out to use the primary's certificate");
            }
            if (chain !== undefined && key !== undefined) {
                // Same checks as the primary's certificate; errors and warnings name this entry's key.
                const ofEntry = (message: string) => message.replace(/^devpi:(ssl[A-Za-z]+)/, `devpi:${p}$1`);
                try {
                    const warning = checkProvidedCertificate(chain, key, primary.now, primary.ssl.certRenewBeforeDays);
                    if (warning) primary.warnings.push(ofEntry(warning));
                    if (primary.ssl.providedCaPem) checkIssuedBy(chain, primary.ssl.providedCaPem);
                } catch (err) {
                    throw err instanceof ConfigError ? new ConfigError(ofEntry(err.message)) : err;
                }
                replica.providedChainPem = chain.trim() + "\n";
                replica.providedKeyPem = key.trim() + "\n";
            }
            const leaf = new crypto.X509Certificate(pemBlocks(replica.providedChainPem ?? primary.ssl.providedChainPem ?? "", /^CERTIFICATE$/)[0]);
            for (const n of [site.domain, ...extraDnsNames]) {
                if (leaf.checkHost(n) === undefined) {
                    fail(`${p}domain`, n, `is not a name of ${replica.providedChainPem ? "the replica's" : "the primary's (shared)"} certificate (${leaf.subjectAltName ?? leaf.subject}): give the replica its own sslCertificate and sslPrivateKey`);
                }
            }
        } else {
            // acme: each replica gets its own certificate for its own names, on its own host.
            if (primary.ssl.mode === "acme") checkAcmeNames(p, site.domain, extraDnsNames, extraIpAddresses);
            for (const k of sslKeys) {
                if (rr.optStr(`${p}${k}`) !== undefined) fail(`${p}${k}`, k.includes("Key") ? "(secret)" : rr.optStr(`${p}${k}`), "only allowed when devpi:sslMode is provided");
            }
        }
        replicas.push(replica);
    });
    return replicas;
}

/**
 * The names one server asks an ACME CA for (`prefix` is "" for the primary, `replicas[i].` for a
 * replica): DNS names a public CA can validate over HTTP-01, so no IP addresses and no localhost.
 */
function checkAcmeNames(prefix: string, domain: string, extraDnsNames: string[], extraIpAddresses: string[]): void {
    if (domain === "localhost" || domain.endsWith(".localhost")) {
        fail(`${prefix}domain`, domain, "must be a public DNS name that resolves to this server when devpi:sslMode is acme (no CA validates localhost)");
    }
    if (extraIpAddresses.length > 0) {
        fail(`${prefix}extraIpAddresses`, extraIpAddresses, "must be empty when devpi:sslMode is acme (certbot requests DNS names only)");
    }
    for (const n of extraDnsNames) {
        if (!n.includes(".") || n === "localhost" || n.endsWith(".localhost")) fail(`${prefix}extraDnsNames`, n, "must be public DNS names when devpi:sslMode is acme");
    }
}

/**
 * The ACME keys: a contact e-mail, an https directory, names a public CA can validate over
 * HTTP-01 (no IP addresses, no `localhost`), and optionally the PEM bundle of a private CA.
 */
function parseAcme(r: Reader, domain: string, ssl: SslConfig): Pick<SslConfig, "acmeEmail" | "acmeDirectoryUrl" | "acmeCaBundlePem"> {
    const email = r.optStr("acmeEmail");
    if (email === undefined) {
        throw new ConfigError("devpi:acmeEmail is required when devpi:sslMode is acme: `pulumi config set acmeEmail you@example.com` (the CA's expiry notices go there)");
    }
    if (!/^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$/.test(email)) fail("acmeEmail", email, "must be an e-mail address like ops@example.com");
    const directory = r.str("acmeDirectoryUrl", LETSENCRYPT_DIRECTORY);
    let url: URL | undefined;
    try {
        url = new URL(directory);
    } catch {
        url = undefined;
    }
    if (!url || url.protocol !== "https:" || !/^[A-Za-z0-9:/._~%?=&-]+$/.test(directory)) {
        fail("acmeDirectoryUrl", directory, `must be the https URL of an RFC 8555 directory, e.g. ${LETSENCRYPT_DIRECTORY} or https://acme-staging-v02.api.letsencrypt.org/directory`);
    }
    checkAcmeNames("", domain, ssl.extraDnsNames, ssl.extraIpAddresses);
    let bundle = r.optStr("acmeCaBundle");
    const bundleFile = r.optStr("acmeCaBundleFile");
    if (bundle !== undefined && bundleFile !== undefined) fail("acmeCaBundleFile", bundleFile, "set either acmeCaBundle or acmeCaBundleFile, not both");
    if (bundle === undefined && bundleFile !== undefined) bundle = readLocalFile("acmeCaBundleFile", bundleFile);
    let acmeCaBundlePem: string | undefined;
    if (bundle !== undefined) {
        const key = bundleFile !== undefined ? "acmeCaBundleFile" : "acmeCaBundle";
        const certs = pemBlocks(bundle, /^CERTIFICATE$/);
        if (certs.length === 0) fail(key, bundleFile ?? bundle.slice(0, 40), "must be PEM certificates (-----BEGIN CERTIFICATE-----)");
        for (const c of certs) {
            try {
                new crypto.X509Certificate(c);
            } catch (e) {
                fail(key, c.slice(0, 60), `holds a certificate that cannot be parsed (${(e as Error).message})`);
            }
        }
        acmeCaBundlePem = certs.join("\n") + "\n";
    }
    return { acmeEmail: email, acmeDirectoryUrl: directory, acmeCaBundlePem };
}

/** Whether `p` is `dir` or inside it (both normalised first, so `.` and `//` cannot dodge it). */
function isWithin(p: string, dir: string): boolean {
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
function checkLayout(l: { venvDir: string; serverDir: string; configDir: string; secretFile: string; backupDir: string; sslDir: string }): string {
    const homeDir = path.posix.dirname(l.serverDir);
    // Host preparation creates these and chowns them to the service user.
    const owned: [string, string][] = [
        [`homeDir = parent of serverDir = ${homeDir}`, homeDir],
        [`serverDir = ${l.serverDir}`, l.serverDir],
        [`backupDir = ${l.backupDir}`, l.backupDir],
    ];
    const ownedList = owned.map(([name]) => name).join(", ");
    if (isWithin(l.backupDir, l.serverDir)) fail("backupDir", l.backupDir, "must be outside serverDir");
    for (const [key, dir, example] of [["configDir", l.configDir, "/etc/devpi"], ["sslDir", l.sslDir, "/srv/ssl/devpi"]] as const) {
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
        fail("venvDir", l.venvDir, `its root-owned virtualenvs would go to ${venvVersionsDir}, which overlaps a directory the service user owns (${clash[0]}): move serverDir (e.g. /srv/devpi/data) or backupDir elsewhere`);
    }
    return venvVersionsDir;
}

/**
 * Validates the raw stack configuration and returns the typed configuration.
 * @param raw reads this project's config keys (without the `devpi:` prefix)
 * @param keys every key set in the stack (without prefix), to reject unknown keys
 * @param now the time used to check provided certificates
 */
export function loadConfig(raw: RawConfigGetter, keys: string[], now: Date = new Date(), isSecret?: SecretKeyCheck): DevpiConfig {
    const known = new Set<string>(KNOWN_KEYS);
    if (isSecret) {
        for (const k of ["sshPrivateKey", "sslPrivateKey"]) {
            const v = raw(k);
            if (v !== undefined && v !== "" && !isSecret(k)) {
                throw new ConfigError(`devpi:${k} is stored in plain text: set it again with \`pulumi config set --secret ${k} < FILE\``);
            }
        }
        const users = raw("users");
        if (users && users.includes('"password"') && !isSecret("users")) {
            throw new ConfigError("devpi:users holds a password in plain text: set each with `pulumi config set --secret --path 'users.NAME.password'`");
        }
    }
    for (const k of keys) {
        if (!known.has(k)) {
            throw new ConfigError(`devpi:${k}: unknown configuration key; known keys: ${[...KNOWN_KEYS].join(", ")}`);
        }
    }
    const r = new Reader(raw);

    const warnings: string[] = [];
    const insecureSkipHostKeyCheck = r.bool("insecureSkipHostKeyCheck", false);
    const ssh = parseSsh(r, "", { user: "root" }, { insecureSkipHostKeyCheck, warnings });
    const { domain, httpPort, httpsPort, devpiPort } = parseSite(r, "", { httpPort: 80, httpsPort: 443, devpiPort: 4040 });
    const devpiHost = r.str("devpiHost", "127.0.0.1");
    if (!isIpAddress(devpiHost) && devpiHost !== "localhost") fail("devpiHost", devpiHost, "must be a loopback or private IP address; devpi sits behind nginx");

    const serverVersion = r.str("devpiServerVersion", "6.20.3");
    if (!VERSION_RE.test(serverVersion)) fail("devpiServerVersion", serverVersion, "must be an exact version such as 6.20.3");
    if (Number(serverVersion.split(".")[0]) < 6) fail("devpiServerVersion", serverVersion, "must be 6.0 or newer (older servers need Python < 3.9 and other commands)");
    const webVersion = r.str("devpiWebVersion", "5.1.1");
    if (!VERSION_RE.test(webVersion)) fail("devpiWebVersion", webVersion, "must be an exact version such as 5.1.1");

    const serviceUser = r.str("serviceUser", "devpi");
    if (!UNIX_USER_RE.test(serviceUser) || serviceUser === "root") {
        fail("serviceUser", serviceUser, "must be a non-root Unix user name ([a-z_][a-z0-9_-]{0,31})");
    }
    const venvDir = r.path("venvDir", "/opt/devpi/venv", "dir");
    const serverDir = r.path("serverDir", "/srv/devpi/data", "dir+home");
    const configDir = r.path("configDir", "/etc/devpi", "dir");
    const secretFile = r.path("secretFile", "/etc/devpi/secret", "file");
    const backupDir = r.path("backupDir", "/srv/devpi/backups", "dir");
    const restrictModify = r.str("restrictModify", "root");
    if (!restrictModify.split(",").every((u) => NAME_RE.test(u.trim()))) {
        fail("restrictModify", restrictModify, "must be a comma-separated list of devpi user names (e.g. root)");
    }
    const pythonPackageIndex = r.optStr("pythonPackageIndex");
    if (pythonPackageIndex !== undefined && !/^https?:\/\/[^\s'"\\]+$/.test(pythonPackageIndex)) {
        fail("pythonPackageIndex", pythonPackageIndex, "must be an http(s) URL of a PyPI-compatible simple index");
    }

    const upstreamCaBundle = r.optStr("upstreamCaBundle") === undefined ? undefined : r.path("upstreamCaBundle", "/", "read");

    const upgradeStrategy = r.str("upgradeStrategy", "auto");
    if (upgradeStrategy !== "auto" && upgradeStrategy !== "export-import") {
        fail("upgradeStrategy", upgradeStrategy, "must be auto (in place when the data format allows) or export-import");
    }

    const mode = r.str("sslMode", "self-signed");
    if (mode !== "self-signed" && mode !== "provided" && mode !== "acme") fail("sslMode", mode, "must be self-signed, provided or acme");
    const ssl: SslConfig = {
        mode,
        dir: r.path("sslDir", "/srv/ssl/devpi", "dir"),
        extraDnsNames: r.stringList("extraDnsNames", (s) => HOSTNAME_RE.test(s), "must be DNS names"),
        extraIpAddresses: r.stringList("extraIpAddresses", isIpAddress, "must be IPv4 or IPv6 addresses"),
        certValidityDays: r.int("certValidityDays", 90, 2, 825),
        certRenewBeforeDays: r.int("certRenewBeforeDays", 30, 1, 824),
        caValidityDays: r.int("caValidityDays", 3650, 30, 36500),
        caRenewBeforeDays: r.int("caRenewBeforeDays", 30, 1, 36499),
    };
    const venvVersionsDir = checkLayout({ venvDir, serverDir, configDir, secretFile, backupDir, sslDir: ssl.dir });
    // The TLS directory, key and certificate are root's (nginx's master reads them as root); they
    // used to belong to sslOwner (www-data, nginx's worker user), which a compromised worker could
    // read or replace. A stack that still sets another owner keeps working, with a warning.
    const sslOwner = r.str("sslOwner", "root");
    if (!UNIX_USER_RE.test(sslOwner)) fail("sslOwner", sslOwner, "must be a Unix user name such as root");
    if (sslOwner !== "root") warnings.push(`devpi:sslOwner ${sslOwner}: the TLS key is owned by root from now on; remove the setting`);
    if (ssl.certRenewBeforeDays >= ssl.certValidityDays) {
        fail("certRenewBeforeDays", ssl.certRenewBeforeDays, `must be less than certValidityDays (${ssl.certValidityDays})`);
    }
    // A window as long as the CA's life would re-issue the CA on every run.
    if (ssl.caRenewBeforeDays >= ssl.caValidityDays) {
        fail("caRenewBeforeDays", ssl.caRenewBeforeDays, `must be less than caValidityDays (${ssl.caValidityDays})`);
    }
    const sslKeys = ["sslCertificate", "sslCertificateFile", "sslPrivateKey", "sslPrivateKeyFile", "sslCaCertificate", "sslCaCertificateFile"];
    if (mode === "provided") {
        const chain = r.optStr("sslCertificate") ?? (r.optStr("sslCertificateFile") ? readLocalFile("sslCertificateFile", r.str("sslCertificateFile")) : undefined);
        const key = r.optStr("sslPrivateKey") ?? (r.optStr("sslPrivateKeyFile") ? readLocalFile("sslPrivateKeyFile", r.str("sslPrivateKeyFile")) : undefined);
        if (!chain) throw new ConfigError("devpi:sslCertificate (or devpi:sslCertificateFile) is required when devpi:sslMode is provided");
        if (!key) throw new ConfigError("devpi:sslPrivateKey (secret) or devpi:sslPrivateKeyFile is required when devpi:sslMode is provided");
        const warning = checkProvidedCertificate(chain, key, now, ssl.certRenewBeforeDays);
        if (warning) warnings.push(warning);
        ssl.providedChainPem = chain.trim() + "\n";
        ssl.providedKeyPem = key.trim() + "\n";
        const ca = r.optStr("sslCaCertificate") ?? (r.optStr("sslCaCertificateFile") ? readLocalFile("sslCaCertificateFile", r.str("sslCaCertificateFile")) : undefined);
        if (ca !== undefined) {
            checkIssuedBy(chain, ca);
            ssl.providedCaPem = ca.trim() + "\n";
        }
    } else {
        for (const k of sslKeys) {
            if (r.optStr(k) !== undefined) fail(k, k.includes("Key") ? "(secret)" : r.optStr(k), "only allowed when devpi:sslMode is provided");
        }
    }
    const acmeKeys = ["acmeEmail", "acmeDirectoryUrl", "acmeCaBundle", "acmeCaBundleFile"];
    if (mode === "acme") {
        Object.assign(ssl, parseAcme(r, domain, ssl));
    } else {
        for (const k of acmeKeys) {
            if (r.optStr(k) !== undefined) fail(k, r.optStr(k), "only allowed when devpi:sslMode is acme");
        }
    }

    const rootPassword = r.str("rootPassword");
    if (rootPassword.length < 8) fail("rootPassword", "(secret)", "must be at least 8 characters");
    const users = parseUsers(r);
    const indexes = parseIndexes(r, users);

    const clientIndex = r.optStr("clientIndex");
    if (clientIndex !== undefined && !indexes.some((i) => i.name === clientIndex)) {
        fail("clientIndex", clientIndex, `must be one of the declared indexes (${indexes.map((i) => i.name).join(", ") || "none declared"})`);
    }

    const replicas = parseReplicas(r, {
        ssh,
        domain,
        httpPort,
        httpsPort,
        devpiPort,
        ssl,
        now,
        isSecret,
        warnings,
        insecureSkipHostKeyCheck,
    });

    return {
        ssh,
        domain,
        httpPort,
        httpsPort,
        listenIpv6: r.bool("listenIpv6", true),
        devpi: {
            host: devpiHost,
            port: devpiPort,
            serverVersion,
            webVersion,
            web: r.bool("web", true),
            serviceUser,
            venvDir,
            venvVersionsDir,
            serverDir,
            configDir,
            secretFile,
            backupDir,
            backupSchedule: validateCron("backupSchedule", r.str("backupSchedule", "17 3 * * *")),
            backupKeep: r.int("backupKeep", 7, 1, 365),
            upgradeStrategy,
            allowDowngrade: r.bool("allowDowngrade", false),
            mirrorCacheExpiry: r.int("mirrorCacheExpiry", 1800, 0, 31536000),
            maxUploadMb: r.int("maxUploadMb", 1024, 1, 102400),
            restrictModify,
            replication: r.bool("replication", false),
            debug: r.bool("debug", false),
            pythonPackageIndex,
            upstreamCaBundle,
        },
        ssl,
        rootPassword,
        users,
        indexes,
        clientIncludePassword: r.bool("clientIncludePassword", false),
        clientIndex: clientIndex ?? indexes.find((i) => i.owner !== "root")?.name ?? indexes[0]?.name,
        replicas,
        warnings,
    };
}

/**
 * Reads and validates the running stack's config (the `devpi:` namespace). A bad value fails the
 * program with a RunError, which Pulumi shows without a stack trace.
 */
export function readStackConfig(): DevpiConfig {
    const prefix = `${pulumi.getProject()}:`;
    // The SDK knows which keys were set with --secret but does not declare that function in its types.
    const { isConfigSecret } = runtimeConfig as unknown as { isConfigSecret?: (key: string) => boolean };
    try {
        const cfg = loadConfig(
            (key) => pulumi.runtime.getConfig(prefix + key),
            Object.keys(pulumi.runtime.allConfig())
                .filter((k) => k.startsWith(prefix))
                .map((k) => k.slice(prefix.length)),
            new Date(),
            isConfigSecret ? (key) => isConfigSecret(prefix + key) : undefined,
        );
        for (const w of cfg.warnings) void pulumi.log.warn(w);
        return cfg;
    } catch (e) {
        throw e instanceof ConfigError ? new pulumi.RunError(e.message) : e;
    }
}
