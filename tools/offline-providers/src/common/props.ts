// Helpers for the raw property values that @pulumi/pulumi/provider hands to a
// provider: google.protobuf.Struct converted with toJavaScript(), so secrets,
// unknowns, assets, resource references and output values arrive as plain
// objects tagged with the engine's "special signature" keys.

/** The sentinel string the engine uses for a value that is not known yet (preview). */
export const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";
/** The key that marks an object as a special engine value. */
export const SIG_KEY = "4dabf18193072939515e22adb298388d";
export const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";
export const OUTPUT_VALUE_SIG = "d0e6a833031e9bbcd3f4e8bde6ca49a4";

export type Raw = unknown;
export type RawMap = Record<string, Raw>;

function isPlainObject(v: unknown): v is Record<string, unknown> {
    return typeof v === "object" && v !== null && !Array.isArray(v);
}

export function isSecret(v: Raw): v is { value: Raw } {
    return isPlainObject(v) && v[SIG_KEY] === SECRET_SIG;
}

function isOutputValue(v: Raw): v is Record<string, unknown> {
    return isPlainObject(v) && v[SIG_KEY] === OUTPUT_VALUE_SIG;
}

/** Wraps a value as a secret (idempotent). */
export function secret(v: Raw): Raw {
    if (v === undefined || v === null || isSecret(v)) {
        return v;
    }
    return { [SIG_KEY]: SECRET_SIG, value: v };
}

/** Strips one level of secret / output-value wrapping. Unknown output values become UNKNOWN. */
export function unwrap(v: Raw): Raw {
    if (isSecret(v)) {
        return unwrap(v.value);
    }
    if (isOutputValue(v)) {
        return "value" in v ? unwrap(v.value) : UNKNOWN;
    }
    return v;
}

/** True if the value is (or wraps) a secret anywhere at its top level. */
export function wasSecret(v: Raw): boolean {
    if (isSecret(v)) {
        return true;
    }
    if (isOutputValue(v)) {
        return v.secret === true || wasSecret(v.value);
    }
    return false;
}

/** Recursively removes secret / output-value wrappers, keeping other special values (assets, resources) as they are. */
export function deepUnwrap(v: Raw): Raw {
    const u = unwrap(v);
    if (Array.isArray(u)) {
        return u.map(deepUnwrap);
    }
    if (isPlainObject(u) && u[SIG_KEY] === undefined) {
        const out: RawMap = {};
        for (const [k, x] of Object.entries(u)) {
            out[k] = deepUnwrap(x);
        }
        return out;
    }
    return u;
}

/** True if the value contains a secret anywhere. */
export function containsSecret(v: Raw): boolean {
    if (wasSecret(v)) {
        return true;
    }
    if (Array.isArray(v)) {
        return v.some(containsSecret);
    }
    if (isPlainObject(v)) {
        return Object.values(v).some(containsSecret);
    }
    return false;
}

/** True if the value is, or contains, an unknown (computed) value. */
export function containsUnknown(v: Raw): boolean {
    const u = unwrap(v);
    if (u === UNKNOWN) {
        return true;
    }
    if (Array.isArray(u)) {
        return u.some(containsUnknown);
    }
    if (isPlainObject(u)) {
        return Object.values(u).some(containsUnknown);
    }
    return false;
}

/** null and undefined are both "not set" on the wire. */
export function isUnset(v: Raw): boolean {
    const u = unwrap(v);
    return u === undefined || u === null;
}

/**
 * Deep equality of two property values, ignoring secret wrappers (a value
 * that merely became secret, or stopped being secret, is not a change) and
 * treating null like a missing key. Unknown values are never equal to anything.
 */
export function deepEqual(a: Raw, b: Raw): boolean {
    const x = unwrap(a);
    const y = unwrap(b);
    if (x === UNKNOWN || y === UNKNOWN) {
        return false;
    }
    if (x === undefined || x === null || y === undefined || y === null) {
        return (x === undefined || x === null) && (y === undefined || y === null);
    }
    if (Array.isArray(x) || Array.isArray(y)) {
        if (!Array.isArray(x) || !Array.isArray(y) || x.length !== y.length) {
            return false;
        }
        return x.every((e, i) => deepEqual(e, y[i]));
    }
    if (isPlainObject(x) && isPlainObject(y)) {
        const keys = new Set([...Object.keys(x), ...Object.keys(y)]);
        for (const k of keys) {
            if (!deepEqual(x[k], y[k])) {
                return false;
            }
        }
        return true;
    }
    return x === y;
}

/** The resource type token of a URN: urn:pulumi:stack::project::[parent$]type::name. */
export function typeFromUrn(urn: string): string {
    const parts = urn.split("::");
    if (parts.length < 4) {
        throw new Error(`malformed URN ${JSON.stringify(urn)}`);
    }
    const qualified = parts[2];
    return qualified.split("$").pop() as string;
}

/** The resource name of a URN (everything after the type). */
export function nameFromUrn(urn: string): string {
    return urn.split("::").slice(3).join("::");
}

/** Reads an optional string input; throws on a value of the wrong type. */
export function optString(props: RawMap, key: string): string | undefined {
    const v = unwrap(props[key]);
    if (v === undefined || v === null) {
        return undefined;
    }
    if (typeof v !== "string") {
        throw new Error(`property ${key} must be a string, got ${typeof v}`);
    }
    return v;
}

export function optNumber(props: RawMap, key: string): number | undefined {
    const v = unwrap(props[key]);
    if (v === undefined || v === null) {
        return undefined;
    }
    if (typeof v !== "number") {
        throw new Error(`property ${key} must be a number, got ${typeof v}`);
    }
    return v;
}

export function optBool(props: RawMap, key: string): boolean | undefined {
    const v = unwrap(props[key]);
    if (v === undefined || v === null) {
        return undefined;
    }
    if (typeof v !== "boolean") {
        throw new Error(`property ${key} must be a boolean, got ${typeof v}`);
    }
    return v;
}

export function optStringList(props: RawMap, key: string): string[] | undefined {
    const v = deepUnwrap(props[key]);
    if (v === undefined || v === null) {
        return undefined;
    }
    if (!Array.isArray(v) || v.some((e) => typeof e !== "string")) {
        throw new Error(`property ${key} must be a list of strings`);
    }
    return v as string[];
}
