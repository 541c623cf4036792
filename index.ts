/**
 * The composition root: reads and validates the stack's config, then builds one component tree
 * per server — the primary, then each replica, by the same code (components/deployment) — plus
 * what only the primary has: root's password, users and indexes, and backups. See README.md for
 * the config reference.
 */
import * as pulumi from "@pulumi/pulumi";
import { readStackConfig } from "./config";
import { BackupSchedule } from "./components/backup/backupSchedule";
import { ClientSettings, devpiUseCommand, indexUrl, renderPipConf, renderPypirc, renderUvToml } from "./components/client/clientConfig";
import { declareAccess } from "./components/access/devpiAccess";
import { deployDevpiHost, primaryLink } from "./components/deployment/devpiHost";
import { hostSpecs } from "./components/deployment/hostSpecs";

const cfg = readStackConfig();
const d = cfg.devpi;
const [primarySpec, ...replicaSpecs] = hostSpecs(cfg);

const primary = deployDevpiHost(primarySpec, cfg, { access: (h) => declareAccess(cfg, h) });

const backups = new BackupSchedule(
    "backups",
    {
        host: primary.remote,
        venvDir: d.venvDir,
        configFile: primary.server.configFile,
        serviceUser: d.serviceUser,
        backupDir: d.backupDir,
        schedule: d.backupSchedule,
        keep: d.backupKeep,
        serverDir: d.serverDir,
        program: "devpi",
        devpiUrl: primary.api.devpiUrl,
    },
    // cron comes with the host's packages, which devpi's install no longer waits for entirely.
    { dependsOn: [primary.server, primary.prepared] },
);

// Replicas follow the primary and do not wait for each other.
const replicas = replicaSpecs.map((spec) => deployDevpiHost(spec, cfg, { primary: primaryLink(primary) }));

const clientIndex = cfg.indexes.find((i) => i.name === cfg.clientIndex);
const clientFor = (baseUrl: string): ClientSettings => ({
    baseUrl,
    index: clientIndex?.name ?? "root/pypi",
    username: clientIndex?.owner ?? "root",
    caPath: cfg.ssl.mode === "self-signed" || cfg.ssl.providedCaPem ? "~/.config/devpi/ca.pem" : undefined,
});
const client = clientFor(primary.url);
const clientUser = cfg.users.find((u) => u.name === client.username);

/** The server's base URL. */
export const url = primary.url;
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
export const caCertificate = primary.ssl?.caCertPem ?? "";
/** The served certificate: sha256, expiry (ISO 8601) and issuer. With acme, as of the last `pulumi up` that requested or checked it. */
export const certificateSha256 = primary.served.certSha256;
export const certificateExpiry = primary.served.notAfter;
export const certificateIssuer = primary.served.issuer;
export const serverVersions = primary.server.versions;
export const healthCheck = primary.health.result;
export const backupCommand = backups.command;
export const restoreCommand = backups.restoreCommand;
/**
 * Per replica (empty without replicas): its URL, pip index URL and client config, so each
 * site's clients install from the nearest server. Uploads and user/index changes go to `url`.
 * Empty rather than undefined, so a stack without replicas shows no "Undefined value" warning.
 */
export const replicaClients = Object.fromEntries(
    replicas.map((r) => {
        const c = clientFor(r.url);
        return [r.spec.label, { url: r.url, pipIndexUrl: indexUrl(c), pipConf: renderPipConf(c), uvToml: renderUvToml(c), healthCheck: r.health.result, certificateSha256: r.served.certSha256 }];
    }),
);
