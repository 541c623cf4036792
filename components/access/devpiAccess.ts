/**
 * devpi's root password, users and indexes: managed on the primary only (replicas receive them
 * through replication). Bases come before the indexes that use them: devpi refuses a base
 * that does not exist.
 */
import * as pulumi from "@pulumi/pulumi";
import { DevpiConfig } from "../../config";
import { RemoteHost } from "../common/remoteStep";
import { ApiTarget } from "./devpiApi";
import { DevpiIndex } from "./devpiIndex";
import { DevpiRootPassword } from "./devpiRootPassword";
import { DevpiUser } from "./devpiUser";

/** Creates root's password, every user and every index; returns the indexes (the health check waits for them). */
export function declareAccess(
    cfg: Pick<DevpiConfig, "rootPassword" | "users" | "indexes">,
    h: { remote: RemoteHost; api: ApiTarget; server: { versionKey: string }; supervisor: pulumi.Resource },
): DevpiIndex[] {
    const { remote: host, api } = h;
    const serverRevision = h.server.versionKey;
    const rootPassword = new DevpiRootPassword("root-password", { host, api, serverRevision, password: pulumi.secret(cfg.rootPassword) }, { dependsOn: [h.supervisor] });

    const users = new Map<string, pulumi.Resource>([["root", rootPassword]]);
    for (const u of cfg.users) {
        users.set(
            u.name,
            new DevpiUser(`user-${u.name}`, { host, api, serverRevision, username: u.name, password: pulumi.secret(u.password), email: u.email }, { dependsOn: [rootPassword] }),
        );
    }

    const indexes = new Map<string, DevpiIndex>();
    const createIndex = (name: string): DevpiIndex => {
        const existing = indexes.get(name);
        if (existing) return existing;
        const ix = cfg.indexes.find((i) => i.name === name)!;
        const bases = ix.bases.filter((b) => b !== "root/pypi").map(createIndex);
        const created = new DevpiIndex(
            `index-${ix.name}`,
            { host, api, serverRevision, indexName: ix.name, bases: ix.bases, volatile: ix.volatile, aclUpload: ix.aclUpload, mirrorWhitelist: ix.mirrorWhitelist },
            { dependsOn: [users.get(ix.owner)!, ...bases] },
        );
        indexes.set(name, created);
        return created;
    };
    cfg.indexes.forEach((i) => createIndex(i.name));
    return [...indexes.values()];
}
