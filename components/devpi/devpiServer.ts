import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import {
    venvKey,
    DevpiServerSettings,
    InstallSettings,
    renderConfigScript,
    renderDevpiServerYaml,
    renderInitScript,
    renderInstallScript,
    renderSecretExportScript,
    renderTrustBundleScript,
    renderUninstallScript,
} from "./devpiServerConfig";
import { renderUpgradeScript, UpgradeStrategy } from "./devpiUpgradeScript";
import { RemoteHost, remoteStep } from "../common/remoteStep";
import { contentHash, shellQuote } from "../common/shell";

export interface DevpiServerArgs {
    host: RemoteHost;
    /** Virtualenv path (seed: /home/web/repo/devpi/venv_devpi): a link to the active version. */
    venvDir: string;
    /** Where the root-owned virtualenvs live (default `VENVDIR.versions`); must be root's alone. */
    versionsDir?: string;
    /**
     * Root-only file (in a root-owned directory) where devpi-init's random bootstrap password for
     * root is kept until the password step replaces it with the configured one, so root never has
     * an empty password. Not used on a replica (root comes from its primary).
     */
    rootCredentialFile?: string;
    /** The secret file's old place, migrated from once (see ConfigFileSettings.legacySecretFile). */
    legacySecretFile?: string;
    /** Pinned versions; devpi-web is installed unless `web` is false. */
    install: Omit<InstallSettings, "venvDir">;
    /** devpi-server.yml settings (serverdir, host, port, secretfile, restrict-modify, ...); a replica's primary URL may be an Output. */
    settings: Omit<DevpiServerSettings, "primaryUrl"> & { primaryUrl?: pulumi.Input<string> };
    /** Directory of devpi-server.yml. */
    configDir: string;
    serviceUser: string;
    /** How a version change is rolled out (see devpiUpgradeScript.ts). */
    upgrade: {
        /** Backups taken before an upgrade go here. */
        backupDir: string;
        /** supervisor program that runs devpi-server. */
        program: string;
        logFile: string;
        devpiUrl: string;
        /** `auto` (default): in place when the data format matches; `export-import` forces it. */
        strategy: UpgradeStrategy;
        /** Refused by default: older versions may not read newer data. */
        allowDowngrade: boolean;
    };
    /**
     * devpi's replication. `primary` (replicas follow this server): also reads the secret file
     * for them (`sharedSecret`, a Pulumi secret). `replica`: installs the primary's secret instead
     * of generating one, and writes a CA bundle trusting the primary (`trustBundle`).
     */
    replication?: PrimaryReplication | ReplicaReplication;
}

export interface PrimaryReplication {
    role: "primary";
}

export interface ReplicaReplication {
    role: "replica";
    /** The primary's secret file, base64 (secret). */
    sharedSecret: pulumi.Input<string>;
    /** The CA that issued the primary's certificate (PEM; empty: publicly trusted). */
    primaryCaPem: pulumi.Input<string>;
    /** Where the replica's CA bundle goes, e.g. /etc/devpi/ca-bundle.pem. */
    trustBundle: string;
    /** The bundle that follows the primary's CA in it (PyPI's trust), e.g. /etc/ssl/certs/ca-certificates.crt. */
    upstreamCaBundle: string;
}

/**
 * devpi-server on the server: one root-owned virtualenv per pinned version set under
 * `VENVDIR.versions/` with `VENVDIR` linking the active one, `CONFIGDIR/devpi-server.yml`, a
 * persistent secret file, and `devpi-init` run exactly once. A version change is an upgrade:
 * backup export first, then in place or by export/import, rolled back when the new version does
 * not come up. On destroy the virtualenvs go; the server directory, secret and backups stay.
 */
export class DevpiServer extends pulumi.ComponentResource {
    public readonly configFile: string;
    /** Changes whenever devpi-server must restart for its config (version switches restart it themselves). */
    public readonly restartToken: pulumi.Output<string>;
    /** The active version set, e.g. devpi-server-6.20.3_devpi-web-5.1.1. */
    public readonly versionKey: string;
    /** Installed versions as pip reports them. */
    public readonly versions: pulumi.Output<string>;
    /** Resolves once the server directory is initialised. */
    public readonly initialised: pulumi.Output<string>;
    /** A primary's secret file, base64 (a Pulumi secret), for its replicas. */
    public readonly sharedSecret?: pulumi.Output<string>;
    /** A replica's CA bundle (the primary's CA first), for REQUESTS_CA_BUNDLE. */
    public readonly trustBundle?: string;

    constructor(name: string, args: DevpiServerArgs, opts?: pulumi.ComponentResourceOptions) {
        super("devpi:index:DevpiServer", name, {}, opts);
        this.configFile = `${args.configDir}/devpi-server.yml`;
        const yaml = pulumi.output(args.settings.primaryUrl).apply((primaryUrl) => renderDevpiServerYaml({ ...args.settings, primaryUrl }));
        const installScript = renderInstallScript({ ...args.install, venvDir: args.venvDir, versionsDir: args.versionsDir });
        const replica = args.replication?.role === "replica" ? args.replication : undefined;
        const steps: Steps = { name, args, configFile: this.configFile, replica, parent: this };

        const venv = remoteStep(`${name}-venv`, args.host, { create: installScript, delete: renderUninstallScript(args.venvDir, args.versionsDir) }, { parent: this });
        const config = configStep(steps, yaml, venv);
        const replication = replicationSteps(steps, config);
        this.sharedSecret = replication.sharedSecret;
        this.trustBundle = replica?.trustBundle;
        const init = remoteStep(
            `${name}-init`,
            args.host,
            {
                create: renderInitScript({
                    configFile: this.configFile,
                    serverDir: args.settings.serverDir,
                    serviceUser: args.serviceUser,
                    venvDir: args.venvDir,
                    rootCredentialFile: replica ? undefined : args.rootCredentialFile,
                }),
            },
            // Only the first run initialises; root's configured password is the password step's job.
            { parent: this, dependsOn: [config] },
        );
        this.versionKey = venvKey(args.install);
        const upgrade = upgradeStep(steps, installScript, this.versionKey, replication.trust ? [init, replication.trust] : [init]);
        this.restartToken = yaml.apply((y) => contentHash(y));
        this.versions = pulumi.all([venv.stdout, upgrade.stdout]).apply(([v]) => v);
        this.initialised = init.stdout;
        this.registerOutputs({ versions: this.versions, initialised: this.initialised });
    }
}

/** What every step of one DevpiServer needs: its name, args, config file, replica settings and the component. */
interface Steps {
    name: string;
    args: DevpiServerArgs;
    /** CONFIGDIR/devpi-server.yml. */
    configFile: string;
    replica?: ReplicaReplication;
    parent: DevpiServer;
}

/**
 * devpi-server.yml and the secret file: generated once on a standalone server or a primary; on a
 * replica, the primary's secret (given on stdin, so the step is secret). On delete the config goes
 * and the secret stays: a later install with the same data keeps everyone logged in.
 */
function configStep(s: Steps, yaml: pulumi.Output<string>, venv: pulumi.Resource): pulumi.Resource {
    const { name, args, configFile, replica } = s;
    return remoteStep(
        `${name}-config`,
        args.host,
        {
            create: yaml.apply((rendered) =>
                renderConfigScript({
                    configFile,
                    yaml: rendered,
                    secretFile: args.settings.secretFile,
                    serviceUser: args.serviceUser,
                    venvDir: args.venvDir,
                    secretFromStdin: replica !== undefined,
                    legacySecretFile: args.legacySecretFile,
                }),
            ),
            delete: `rm -f -- ${shellQuote(configFile)}\necho "removed ${configFile}"\n`,
            ...(replica ? { stdin: pulumi.secret(replica.sharedSecret), secret: true } : {}),
        },
        { parent: s.parent, dependsOn: [venv] },
    );
}

/**
 * The replication's own steps. A primary reads its secret file back for its replicas
 * (`sharedSecret`, a Pulumi secret); a replica writes its CA bundle, the primary's CA first
 * (`trust`, which the upgrade step waits for: it starts devpi, which must trust the primary).
 */
function replicationSteps(s: Steps, config: pulumi.Resource): { sharedSecret?: pulumi.Output<string>; trust?: pulumi.Resource } {
    const { name, args, replica } = s;
    if (args.replication?.role === "primary") {
        const secretExport = remoteStep(
            `${name}-secret-export`,
            args.host,
            { create: renderSecretExportScript(args.settings.secretFile), secretOutput: true },
            { parent: s.parent, dependsOn: [config] },
        );
        return { sharedSecret: pulumi.secret(secretExport.stdout) };
    }
    if (!replica) return {};
    const trust = remoteStep(
        `${name}-primary-ca`,
        args.host,
        {
            create: renderTrustBundleScript(replica.trustBundle, replica.upstreamCaBundle),
            delete: `rm -f -- ${shellQuote(replica.trustBundle)}\n`,
            stdin: replica.primaryCaPem,
        },
        { parent: s.parent },
    );
    return { trust };
}

/**
 * Switches devpi-server to the version set `versionKey` (see devpiUpgradeScript.ts), after the
 * steps in `dependsOn`. The install runs again first (a no-op when the venv is complete): a failed
 * or interrupted earlier run, or a venv removed by hand, must not leave the switch without it.
 */
function upgradeStep(s: Steps, installScript: string, versionKey: string, dependsOn: pulumi.Resource[]): command.remote.Command {
    const { name, args } = s;
    return remoteStep(
        `${name}-upgrade`,
        args.host,
        {
            create:
                installScript +
                renderUpgradeScript({
                    venvDir: args.venvDir,
                    versionsDir: args.versionsDir,
                    key: versionKey,
                    configFile: s.configFile,
                    serverDir: args.settings.serverDir,
                    serviceUser: args.serviceUser,
                    readyTimeout: 600,
                    ...args.upgrade,
                    replica: s.replica !== undefined,
                }),
        },
        { parent: s.parent, dependsOn },
    );
}
