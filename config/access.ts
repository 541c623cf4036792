/** `devpi:users` and `devpi:indexes`: devpi's users and their indexes. */
import { MIRROR_INDEX } from "../components/constants";
import { ConfigError, fail } from "./errors";
import { Reader } from "./reader";
import { NAME_RE } from "./rules";
import { IndexConfig, UserConfig } from "./types";

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

export function parseIndexes(r: Reader, users: UserConfig[]): IndexConfig[] {
    const v = r.json("indexes");
    if (v === undefined) return [];
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
        fail("indexes", v, "must be a map of USER/INDEX to {bases, volatile, acl_upload}");
    }
    const owners = new Set(["root", ...users.map((u) => u.name)]);
    const entries = Object.entries(v as Record<string, unknown>);
    const declared = new Set(entries.map(([k]) => k));
    const indexes: IndexConfig[] = [];
    for (const [name, spec] of entries) {
        const parts = name.split("/");
        if (parts.length !== 2 || !NAME_RE.test(parts[0]) || !NAME_RE.test(parts[1]) || parts[1].startsWith("+")) {
            fail(`indexes.${name}`, name, "index names must be USER/INDEX, each part matching [a-zA-Z0-9][a-zA-Z0-9._-]{0,63}");
        }
        const [owner, index] = parts;
        if (name === MIRROR_INDEX) {
            fail(`indexes.${name}`, name, "root/pypi is devpi's built-in PyPI mirror and is not managed here");
        }
        if (!owners.has(owner)) {
            fail(`indexes.${name}`, name, `owner '${owner}' is not a declared user (declared: ${[...owners].join(", ")})`);
        }
        const s = (spec ?? {}) as Record<string, unknown>;
        if (typeof s !== "object" || Array.isArray(s)) fail(`indexes.${name}`, spec, "must be an object");
        const allowedKeys = ["bases", "volatile", "acl_upload", "mirror_whitelist"];
        for (const k of Object.keys(s)) {
            if (!allowedKeys.includes(k)) fail(`indexes.${name}.${k}`, s[k], `unknown key; allowed: ${allowedKeys.join(", ")}`);
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
            if (b !== MIRROR_INDEX && !declared.has(b)) {
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
        indexes.push({ name, owner, index, bases, volatile: s.volatile === true, aclUpload, mirrorWhitelist });
    }
    // Bases must form no cycle: devpi resolves them recursively.
    const byName = new Map(indexes.map((i) => [i.name, i]));
    const visiting = new Set<string>();
    const done = new Set<string>();
    const visit = (n: string, trail: string[]): void => {
        if (done.has(n) || n === MIRROR_INDEX) return;
        if (visiting.has(n)) fail(`indexes.${n}.bases`, [...trail, n].join(" -> "), "bases must not form a cycle");
        visiting.add(n);
        for (const b of byName.get(n)?.bases ?? []) visit(b, [...trail, n]);
        visiting.delete(n);
        done.add(n);
    };
    for (const i of indexes) visit(i.name, []);
    return indexes;
}
