import * as pulumi from "@pulumi/pulumi";
import { ApiTarget, renderApiScript } from "./devpiApi";
import { RemoteHost, remoteStep } from "../common/remoteStep";
import { MIRROR_INDEX } from "../constants";
import { MirrorConfig } from "../../config/types";
import { READ_ACL_KEY } from "../devpi/readAclPlugin";

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
    /**
     * Who may read (devpi/readAclPlugin.ts): a list (empty: every user who may read at all) when
     * the server has the read plugin, which it has while any index declares readers; unset otherwise.
     */
    aclRead?: string[];
    /** Set for a mirror index (root/pypi included): what it follows. The upload settings above are then unused. */
    mirror?: MirrorConfig;
}

/** The settings sent to devpi for an index (devpi's own key names). */
export function indexSpec(a: Pick<DevpiIndexArgs, "bases" | "volatile" | "aclUpload" | "mirrorWhitelist" | "aclRead">): Record<string, unknown> {
    return {
        bases: a.bases ?? [MIRROR_INDEX],
        volatile: a.volatile ?? false,
        acl_upload: a.aclUpload,
        mirror_whitelist: a.mirrorWhitelist ?? [],
        ...(a.aclRead === undefined ? {} : { [READ_ACL_KEY]: a.aclRead }),
    };
}

/** The settings sent to devpi for a mirror index: devpi's `mirror_*` keys, only those that differ from devpi's defaults. */
export function mirrorSpec(m: MirrorConfig): Record<string, unknown> {
    return {
        mirror_url: m.url,
        ...(m.webUrlFmt === undefined ? {} : { mirror_web_url_fmt: m.webUrlFmt }),
        ...(m.projectList ? {} : { mirror_no_project_list: true }),
        ...(m.useExternalUrls ? { mirror_use_external_urls: true } : {}),
        ...(m.ignoreSerialHeader ? { mirror_ignore_serial_header: true } : {}),
        ...(m.cacheExpiry === undefined ? {} : { mirror_cache_expiry: m.cacheExpiry }),
    };
}

/**
 * A devpi index, created or updated over the HTTP API as root. Removing it from config deletes
 * it only when it holds no projects; an index with uploads is always kept, and the step says
 * how to delete it by hand. A mirror index (root/pypi too) gets its `mirror_*` settings instead;
 * removing one deletes its cache (root/pypi stays).
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
                create: renderApiScript(args.api, args.mirror ? "mirror-ensure" : "index-ensure", args.indexName),
                rerunWhen: { label: "verified against", value: args.serverRevision },
                delete: renderApiScript(args.api, args.mirror ? "mirror-delete" : "index-delete", args.indexName),
                stdin: JSON.stringify(args.mirror ? mirrorSpec(args.mirror) : indexSpec(args)),
            },
            { parent: this },
        );
        this.ready = step.stdout;
        this.registerOutputs({ ready: this.ready });
    }
}
