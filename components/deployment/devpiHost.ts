/**
 * One server's component tree, built by the same code for the primary and every replica: host
 * preparation, TLS files, devpi-server, its supervisor program, the nginx site and the health
 * check. What only the primary has (root password, users, indexes) is added through `access`; a
 * replica instead follows the primary (`primary`).
 */
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { AccessHost } from "../access/devpiAccess";
import { ApiTarget } from "../access/devpiApi";
import { RemoteHost } from "../common/remoteStep";
import { contentHash } from "../common/shell";
import { DEVPI_PROGRAM, LEGACY_SECRET_FILE, MIRROR_INDEX, SUPERVISOR_LOG, SYSTEM_CA_BUNDLE } from "../constants";
import { DevpiServer } from "../devpi/devpiServer";
import { ReplicaResync } from "../devpi/replicaResync";
import { HealthCheck } from "../health/healthCheck";
import { HostPreparation } from "../host/hostPreparation";
import { HOST_PACKAGES, NGINX_WORKER_USER } from "../host/hostPreparationScript";
import { nginxMetricsSettings } from "../metrics/hostMetrics";
import { mirrorPageCacheSeconds } from "../nginx/nginxConfig";
import { NginxSite } from "../nginx/nginxSite";
import { AcmeCertificate, AcmeClient } from "../ssl/acmeCertificate";
import { ACME_PATHS } from "../ssl/acmeScripts";
import { SslCertificate } from "../ssl/sslCertificate";
import { SupervisorProgram } from "../supervisor/supervisorProgram";
import { PrimaryLink } from "./primaryLink";
import { HostSpec, installSettings, readCredential, ResolvedDevpi } from "./resolveArgs";
import { checkTarget, ServerSite } from "./serverSite";

/** The steps that run on the primary between devpi answering and the health check (root password, users, indexes). */
export type AccessBuilder = (h: AccessHost) => pulumi.Resource[];

export interface DevpiHostArgs {
    spec: HostSpec;
    settings: ResolvedDevpi;
    /** A replica's link to its primary. */
    primary?: PrimaryLink;
    /** The primary's access steps. */
    access?: AccessBuilder;
    /**
     * Prefix of the children's names, before `spec.prefix`: "" keeps the names a stack made
     * before the Devpi component has (`host`, `ssl`, `devpi`, ...).
     */
    namePrefix: string;
}

/** Options of a child that used to sit at the stack's root: the alias keeps its URN's history. */
function childOpts(parent: pulumi.Resource, dependsOn?: pulumi.Input<pulumi.Input<pulumi.Resource>[]>): pulumi.ComponentResourceOptions {
    return { parent, aliases: [{ parent: pulumi.rootStackResource }], ...(dependsOn ? { dependsOn } : {}) };
}

/** The SSH connection: the key stays a secret; a server still booting refuses connections for a while. */
function remoteOf(spec: HostSpec): RemoteHost {
    const connection: command.types.input.remote.ConnectionArgs = {
        host: spec.ssh.host,
        port: spec.ssh.port,
        user: spec.ssh.user,
        privateKey: pulumi.secret(spec.ssh.privateKey),
        hostKey: spec.ssh.hostKey,
        dialErrorLimit: 20,
        perDialTimeout: 15,
    };
    return { connection, sshUser: spec.ssh.user };
}

/**
 * One server (`devpi:index:DevpiHost`): every step that runs on it. Child names are
 * `namePrefix + spec.prefix` + the names a single-server stack has always used (`host`, `ssl`,
 * `devpi`, `supervisor`, `nginx`, `health`). A replica's supervisor program (its first sync)
 * waits for the primary's health check; nothing else of it waits for anything outside its server.
 */
export class DevpiHost extends pulumi.ComponentResource {
    public readonly spec: HostSpec;
    public readonly remote: RemoteHost;
    /** Packages and the service user (what needs cron, nginx or supervisor waits for all of it). */
    public readonly prepared: HostPreparation;
    /** devpi-server's API on the server's loopback, with root's credential file. */
    public readonly api: ApiTarget;
    /** `https://DOMAIN[:PORT]`. */
    public readonly url: pulumi.Output<string>;
    /** The certificate files made by Pulumi (self-signed, provided); absent with ACME. */
    public readonly ssl?: SslCertificate;
    /** What verifies the served certificate (PEM): the private CA, a provided CA, or the ACME CA bundle; empty when publicly trusted. */
    public readonly caCertPem: pulumi.Output<string>;
    /** The certificate nginx serves: made by Pulumi, or issued on the server by certbot (ACME). */
    public readonly served: { certSha256: pulumi.Output<string>; notAfter: pulumi.Output<string>; issuer: pulumi.Output<string> };
    public readonly server: DevpiServer;
    public readonly supervisor: SupervisorProgram;
    public readonly nginx: NginxSite;
    public readonly health: HealthCheck;

    constructor(name: string, args: DevpiHostArgs, opts?: pulumi.ComponentResourceOptions) {
        super("devpi:index:DevpiHost", name, {}, opts);
        const { spec, settings: s } = args;
        const n = (step: string) => `${args.namePrefix}${spec.prefix}${step}`;
        const primary = spec.role === "replica" ? args.primary : undefined;
        if (spec.role === "replica" && !primary) throw new Error(`${spec.label}: a replica needs its primary`);
        const site = checkTarget(spec);
        this.spec = spec;
        this.remote = remoteOf(spec);
        const devpiUrl = `http://${s.devpi.host}:${spec.devpiPort}`;
        this.api = { devpiUrl, credentialFile: `${s.devpi.configDir}/root-credential.json` };
        this.url = site.url;

        this.prepared = this.prepare(n, s);
        const tls = this.tlsFiles(n, s, site, primary);
        this.ssl = tls.ssl;
        this.server = this.devpiServer(n, s, primary, devpiUrl);
        this.supervisor = new SupervisorProgram(
            n("supervisor"),
            {
                host: this.remote,
                program: {
                    name: DEVPI_PROGRAM,
                    venvDir: s.devpi.venvDir,
                    configFile: this.server.configFile,
                    serviceUser: s.devpi.serviceUser,
                    homeDir: path.posix.dirname(s.devpi.serverDir),
                    debug: s.devpi.debug,
                    logFile: SUPERVISOR_LOG,
                    caBundle: this.server.trustBundle ?? s.devpi.upstreamCaBundle,
                },
                devpiUrl,
                restartToken: this.server.restartToken,
            },
            childOpts(this, primary ? [this.server, this.prepared, primary.healthy] : [this.server, this.prepared]),
        );
        this.nginx = this.nginxSite(n, s, site, tls);
        const acme = tls.acmeClient ? this.acmeCertificate(n, s, site) : undefined;
        const served = (tls.ssl ?? acme)!;
        this.served = { certSha256: served.certSha256, notAfter: served.notAfter, issuer: served.issuer };
        this.caCertPem = tls.ssl?.caCertPem ?? pulumi.output(s.ssl.acmeCaBundlePem ?? "");
        const { remote, api, server, supervisor, nginx } = this;
        const accessSteps = args.access?.({ remote, api, server, supervisor, nginx, devpiPort: spec.devpiPort, caBundle: s.devpi.upstreamCaBundle ?? SYSTEM_CA_BUNDLE, opts: childOpts(this) }) ?? [];
        const resync = primary ? this.resync(n, s, primary, devpiUrl) : undefined;
        this.health = this.healthCheck(n, s, site, primary, [this.nginx, ...(acme ? [acme] : []), ...(resync ? [resync] : []), ...accessSteps], !!acme);
        this.registerOutputs({ url: this.url, health: this.health.result });
    }

    private prepare(n: (s: string) => string, s: ResolvedDevpi): HostPreparation {
        const d = s.devpi;
        return new HostPreparation(
            n("host"),
            {
                host: this.remote,
                layout: {
                    serviceUser: d.serviceUser,
                    homeDir: path.posix.dirname(d.serverDir),
                    serverDir: d.serverDir,
                    backupDir: d.backupDir,
                    secretFile: d.secretFile,
                    configDir: d.configDir,
                    webUser: NGINX_WORKER_USER,
                },
                // One apt run: certbot (Debian's package, with its webroot plugin) for ACME.
                packages: s.ssl.mode === "acme" ? [...HOST_PACKAGES, "certbot"] : undefined,
            },
            childOpts(this),
        );
    }

    /**
     * The files nginx loads. With ACME, certbot (set up first, with a temporary certificate)
     * needs nginx's site on httpPort to answer the challenge, so the certificate is issued after
     * the site and reloads it.
     */
    private tlsFiles(n: (s: string) => string, s: ResolvedDevpi, site: ServerSite, primary?: PrimaryLink): { ssl?: SslCertificate; acmeClient?: AcmeClient; files: SslCertificate | AcmeClient } {
        if (s.ssl.mode === "acme") {
            const acmeClient = new AcmeClient(n("acme-client"), { host: this.remote, domain: site.domain, dir: s.ssl.dir, caBundlePem: s.ssl.acmeCaBundlePem }, childOpts(this, [this.prepared]));
            return { acmeClient, files: acmeClient };
        }
        const ssl = new SslCertificate(
            n("ssl"),
            {
                host: this.remote,
                mode: s.ssl.mode,
                domain: site.domain,
                extraDnsNames: site.extraDnsNames,
                extraIpAddresses: site.extraIpAddresses,
                dir: s.ssl.dir,
                certValidityDays: s.ssl.certValidityDays,
                certRenewBeforeDays: s.ssl.certRenewBeforeDays,
                caValidityDays: s.ssl.caValidityDays,
                caRenewBeforeDays: s.ssl.caRenewBeforeDays,
                providedChainPem: this.spec.providedChainPem,
                // SslCertificate keeps the key a secret itself.
                providedKeyPem: this.spec.providedKeyPem,
                providedCaPem: s.ssl.providedCaPem,
                ca: primary?.signingCa,
            },
            childOpts(this),
        );
        return { ssl, files: ssl };
    }

    private devpiServer(n: (s: string) => string, s: ResolvedDevpi, primary: PrimaryLink | undefined, devpiUrl: string): DevpiServer {
        const d = s.devpi;
        const role = this.spec.role;
        return new DevpiServer(
            n("devpi"),
            {
                host: this.remote,
                venvDir: d.venvDir,
                versionsDir: d.venvVersionsDir,
                rootCredentialFile: this.api.credentialFile,
                legacySecretFile: LEGACY_SECRET_FILE,
                install: installSettings(s),
                settings: {
                    serverDir: d.serverDir,
                    host: d.host,
                    port: this.spec.devpiPort,
                    secretFile: d.secretFile,
                    restrictModify: d.restrictModify,
                    mirrorCacheExpiry: d.mirrorCacheExpiry,
                    maxUploadMb: d.maxUploadMb,
                    ...(role === "primary" ? { role: "primary" as const } : {}),
                    ...(primary ? { primaryUrl: primary.url } : {}),
                },
                configDir: d.configDir,
                serviceUser: d.serviceUser,
                upgrade: { backupDir: d.backupDir, program: DEVPI_PROGRAM, logFile: SUPERVISOR_LOG, devpiUrl, strategy: d.upgradeStrategy, allowDowngrade: d.allowDowngrade },
                replication:
                    role === "primary"
                        ? { role: "primary" }
                        : primary
                          ? {
                                role: "replica",
                                sharedSecret: primary.sharedSecret,
                                primaryCaPem: primary.caCertPem,
                                trustBundle: `${d.configDir}/ca-bundle.pem`,
                                upstreamCaBundle: d.upstreamCaBundle ?? SYSTEM_CA_BUNDLE,
                            }
                          : undefined,
            },
            // The virtualenv needs python3-venv only: pip runs while apt installs nginx, supervisor, ...
            childOpts(this, this.prepared.python),
        );
    }

    private nginxSite(n: (s: string) => string, s: ResolvedDevpi, site: ServerSite, tls: { ssl?: SslCertificate; acmeClient?: AcmeClient; files: SslCertificate | AcmeClient }): NginxSite {
        const d = s.devpi;
        return new NginxSite(
            n("nginx"),
            {
                host: this.remote,
                site: site.resolved.apply((t) => ({
                    domain: t.domain,
                    extraNames: t.extraDnsNames,
                    httpPort: t.httpPort,
                    httpsPort: t.httpsPort,
                    listenIpv6: s.listenIpv6,
                    certPath: tls.files.certPath,
                    keyPath: tls.files.keyPath,
                    upstream: `${d.host}:${this.spec.devpiPort}`,
                    serverDir: d.serverDir,
                    maxUploadMb: d.maxUploadMb,
                    ...nginxMetricsSettings(d.metrics, this.spec),
                    authenticatedReads: d.reads === "authenticated",
                    authCacheSeconds: d.authCacheSeconds,
                    mirrorPageCacheSeconds: mirrorPageCacheSeconds(d.mirrorCacheExpiry),
                    // Keyed on this host's own data (replication commits a replica's data too).
                    indexPageCache: true,
                    // The replication feed is opened on a primary only; a replica never serves it.
                    replication: this.opensReplicationFeed(s),
                    acmeWebroot: tls.acmeClient?.webroot,
                })),
                // With ACME, the issuance step reloads nginx itself (and certbot's deploy hook on renewal).
                certSha256: tls.ssl?.certSha256 ?? "issued on the server by certbot",
            },
            childOpts(this, [tls.files, this.supervisor]),
        );
    }

    private opensReplicationFeed(s: ResolvedDevpi): boolean {
        return this.spec.role === "primary" || (this.spec.role === "standalone" && s.devpi.replication);
    }

    private acmeCertificate(n: (s: string) => string, s: ResolvedDevpi, site: ServerSite): AcmeCertificate {
        return new AcmeCertificate(
            n("acme"),
            {
                host: this.remote,
                names: site.resolved.apply((t) => [t.domain, ...t.extraDnsNames]),
                email: s.ssl.acmeEmail!,
                directoryUrl: s.ssl.acmeDirectoryUrl!,
                dir: s.ssl.dir,
                caBundle: (s.ssl.acmeCaBundlePem ?? "").trim() !== "",
                renewBeforeDays: Math.min(s.ssl.certRenewBeforeDays, 30),
                httpsPort: site.resolved.apply((t) => t.httpsPort),
            },
            childOpts(this, [this.nginx]),
        );
    }

    /**
     * A primary rebuilt by export/import has a new identity that devpi makes its replicas
     * refuse: after the primary is healthy again, each replica checks and, if needed, re-syncs.
     */
    private resync(n: (s: string) => string, s: ResolvedDevpi, primary: PrimaryLink, devpiUrl: string): ReplicaResync {
        const d = s.devpi;
        return new ReplicaResync(
            n("resync"),
            {
                host: this.remote,
                settings: {
                    primaryUrl: primary.url,
                    devpiUrl,
                    serverDir: d.serverDir,
                    configFile: this.server.configFile,
                    venvDir: d.venvDir,
                    serviceUser: d.serviceUser,
                    program: DEVPI_PROGRAM,
                    timeout: 600,
                    revision: `primary ${primary.serverVersionKey}, replica ${this.server.versionKey}`,
                },
                primaryCaPem: primary.caCertPem,
                readCredential: readCredential(s),
            },
            childOpts(this, [this.supervisor, primary.healthy]),
        );
    }

    private healthCheck(n: (s: string) => string, s: ResolvedDevpi, site: ServerSite, primary: PrimaryLink | undefined, after: pulumi.Resource[], acme: boolean): HealthCheck {
        return new HealthCheck(
            n("health"),
            {
                host: this.remote,
                settings: site.resolved.apply((t) => ({
                    domain: t.domain,
                    httpPort: t.httpPort,
                    httpsPort: t.httpsPort,
                    indexes: [...new Set([MIRROR_INDEX, ...s.indexes.map((i) => i.name)])],
                    replication: this.opensReplicationFeed(s),
                    devpiLog: SUPERVISOR_LOG,
                    certbotLog: acme ? ACME_PATHS.log : undefined,
                })),
                certSha256: this.served.certSha256,
                caCertPem: primary ? primary.caCertPem : this.caCertPem,
                // Users and indexes are part of it: on a replica they arrive by replication, which the check waits for.
                revision: pulumi
                    .all([this.nginx.siteConfig, this.server.restartToken])
                    .apply(([siteConfig, restartToken]) => contentHash(siteConfig, restartToken, JSON.stringify(s.indexes), s.users.map((u) => u.name).join(","))),
                readCredential: readCredential(s),
                replicaOf: primary ? { primaryUrl: primary.url, timeout: 120 } : undefined,
            },
            childOpts(this, after),
        );
    }
}
