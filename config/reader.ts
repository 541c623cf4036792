/** Reads raw stack config values (strings, as the CLI passes them) with the rules of each kind of key. */
import * as fs from "node:fs";
import * as path from "node:path";
import { ConfigError, fail } from "./errors";
import { RawConfigGetter } from "./types";
import { ABS_PATH_RE, PathUse, SYSTEM_DIRS } from "./rules";

export class Reader {
    constructor(private readonly raw: RawConfigGetter) {}

    str(key: string, def?: string): string {
        const v = this.raw(key);
        if (v === undefined || v === "") {
            if (def === undefined) {
                throw new ConfigError(`devpi:${key} is required but not set: set it with \`pulumi config set ${key} VALUE\``);
            }
            return def;
        }
        return v;
    }

    optStr(key: string): string | undefined {
        const v = this.raw(key);
        return v === undefined || v === "" ? undefined : v;
    }

    int(key: string, def: number, min: number, max: number): number {
        const v = this.raw(key);
        if (v === undefined || v === "") return def;
        if (!/^-?\d+$/.test(v.trim())) fail(key, v, `must be an integer from ${min} to ${max}`);
        const n = Number(v.trim());
        if (n < min || n > max) fail(key, n, `must be an integer from ${min} to ${max}`);
        return n;
    }

    bool(key: string, def: boolean): boolean {
        const v = this.raw(key);
        if (v === undefined || v === "") return def;
        if (v === "true") return true;
        if (v === "false") return false;
        return fail(key, v, "must be true or false");
    }

    json(key: string): unknown {
        const v = this.raw(key);
        if (v === undefined || v === "") return undefined;
        try {
            return JSON.parse(v);
        } catch {
            return fail(key, v, "must be structured YAML/JSON (see README: Configuration)");
        }
    }

    stringList(key: string, check?: (s: string) => boolean, allowed?: string): string[] {
        const v = this.json(key);
        if (v === undefined) return [];
        if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) {
            fail(key, v, "must be a list of strings");
        }
        const list = v;
        for (const item of list) {
            if (check && !check(item)) fail(key, item, allowed ?? "invalid list item");
        }
        return list;
    }

    /**
     * An absolute path: ordinary characters only (it is interpolated into shell scripts and
     * configs), normalised (no `.`, `..` or empty segments, so comparisons between keys cannot be
     * dodged; trailing slashes are dropped) and not `/`. `use` adds the system-directory rules
     * ({@link SYSTEM_DIRS}) for what the program creates from it as root. Returns the path
     * without trailing slashes.
     */
    path(key: string, def: string, use: PathUse): string {
        const raw = this.str(key, def);
        if (!ABS_PATH_RE.test(raw)) fail(key, raw, "must be an absolute path of letters, digits and . _ - + /");
        const p = raw.replace(/\/+$/, "");
        if (p === "") fail(key, raw, "must be an absolute path below /, not / itself");
        const odd = p
            .slice(1)
            .split("/")
            .find((s) => s === "" || s === "." || s === "..");
        if (odd !== undefined) {
            fail(key, raw, `must be a normalised absolute path: no '.' or '..' segments and no empty ones ('//'); found ${odd === "" ? "'//'" : `'${odd}'`}`);
        }
        const parent = path.posix.dirname(p);
        if ((use === "dir" || use === "dir+home") && SYSTEM_DIRS.includes(p)) {
            fail(key, raw, `must not be a system directory: the program creates ${key} as root and sets its owner and mode; use a directory of its own, e.g. ${def}`);
        }
        if (use === "dir+home" && SYSTEM_DIRS.includes(parent)) {
            fail(
                key,
                raw,
                `homeDir = parent of serverDir (${parent}) becomes the service user's (its home directory, created and chowned to it as root), and ${parent} is a system directory: use a directory two levels below one, e.g. ${p}/data or /srv/devpi/data`,
            );
        }
        if (use === "file" && SYSTEM_DIRS.includes(parent)) {
            fail(key, raw, `its directory ${parent} is a system directory, which the program would create as root and set the owner and mode of: use a file in a directory of its own, e.g. ${def}`);
        }
        return p;
    }
}

export function readLocalFile(key: string, file: string): string {
    const resolved = path.resolve(file);
    try {
        return fs.readFileSync(resolved, "utf8");
    } catch (e) {
        return fail(key, file, `must name a readable local file (${(e as Error).message})`);
    }
}
