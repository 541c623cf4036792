import * as pulumi from "@pulumi/pulumi";
import { ApiTarget, renderApiScript } from "./devpiApi";
import { RemoteHost, remoteStep } from "../common/remoteStep";

export interface DevpiRootPasswordArgs {
    host: RemoteHost;
    api: ApiTarget;
    /** The active devpi-server version set; a change (an upgrade, maybe an import) re-applies this step. */
    serverRevision: string;
    /** The password (secret). Changing it rotates root's password on the next `pulumi up`. */
    password: pulumi.Input<string>;
}

/**
 * devpi's root password, set over the HTTP API (devpi-passwd only reads a terminal). The
 * current password is kept in a root-only file on the server (`api.credentialFile`) so it can
 * be rotated and so user and index steps never need it on their stdin.
 */
export class DevpiRootPassword extends pulumi.ComponentResource {
    /** Resolves once root's password is the configured one. */
    public readonly applied: pulumi.Output<string>;

    constructor(name: string, args: DevpiRootPasswordArgs, opts?: pulumi.ComponentResourceOptions) {
        super("devpi:index:DevpiRootPassword", name, {}, opts);
        const step = remoteStep(
            `${name}-set`,
            args.host,
            {
                create: renderApiScript(args.api, "root-password"),
                rerunWhen: { label: "verified against", value: args.serverRevision },
                stdin: pulumi.secret(pulumi.output(args.password).apply((password) => JSON.stringify({ password }))),
                secret: true,
            },
            { parent: this },
        );
        this.applied = step.stdout;
        this.registerOutputs({ applied: this.applied });
    }
}
