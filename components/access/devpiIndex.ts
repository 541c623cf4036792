import * as pulumi from "@pulumi/pulumi";
import { ApiTarget, renderApiScript } from "./devpiApi";
import { RemoteHost, remoteStep } from "../common/remoteStep";
import { MIRROR_INDEX } from "../constants";

export interface DevpiIndexArgs {
    host: RemoteHost;
    api: ApiTarget;
    /** The active devpi-server version set; a change (an upgrade, maybe an import) re-applies this step. */
    serverRevision: string;
    /** `USER/INDEX`. */
    indexName: string;
    /** Default `["root/pypi"]`, so packages from PyPI install through the index. */
    bases?: string[];
    /** Default false (the seed's `volatile=False`): uploaded versions cannot be overwritten. */
    volatile?: boolean;
    /** Users allowed to upload. Default: the owner. */
    aclUpload: string[];
    mirrorWhitelist?: string[];
}

/** The settings sent to devpi for an index (devpi's own key names). */
export function indexSpec(a: Pick<DevpiIndexArgs, "bases" | "volatile" | "aclUpload" | "mirrorWhitelist">): Record<string, unknown> {
    return {
        bases: a.bases ?? [MIRROR_INDEX],
        volatile: a.volatile ?? false,
        acl_upload: a.aclUpload,
        mirror_whitelist: a.mirrorWhitelist ?? [],
    };
}

/**
 * A devpi index, created or updated over the HTTP API as root. Removing it from config deletes
 * it only when it holds no projects; an index with uploads is always kept, and the step says
 * how to delete it by hand.
 */
export class DevpiIndex extends pulumi.ComponentResource {
    public readonly indexName: string;
    /** Resolves once the index exists with the configured settings. */
    public readonly ready: pulumi.Output<string>;

    constructor(name: string, args: DevpiIndexArgs, opts?: pulumi.ComponentResourceOptions) {
        super("devpi:index:DevpiIndex", name, {}, opts);
        this.indexName = args.indexName;
        const step = remoteStep(
            `${name}-index`,
            args.host,
            {
                create: renderApiScript(args.api, "index-ensure", args.indexName),
                rerunWhen: { label: "verified against", value: args.serverRevision },
                delete: renderApiScript(args.api, "index-delete", args.indexName),
                stdin: JSON.stringify(indexSpec(args)),
            },
            { parent: this },
        );
        this.ready = step.stdout;
        this.registerOutputs({ ready: this.ready });
    }
}
