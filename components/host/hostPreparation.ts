import * as pulumi from "@pulumi/pulumi";
import { HOST_PACKAGES, HostLayout, renderPackagesScript, renderServiceUserScript } from "./hostPreparationScript";
import { RemoteHost, remoteStep } from "../common/remoteStep";

export interface HostPreparationArgs {
    host: RemoteHost;
    /** The service user, its home, devpi's data, backup, secret and config directories. */
    layout: HostLayout;
    /** Debian packages to install when missing. Default: nginx, supervisor, python3-venv, curl, cron. */
    packages?: readonly string[];
}

/**
 * Prepares the server: installs missing Debian packages (nginx, supervisor, python3-venv, ...),
 * removes nginx's default site, creates the service user (seed: `web`) and the directories devpi
 * writes to. Installed packages and created users stay on destroy.
 */
export class HostPreparation extends pulumi.ComponentResource {
    /** Resolves once packages and the service user are in place. */
    public readonly ready: pulumi.Output<string>;

    constructor(name: string, args: HostPreparationArgs, opts?: pulumi.ComponentResourceOptions) {
        super("devpi:index:HostPreparation", name, {}, opts);
        const packages = remoteStep(
            `${name}-packages`,
            args.host,
            { create: renderPackagesScript(args.packages ?? HOST_PACKAGES) },
            { parent: this },
        );
        const user = remoteStep(
            `${name}-service-user`,
            args.host,
            { create: renderServiceUserScript(args.layout) },
            { parent: this, dependsOn: [packages] },
        );
        this.ready = pulumi.all([packages.stdout, user.stdout]).apply(([p, u]) => `${p.trim()}; ${u.trim()}`);
        this.registerOutputs({ ready: this.ready });
    }
}
