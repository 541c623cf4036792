import * as pulumi from "@pulumi/pulumi";
import { ApiTarget, renderApiScript } from "./devpiApi";
import { RemoteHost, remoteStep } from "../common/remoteStep";

export interface DevpiUserArgs {
    host: RemoteHost;
    api: ApiTarget;
    /** The active devpi-server version set; a change (an upgrade, maybe an import) re-applies this step. */
    serverRevision: string;
    /** devpi user name; it becomes the first part of the user's index URLs. */
    username: string;
    /** The user's password (secret); a change sets the new password. */
    password: pulumi.Input<string>;
    email?: string;
}

/**
 * A devpi user, created or updated (password, email) over the HTTP API as root. Removing it
 * from config deletes it, unless it still owns indexes with uploads: then it is kept and the
 * step says how to delete it by hand.
 */
export class DevpiUser extends pulumi.ComponentResource {
    public readonly username: string;
    /** Resolves once the user exists with the configured settings. */
    public readonly ready: pulumi.Output<string>;

    constructor(name: string, args: DevpiUserArgs, opts?: pulumi.ComponentResourceOptions) {
        super("devpi:index:DevpiUser", name, {}, opts);
        this.username = args.username;
        const step = remoteStep(
            `${name}-user`,
            args.host,
            {
                create: renderApiScript(args.api, "user-ensure", args.username),
                rerunWhen: { label: "verified against", value: args.serverRevision },
                delete: renderApiScript(args.api, "user-delete", args.username),
                stdin: pulumi.secret(pulumi.output(args.password).apply((password) => JSON.stringify({ password, email: args.email ?? null }))),
                secret: true,
            },
            { parent: this },
        );
        this.ready = step.stdout;
        this.registerOutputs({ ready: this.ready });
    }
}
