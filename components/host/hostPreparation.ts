import * as pulumi from "@pulumi/pulumi";
import { HOST_PACKAGES, HostLayout, PYTHON_PACKAGES, renderPackagesScript, renderServiceUserScript } from "./hostPreparationScript";
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
 *
 * The packages come in two apt runs, one after the other (apt and dpkg take turns anyway): first
 * what devpi's virtualenv needs ({@link PYTHON_PACKAGES}, step `NAME-packages`), then the rest
 * (nginx, supervisor, ..., step `NAME-service-packages`). So pip can install devpi into its
 * virtualenv while apt installs the rest: whatever needs only the virtualenv depends on
 * {@link python}, the rest on the whole component.
 */
export class HostPreparation extends pulumi.ComponentResource {
    /** Resolves once packages and the service user are in place. */
    public readonly ready: pulumi.Output<string>;
    /** python3-venv (and what comes with it) and the service user: enough for devpi's virtualenv. */
    public readonly python: pulumi.Resource[];

    constructor(name: string, args: HostPreparationArgs, opts?: pulumi.ComponentResourceOptions) {
        super("devpi:index:HostPreparation", name, {}, opts);
        const all = args.packages ?? HOST_PACKAGES;
        const first = all.filter((p) => (PYTHON_PACKAGES as readonly string[]).includes(p));
        const rest = all.filter((p) => !first.includes(p));
        const packages = remoteStep(`${name}-packages`, args.host, { create: renderPackagesScript(first) }, { parent: this });
        const user = remoteStep(`${name}-service-user`, args.host, { create: renderServiceUserScript(args.layout) }, { parent: this, dependsOn: [packages] });
        // After the user (Debian's cron adds a group in its postinst: no two writers of /etc/group at once).
        const services = remoteStep(`${name}-service-packages`, args.host, { create: renderPackagesScript(rest) }, { parent: this, dependsOn: [user] });
        this.python = [packages, user];
        this.ready = pulumi.all([packages.stdout, services.stdout, user.stdout]).apply(([p, s, u]) => `${p.trim()}; ${s.trim()}; ${u.trim()}`);
        this.registerOutputs({ ready: this.ready });
    }
}
