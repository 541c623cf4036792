/**
 * The arguments of the {@link Devpi} component: where the servers are (as `pulumi.Input`s, so a
 * VM made in the same program can feed them), how TLS is done, how devpi-server is laid out and
 * tuned, who may do what, and backups. Only `server` and `access.rootPassword` are required;
 * every default is the one the stack config documents (Pulumi.yaml).
 */
import * as pulumi from "@pulumi/pulumi";
import type { OffsiteArgs } from "../backup/offsiteBackup";

/** SSH access to one server. The login must be root or have passwordless sudo. */
export interface SshTarget {
    /** Address or DNS name the program connects to. */
    host: pulumi.Input<string>;
    /** Default 22. */
    port?: pulumi.Input<number>;
    /** Default `root`. */
    user?: pulumi.Input<string>;
    /** The login's private key (PEM or OpenSSH); kept a Pulumi secret. */
    privateKey: pulumi.Input<string>;
    /**
     * The server's SSH host public key (`ssh-ed25519 AAAA...`): any other key is refused. Required
     * unless {@link DevpiArgs.insecureSkipHostKeyCheck}.
     */
    hostKey?: pulumi.Input<string>;
}

/** One server: how to reach it and what it serves as. */
export interface ServerTarget {
    ssh: SshTarget;
    /** Public DNS name: nginx's `server_name`, the certificate's subject, the URL's host. */
    domain: pulumi.Input<string>;
    /** More names on the certificate and in `server_name`. Default none. */
    extraDnsNames?: pulumi.Input<pulumi.Input<string>[]>;
    /** IP addresses on the certificate (self-signed and provided modes). Default none. */
    extraIpAddresses?: pulumi.Input<pulumi.Input<string>[]>;
    /** nginx's HTTP port (redirects to HTTPS; ACME challenges). Default 80 (a replica: the primary's). */
    httpPort?: pulumi.Input<number>;
    /** nginx's HTTPS port. Default 443 (a replica: the primary's). */
    httpsPort?: pulumi.Input<number>;
    /** devpi-server's port on the bind address, behind nginx. Default 4040 (a replica: the primary's). */
    devpiPort?: number;
    /**
     * Where node-exporter serves this server's metrics: a loopback address and port, 127.X.Y.Z:PORT.
     * Default 127.0.0.1:9100 (a replica: the primary's). See `options.metrics`.
     */
    metricsAddress?: string;
    /**
     * Metrics for a Prometheus on another machine: nginx serves `https://DOMAIN:PORT/metrics` on
     * `address` (`IP:PORT`, `[IPV6]:PORT` or `*:PORT`) to the networks in `allow` only (403 to
     * everyone else), proxied to node-exporter. Default: none (loopback only).
     */
    metricsScrape?: { address: string; allow: string[] };
}

/** A server that follows the primary through devpi's replication. */
export interface ReplicaTarget extends ServerTarget {
    /**
     * A DNS label naming the replica in resource names (`replica-NAME-...`) and in
     * `replicaClients`. Never rename it: its resources would be replaced.
     */
    name: string;
    /** Provided TLS: this replica's own chain and key; absent means the primary's (it must name the replica). */
    certificate?: { chainPem: pulumi.Input<string>; keyPem: pulumi.Input<string> };
}

/** Validity windows of certificates made by this program. */
export interface CertificateWindows {
    /** Server certificate lifetime in days (self-signed). Default 90, from 2 to 825. */
    certValidityDays?: number;
    /** `pulumi up` renews a certificate within this many days of expiry. Default 30; less than certValidityDays. */
    certRenewBeforeDays?: number;
    /** The private CA's lifetime in days (self-signed). Default 3650. */
    caValidityDays?: number;
    /** The CA is re-issued (same key) within this many days of expiry. Default 30; less than caValidityDays. */
    caRenewBeforeDays?: number;
}

/** How TLS is done; every variant keeps the files root's alone in `dir` (default `/srv/ssl/devpi`). */
export type TlsArgs =
    /** A private CA made by Pulumi signs each server's certificate; clients trust `caCertificate`. */
    | ({ mode: "self-signed"; dir?: string } & CertificateWindows)
    /** Bring your own certificate: a PEM chain (server first), its key (secret) and optionally the private CA that issued it. */
    | ({ mode: "provided"; dir?: string; chainPem: pulumi.Input<string>; keyPem: pulumi.Input<string>; caPem?: string } & Pick<CertificateWindows, "certRenewBeforeDays">)
    /** certbot on each server, HTTP-01 through nginx, renewed by cron. */
    | {
          mode: "acme";
          dir?: string;
          /** Contact address for the CA's expiry notices. */
          email: string;
          /** RFC 8555 directory. Default Let's Encrypt's production directory. */
          directoryUrl?: string;
          /** PEM bundle of a private ACME CA (e.g. step-ca); omit for a public CA. */
          caBundlePem?: string;
          /** A `pulumi up` re-requests the certificate within this many days of expiry (at most 30). Default 30. */
          certRenewBeforeDays?: number;
      };

/** devpi-server: versions, layout on the server, limits and caches. */
export interface ServerOptions {
    /** Exact devpi-server version. Default 6.20.3; 6.0 or newer. */
    serverVersion?: string;
    /** Exact devpi-web version. Default 5.1.1. */
    webVersion?: string;
    /** Install devpi-web (web UI and search). Default true. */
    web?: boolean;
    /**
     * Prometheus metrics on every server: Debian's prometheus-node-exporter (on each server's
     * `metricsAddress`, loopback) with its textfile collector fed every 15 s by devpi-metrics
     * (devpi's /+status, replication, backups, the served certificate, free space, nginx). Default true.
     */
    metrics?: boolean;
    /** Exact devpi-lockdown version, installed when `access.reads` is `authenticated`. Default 2.0.0. */
    lockdownVersion?: string;
    /** Exact devpi-tokens version, installed when `access.tokens` are declared. Default 1.1.0. */
    tokensVersion?: string;
    /** The non-root user devpi-server runs as. Default `devpi`. */
    serviceUser?: string;
    /** The service's virtualenv link (root-owned). Default `/opt/devpi/venv`. */
    venvDir?: string;
    /** devpi's data (the service user's). Default `/srv/devpi/data`; its parent becomes the service user's home. */
    serverDir?: string;
    /** Root-owned configuration directory. Default `/etc/devpi`. */
    configDir?: string;
    /** devpi's secret (root-owned directory, outside serverDir). Default `/etc/devpi/secret`. */
    secretFile?: string;
    /** Exports kept by upgrades and scheduled backups (outside serverDir). Default `/srv/devpi/backups`. */
    backupDir?: string;
    /** `auto` (in place when the data format allows) or `export-import`. Default auto. */
    upgradeStrategy?: "auto" | "export-import";
    /** Allow installing an older devpi-server than the one that wrote the data. Default false. */
    allowDowngrade?: boolean;
    /** Seconds before devpi re-checks PyPI for a project. Default 1800. */
    mirrorCacheExpiry?: number;
    /** Largest upload nginx accepts, in MB. Default 1024. */
    maxUploadMb?: number;
    /** devpi's `restrict-modify` (comma-separated users). Default `root`. */
    restrictModify?: string;
    /** A single server that opens the replication feed for replicas made elsewhere. Default false. */
    replication?: boolean;
    /** devpi-server's `--debug`. Default false. */
    debug?: boolean;
    /** A PyPI-compatible index pip installs devpi from. Default PyPI. */
    pythonPackageIndex?: string;
    /** CA bundle on the server for outbound HTTPS (pip, devpi's mirror). Default the system's. */
    upstreamCaBundle?: string;
    /** Address devpi-server binds to, behind nginx. Default 127.0.0.1. */
    bindAddress?: string;
    /** Whether nginx also listens on IPv6. Default true. */
    listenIpv6?: boolean;
}

/** A devpi user (not root). */
export interface UserArgs {
    name: string;
    /** Kept a Pulumi secret; travels on stdin. */
    password: pulumi.Input<string>;
    email?: string;
}

/** A devpi index `OWNER/NAME`. */
export interface IndexArgs {
    /** `OWNER/NAME`; the owner is root or one of {@link AccessArgs.users}. */
    name: string;
    /** Default `["root/pypi"]`. */
    bases?: string[];
    /** Whether uploads may be overwritten and deleted. Default false. */
    volatile?: boolean;
    /** Who may upload (users, or principals like `:AUTHENTICATED:`). Default the owner. */
    aclUpload?: string[];
    /** Projects that may come from bases' mirrors even when uploaded here. Default none. */
    mirrorWhitelist?: string[];
    /**
     * Who may read this index (users, or `:AUTHENTICATED:`), besides root and restrict-modify's users.
     * Default: everyone who may read at all. Needs `options.reads: "authenticated"`; the readers of an
     * index must be able to read its bases, and its uploaders must be among its readers.
     */
    aclRead?: string[];
    /**
     * `stage` (uploads; the default) or `mirror` (a cache of another simple-API registry, usable as a
     * base; it takes {@link IndexArgs.mirror} and none of the upload settings). root/pypi is a mirror.
     */
    type?: "stage" | "mirror";
    /** What a mirror index follows. Required for a mirror other than root/pypi. */
    mirror?: MirrorArgs;
}

/** A mirror index's upstream and devpi's `mirror_*` settings for it. */
export interface MirrorArgs {
    /** The upstream's simple API (`mirror_url`), https unless {@link MirrorArgs.allowHttp}. root/pypi: default https://pypi.org/simple/. */
    url?: string;
    /** Allow a plain http:// upstream. Default false. */
    allowHttp?: boolean;
    /** The web UI's link to a project upstream, with `{name}` (`mirror_web_url_fmt`). root/pypi on PyPI: PyPI's project page. */
    webUrlFmt?: string;
    /**
     * Download the upstream's whole project list (the opposite of devpi's `mirror_no_project_list`).
     * Default false: devpi asks the upstream about each name it does not hold instead (see the README).
     */
    projectList?: boolean;
    /** Send clients to the upstream's file URLs instead of caching the files (`mirror_use_external_urls`). Default false. */
    useExternalUrls?: boolean;
    /** For upstreams that are not PyPI and send no usable serial (`mirror_ignore_serial_header`). Default false. */
    ignoreSerialHeader?: boolean;
    /** Seconds a fetched page is trusted (`mirror_cache_expiry`). Default the server's `options.mirrorCacheExpiry`. */
    cacheExpiry?: number;
    /**
     * HTTP basic credentials for the upstream (with {@link MirrorArgs.password}). devpi never sees
     * them: it fetches through nginx on the server's loopback, which adds them.
     */
    username?: string;
    /** Kept a Pulumi secret; travels on stdin into a root-only nginx file. */
    password?: pulumi.Input<string>;
}

/** A scoped, expiring devpi-tokens token for CI, made on the primary and exported as a secret. */
export interface TokenArgs {
    /** Its name: the key of the `tokens` output. */
    name: string;
    /** The devpi user it acts as: root or one of {@link AccessArgs.users}. */
    user: string;
    /** `read` (install only) or `upload` (install and upload). Default read. */
    scope?: "read" | "upload";
    /** The indexes (`OWNER/NAME`) it works on; every other index refuses it. */
    indexes: string[];
    /** Lifetime of each token, in days (fractions allowed, at least one minute, at most 365). Default 90. */
    validDays?: number;
    /** A `pulumi up` within this many days of its end makes a new one and revokes the old one. Default min(30, validDays / 3). */
    renewBeforeDays?: number;
}

/** Who may do what: root's password, users and their indexes (managed on the primary only). */
export interface AccessArgs {
    /** devpi's root password (at least 8 characters); kept a Pulumi secret. */
    rootPassword: pulumi.Input<string>;
    users?: UserArgs[];
    indexes?: IndexArgs[];
    /**
     * Who may read the indexes: `anonymous` (anyone, devpi's default) or `authenticated` (devpi users
     * and tokens only, on every path: simple pages, cached pages, release files, web UI, JSON API,
     * search; enforced by nginx asking devpi-lockdown). Default anonymous.
     */
    reads?: "anonymous" | "authenticated";
    /**
     * With reads `authenticated`: seconds nginx may reuse devpi's yes to one credential for one URL
     * (devpi checks a password hash on every read, a tenth of a second of CPU). The cache's key holds
     * an HMAC of the credential (never the credential) and the generation of devpi's data, so any
     * change devpi commits (passwords, users, tokens, readers) takes effect at once; only expiry (a
     * token's, a login's) may be honoured this much later. 0 asks devpi every time. Default 30, at most 600.
     */
    authCacheSeconds?: number;
    /** Scoped tokens for CI. Default none. */
    tokens?: TokenArgs[];
}

/** Scheduled exports on the primary. */
export interface BackupArgs {
    /** 5-field cron schedule. Default `17 3 * * *`. */
    schedule?: string;
    /** Exports kept. Default 7. */
    keep?: number;
    /** An encrypted copy of each export off the server (restic over SFTP, or to an S3-compatible store). Default none. */
    offsite?: OffsiteArgs;
}

/** What the client outputs point at. */
export interface ClientArgs {
    /** The index clients use. Default the first index owned by a user, else the first index, else root/pypi. */
    index?: string;
    /** Whether `pypircWithPassword` carries the index owner's password. Default false. */
    includePassword?: boolean;
}

/** Everything a devpi deployment is made of. */
export interface DevpiArgs {
    /** The primary: uploads, users and indexes live here. */
    server: ServerTarget;
    /** Servers that follow the primary (read-only mirrors of it). Default none. */
    replicas?: ReplicaTarget[];
    /** Default self-signed. */
    tls?: TlsArgs;
    options?: ServerOptions;
    access: AccessArgs;
    backups?: BackupArgs;
    client?: ClientArgs;
    /** Accept any SSH host key where `hostKey` is unset (warned about on every run). Default false. */
    insecureSkipHostKeyCheck?: boolean;
}

/** What one server's clients need. */
export interface ServerClientSettings {
    url: pulumi.Output<string>;
    pipIndexUrl: pulumi.Output<string>;
    pipConf: pulumi.Output<string>;
    uvToml: pulumi.Output<string>;
    /** The server's health check result as of the last `pulumi up`. */
    healthCheck: pulumi.Output<string>;
    /** sha256 of the certificate it serves. */
    certificateSha256: pulumi.Output<string>;
}
