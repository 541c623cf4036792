// Pure (no I/O) parts of the command:remote:Command stand-in: input checking,
// diffing, and Go-compatible message formatting. Semantics follow
// pulumi-command v1.2.1 (pulumi-go-provider v1.3.0 "infer" defaults).

import type * as provider from "@pulumi/pulumi/provider";
import { RawMap, UNKNOWN, deepEqual, isUnset, secret, unwrap, wasSecret } from "../common/props";

/** Input properties of command:remote:Command, as the @pulumi/command 1.2.1 SDK sends them. */
export const COMMAND_INPUTS = [
    "addPreviousOutputInEnv",
    "connection",
    "create",
    "delete",
    "environment",
    "logging",
    "stdin",
    "triggers",
    "update",
] as const;

/** Properties whose change forces replacement (schema replaceOnChanges). */
export const REPLACE_ON_CHANGES = ["triggers"];

const CONNECTION_DEFAULTS: Record<string, unknown> = { user: "root", port: 22, dialErrorLimit: 10, perDialTimeout: 15 };

function withConnectionDefaults(raw: unknown, path: string, failures: provider.CheckFailure[]): unknown {
    const wasSec = wasSecret(raw);
    const c = unwrap(raw);
    if (c === UNKNOWN || typeof c !== "object" || c === null || Array.isArray(c)) {
        if (c !== UNKNOWN) {
            failures.push({ property: path, reason: `${path} must be an object` });
        }
        return raw;
    }
    const out: Record<string, unknown> = { ...(c as Record<string, unknown>) };
    for (const [k, v] of Object.entries(CONNECTION_DEFAULTS)) {
        if (isUnset(out[k])) {
            out[k] = v;
        }
    }
    if (isUnset(out.host)) {
        failures.push({ property: `${path}.host`, reason: `Missing required field 'host' on '${path}'` });
    }
    if (!isUnset(out.proxy)) {
        out.proxy = withConnectionDefaults(out.proxy, `${path}.proxy`, failures);
    }
    return wasSec ? secret(out) : out;
}

/**
 * Check: validate, apply the connection defaults (user "root", port 22,
 * dialErrorLimit 10, perDialTimeout 15, also on connection.proxy) and mark
 * the connection secret, as upstream's DefaultCheck + provider:"secret" do.
 */
export function checkCommand(news: RawMap): provider.CheckResult {
    const failures: provider.CheckFailure[] = [];
    const inputs: RawMap = { ...news };
    if (isUnset(news.connection)) {
        failures.push({ property: "connection", reason: "Missing required field 'connection'" });
    } else {
        inputs.connection = secret(withConnectionDefaults(news.connection, "connection", failures));
    }
    return failures.length > 0 ? { inputs, failures } : { inputs };
}

/** Which input properties differ between the old state and the new inputs. */
export function changedInputs(olds: RawMap, news: RawMap): string[] {
    return COMMAND_INPUTS.filter((k) => !deepEqual(olds[k], news[k]));
}

/**
 * Diff: any changed input is an in-place update (which re-runs `update`, or
 * `create` when `update` is unset), except `triggers`, which replaces. This
 * includes `connection`: upstream's default diff compares every input, so a
 * changed connection (host, key, port, ...) is an update that re-runs the
 * command on the new target.
 */
export function diffCommand(olds: RawMap, news: RawMap): provider.DiffResult {
    const changed = changedInputs(olds, news);
    const replaces = changed.filter((k) => REPLACE_ON_CHANGES.includes(k));
    return { changes: changed.length > 0, replaces, deleteBeforeReplace: false };
}

/** Whether stdout / stderr lines are logged, per the `logging` input (default: both). */
export function shouldLog(logging: unknown): { stdout: boolean; stderr: boolean } {
    const l = unwrap(logging);
    if (l === undefined || l === null) {
        return { stdout: true, stderr: true };
    }
    return { stdout: l === "stdout" || l === "stdoutAndStderr", stderr: l === "stderr" || l === "stdoutAndStderr" };
}

const GO_PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u;

/** strconv.Quote, as used by upstream's `%q` in "running %q". */
export function goQuote(s: string): string {
    let out = '"';
    for (const ch of s) {
        const cp = ch.codePointAt(0) as number;
        switch (ch) {
            case '"':
                out += '\\"';
                continue;
            case "\\":
                out += "\\\\";
                continue;
            case "\x07":
                out += "\\a";
                continue;
            case "\b":
                out += "\\b";
                continue;
            case "\f":
                out += "\\f";
                continue;
            case "\n":
                out += "\\n";
                continue;
            case "\r":
                out += "\\r";
                continue;
            case "\t":
                out += "\\t";
                continue;
            case "\v":
                out += "\\v";
                continue;
        }
        if (cp < 0x20 || cp === 0x7f) {
            out += "\\x" + cp.toString(16).padStart(2, "0");
        } else if (cp >= 0xd800 && cp <= 0xdfff) {
            out += "\\ufffd";
        } else if (cp >= 0x80 && !GO_PRINTABLE.test(ch)) {
            // unicode.IsPrint: letters, marks, numbers, punctuation, symbols (and ASCII space) only.
            out += cp < 0x10000 ? "\\u" + cp.toString(16).padStart(4, "0") : "\\U" + cp.toString(16).padStart(8, "0");
        } else {
            out += ch;
        }
    }
    return out + '"';
}

/** TrimSuffix(s, "\n"). */
export function trimOneNewline(s: string): string {
    return s.endsWith("\n") ? s.slice(0, -1) : s;
}

/** The error upstream returns for a failed command: "<exit error>: running <quoted cmd>:\n<stdout+stderr>". */
export function commandError(exitError: string, cmd: string, combined: string, redact: boolean): string {
    return `${exitError}: running ${redact ? "[secret]" : goQuote(cmd)}:\n${combined}`;
}

/** The message upstream logs when the server refuses a variable (pulumi-command logAndWrapSetenvErr). */
export function setenvRejectedMessage(key: string): string {
    return (
        `Unable to set '${key}'. This only works if your SSH server is configured to accept\n` +
        "\tthese variables via AcceptEnv. Alternatively, if a Bash-like shell runs the command on the remote host, you could\n" +
        "\tprefix the command itself with the variables in the form 'VAR=value command'"
    );
}
