/**
 * devpi's root password, users and indexes: managed on the primary only (replicas receive them
 * through replication). Bases come before the indexes that use them: devpi refuses a base
 * that does not exist.
 */
import * as pulumi from "@pulumi/pulumi";
import { IndexConfig, TokenConfig } from "../../config/types";
import { RemoteHost } from "../common/remoteStep";
import { MIRROR_INDEX } from "../constants";
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
    tokens: TokenConfig[];
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
export function declareAccess(
    cfg: AccessSettings,
    h: { remote: RemoteHost; api: ApiTarget; server: { versionKey: string }; supervisor: pulumi.Resource; opts: pulumi.ComponentResourceOptions },
    namePrefix = "",
    now = Date.now(),
): DeclaredAccess {
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

    const indexes = new Map<string, DevpiIndex>();
    const createIndex = (name: string): DevpiIndex => {
        const existing = indexes.get(name);
        if (existing) return existing;
        const ix = cfg.indexes.find((i) => i.name === name)!;
        const bases = ix.bases.filter((b) => b !== MIRROR_INDEX).map(createIndex);
        const created = new DevpiIndex(
            `${namePrefix}index-${ix.name}`,
            { host, api, serverRevision, indexName: ix.name, bases: ix.bases, volatile: ix.volatile, aclUpload: ix.aclUpload, mirrorWhitelist: ix.mirrorWhitelist },
            { ...opts, dependsOn: [users.get(ix.owner)!, ...bases] },
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
