import * as pulumi from "@pulumi/pulumi";
import { caAndCredential, ReadCredential } from "../common/readCredential";
import { RemoteHost, remoteStep } from "../common/remoteStep";
import { renderReplicaResyncScript, ReplicaResyncSettings } from "./replicaResyncScript";

export interface ReplicaResyncArgs {
    host: RemoteHost;
    settings: Omit<ReplicaResyncSettings, "primaryUrl"> & { primaryUrl: pulumi.Input<string> };
    /** CA bundle (PEM) that verifies the primary's certificate; empty means the system roots. */
    primaryCaPem: pulumi.Input<string>;
    /** Where reads need a user: whom to read the primary's status as (on stdin with the CA). */
    readCredential?: ReadCredential;
}

/**
 * On a replica, after its devpi runs and its primary is healthy: makes sure the replica follows
 * the primary's current identity, re-syncing it from scratch when the primary was rebuilt by
 * export/import (see ./replicaResyncScript). Runs again whenever the primary's or the replica's
 * devpi version changes (`settings.revision`); leaves nothing on the server but, after a
 * re-sync, the replica's previous data as SERVERDIR.pre-resync-STAMP.
 */
export class ReplicaResync extends pulumi.ComponentResource {
    public readonly result: pulumi.Output<string>;

    constructor(name: string, args: ReplicaResyncArgs, opts?: pulumi.ComponentResourceOptions) {
        super("devpi:index:ReplicaResync", name, {}, opts);
        const step = remoteStep(
            `${name}-identity`,
            args.host,
            {
                create: pulumi.output(args.settings.primaryUrl).apply((primaryUrl) => renderReplicaResyncScript({ ...args.settings, primaryUrl })),
                ...caAndCredential(args.primaryCaPem, args.readCredential),
            },
            { parent: this },
        );
        this.result = step.stdout;
        this.registerOutputs({ result: this.result });
    }
}
