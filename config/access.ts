/** `devpi:users`, `devpi:indexes` and `devpi:tokens`: devpi's users, their indexes and scoped tokens. */
import { MIRROR_INDEX } from "../components/constants";
import { ConfigError, fail } from "./errors";
import { Reader } from "./reader";
import { NAME_RE } from "./rules";
import { defaultPypiMirror, fitMirrorToServer, MIRROR_KEYS, parseMirror } from "./mirrors";
import { parseAclRead } from "./reads";
import { IndexConfig, TokenConfig, TokenScope, UserConfig } from "./types";

export { DEFAULT_PROJECT_LIST, PYPI_SIMPLE_URL, PYPI_WEB_URL_FMT } from "./mirrors";
export { checkReadAcls } from "./reads";

export function parseUsers(r: Reader): UserConfig[] {
    const v = r.json("users");
    if (v === undefined) return [];
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
        fail("users", v, "must be a map of user name to {password, email}");
    }
    const users: UserConfig[] = [];
    for (const [name, spec] of Object.entries(v as Record<string, unknown>)) {
        if (!NAME_RE.test(name) || name === "root") {
            fail(`users.${name}`, name, "user names must match [a-zA-Z0-9][a-zA-Z0-9._-]{0,63} and not be 'root' (see rootPassword)");
        }
        if (typeof spec !== "object" || spec === null || Array.isArray(spec)) {
            fail(`users.${name}`, spec, "must be an object with a secret 'password' and an optional 'email'");
        }
        const s = spec as Record<string, unknown>;
        for (const k of Object.keys(s)) {
            if (!["password", "email"].includes(k)) fail(`users.${name}.${k}`, s[k], "unknown key; allowed: password, email");
        }
        if (typeof s.password !== "string" || s.password.length === 0) {
            throw new ConfigError(`devpi:users.${name}.password is required: set it with \`pulumi config set --secret --path 'users.${name}.password' VALUE\``);
        }
        if (s.email !== undefined && (typeof s.email !== "string" || !/^[^@\s]+@[^@\s]+$/.test(s.email))) {
            fail(`users.${name}.email`, s.email, "must be an e-mail address like name@example.com");
        }
        users.push({ name, password: s.password, email: s.email });
    }
    return users;
}

/**
 * `devpi:indexes`: a map of USER/INDEX to its settings. A `stage` index (the default) holds uploads;
 * a `mirror` index caches another simple-API registry and can be a base; root/pypi may be declared
 * with mirror settings only. root/pypi is in the result whether declared or not (with PyPI and the
 * project-list default when not), first. With `serverVersion`, mirror keys that version does not
 * know are refused (see {@link fitMirrorToServer}).
 */
const STAGE_KEYS = ["type", "bases", "volatile", "acl_upload", "acl_read", "mirror_whitelist"];

/** Refuses keys an index of its type does not take, naming the key and what is allowed. */
function checkIndexKeys(name: string, type: "stage" | "mirror", s: Record<string, unknown>): void {
    const allowedKeys = type === "mirror" ? MIRROR_KEYS : STAGE_KEYS;
    for (const k of Object.keys(s)) {
        if (allowedKeys.includes(k)) continue;
        const why =
            type === "mirror" && k === "acl_read"
                ? "readers are set per stage index; a mirror's cache is open to everyone who may read at all (devpi:reads)"
                : type === "mirror" && STAGE_KEYS.includes(k)
                  ? `a mirror index holds no uploads and has no ${k}`
                  : "unknown key";
        fail(`indexes.${name}.${k}`, s[k], `${why}; allowed for a ${type} index: ${allowedKeys.join(", ")}`);
    }
}

export function parseIndexes(r: Reader, users: UserConfig[], serverVersion?: string): IndexConfig[] {
    const v = r.json("indexes") ?? {};
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
        fail("indexes", v, "must be a map of USER/INDEX to {bases, volatile, acl_upload} (or {type: mirror, mirror_url, ...})");
    }
    const owners = new Set(["root", ...users.map((u) => u.name)]);
    const entries = Object.entries(v as Record<string, unknown>);
    const declared = new Set([MIRROR_INDEX, ...entries.map(([k]) => k)]);
    const indexes: IndexConfig[] = [];
    for (const [name, spec] of entries) {
        const parts = name.split("/");
        if (parts.length !== 2 || !NAME_RE.test(parts[0]) || !NAME_RE.test(parts[1]) || parts[1].startsWith("+")) {
            fail(`indexes.${name}`, name, "index names must be USER/INDEX, each part matching [a-zA-Z0-9][a-zA-Z0-9._-]{0,63}");
        }
        const [owner, index] = parts;
        if (!owners.has(owner)) {
            fail(`indexes.${name}`, name, `owner '${owner}' is not a declared user (declared: ${[...owners].join(", ")})`);
        }
        const s = (spec ?? {}) as Record<string, unknown>;
        if (typeof s !== "object" || Array.isArray(s)) fail(`indexes.${name}`, spec, "must be an object");
        const type = s.type ?? (name === MIRROR_INDEX ? "mirror" : "stage");
        if (type !== "stage" && type !== "mirror") fail(`indexes.${name}.type`, type, "must be stage (uploads) or mirror (a cache of another registry)");
        if (name === MIRROR_INDEX && type !== "mirror") fail(`indexes.${name}.type`, type, "root/pypi is devpi's built-in PyPI mirror: only its mirror settings can be set");
        checkIndexKeys(name, type, s);
        if (type === "mirror") {
            indexes.push({ name, owner, index, type, bases: [], volatile: true, aclUpload: [], mirrorWhitelist: [], mirror: parseMirror(name, s) });
            continue;
        }
        const list = (k: string, def: string[]): string[] => {
            const x = s[k];
            if (x === undefined) return def;
            if (!Array.isArray(x) || !x.every((i) => typeof i === "string")) fail(`indexes.${name}.${k}`, x, "must be a list of strings");
            return x;
        };
        const bases = list("bases", [MIRROR_INDEX]);
        for (const b of bases) {
            if (b === name) fail(`indexes.${name}.bases`, b, "an index cannot be its own base");
            if (!declared.has(b)) {
                fail(`indexes.${name}.bases`, b, `must be root/pypi or an index declared in devpi:indexes (declared: ${[...declared].join(", ")})`);
            }
        }
        if (s.volatile !== undefined && typeof s.volatile !== "boolean") fail(`indexes.${name}.volatile`, s.volatile, "must be true or false");
        const aclUpload = list("acl_upload", [owner]);
        for (const a of aclUpload) {
            // devpi's special principals are spelled :NAME: (e.g. :ANONYMOUS:, :AUTHENTICATED:).
            if (!owners.has(a) && !/^:[A-Z]+:$/.test(a)) {
                fail(`indexes.${name}.acl_upload`, a, `must name declared users (${[...owners].join(", ")}) or a principal like :ANONYMOUS:`);
            }
        }
        const mirrorWhitelist = list("mirror_whitelist", []);
        for (const m of mirrorWhitelist) {
            if (!/^([a-zA-Z0-9][a-zA-Z0-9._-]*|\*)$/.test(m)) fail(`indexes.${name}.mirror_whitelist`, m, "must be project names or *");
        }
        const aclRead = parseAclRead(name, s.acl_read, owners);
        indexes.push({ name, owner, index, type, bases, volatile: s.volatile === true, aclUpload, mirrorWhitelist, ...(aclRead ? { aclRead } : {}) });
    }
    // Bases must form no cycle: devpi resolves them recursively.
    const byName = new Map(indexes.map((i) => [i.name, i]));
    const visiting = new Set<string>();
    const done = new Set<string>();
    const visit = (n: string, trail: string[]): void => {
        if (done.has(n)) return;
        if (visiting.has(n)) fail(`indexes.${n}.bases`, [...trail, n].join(" -> "), "bases must not form a cycle");
        visiting.add(n);
        for (const b of byName.get(n)?.bases ?? []) visit(b, [...trail, n]);
        visiting.delete(n);
        done.add(n);
    };
    for (const i of indexes) visit(i.name, []);
    const pypi = indexes.find((i) => i.name === MIRROR_INDEX) ?? defaultPypiMirror();
    const raw = v as Record<string, Record<string, unknown> | undefined>;
    return [pypi, ...indexes.filter((i) => i !== pypi)].map((i) => fitMirrorToServer(i, raw[i.name] ?? {}, serverVersion));
}

/** The index clients use unless told: the first stage index a user owns, else the first stage index, else root/pypi. */
export function defaultClientIndex(indexes: IndexConfig[]): string {
    const stages = indexes.filter((i) => i.type === "stage");
    return (stages.find((i) => i.owner !== "root") ?? stages[0])?.name ?? MIRROR_INDEX;
}

/** The shortest token lifetime (in days) accepted: one minute. */
export const MIN_TOKEN_DAYS = 1 / 1440;
/** The longest: devpi-tokens refuses more than a year to anyone but restrict-modify's users. */
export const MAX_TOKEN_DAYS = 365;
const TOKEN_KEYS = ["user", "scope", "indexes", "validDays", "renewBeforeDays"];
const SCOPES: TokenScope[] = ["read", "upload"];

/** A number of days; `pulumi config set --path` stores a fraction such as 0.5 as a string, so a numeric string counts. */
function tokenDays(key: string, v: unknown, def: number, min: number, max: number, rule: string): number {
    if (v === undefined) return def;
    const n = typeof v === "string" && /^\d+(\.\d+)?$/.test(v) ? Number(v) : v;
    if (typeof n !== "number" || !Number.isFinite(n) || n < min || n > max) fail(key, v, rule);
    return n;
}

/**
 * `devpi:tokens`: a map of token name to {user, scope, indexes, validDays, renewBeforeDays}. The user
 * must be root or declared; the indexes declared (or root/pypi for reads); an upload token's user must
 * be allowed to upload to each of its indexes.
 */
export function parseTokens(r: Reader, users: UserConfig[], indexes: IndexConfig[]): TokenConfig[] {
    const v = r.json("tokens");
    if (v === undefined) return [];
    if (typeof v !== "object" || v === null || Array.isArray(v)) fail("tokens", v, "must be a map of token name to {user, scope, indexes, validDays, renewBeforeDays}");
    const known = new Set(["root", ...users.map((u) => u.name)]);
    const byName = new Map(indexes.map((i) => [i.name, i]));
    const tokens: TokenConfig[] = [];
    for (const [name, spec] of Object.entries(v as Record<string, unknown>)) {
        if (!NAME_RE.test(name)) fail(`tokens.${name}`, name, "token names must match [a-zA-Z0-9][a-zA-Z0-9._-]{0,63}");
        if (typeof spec !== "object" || spec === null || Array.isArray(spec)) fail(`tokens.${name}`, spec, "must be an object {user, scope, indexes, validDays, renewBeforeDays}");
        const s = spec as Record<string, unknown>;
        for (const k of Object.keys(s)) if (!TOKEN_KEYS.includes(k)) fail(`tokens.${name}.${k}`, s[k], `unknown key; allowed: ${TOKEN_KEYS.join(", ")}`);
        if (typeof s.user !== "string" || !known.has(s.user)) fail(`tokens.${name}.user`, s.user, `must be root or a declared user (declared: ${[...known].join(", ")})`);
        const user = s.user;
        const scope = s.scope ?? "read";
        if (!SCOPES.includes(scope as TokenScope)) fail(`tokens.${name}.scope`, scope, "must be read (install only) or upload (install and upload)");
        const ixs = s.indexes;
        if (!Array.isArray(ixs) || ixs.length === 0 || !ixs.every((i) => typeof i === "string")) fail(`tokens.${name}.indexes`, ixs, "must be a non-empty list of USER/INDEX");
        for (const i of ixs) {
            const ix = byName.get(i);
            if (!ix && !(i === MIRROR_INDEX && scope === "read")) {
                fail(`tokens.${name}.indexes`, i, `must be an index declared in devpi:indexes${scope === "read" ? " or root/pypi" : ""} (declared: ${[...byName.keys()].join(", ") || "none"})`);
            }
            if (scope === "upload" && ix && !ix.aclUpload.some((a) => a === user || a === ":AUTHENTICATED:" || a === ":ANONYMOUS:")) {
                fail(`tokens.${name}.indexes`, i, `user ${user} may not upload to ${i} (its acl_upload: ${ix.aclUpload.join(", ")}), so an upload token for it could not upload`);
            }
        }
        const validDays = tokenDays(
            `tokens.${name}.validDays`,
            s.validDays,
            90,
            MIN_TOKEN_DAYS,
            MAX_TOKEN_DAYS,
            `must be a number of days from ${MIN_TOKEN_DAYS.toFixed(6)} (one minute) to ${MAX_TOKEN_DAYS}`,
        );
        const renewBeforeDays = tokenDays(
            `tokens.${name}.renewBeforeDays`,
            s.renewBeforeDays,
            Math.min(30, validDays / 3),
            0,
            MAX_TOKEN_DAYS,
            `must be a number of days, at least 0 and less than validDays (${validDays})`,
        );
        if (renewBeforeDays >= validDays) fail(`tokens.${name}.renewBeforeDays`, renewBeforeDays, `must be less than validDays (${validDays})`);
        tokens.push({ name, user, scope: scope as TokenScope, indexes: ixs, validDays, renewBeforeDays });
    }
    return tokens;
}
