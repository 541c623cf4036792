import * as pulumi from "@pulumi/pulumi";
import { HealthCheckSettings, renderHealthCheckScript, renderReplicaHealthCheckScript, ReplicaSyncSettings } from "./healthCheckScript";
import { RemoteHost, remoteStep } from "../common/remoteStep";
import { caAndCredential, ReadCredential } from "../common/readCredential";
import { contentHash } from "../common/shell";

export interface HealthCheckArgs {
    host: RemoteHost;
    settings: pulumi.Input<Omit<HealthCheckSettings, "certSha256" | "revision">>;
    /** sha256 of the certificate nginx must present. */
    certSha256: pulumi.Input<string>;
    /** CA certificate to trust (self-signed mode); empty means the system trust store. */
    caCertPem: pulumi.Input<string>;
    /** Anything whose change should re-run the check (rendered configs, versions). */
    revision: pulumi.Input<string>;
    /**
     * Where reads need a user (`devpi:reads authenticated`): the user the check reads as (root),
     * sent on stdin with the CA (so the step is secret); the check also makes sure an anonymous
     * read is refused.
     */
    readCredential?: ReadCredential;
    /** A replica: it must also have caught up with this primary. */
    replicaOf?: { primaryUrl: pulumi.Input<string>; timeout: number };
}

/**
 * The last step: on the server, devpi must answer through nginx over HTTPS with the expected
 * certificate, every index must answer, HTTP must redirect and /+changelog must be
 * blocked. A failure fails `pulumi up` and shows the tails of nginx's and devpi-server's logs.
 * Runs whenever anything it checks changed; leaves nothing on the server. On a replica it first
 * waits until the replica has caught up with the primary's serial (read in the same step).
 */
export class HealthCheck extends pulumi.ComponentResource {
    public readonly result: pulumi.Output<string>;

    constructor(name: string, args: HealthCheckArgs, opts?: pulumi.ComponentResourceOptions) {
        super("devpi:index:HealthCheck", name, {}, opts);
        const step = remoteStep(
            `${name}-https`,
            args.host,
            {
                create: pulumi.all([args.settings, args.certSha256, args.revision, args.replicaOf?.primaryUrl]).apply(([checked, certSha256, revision, primaryUrl]) => {
                    const settings = { ...checked, certSha256, revision: contentHash(revision, certSha256, JSON.stringify(checked)) };
                    const sync: ReplicaSyncSettings | undefined = args.replicaOf && primaryUrl !== undefined ? { primaryUrl, timeout: args.replicaOf.timeout } : undefined;
                    return sync ? renderReplicaHealthCheckScript(settings, sync) : renderHealthCheckScript(settings);
                }),
                ...caAndCredential(args.caCertPem, args.readCredential),
            },
            { parent: this },
        );
        this.result = step.stdout;
        this.registerOutputs({ result: this.result });
    }
}
