/**
 * One server's component tree, built by the same code for the primary and every replica: host
 * preparation, TLS files, devpi-server, its supervisor program, the nginx site and the health
 * check. What only the primary has (root password, users, indexes, backups) is added by the
 * composition root through `access`; a replica instead follows the primary (`primary`).
 */
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { DevpiConfig, LEGACY_SECRET_FILE } from "../../config";
import { ApiTarget } from "../access/devpiApi";
import { DevpiServer } from "../devpi/devpiServer";
import { ReplicaResync } from "../devpi/replicaResync";
import { HealthCheck } from "../health/healthCheck";
import { HostPreparation } from "../host/hostPreparation";
import { HOST_PACKAGES, NGINX_WORKER_USER } from "../host/hostPreparationScript";
import { NginxSite } from "../nginx/nginxSite";
import { mirrorPageCacheSeconds } from "../nginx/nginxConfig";
import { RemoteHost } from "../common/remoteStep";
import { contentHash } from "../common/shell";
import { AcmeCertificate, AcmeClient } from "../ssl/acmeCertificate";
import { ACME_PATHS } from "../ssl/acmeScripts";
import { SigningCa, SslCertificate } from "../ssl/sslCertificate";
import { SupervisorProgram } from "../supervisor/supervisorProgram";
import { HostSpec, publicUrl } from "./hostSpecs";

/** What a replica needs from its primary. */
export interface PrimaryLink {
    /** The primary's public HTTPS URL (devpi's `primary-url`). */
    url: string;
    /** The CA that issued the primary's certificate (PEM; empty when publicly trusted). */
    caCertPem: pulumi.Output<string>;
    /** Self-signed mode: the private CA that signs the replica's certificate too. */
    signingCa?: SigningCa;
    /** The primary's secret file, base64 (secret). */
    sharedSecret: pulumi.Output<string>;
    /** The primary's health check: a replica starts syncing only from a healthy primary. */
    healthy: pulumi.Resource;
    /** The primary's devpi version set: when it changes, each replica checks it still follows the primary. */
    serverVersionKey: string;
}

/** The parts of one server that others wire to. */
export interface DevpiHost {
    spec: HostSpec;
    remote: RemoteHost;
    /** Packages and the service user (what needs cron, nginx or supervisor waits for all of it). */
    prepared: HostPreparation;
    /** devpi-server's API on the server's loopback, with root's credential file. */
    api: ApiTarget;
    url: string;
    /** The certificate files made by Pulumi (self-signed, provided); absent with sslMode acme. */
    ssl?: SslCertificate;
    /** What verifies that certificate (PEM): the private CA, a provided CA, or acmeCaBundle; empty when publicly trusted. */
    caCertPem: pulumi.Output<string>;
    /** The certificate nginx serves: made by Pulumi, or issued on the server by certbot (acme). */
    served: { certSha256: pulumi.Output<string>; notAfter: pulumi.Output<string>; issuer: pulumi.Output<string> };
    server: DevpiServer;
    supervisor: SupervisorProgram;
    nginx: NginxSite;
    health: HealthCheck;
}

/** The steps that run on the primary between devpi answering and the health check (root password, users, indexes). */
export type AccessBuilder = (h: Pick<DevpiHost, "remote" | "api" | "server" | "supervisor">) => pulumi.Resource[];

export const SUPERVISOR_LOG = "/var/log/supervisor/devpi.log";

/**
 * Creates one server's tree. Resource names are `spec.prefix` + the names a single-server stack
 * has always used (`host`, `ssl`, `devpi`, `supervisor`, `nginx`, `health`), so the primary's
 * resources keep their URNs. A replica's supervisor program (its first sync) waits for the
 * primary's health check; nothing else of it waits for anything outside its own server.
 */
export function deployDevpiHost(spec: HostSpec, cfg: DevpiConfig, links: { primary?: PrimaryLink; access?: AccessBuilder }): DevpiHost {
    const n = (s: string) => `${spec.prefix}${s}`;
    const connection: command.types.input.remote.ConnectionArgs = {
        host: spec.ssh.host,
        port: spec.ssh.port,
        user: spec.ssh.user,
        privateKey: pulumi.secret(spec.ssh.privateKey),
        hostKey: spec.ssh.hostKey,
        // A server that is still booting refuses connections for a while.
        dialErrorLimit: 20,
        perDialTimeout: 15,
    };
    const remote: RemoteHost = { connection, sshUser: spec.ssh.user };
    const d = cfg.devpi;
    const devpiUrl = `http://${d.host}:${spec.devpiPort}`;
    const api: ApiTarget = { devpiUrl, credentialFile: `${d.configDir}/root-credential.json` };
    const homeDir = path.posix.dirname(d.serverDir);
    const primary = spec.role === "replica" ? links.primary : undefined;
    if (spec.role === "replica" && !primary) throw new Error(`${spec.label}: a replica needs its primary`);

    const prepared = new HostPreparation(n("host"), {
        host: remote,
        layout: {
            serviceUser: d.serviceUser,
            homeDir,
            serverDir: d.serverDir,
            backupDir: d.backupDir,
            secretFile: d.secretFile,
            configDir: d.configDir,
            webUser: NGINX_WORKER_USER,
        },
        // One apt run: certbot (Debian's package, with its webroot plugin) for sslMode acme.
        packages: cfg.ssl.mode === "acme" ? [...HOST_PACKAGES, "certbot"] : undefined,
    });

    // sslMode acme: certbot (set up first, with a temporary certificate) needs nginx's site on
    // httpPort to answer the challenge, so the certificate is issued after the site and reloads it.
    const acmeClient =
        cfg.ssl.mode === "acme"
            ? new AcmeClient(n("acme-client"), { host: remote, domain: spec.domain, dir: cfg.ssl.dir, caBundlePem: cfg.ssl.acmeCaBundlePem }, { dependsOn: [prepared] })
            : undefined;
    const ssl = acmeClient ? undefined : new SslCertificate(n("ssl"), {
        host: remote,
        mode: cfg.ssl.mode === "provided" ? "provided" : "self-signed",
        domain: spec.domain,
        extraDnsNames: spec.extraDnsNames,
        extraIpAddresses: spec.extraIpAddresses,
        dir: cfg.ssl.dir,
        certValidityDays: cfg.ssl.certValidityDays,
        certRenewBeforeDays: cfg.ssl.certRenewBeforeDays,
        caValidityDays: cfg.ssl.caValidityDays,
        caRenewBeforeDays: cfg.ssl.caRenewBeforeDays,
        providedChainPem: spec.providedChainPem,
        providedKeyPem: spec.providedKeyPem === undefined ? undefined : pulumi.secret(spec.providedKeyPem),
        providedCaPem: cfg.ssl.providedCaPem,
        ca: primary?.signingCa,
    });
    const certFiles = (ssl ?? acmeClient)!;

    const trustBundle = `${d.configDir}/ca-bundle.pem`;
    const server = new DevpiServer(
        n("devpi"),
        {
            host: remote,
            venvDir: d.venvDir,
            versionsDir: d.venvVersionsDir,
            rootCredentialFile: api.credentialFile,
            legacySecretFile: LEGACY_SECRET_FILE,
            install: { serverVersion: d.serverVersion, webVersion: d.webVersion, web: d.web, packageIndex: d.pythonPackageIndex, caBundle: d.upstreamCaBundle },
            settings: {
                serverDir: d.serverDir,
                host: d.host,
                port: spec.devpiPort,
                secretFile: d.secretFile,
                restrictModify: d.restrictModify,
                mirrorCacheExpiry: d.mirrorCacheExpiry,
                maxUploadMb: d.maxUploadMb,
                ...(spec.role === "primary" ? { role: "primary" as const } : {}),
                ...(primary ? { primaryUrl: primary.url } : {}),
            },
            configDir: d.configDir,
            serviceUser: d.serviceUser,
            upgrade: {
                backupDir: d.backupDir,
                program: "devpi",
                logFile: SUPERVISOR_LOG,
                devpiUrl,
                strategy: d.upgradeStrategy,
                allowDowngrade: d.allowDowngrade,
            },
            replication:
                spec.role === "primary"
                    ? { role: "primary" }
                    : primary
                      ? {
                            role: "replica",
                            sharedSecret: primary.sharedSecret,
                            primaryCaPem: primary.caCertPem,
                            trustBundle,
                            upstreamCaBundle: d.upstreamCaBundle ?? "/etc/ssl/certs/ca-certificates.crt",
                        }
                      : undefined,
        },
        // The virtualenv needs python3-venv only: pip runs while apt installs nginx, supervisor, ...
        { dependsOn: prepared.python },
    );

    const supervisor = new SupervisorProgram(
        n("supervisor"),
        {
            host: remote,
            program: {
                name: "devpi",
                venvDir: d.venvDir,
                configFile: server.configFile,
                serviceUser: d.serviceUser,
                homeDir,
                debug: d.debug,
                logFile: SUPERVISOR_LOG,
                caBundle: server.trustBundle ?? d.upstreamCaBundle,
            },
            devpiUrl,
            restartToken: server.restartToken,
        },
        { dependsOn: primary ? [server, prepared, primary.healthy] : [server, prepared] },
    );

    const nginx = new NginxSite(
        n("nginx"),
        {
            host: remote,
            site: {
                domain: spec.domain,
                extraNames: spec.extraDnsNames,
                httpPort: spec.httpPort,
                httpsPort: spec.httpsPort,
                listenIpv6: cfg.listenIpv6,
                certPath: certFiles.certPath,
                keyPath: certFiles.keyPath,
                upstream: `${d.host}:${spec.devpiPort}`,
                serverDir: d.serverDir,
                maxUploadMb: d.maxUploadMb,
                mirrorPageCacheSeconds: mirrorPageCacheSeconds(d.mirrorCacheExpiry),
                // Keyed on this host's own data: replication commits a replica's data too, and devpi
                // answers a write forwarded by a replica once the replica has it.
                indexPageCache: true,
                // The replication feed is opened on a primary only; a replica never serves it.
                replication: spec.role === "primary" || (spec.role === "standalone" && d.replication),
                acmeWebroot: acmeClient?.webroot,
            },
            // With acme, the issuance step reloads nginx itself (and certbot's deploy hook on renewal).
            certSha256: ssl?.certSha256 ?? "issued on the server by certbot",
        },
        { dependsOn: [certFiles, supervisor] },
    );

    const acme = acmeClient
        ? new AcmeCertificate(
              n("acme"),
              {
                  host: remote,
                  names: [spec.domain, ...spec.extraDnsNames],
                  email: cfg.ssl.acmeEmail!,
                  directoryUrl: cfg.ssl.acmeDirectoryUrl!,
                  dir: cfg.ssl.dir,
                  caBundle: acmeClient.hasCaBundle,
                  renewBeforeDays: Math.min(cfg.ssl.certRenewBeforeDays, 30),
                  httpsPort: spec.httpsPort,
              },
              { dependsOn: [nginx] },
          )
        : undefined;
    const served = (ssl ?? acme)!;
    const caCertPem = ssl?.caCertPem ?? pulumi.output(cfg.ssl.acmeCaBundlePem ?? "");

    const accessSteps = links.access?.({ remote, api, server, supervisor }) ?? [];

    // A primary rebuilt by export/import has a new identity that devpi makes its replicas refuse:
    // after the primary is healthy again, each replica checks and, if needed, re-syncs.
    const resync = primary
        ? new ReplicaResync(
              n("resync"),
              {
                  host: remote,
                  settings: {
                      primaryUrl: primary.url,
                      devpiUrl,
                      serverDir: d.serverDir,
                      configFile: server.configFile,
                      venvDir: d.venvDir,
                      serviceUser: d.serviceUser,
                      program: "devpi",
                      timeout: 600,
                      revision: `primary ${primary.serverVersionKey}, replica ${server.versionKey}`,
                  },
                  primaryCaPem: primary.caCertPem,
              },
              { dependsOn: [supervisor, primary.healthy] },
          )
        : undefined;

    const health = new HealthCheck(
        n("health"),
        {
            host: remote,
            settings: {
                domain: spec.domain,
                httpPort: spec.httpPort,
                httpsPort: spec.httpsPort,
                indexes: ["root/pypi", ...cfg.indexes.map((i) => i.name)],
                replication: spec.role === "primary" || (spec.role === "standalone" && d.replication),
                devpiLog: SUPERVISOR_LOG,
                certbotLog: acme ? ACME_PATHS.log : undefined,
            },
            certSha256: served.certSha256,
            caCertPem: primary ? primary.caCertPem : caCertPem,
            // Users and indexes are part of it: on a replica they arrive by replication, which the check waits for.
            revision: contentHash(nginx.siteConfig, server.restartToken, JSON.stringify(cfg.indexes), cfg.users.map((u) => u.name).join(",")),
            replicaOf: primary ? { primaryUrl: primary.url, timeout: 120 } : undefined,
        },
        { dependsOn: [nginx, ...(acme ? [acme] : []), ...(resync ? [resync] : []), ...accessSteps] },
    );

    return { spec, remote, prepared, api, url: publicUrl(spec.domain, spec.httpsPort), ssl, caCertPem, served, server, supervisor, nginx, health };
}

/** What a replica of `host` needs (the primary must have been built with role `primary`). */
export function primaryLink(host: DevpiHost): PrimaryLink {
    if (!host.server.sharedSecret) throw new Error("the primary was built without replicas");
    return {
        url: host.url,
        caCertPem: host.caCertPem,
        // With acme, each replica gets its own certificate from the same ACME CA instead.
        signingCa: host.ssl?.signingCa,
        sharedSecret: host.server.sharedSecret,
        healthy: host.health,
        serverVersionKey: host.server.versionKey,
    };
}
