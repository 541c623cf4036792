/**
 * devpi's root password, users and indexes: managed on the primary only (replicas receive them
 * through replication). Bases come before the indexes that use them: devpi refuses a base
 * that does not exist.
 */
import * as pulumi from "@pulumi/pulumi";
import { IndexConfig, MirrorConfig, TokenConfig } from "../../config/types";
import { RemoteHost } from "../common/remoteStep";
import { loopbackMirrorUrl, MirrorProxy, mirrorProxyUpstreams } from "../nginx/mirrorProxy";
import { ApiTarget } from "./devpiApi";
import { DevpiIndex } from "./devpiIndex";
import { DevpiRootPassword } from "./devpiRootPassword";
import { DevpiToken } from "./devpiToken";
import { DevpiUser } from "./devpiUser";

/** Root's password, the users, the indexes and the tokens to declare. */
export interface AccessSettings {
    rootPassword: pulumi.Input<string>;
    users: { name: string; password: pulumi.Input<string>; email?: string }[];
    indexes: IndexConfig[];
    /** Each credentialed mirror's upstream password (a secret), by index name. */
    mirrorPasswords: Map<string, pulumi.Input<string>>;
    tokens: TokenConfig[];
}

/** The primary, as the access steps need it. */
export interface AccessHost {
    remote: RemoteHost;
    api: ApiTarget;
    /** Its devpi-server: a new version set re-applies the steps. */
    server: { versionKey: string };
    supervisor: pulumi.Resource;
    /** The site (nginx installed and running): credentialed mirrors add their loopback proxies beside it. */
    nginx: pulumi.Resource;
    devpiPort: number;
    /** What upstream certificates are checked against. */
    caBundle: string;
    opts: pulumi.ComponentResourceOptions;
}

/** What {@link declareAccess} made: the indexes (the health check waits for them) and the tokens by name. */
export interface DeclaredAccess {
    indexes: DevpiIndex[];
    tokens: Map<string, DevpiToken>;
}

/**
 * Creates root's password, every user, every index and every token, named `namePrefix` +
 * `root-password`, `user-NAME`, `index-OWNER/NAME`, `token-NAME`, with `opts` (parent, aliases).
 * A token waits for its user and indexes; `now` (ms) picks its generation (see devpiToken.ts).
 */
export function declareAccess(cfg: AccessSettings, h: AccessHost, namePrefix = "", now = Date.now()): DeclaredAccess {
    const { remote: host, api, opts } = h;
    const serverRevision = h.server.versionKey;
    const rootPassword = new DevpiRootPassword(`${namePrefix}root-password`, { host, api, serverRevision, password: pulumi.secret(cfg.rootPassword) }, { ...opts, dependsOn: [h.supervisor] });

    const users = new Map<string, pulumi.Resource>([["root", rootPassword]]);
    for (const u of cfg.users) {
        users.set(
            u.name,
            new DevpiUser(`${namePrefix}user-${u.name}`, { host, api, serverRevision, username: u.name, password: pulumi.secret(u.password), email: u.email }, { ...opts, dependsOn: [rootPassword] }),
        );
    }

    // Credentialed upstreams are reached through nginx's loopback proxies (components/nginx/mirrorProxy.ts).
    const credentialed = cfg.indexes.filter((i) => i.mirror?.username !== undefined);
    const upstreams = mirrorProxyUpstreams(
        credentialed.map((i) => ({ index: i.name, url: i.mirror!.url })),
        h.devpiPort,
    );
    const proxy = upstreams.length
        ? new MirrorProxy(
              `${namePrefix}mirror-proxy`,
              {
                  host,
                  upstreams,
                  caBundle: h.caBundle,
                  credentials: new Map(credentialed.map((i) => [i.name, { username: i.mirror!.username!, password: cfg.mirrorPasswords.get(i.name) ?? i.mirror!.password ?? "" }])),
              },
              { ...opts, dependsOn: [h.nginx] },
          )
        : undefined;
    const devpiMirror = (ix: IndexConfig): MirrorConfig | undefined => {
        const u = upstreams.find((x) => x.index === ix.name);
        if (!ix.mirror || !u) return ix.mirror;
        // devpi gets the loopback address and never the credentials.
        return { ...ix.mirror, url: loopbackMirrorUrl(u), username: undefined, password: undefined };
    };

    // While any index declares readers the server has the read plugin, and every stage index states its own.
    const readAcls = cfg.indexes.some((i) => i.aclRead !== undefined);
    const indexes = new Map<string, DevpiIndex>();
    const createIndex = (name: string): DevpiIndex => {
        const existing = indexes.get(name);
        if (existing) return existing;
        const ix = cfg.indexes.find((i) => i.name === name)!;
        // root/pypi exists from devpi-init on; its settings step still goes first when it is a base.
        const bases = ix.bases.filter((b) => cfg.indexes.some((i) => i.name === b)).map(createIndex);
        const created = new DevpiIndex(
            `${namePrefix}index-${ix.name}`,
            {
                host,
                api,
                serverRevision,
                indexName: ix.name,
                bases: ix.bases,
                volatile: ix.volatile,
                aclUpload: ix.aclUpload,
                mirrorWhitelist: ix.mirrorWhitelist,
                aclRead: readAcls ? (ix.aclRead ?? []) : undefined,
                mirror: devpiMirror(ix),
            },
            { ...opts, dependsOn: [users.get(ix.owner)!, ...bases, ...(proxy && upstreams.some((u) => u.index === ix.name) ? [proxy] : [])] },
        );
        indexes.set(name, created);
        return created;
    };
    cfg.indexes.forEach((i) => createIndex(i.name));
    const tokens = new Map(
        cfg.tokens.map((t) => [
            t.name,
            new DevpiToken(`${namePrefix}token-${t.name}`, { host, api, token: t, now }, { ...opts, dependsOn: [users.get(t.user)!, ...t.indexes.flatMap((i) => indexes.get(i) ?? [])] }),
        ]),
    );
    return { indexes: [...indexes.values()], tokens };
}
