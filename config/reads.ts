/** Per-index reads (`acl_read` in `devpi:indexes`): who may read which index, checked against uploads, bases and tokens. */
import { fail } from "./errors";
import { IndexConfig, TokenConfig } from "./types";

/**
 * An index's `acl_read`: declared users (or root) and `:AUTHENTICATED:`, at least one; unset (undefined)
 * lets every user read. Never `:ANONYMOUS:`: anonymous reads are all or nothing (devpi:reads).
 */
export function parseAclRead(name: string, v: unknown, owners: Set<string>): string[] | undefined {
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || !v.every((i) => typeof i === "string")) fail(`indexes.${name}.acl_read`, v, "must be a list of strings");
    if (v.length === 0) fail(`indexes.${name}.acl_read`, v, "must name at least one reader (leave acl_read out to let every user read)");
    for (const a of v) {
        if (!owners.has(a) && a !== ":AUTHENTICATED:") {
            fail(`indexes.${name}.acl_read`, a, `must name declared users (${[...owners].join(", ")}) or :AUTHENTICATED: (reads are never anonymous per index: see devpi:reads)`);
        }
    }
    return v;
}

/** Whether `user` may read `ix` by its acl_read (root always may; an index without acl_read lets every user read). */
export function mayRead(ix: IndexConfig, user: string): boolean {
    return ix.aclRead === undefined || user === "root" || ix.aclRead.includes(user) || ix.aclRead.includes(":AUTHENTICATED:");
}

/**
 * Per-index reads (`acl_read`) against the rest: they need reads `authenticated` (devpi-lockdown
 * asks devpi before nginx serves anything); every reader of an index must be able to read its
 * bases (devpi serves a base's packages through it); uploaders must be readers (devpi checks
 * uploads through nginx's read check too); a token's user must be able to read its indexes.
 */
export function checkReadAcls(indexes: IndexConfig[], tokens: TokenConfig[], reads: string): void {
    const byName = new Map(indexes.map((i) => [i.name, i]));
    for (const ix of indexes) {
        if (ix.aclRead === undefined) continue;
        if (reads !== "authenticated") {
            fail(`indexes.${ix.name}.acl_read`, ix.aclRead, "needs devpi:reads authenticated: with anonymous reads anyone may read every index");
        }
        for (const a of ix.aclUpload) {
            const ok = a.startsWith(":") ? a === ":AUTHENTICATED:" && ix.aclRead.includes(":AUTHENTICATED:") : mayRead(ix, a);
            if (!ok) fail(`indexes.${ix.name}.acl_upload`, a, `may upload but not read ${ix.name} (its acl_read: ${ix.aclRead.join(", ")}): add it to acl_read`);
        }
    }
    for (const ix of indexes) {
        for (const b of ix.bases) {
            const base = byName.get(b);
            if (!base?.aclRead) continue;
            const readers = ix.aclRead ?? [":AUTHENTICATED:"];
            for (const r of readers) {
                const ok = r === ":AUTHENTICATED:" ? base.aclRead.includes(":AUTHENTICATED:") : mayRead(base, r);
                if (!ok) {
                    fail(
                        `indexes.${ix.name}.bases`,
                        b,
                        `${r === ":AUTHENTICATED:" ? "every user" : r} may read ${ix.name} (acl_read: ${ix.aclRead?.join(", ") ?? "unset"}) but not its base ${b} (acl_read: ${base.aclRead.join(", ")}), whose packages it serves`,
                    );
                }
            }
        }
    }
    for (const t of tokens) {
        for (const i of t.indexes) {
            const ix = byName.get(i);
            if (ix && !mayRead(ix, t.user)) fail(`tokens.${t.name}.indexes`, i, `user ${t.user} may not read ${i} (its acl_read: ${ix.aclRead?.join(", ")}), so a token for it could not read`);
        }
    }
}
