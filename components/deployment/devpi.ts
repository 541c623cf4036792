/**
 * The whole deployment as one component: a primary, its replicas, and what only the primary
 * has (root's password, users, indexes, backups). Import it into any Pulumi program and feed it
 * the outputs of whatever made the servers.
 */
import * as pulumi from "@pulumi/pulumi";
import { DeclaredAccess, declareAccess } from "../access/devpiAccess";
import { DevpiToken } from "../access/devpiToken";
import { BackupSchedule, RESTORE_SCRIPT } from "../backup/backupSchedule";
import { OffsiteBackup } from "../backup/offsiteBackup";
import { hostMetrics } from "../metrics/hostMetrics";
import { cronIntervalHours, renderAlertRules } from "../metrics/alertRules";
import { ClientSettings, devpiUseCommand, indexUrl, renderPipConf, renderPypirc, renderUvToml } from "../client/clientConfig";
import { CLIENT_CA_PATH, DEVPI_PROGRAM, MIRROR_INDEX } from "../constants";
import { DevpiArgs, ServerClientSettings } from "./devpiArgs";
import { AccessBuilder, DevpiHost } from "./devpiHost";
import { primaryLink } from "./primaryLink";
import { ResolvedDevpi, resolveDevpiArgs } from "./resolveArgs";

/** The name whose children keep the names of stacks made before this component (`host`, `ssl`, ...). */
export const LEGACY_NAME = "devpi";

/**
 * A devpi deployment (`devpi:index:Devpi`): on each server, over SSH, the packages, TLS files,
 * devpi-server in a root-owned virtualenv run by supervisor as a service user, nginx in front;
 * on the primary also root's password, users, indexes and scheduled backups; each replica
 * follows the primary. Each server is a {@link DevpiHost} child. Bad arguments are refused with
 * an error naming the argument before anything runs; values that are Outputs are checked once
 * known.
 *
 * Children of `new Devpi("devpi", ...)` carry the names stacks made by the stack-config program
 * have always had (`host`, `ssl`, `devpi`, ..., `replica-NAME-...`), with aliases to their old
 * place at the stack's root, so such stacks keep every resource. Any other name prefixes them
 * with `NAME-`, so two deployments can live in one program.
 */
export class Devpi extends pulumi.ComponentResource {
    /** The primary's base URL, `https://DOMAIN[:PORT]`: uploads and user/index changes go here. */
    public readonly url: pulumi.Output<string>;
    /** pip's index URL for the client index. */
    public readonly pipIndexUrl: pulumi.Output<string>;
    /** pip.conf for the client index. */
    public readonly pipConf: pulumi.Output<string>;
    /** uv.toml for the client index. */
    public readonly uvToml: pulumi.Output<string>;
    /** ~/.pypirc without a password. */
    public readonly pypirc: pulumi.Output<string>;
    /** ~/.pypirc with the index owner's password (secret) when `client.includePassword`, else a hint. */
    public readonly pypircWithPassword: pulumi.Output<string>;
    /** `devpi use URL/INDEX/ --set-cfg`. */
    public readonly devpiUse: pulumi.Output<string>;
    /** What clients must trust (self-signed CA, a provided private CA, an ACME CA bundle); empty when publicly trusted. */
    public readonly caCertificate: pulumi.Output<string>;
    /** The primary's served certificate: sha256, expiry (ISO 8601) and issuer. */
    public readonly certificateSha256: pulumi.Output<string>;
    public readonly certificateExpiry: pulumi.Output<string>;
    public readonly certificateIssuer: pulumi.Output<string>;
    /** devpi-server's and devpi-web's installed versions on the primary. */
    public readonly serverVersions: pulumi.Output<string>;
    /** The primary's health check result as of the last `pulumi up`. */
    public readonly healthCheck: pulumi.Output<string>;
    /** The command that runs a backup now, and the one that restores one. */
    public readonly backupCommand: string;
    public readonly restoreCommand: string;
    /**
     * Per token name (`access.tokens`): the token, the user it acts as and when it expires (secret).
     * Use it as that user's password: in ~/.netrc (`machine HOST login USER password TOKEN`), a
     * keyring, twine's password or `devpi login USER --password`.
     */
    public readonly tokens: pulumi.Output<Record<string, { token: string; user: string; expires: string }>>;
    /** Per replica name: its URL, client config, health and certificate. */
    public readonly replicaClients: Record<string, ServerClientSettings>;
    /** The servers, primary first. */
    public readonly hosts: DevpiHost[];
    /** Run this on the server (as root) to restore the newest off-host snapshot (`backups.offsite`). */
    public readonly offsiteRestoreCommand: string;
    /** Per server (`primary` and each replica's name): where node-exporter serves its metrics (loopback; `options.metrics`). */
    public readonly metricsEndpoints: pulumi.Output<Record<string, string>>;
    /** Prometheus alert rules for those metrics (a rules file), with this deployment's backup schedule and certificate window. */
    public readonly alertRules: string;

    constructor(name: string, args: DevpiArgs, opts?: pulumi.ComponentResourceOptions) {
        // Checked before anything is registered: bad arguments leave no trace in the deployment.
        const s = resolveDevpiArgs(name, args);
        checkHostKeys(name, args);
        super("devpi:index:Devpi", name, {}, opts);
        const namePrefix = name === LEGACY_NAME ? "" : `${name}-`;
        const [primarySpec, ...replicaSpecs] = s.hosts;
        let declared: DeclaredAccess | undefined;
        const access = (h: Parameters<AccessBuilder>[0]): pulumi.Resource[] => {
            declared = declareAccess(s, h, namePrefix);
            return declared.indexes;
        };
        const primary = new DevpiHost(`${namePrefix}${primarySpec.label}`, { spec: primarySpec, settings: s, namePrefix, access }, { parent: this });
        const backups = new BackupSchedule(
            `${namePrefix}backups`,
            {
                host: primary.remote,
                venvDir: s.devpi.venvDir,
                configFile: primary.server.configFile,
                serviceUser: s.devpi.serviceUser,
                backupDir: s.devpi.backupDir,
                schedule: s.devpi.backupSchedule,
                keep: s.devpi.backupKeep,
                serverDir: s.devpi.serverDir,
                program: DEVPI_PROGRAM,
                devpiUrl: primary.api.devpiUrl,
            },
            // cron comes with the host's packages, which devpi's install no longer waits for entirely.
            { parent: this, aliases: [{ parent: pulumi.rootStackResource }], dependsOn: [primary.server, primary.prepared] },
        );
        const offsite = s.offsite
            ? new OffsiteBackup(
                  `${namePrefix}offsite`,
                  { host: primary.remote, offsite: s.offsite, serviceUser: s.devpi.serviceUser, backupDir: s.devpi.backupDir, restoreScript: RESTORE_SCRIPT },
                  { parent: this, dependsOn: [backups] },
              )
            : undefined;
        this.offsiteRestoreCommand = offsite?.restoreCommand ?? "(no off-host copy: set devpi:offsite)";
        // Replicas follow the primary and do not wait for each other.
        const replicas = replicaSpecs.map((spec) => new DevpiHost(`${namePrefix}replica-${spec.label}`, { spec, settings: s, namePrefix, primary: primaryLink(primary) }, { parent: this }));
        this.hosts = [primary, ...replicas];
        const metrics = s.devpi.metrics ? this.hosts.map((h, i) => hostMetrics(h, s, namePrefix, i === 0)) : [];
        this.metricsEndpoints = pulumi.output(Object.fromEntries(metrics.map((m, i) => [this.hosts[i].spec.label, m.endpoint])));
        this.alertRules = renderAlertRules({ backupIntervalHours: cronIntervalHours(s.devpi.backupSchedule), certRenewBeforeDays: s.ssl.mode === "acme" ? 30 : s.ssl.certRenewBeforeDays });

        const client = clientFor(s, primary.url);
        const clientOwner = s.indexes.find((i) => i.name === s.clientIndex)?.owner ?? "root";
        const clientUser = s.users.find((u) => u.name === clientOwner);
        this.url = primary.url;
        this.pipIndexUrl = client.apply(indexUrl);
        this.pipConf = client.apply(renderPipConf);
        this.uvToml = client.apply(renderUvToml);
        this.pypirc = client.apply((c) => renderPypirc(c));
        this.pypircWithPassword = pulumi.secret(
            s.clientIncludePassword && clientUser
                ? pulumi.all([client, clientUser.password]).apply(([c, p]) => renderPypirc(c, p))
                : pulumi.output("(set devpi:clientIncludePassword to true to export it)"),
        );
        this.devpiUse = client.apply(devpiUseCommand);
        this.caCertificate = primary.ssl?.caCertPem ?? pulumi.output("");
        this.certificateSha256 = primary.served.certSha256;
        this.certificateExpiry = primary.served.notAfter;
        this.certificateIssuer = primary.served.issuer;
        this.serverVersions = primary.server.versions;
        this.healthCheck = primary.health.result;
        this.backupCommand = backups.command;
        this.restoreCommand = backups.restoreCommand;
        this.replicaClients = Object.fromEntries(replicas.map((r) => [r.spec.label, replicaClient(s, r)]));
        const tokens = [...(declared?.tokens ?? new Map<string, DevpiToken>()).entries()];
        this.tokens = pulumi.secret(
            pulumi
                .all(tokens.map(([n, t]) => pulumi.all([t.token, t.expires]).apply(([token, expires]) => [n, { token, expires, user: s.tokens.find((x) => x.name === n)!.user }] as const)))
                .apply((entries) => Object.fromEntries(entries)),
        );
        this.registerOutputs({ url: this.url, healthCheck: this.healthCheck, caCertificate: this.caCertificate });
    }
}

/** Without `hostKey`, refuse unless insecureSkipHostKeyCheck (then warn): whoever answers would get the login and the secrets. */
function checkHostKeys(name: string, args: DevpiArgs): void {
    const targets = [{ label: "server", t: args.server }, ...(args.replicas ?? []).map((r) => ({ label: `replicas[${r.name}]`, t: r }))];
    for (const { label, t } of targets) {
        if (t.ssh.hostKey !== undefined) continue;
        const message = `Devpi ${name}: ${label}.ssh.hostKey is not set: pin the server's SSH host key (ssh-keyscan -t ed25519 HOST, checked out of band)`;
        if (!args.insecureSkipHostKeyCheck) throw new Error(`${message}, or set insecureSkipHostKeyCheck to trust whatever answers, which sends secrets to it`);
        void pulumi.log.warn(`${message}; insecureSkipHostKeyCheck is true, so whoever answers gets the login and the secrets sent to the server`);
    }
}

/** The client settings for a server at `baseUrl`: the client index and its owner. */
function clientFor(s: ResolvedDevpi, baseUrl: pulumi.Output<string>): pulumi.Output<ClientSettings> {
    const clientIndex = s.indexes.find((i) => i.name === s.clientIndex);
    const caPath = s.ssl.mode === "self-signed" || s.ssl.providedCaPem ? CLIENT_CA_PATH : undefined;
    return baseUrl.apply((url) => ({ baseUrl: url, index: clientIndex?.name ?? MIRROR_INDEX, username: clientIndex?.owner ?? "root", caPath }));
}

function replicaClient(s: ResolvedDevpi, r: DevpiHost): ServerClientSettings {
    const c = clientFor(s, r.url);
    return {
        url: r.url,
        pipIndexUrl: c.apply(indexUrl),
        pipConf: c.apply(renderPipConf),
        uvToml: c.apply(renderUvToml),
        healthCheck: r.health.result,
        certificateSha256: r.served.certSha256,
    };
}
