/**
 * The one adapter between the stack's config and the {@link Devpi} component: a validated
 * {@link DevpiConfig} becomes {@link DevpiArgs}. Another program builds DevpiArgs from its own
 * resources instead.
 */
import * as pulumi from "@pulumi/pulumi";
import type { OffsiteArgs } from "../components/backup/offsiteBackup";
import { DevpiArgs, ServerTarget, TlsArgs } from "../components/deployment/devpiArgs";
import { readStackConfig } from "./stack";
import { DevpiConfig, SshConfig } from "./types";

function sshTarget(ssh: SshConfig): ServerTarget["ssh"] {
    return { host: ssh.host, port: ssh.port, user: ssh.user, privateKey: pulumi.secret(ssh.privateKey), hostKey: ssh.hostKey };
}

function tlsArgs(cfg: DevpiConfig): TlsArgs {
    const s = cfg.ssl;
    const windows = { certValidityDays: s.certValidityDays, certRenewBeforeDays: s.certRenewBeforeDays, caValidityDays: s.caValidityDays, caRenewBeforeDays: s.caRenewBeforeDays };
    switch (s.mode) {
        case "provided":
            return { mode: "provided", dir: s.dir, chainPem: s.providedChainPem!, keyPem: pulumi.secret(s.providedKeyPem!), caPem: s.providedCaPem, ...windows };
        case "acme":
            return { mode: "acme", dir: s.dir, email: s.acmeEmail!, directoryUrl: s.acmeDirectoryUrl, caBundlePem: s.acmeCaBundlePem, certRenewBeforeDays: s.certRenewBeforeDays };
        default:
            return { mode: "self-signed", dir: s.dir, ...windows };
    }
}

/** The component's arguments for a validated stack config. */
export function devpiArgsFromConfig(cfg: DevpiConfig): DevpiArgs {
    const d = cfg.devpi;
    return {
        server: {
            ssh: sshTarget(cfg.ssh),
            domain: cfg.domain,
            extraDnsNames: cfg.ssl.extraDnsNames,
            extraIpAddresses: cfg.ssl.extraIpAddresses,
            httpPort: cfg.httpPort,
            httpsPort: cfg.httpsPort,
            devpiPort: d.port,
            metricsAddress: cfg.metricsAddress,
            metricsScrape: cfg.metricsScrape,
        },
        replicas: cfg.replicas.map((r) => ({
            name: r.name,
            ssh: sshTarget(r.ssh),
            domain: r.domain,
            extraDnsNames: r.extraDnsNames,
            extraIpAddresses: r.extraIpAddresses,
            httpPort: r.httpPort,
            httpsPort: r.httpsPort,
            devpiPort: r.devpiPort,
            metricsAddress: r.metricsAddress,
            metricsScrape: r.metricsScrape,
            certificate: r.providedChainPem && r.providedKeyPem ? { chainPem: r.providedChainPem, keyPem: pulumi.secret(r.providedKeyPem) } : undefined,
        })),
        tls: tlsArgs(cfg),
        options: {
            serverVersion: d.serverVersion,
            webVersion: d.webVersion,
            web: d.web,
            metrics: d.metrics,
            lockdownVersion: d.lockdownVersion,
            tokensVersion: d.tokensVersion,
            serviceUser: d.serviceUser,
            venvDir: d.venvDir,
            serverDir: d.serverDir,
            configDir: d.configDir,
            secretFile: d.secretFile,
            backupDir: d.backupDir,
            upgradeStrategy: d.upgradeStrategy,
            allowDowngrade: d.allowDowngrade,
            mirrorCacheExpiry: d.mirrorCacheExpiry,
            maxUploadMb: d.maxUploadMb,
            restrictModify: d.restrictModify,
            replication: d.replication,
            debug: d.debug,
            pythonPackageIndex: d.pythonPackageIndex,
            upstreamCaBundle: d.upstreamCaBundle,
            bindAddress: d.host,
            listenIpv6: cfg.listenIpv6,
        },
        access: {
            rootPassword: pulumi.secret(cfg.rootPassword),
            users: cfg.users.map((u) => ({ name: u.name, password: pulumi.secret(u.password), email: u.email })),
            indexes: cfg.indexes.map((i) =>
                i.mirror
                    ? {
                          name: i.name,
                          type: "mirror" as const,
                          mirror: { ...i.mirror, allowHttp: i.mirror.url.startsWith("http:"), password: i.mirror.password === undefined ? undefined : pulumi.secret(i.mirror.password) },
                      }
                    : { name: i.name, bases: i.bases, volatile: i.volatile, aclUpload: i.aclUpload, mirrorWhitelist: i.mirrorWhitelist, ...(i.aclRead ? { aclRead: i.aclRead } : {}) },
            ),
            reads: d.reads,
            authCacheSeconds: d.authCacheSeconds,
            tokens: cfg.tokens.map((t) => ({ ...t })),
        },
        backups: {
            schedule: d.backupSchedule,
            keep: d.backupKeep,
            offsite: offsiteArgs(cfg),
        },
        client: { index: cfg.clientIndex, includePassword: cfg.clientIncludePassword },
        // Already checked (and warned about) by the stack config, which names the stack keys.
        insecureSkipHostKeyCheck: [cfg.ssh, ...cfg.replicas.map((r) => r.ssh)].some((s) => s.hostKey === undefined),
    };
}

/** Reads and validates the running stack's `devpi:` config and returns the component's arguments. */
export function fromStackConfig(): DevpiArgs {
    return devpiArgsFromConfig(readStackConfig());
}

/** `devpi:offsite` as the component's `backups.offsite`, its secrets as Pulumi secrets. */
function offsiteArgs(cfg: DevpiConfig): OffsiteArgs | undefined {
    const o = cfg.offsite;
    if (!o) return undefined;
    return {
        repository: o.repository,
        password: pulumi.secret(o.password),
        sftp: o.sftp ? { ...o.sftp, privateKey: pulumi.secret(o.sftp.privateKey) } : undefined,
        s3: o.s3 ? { accessKeyId: o.s3.accessKeyId, secretAccessKey: pulumi.secret(o.s3.secretAccessKey) } : undefined,
        keep: o.keep,
    };
}
