/**
 * The stack's configuration, read once and validated before any resource is created.
 *
 * {@link loadConfig} is synchronous and pure apart from reading local files named by the stack
 * (certificate and key paths): bad input throws a {@link ConfigError} naming the key, the bad
 * value and what is allowed, so `pulumi preview`/`up` stop before any server is touched.
 */
import { checkReadAcls, defaultClientIndex, parseIndexes, parseTokens, parseUsers } from "./access";
import { ConfigError, fail } from "./errors";
import { KNOWN_KEYS } from "./keys";
import { Reader, readLocalFile } from "./reader";
import { checkLayout, isIpAddress, HOSTNAME_RE, NAME_RE, UNIX_USER_RE, validateCron, VERSION_RE } from "./rules";
import { parseOffsite } from "./offsite";
import { DEFAULT_METRICS_ADDRESS, parseReplicas, parseSite, parseSsh } from "./servers";
import { checkIssuedBy, checkProvidedCertificate, parseAcme } from "./tls";
import { DevpiConfig, RawConfigGetter, SecretKeyCheck, SslConfig } from "./types";

/** Secrets stored in plain text and keys this program does not know are refused first. */
function checkKeys(raw: RawConfigGetter, keys: string[], isSecret?: SecretKeyCheck): void {
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
        const offsite = raw("offsite");
        if (offsite && /"(password|sshPrivateKey|s3SecretAccessKey)"/.test(offsite) && !isSecret("offsite")) {
            throw new ConfigError(
                "devpi:offsite holds a password or key in plain text: set each with `pulumi config set --secret --path 'offsite.password'` (sshPrivateKey, s3SecretAccessKey likewise)",
            );
        }
        const indexes = raw("indexes");
        if (indexes && indexes.includes('"mirror_password"') && !isSecret("indexes")) {
            throw new ConfigError(`devpi:indexes holds a mirror_password in plain text: set each with \`pulumi config set --secret --path 'indexes["OWNER/NAME"].mirror_password'\``);
        }
    }
    for (const k of keys) {
        if (!known.has(k)) {
            throw new ConfigError(`devpi:${k}: unknown configuration key; known keys: ${[...KNOWN_KEYS].join(", ")}`);
        }
    }
}

/** devpi-server's own settings (without the layout's venvVersionsDir and the site's port). */
export function parseServer(r: Reader): Omit<DevpiConfig["devpi"], "venvVersionsDir" | "port"> {
    const host = r.str("devpiHost", "127.0.0.1");
    if (!isIpAddress(host) && host !== "localhost") fail("devpiHost", host, "must be a loopback or private IP address; devpi sits behind nginx");
    const serverVersion = r.str("devpiServerVersion", "6.20.3");
    if (!VERSION_RE.test(serverVersion)) fail("devpiServerVersion", serverVersion, "must be an exact version such as 6.20.3");
    if (Number(serverVersion.split(".")[0]) < 6) fail("devpiServerVersion", serverVersion, "must be 6.0 or newer (older servers need Python < 3.9 and other commands)");
    const webVersion = r.str("devpiWebVersion", "5.1.1");
    if (!VERSION_RE.test(webVersion)) fail("devpiWebVersion", webVersion, "must be an exact version such as 5.1.1");
    const web = r.bool("web", true);
    const reads = r.str("reads", "anonymous");
    if (reads !== "anonymous" && reads !== "authenticated") fail("reads", reads, "must be anonymous (anyone may read, devpi's default) or authenticated (devpi users and tokens only)");
    // devpi-lockdown depends on devpi-web: without it pip would install an unpinned devpi-web anyway.
    if (reads === "authenticated" && !web) fail("reads", reads, "needs devpi-web (devpi-lockdown, which enforces it, is a devpi-web plugin): remove devpi:web: false");
    const authCacheSeconds = r.int("authCacheSeconds", 30, 0, 600);
    const lockdownVersion = r.str("devpiLockdownVersion", "2.0.0");
    if (!VERSION_RE.test(lockdownVersion)) fail("devpiLockdownVersion", lockdownVersion, "must be an exact version such as 2.0.0");
    const tokensVersion = r.str("devpiTokensVersion", "1.1.0");
    if (!VERSION_RE.test(tokensVersion)) fail("devpiTokensVersion", tokensVersion, "must be an exact version such as 1.1.0");
    const serviceUser = r.str("serviceUser", "devpi");
    if (!UNIX_USER_RE.test(serviceUser) || serviceUser === "root") {
        fail("serviceUser", serviceUser, "must be a non-root Unix user name ([a-z_][a-z0-9_-]{0,31})");
    }
    const restrictModify = r.str("restrictModify", "root");
    if (!restrictModify.split(",").every((u) => NAME_RE.test(u.trim()))) {
        fail("restrictModify", restrictModify, "must be a comma-separated list of devpi user names (e.g. root)");
    }
    const pythonPackageIndex = r.optStr("pythonPackageIndex");
    if (pythonPackageIndex !== undefined && !/^https?:\/\/[^\s'"\\]+$/.test(pythonPackageIndex)) {
        fail("pythonPackageIndex", pythonPackageIndex, "must be an http(s) URL of a PyPI-compatible simple index");
    }
    const upgradeStrategy = r.str("upgradeStrategy", "auto");
    if (upgradeStrategy !== "auto" && upgradeStrategy !== "export-import") {
        fail("upgradeStrategy", upgradeStrategy, "must be auto (in place when the data format allows) or export-import");
    }
    return {
        host,
        serverVersion,
        webVersion,
        web,
        reads,
        authCacheSeconds,
        metrics: r.bool("metrics", true),
        lockdownVersion,
        tokensVersion,
        serviceUser,
        venvDir: r.path("venvDir", "/opt/devpi/venv", "dir"),
        serverDir: r.path("serverDir", "/srv/devpi/data", "dir+home"),
        configDir: r.path("configDir", "/etc/devpi", "dir"),
        secretFile: r.path("secretFile", "/etc/devpi/secret", "file"),
        backupDir: r.path("backupDir", "/srv/devpi/backups", "dir"),
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
        upstreamCaBundle: r.optStr("upstreamCaBundle") === undefined ? undefined : r.path("upstreamCaBundle", "/", "read"),
    };
}

/** The TLS keys common to every mode (validity windows, directory, extra names). */
export function parseSslBase(r: Reader, warnings: string[]): SslConfig {
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
    return ssl;
}

/** The certificate of sslMode provided (chain, key, optional CA); its keys are refused in other modes. */
function parseProvided(r: Reader, ssl: SslConfig, now: Date, warnings: string[]): void {
    const sslKeys = ["sslCertificate", "sslCertificateFile", "sslPrivateKey", "sslPrivateKeyFile", "sslCaCertificate", "sslCaCertificateFile"];
    if (ssl.mode !== "provided") {
        for (const k of sslKeys) {
            if (r.optStr(k) !== undefined) fail(k, k.includes("Key") ? "(secret)" : r.optStr(k), "only allowed when devpi:sslMode is provided");
        }
        return;
    }
    const fromFile = (key: string): string | undefined => (r.optStr(`${key}File`) ? readLocalFile(`${key}File`, r.str(`${key}File`)) : undefined);
    const chain = r.optStr("sslCertificate") ?? fromFile("sslCertificate");
    const key = r.optStr("sslPrivateKey") ?? fromFile("sslPrivateKey");
    if (!chain) throw new ConfigError("devpi:sslCertificate (or devpi:sslCertificateFile) is required when devpi:sslMode is provided");
    if (!key) throw new ConfigError("devpi:sslPrivateKey (secret) or devpi:sslPrivateKeyFile is required when devpi:sslMode is provided");
    const warning = checkProvidedCertificate(chain, key, now, ssl.certRenewBeforeDays);
    if (warning) warnings.push(warning);
    ssl.providedChainPem = chain.trim() + "\n";
    ssl.providedKeyPem = key.trim() + "\n";
    const ca = r.optStr("sslCaCertificate") ?? fromFile("sslCaCertificate");
    if (ca !== undefined) {
        checkIssuedBy(chain, ca);
        ssl.providedCaPem = ca.trim() + "\n";
    }
}

/** Every TLS key, per sslMode. */
function parseSsl(r: Reader, domain: string, now: Date, warnings: string[]): SslConfig {
    const ssl = parseSslBase(r, warnings);
    parseProvided(r, ssl, now, warnings);
    const acmeKeys = ["acmeEmail", "acmeDirectoryUrl", "acmeCaBundle", "acmeCaBundleFile"];
    if (ssl.mode === "acme") {
        Object.assign(ssl, parseAcme(r, domain, ssl));
    } else {
        for (const k of acmeKeys) {
            if (r.optStr(k) !== undefined) fail(k, r.optStr(k), "only allowed when devpi:sslMode is acme");
        }
    }
    return ssl;
}

/**
 * Validates the raw stack configuration and returns the typed configuration.
 * @param raw reads this project's config keys (without the `devpi:` prefix)
 * @param keys every key set in the stack (without prefix), to reject unknown keys
 * @param now the time used to check provided certificates
 */
export function loadConfig(raw: RawConfigGetter, keys: string[], now: Date = new Date(), isSecret?: SecretKeyCheck): DevpiConfig {
    checkKeys(raw, keys, isSecret);
    const r = new Reader(raw);
    const warnings: string[] = [];
    const insecureSkipHostKeyCheck = r.bool("insecureSkipHostKeyCheck", false);
    const ssh = parseSsh(r, "", { user: "root" }, { insecureSkipHostKeyCheck, warnings });
    const { domain, httpPort, httpsPort, devpiPort, metricsAddress, metricsScrape } = parseSite(r, "", { httpPort: 80, httpsPort: 443, devpiPort: 4040, metricsAddress: DEFAULT_METRICS_ADDRESS });
    const server = parseServer(r);
    const ssl = parseSsl(r, domain, now, warnings);
    const venvVersionsDir = checkLayout({ ...server, sslDir: ssl.dir });

    const rootPassword = r.str("rootPassword");
    if (rootPassword.length < 8) fail("rootPassword", "(secret)", "must be at least 8 characters");
    const users = parseUsers(r);
    const indexes = parseIndexes(r, users, server.serverVersion);
    const tokens = parseTokens(r, users, indexes);
    checkReadAcls(indexes, tokens, server.reads);
    const clientIndex = r.optStr("clientIndex");
    if (clientIndex !== undefined && !indexes.some((i) => i.name === clientIndex)) {
        fail("clientIndex", clientIndex, `must be one of the declared indexes (${indexes.map((i) => i.name).join(", ") || "none declared"})`);
    }
    const replicas = parseReplicas(r, { ssh, domain, httpPort, httpsPort, devpiPort, metricsAddress, ssl, now, isSecret, warnings, insecureSkipHostKeyCheck });
    return {
        ssh,
        domain,
        httpPort,
        httpsPort,
        metricsAddress,
        ...(metricsScrape ? { metricsScrape } : {}),
        listenIpv6: r.bool("listenIpv6", true),
        devpi: { ...server, port: devpiPort, venvVersionsDir },
        ssl,
        rootPassword,
        users,
        indexes,
        tokens,
        clientIncludePassword: r.bool("clientIncludePassword", false),
        clientIndex: clientIndex ?? defaultClientIndex(indexes),
        offsite: parseOffsite(r.json("offsite")),
        replicas,
        warnings,
    };
}
