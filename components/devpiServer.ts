import * as pulumi from "@pulumi/pulumi";
import {
    DevpiServerSettings,
    InstallSettings,
    renderConfigScript,
    renderDevpiServerYaml,
    renderInitScript,
    renderInstallScript,
    renderUninstallScript,
} from "./devpiServerConfig";
import { RemoteHost, remoteStep } from "./remoteStep";
import { contentHash } from "./shell";

export interface DevpiServerArgs {
    host: RemoteHost;
    /** Virtualenv path (seed: /home/web/repo/devpi/venv_devpi); root-owned. */
    venvDir: string;
    /** Pinned versions; devpi-web is installed unless `web` is false. */
    install: Omit<InstallSettings, "venvDir">;
    /** devpi-server.yml settings (serverdir, host, port, secretfile, restrict-modify, ...). */
    settings: DevpiServerSettings;
    /** Directory of devpi-server.yml. */
    configDir: string;
    serviceUser: string;
}

/**
 * devpi-server on the server: a virtualenv with the pinned devpi-server (and devpi-web),
 * `CONFIGDIR/devpi-server.yml`, a persistent secret file, and `devpi-init` run exactly once.
 * On destroy the virtualenv goes; the server directory, secret and backups stay.
 */
export class DevpiServer extends pulumi.ComponentResource {
    public readonly configFile: string;
    /** Changes whenever devpi-server must restart: new versions or a new config file. */
    public readonly restartToken: string;
    /** Installed versions as pip reports them. */
    public readonly versions: pulumi.Output<string>;
    /** Resolves once the server directory is initialised. */
    public readonly initialised: pulumi.Output<string>;

    constructor(name: string, args: DevpiServerArgs, opts?: pulumi.ComponentResourceOptions) {
        super("devpi:index:DevpiServer", name, {}, opts);
        this.configFile = `${args.configDir}/devpi-server.yml`;
        const yaml = renderDevpiServerYaml(args.settings);
        const installSettings = { ...args.install, venvDir: args.venvDir };
        const installScript = renderInstallScript(installSettings);

        const venv = remoteStep(
            `${name}-venv`,
            args.host,
            { create: installScript, delete: renderUninstallScript(args.venvDir) },
            { parent: this },
        );
        const config = remoteStep(
            `${name}-config`,
            args.host,
            {
                create: renderConfigScript({
                    configFile: this.configFile,
                    yaml,
                    secretFile: args.settings.secretFile,
                    serviceUser: args.serviceUser,
                    venvDir: args.venvDir,
                }),
            },
            { parent: this, dependsOn: [venv] },
        );
        const init = remoteStep(
            `${name}-init`,
            args.host,
            {
                create: renderInitScript({
                    configFile: this.configFile,
                    serverDir: args.settings.serverDir,
                    serviceUser: args.serviceUser,
                    venvDir: args.venvDir,
                }),
            },
            { parent: this, dependsOn: [config] },
        );
        this.restartToken = contentHash(installScript, yaml);
        this.versions = venv.stdout;
        this.initialised = init.stdout;
        this.registerOutputs({ versions: this.versions, initialised: this.initialised });
    }
}
