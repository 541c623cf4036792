/**
 * The composition root: reads and validates the stack's config, builds the SSH connection and
 * creates the components in dependency order. See README.md for the config reference.
 */
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { readStackConfig } from "./config";
import { BackupSchedule } from "./components/backup/backupSchedule";
import { ClientSettings, devpiUseCommand, indexUrl, renderPipConf, renderPypirc, renderUvToml } from "./components/client/clientConfig";
import { DevpiIndex } from "./components/access/devpiIndex";
import { DevpiRootPassword } from "./components/access/devpiRootPassword";
import { DevpiServer } from "./components/devpi/devpiServer";
import { DevpiUser } from "./components/access/devpiUser";
import { HealthCheck } from "./components/health/healthCheck";
import { HostPreparation } from "./components/host/hostPreparation";
import { mirrorPageCacheSeconds } from "./components/nginx/nginxConfig";
import { NginxSite } from "./components/nginx/nginxSite";
import { RemoteHost } from "./components/common/remoteStep";
import { contentHash } from "./components/common/shell";
import { SslCertificate } from "./components/ssl/sslCertificate";
import { SupervisorProgram } from "./components/supervisor/supervisorProgram";

const cfg = readStackConfig();

const connection: command.types.input.remote.ConnectionArgs = {
    host: cfg.ssh.host,
    port: cfg.ssh.port,
    user: cfg.ssh.user,
    privateKey: pulumi.secret(cfg.ssh.privateKey),
    hostKey: cfg.ssh.hostKey,
    // A server that is still booting refuses connections for a while.
    dialErrorLimit: 20,
    perDialTimeout: 15,
};
const host: RemoteHost = { connection, sshUser: cfg.ssh.user };
const d = cfg.devpi;
const devpiUrl = `http://${d.host}:${d.port}`;
const api = { devpiUrl, credentialFile: `${d.configDir}/root-credential.json` };
const homeDir = path.posix.dirname(d.serverDir);
const supervisorLog = "/var/log/supervisor/devpi.log";

const prepared = new HostPreparation("host", {
    host,
    layout: {
        serviceUser: d.serviceUser,
        homeDir,
        serverDir: d.serverDir,
        backupDir: d.backupDir,
        secretFile: d.secretFile,
        configDir: d.configDir,
        webUser: cfg.ssl.owner,
    },
});

const ssl = new SslCertificate("ssl", {
    host,
    mode: cfg.ssl.mode,
    domain: cfg.domain,
    extraDnsNames: cfg.ssl.extraDnsNames,
    extraIpAddresses: cfg.ssl.extraIpAddresses,
    dir: cfg.ssl.dir,
    owner: cfg.ssl.owner,
    certValidityDays: cfg.ssl.certValidityDays,
    certRenewBeforeDays: cfg.ssl.certRenewBeforeDays,
    caValidityDays: cfg.ssl.caValidityDays,
    providedChainPem: cfg.ssl.providedChainPem,
    providedKeyPem: cfg.ssl.providedKeyPem === undefined ? undefined : pulumi.secret(cfg.ssl.providedKeyPem),
    providedCaPem: cfg.ssl.providedCaPem,
});

const server = new DevpiServer(
    "devpi",
    {
        host,
        venvDir: d.venvDir,
        install: { serverVersion: d.serverVersion, webVersion: d.webVersion, web: d.web, packageIndex: d.pythonPackageIndex, caBundle: d.upstreamCaBundle },
        settings: {
            serverDir: d.serverDir,
            host: d.host,
            port: d.port,
            secretFile: d.secretFile,
            restrictModify: d.restrictModify,
            mirrorCacheExpiry: d.mirrorCacheExpiry,
            maxUploadMb: d.maxUploadMb,
        },
        configDir: d.configDir,
        serviceUser: d.serviceUser,
        upgrade: {
            backupDir: d.backupDir,
            program: "devpi",
            logFile: supervisorLog,
            devpiUrl,
            strategy: d.upgradeStrategy,
            allowDowngrade: d.allowDowngrade,
        },
    },
    { dependsOn: [prepared] },
);

const supervisor = new SupervisorProgram(
    "supervisor",
    {
        host,
        program: {
            name: "devpi",
            venvDir: d.venvDir,
            configFile: server.configFile,
            serviceUser: d.serviceUser,
            homeDir,
            debug: d.debug,
            logFile: supervisorLog,
            caBundle: d.upstreamCaBundle,
        },
        devpiUrl,
        restartToken: server.restartToken,
    },
    { dependsOn: [server] },
);

const nginx = new NginxSite(
    "nginx",
    {
        host,
        site: {
            domain: cfg.domain,
            extraNames: cfg.ssl.extraDnsNames,
            httpPort: cfg.httpPort,
            httpsPort: cfg.httpsPort,
            listenIpv6: cfg.listenIpv6,
            certPath: ssl.certPath,
            keyPath: ssl.keyPath,
            upstream: `${d.host}:${d.port}`,
            serverDir: d.serverDir,
            maxUploadMb: d.maxUploadMb,
            replication: d.replication,
            mirrorPageCacheSeconds: mirrorPageCacheSeconds(d.mirrorCacheExpiry),
        },
        certSha256: ssl.certSha256,
    },
    { dependsOn: [ssl, supervisor] },
);

const rootPassword = new DevpiRootPassword("root-password", { host, api, serverRevision: server.versionKey, password: pulumi.secret(cfg.rootPassword) }, { dependsOn: [supervisor] });

const users = new Map<string, pulumi.Resource>([["root", rootPassword]]);
for (const u of cfg.users) {
    users.set(
        u.name,
        new DevpiUser(`user-${u.name}`, { host, api, serverRevision: server.versionKey, username: u.name, password: pulumi.secret(u.password), email: u.email }, { dependsOn: [rootPassword] }),
    );
}

// Bases before the indexes that use them: devpi refuses a base that does not exist.
const indexes = new Map<string, DevpiIndex>();
const createIndex = (name: string): DevpiIndex => {
    const existing = indexes.get(name);
    if (existing) return existing;
    const ix = cfg.indexes.find((i) => i.name === name)!;
    const bases = ix.bases.filter((b) => b !== "root/pypi").map(createIndex);
    const created = new DevpiIndex(
        `index-${ix.name}`,
        { host, api, serverRevision: server.versionKey, indexName: ix.name, bases: ix.bases, volatile: ix.volatile, aclUpload: ix.aclUpload, mirrorWhitelist: ix.mirrorWhitelist },
        { dependsOn: [users.get(ix.owner)!, ...bases] },
    );
    indexes.set(name, created);
    return created;
};
cfg.indexes.forEach((i) => createIndex(i.name));

const backups = new BackupSchedule(
    "backups",
    {
        host,
        venvDir: d.venvDir,
        configFile: server.configFile,
        serviceUser: d.serviceUser,
        backupDir: d.backupDir,
        schedule: d.backupSchedule,
        keep: d.backupKeep,
        serverDir: d.serverDir,
        program: "devpi",
    },
    { dependsOn: [server] },
);

const health = new HealthCheck(
    "health",
    {
        host,
        settings: {
            domain: cfg.domain,
            httpPort: cfg.httpPort,
            httpsPort: cfg.httpsPort,
            indexes: ["root/pypi", ...cfg.indexes.map((i) => i.name)],
            replication: d.replication,
            devpiLog: supervisorLog,
        },
        certSha256: ssl.certSha256,
        caCertPem: ssl.caCertPem,
        revision: contentHash(nginx.siteConfig, server.restartToken, JSON.stringify(cfg.indexes), cfg.users.map((u) => u.name).join(",")),
    },
    { dependsOn: [nginx, ...indexes.values()] },
);

const baseUrl = `https://${cfg.domain}${cfg.httpsPort === 443 ? "" : `:${cfg.httpsPort}`}`;
const clientIndex = cfg.indexes.find((i) => i.name === cfg.clientIndex);
const client: ClientSettings = {
    baseUrl,
    index: clientIndex?.name ?? "root/pypi",
    username: clientIndex?.owner ?? "root",
    caPath: cfg.ssl.mode === "self-signed" || cfg.ssl.providedCaPem ? "~/.config/devpi/ca.pem" : undefined,
};
const clientUser = cfg.users.find((u) => u.name === client.username);

/** The server's base URL. */
export const url = baseUrl;
/** pip's index URL for the client index (devpi:clientIndex). */
export const pipIndexUrl = indexUrl(client);
export const pipConf = renderPipConf(client);
export const uvToml = renderUvToml(client);
/** ~/.pypirc without the password. */
export const pypirc = renderPypirc(client);
/** ~/.pypirc with the password (secret); only when devpi:clientIncludePassword is true. */
export const pypircWithPassword = pulumi.secret(
    cfg.clientIncludePassword && clientUser ? renderPypirc(client, clientUser.password) : "(set devpi:clientIncludePassword to true to export it)",
);
export const devpiUse = devpiUseCommand(client);
/** The private CA's certificate (self-signed mode): save it as ~/.config/devpi/ca.pem. */
export const caCertificate = ssl.caCertPem;
export const certificateSha256 = ssl.certSha256;
export const serverVersions = server.versions;
export const healthCheck = health.result;
export const backupCommand = backups.command;
export const restoreCommand = backups.restoreCommand;
