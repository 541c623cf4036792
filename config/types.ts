/** The validated stack configuration: what {@link loadConfig} returns. */
import type { MetricsScrape } from "./metricsScrape";
import type { OffsiteConfig } from "./offsite";

/** A devpi user as declared in `devpi:users`. */
export interface UserConfig {
    name: string;
    /** Plain text here; wrapped as a Pulumi secret by the composition root. */
    password: string;
    email?: string;
}

/**
 * What a mirror index (`type: mirror`, and root/pypi) follows: devpi's own `mirror_*` settings.
 * Only the set ones are sent; devpi's defaults apply to the rest.
 */
export interface MirrorConfig {
    /** The upstream's simple API, e.g. https://pypi.org/simple/ (devpi's `mirror_url`). */
    url: string;
    /** Where the web UI links a project upstream, `{name}` replaced (devpi's `mirror_web_url_fmt`). */
    webUrlFmt?: string;
    /**
     * Whether devpi downloads the upstream's full project list (devpi's `mirror_no_project_list`,
     * inverted). Off, devpi asks the upstream about each name it does not hold.
     */
    projectList: boolean;
    /** Whether clients are sent to the upstream's own file URLs instead of devpi (`mirror_use_external_urls`). */
    useExternalUrls: boolean;
    /** Whether devpi ignores the upstream's `X-PYPI-LAST-SERIAL` (`mirror_ignore_serial_header`), for upstreams that are not PyPI. */
    ignoreSerialHeader: boolean;
    /** Seconds a fetched simple page is trusted (`mirror_cache_expiry`); default the server's `mirrorCacheExpiry`. */
    cacheExpiry?: number;
    /**
     * HTTP basic credentials for the upstream. Never given to devpi (which shows its mirror_url to
     * every reader): nginx on the server's loopback adds them (see components/nginx/mirrorProxy.ts).
     */
    username?: string;
    /** Plain text here; wrapped as a Pulumi secret by the composition root. */
    password?: string;
}

/** A devpi index as declared in `devpi:indexes`. */
export interface IndexConfig {
    /** `USER/INDEX`. */
    name: string;
    owner: string;
    index: string;
    /** `stage` (uploads) or `mirror` (a cache of another simple-API registry). root/pypi is a mirror. */
    type: "stage" | "mirror";
    bases: string[];
    volatile: boolean;
    aclUpload: string[];
    mirrorWhitelist: string[];
    /**
     * Who may read a stage index (`acl_read`: users or `:AUTHENTICATED:`), besides root; unset:
     * whoever may read at all (see {@link ReadAccess}). Needs reads `authenticated`.
     */
    aclRead?: string[];
    /** Only for mirrors. */
    mirror?: MirrorConfig;
}

/**
 * Who may read (list, download, browse) the indexes: `anonymous` (anyone who reaches the server, devpi's
 * default) or `authenticated` (any devpi user or token; nginx asks devpi-lockdown before serving anything).
 */
export type ReadAccess = "anonymous" | "authenticated";

/** What a token may do: `read` (install) or `upload` (read and upload). */
export type TokenScope = "read" | "upload";

/** A devpi-tokens token as declared in `devpi:tokens`, for CI. */
export interface TokenConfig {
    /** The key in `devpi:tokens` (and in the `tokens` output). */
    name: string;
    /** The devpi user it acts as (root or a declared user). */
    user: string;
    scope: TokenScope;
    /** The indexes (`USER/INDEX`) it may be used on; any other index refuses it. */
    indexes: string[];
    /** Lifetime of each token made, in days (fractions allowed, at least one minute). */
    validDays: number;
    /** A `pulumi up` this close to the end of its life (in days) makes a new token and revokes the old one. */
    renewBeforeDays: number;
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
    /** node-exporter's loopback address (HOST:PORT). */
    metricsAddress: string;
    /** Metrics served by nginx to other machines (allow-listed); absent: loopback only. */
    metricsScrape?: MetricsScrape;
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
    /** node-exporter's loopback address (HOST:PORT) on the primary. */
    metricsAddress: string;
    /** Metrics served by nginx to other machines (allow-listed); absent: loopback only. */
    metricsScrape?: MetricsScrape;
    /** Whether nginx also listens on IPv6. */
    listenIpv6: boolean;
    devpi: {
        host: string;
        port: number;
        serverVersion: string;
        webVersion: string;
        web: boolean;
        /** Who may read; `authenticated` installs devpi-lockdown (needs devpi-web). */
        reads: ReadAccess;
        /**
         * Seconds nginx may reuse devpi's yes to one credential for one URL (reads `authenticated`;
         * 0: devpi is asked every time). Any change devpi commits asks again at once.
         */
        authCacheSeconds: number;
        /** Prometheus metrics on every server (node-exporter and devpi-metrics). */
        metrics: boolean;
        /** Exact devpi-lockdown version (installed when reads are `authenticated`). */
        lockdownVersion: string;
        /** Exact devpi-tokens version (installed when tokens are declared). */
        tokensVersion: string;
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
    /** Scoped tokens for CI, made on the primary. */
    tokens: TokenConfig[];
    /** Whether the `.pypirc` output carries the password of {@link clientUser}. */
    clientIncludePassword: boolean;
    /** The off-host copy of the backups (devpi:offsite); absent: none. */
    offsite?: OffsiteConfig;
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
