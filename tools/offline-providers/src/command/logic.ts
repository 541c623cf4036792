// Pure (no I/O) parts of the command:remote:Command and command:local:Command
// stand-ins: input checking, diffing, the shared run-time rules (which command
// an update runs, PULUMI_COMMAND_STDOUT/STDERR, logging, output lines) and
// Go-compatible message formatting. Semantics follow pulumi-command v1.2.1
// (pulumi-go-provider v1.3.0 "infer" defaults).

import type * as provider from "@pulumi/pulumi/provider";
import { RawMap, UNKNOWN, deepEqual, deepUnwrap, isUnset, secret, unwrap, wasSecret } from "../common/props";

/** Input properties of command:remote:Command, as the @pulumi/command 1.2.1 SDK sends them. */
export const COMMAND_INPUTS = ["addPreviousOutputInEnv", "connection", "create", "delete", "environment", "logging", "stdin", "triggers", "update"] as const;

/**
 * Input properties of command:local:Command, as the @pulumi/command 1.2.1 SDK
 * sends them (upstream local.CommandInputs: common.ResourceInputs + local.BaseInputs).
 */
export const LOCAL_COMMAND_INPUTS = [
    "addPreviousOutputInEnv",
    "archivePaths",
    "assetPaths",
    "create",
    "delete",
    "dir",
    "environment",
    "interpreter",
    "logging",
    "stdin",
    "triggers",
    "update",
] as const;

/** Properties whose change forces replacement (schema replaceOnChanges), for both resources. */
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
export function changedInputs(olds: RawMap, news: RawMap, inputs: readonly string[] = COMMAND_INPUTS): string[] {
    return inputs.filter((k) => !deepEqual(olds[k], news[k]));
}

/** infer's default diff: every changed input is an update, except replaceOnChanges ones (`triggers`). */
function diffInputs(olds: RawMap, news: RawMap, inputs: readonly string[]): provider.DiffResult {
    const changed = changedInputs(olds, news, inputs);
    const replaces = changed.filter((k) => REPLACE_ON_CHANGES.includes(k));
    return { changes: changed.length > 0, replaces, deleteBeforeReplace: false };
}

/**
 * Diff: any changed input is an in-place update (which re-runs `update`, or
 * `create` when `update` is unset), except `triggers`, which replaces. This
 * includes `connection`: upstream's default diff compares every input, so a
 * changed connection (host, key, port, ...) is an update that re-runs the
 * command on the new target.
 */
export function diffCommand(olds: RawMap, news: RawMap): provider.DiffResult {
    return diffInputs(olds, news, COMMAND_INPUTS);
}

/**
 * Diff of command:local:Command: the same default diff over its inputs. A
 * change of `interpreter`, `dir`, `environment`, `stdin`, `logging`, ... is an
 * in-place update that re-runs `update` (or `create`); `triggers` replaces.
 */
export function diffLocalCommand(olds: RawMap, news: RawMap): provider.DiffResult {
    return diffInputs(olds, news, LOCAL_COMMAND_INPUTS);
}

/** Inputs of command:local:Command the stand-in refuses (see checkLocalCommand). */
export const LOCAL_UNSUPPORTED_INPUTS = ["assetPaths", "archivePaths"] as const;

/** Why the stand-in refuses `assetPaths` / `archivePaths`. */
export function unsupportedLocalInputMessage(key: string): string {
    return (
        `${key} is not supported by the offline stand-in for pulumi-resource-command 1.2.1 (tools/offline-providers): ` +
        `it cannot produce the ${key === "assetPaths" ? "assets" : "archive"} output the official plugin returns. ` +
        "Install the official plugin (pulumi plugin install resource command 1.2.1) or leave " +
        `${key} unset and read the files yourself`
    );
}

/**
 * Check of command:local:Command. Upstream's DefaultCheck has no defaults,
 * required fields or secret fields to apply here, so the inputs pass through
 * unchanged; the stand-in only refuses `assetPaths` and `archivePaths` (set to
 * anything, even an empty list or an unknown), which it does not implement.
 */
export function checkLocalCommand(news: RawMap): provider.CheckResult {
    const failures: provider.CheckFailure[] = [];
    for (const k of LOCAL_UNSUPPORTED_INPUTS) {
        if (!isUnset(news[k])) {
            failures.push({ property: k, reason: unsupportedLocalInputMessage(k) });
        }
    }
    const inputs: RawMap = { ...news };
    return failures.length > 0 ? { inputs, failures } : { inputs };
}

/** The command an update runs: `update`, else `create`, else none (upstream Update of both resources). */
export function updateCommandKey(news: RawMap): "update" | "create" | undefined {
    return !isUnset(news.update) ? "update" : !isUnset(news.create) ? "create" : undefined;
}

export const PULUMI_COMMAND_STDOUT = "PULUMI_COMMAND_STDOUT";
export const PULUMI_COMMAND_STDERR = "PULUMI_COMMAND_STDERR";

/**
 * PULUMI_COMMAND_STDOUT/STDERR for a run: the stdout/stderr recorded in
 * `state` (the previous create/update's), each only when non-empty, unless
 * `addPreviousOutputInEnv` is false (default true).
 */
export function previousOutputEnv(state: RawMap): [string, string][] {
    const env: [string, string][] = [];
    if (unwrap(state.addPreviousOutputInEnv) === false) {
        return env;
    }
    const prevOut = deepUnwrap(state.stdout);
    const prevErr = deepUnwrap(state.stderr);
    if (typeof prevOut === "string" && prevOut !== "") {
        env.push([PULUMI_COMMAND_STDOUT, prevOut]);
    }
    if (typeof prevErr === "string" && prevErr !== "") {
        env.push([PULUMI_COMMAND_STDERR, prevErr]);
    }
    return env;
}

/** The `environment` input as sorted [name, value] pairs (a map of strings upstream). */
export function environmentEntries(raw: unknown): [string, string][] {
    const env = deepUnwrap(raw);
    if (env === undefined || env === null) {
        return [];
    }
    if (typeof env !== "object" || Array.isArray(env)) {
        throw new Error("environment must be a map of strings");
    }
    return Object.keys(env)
        .sort()
        .map((k) => [k, String((env as Record<string, unknown>)[k])]);
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

/**
 * Splits command output into log lines the way upstream's util.LogOutput does
 * (bufio.Scanner with ScanLines over the stdout and stderr bytes, interleaved
 * as they arrive): lines end at "\n", one trailing "\r" is dropped, empty lines
 * are lines, and a final line without "\n" is emitted at the end. Works on
 * bytes, so a multi-byte character split across chunks stays intact. Unlike
 * bufio.Scanner there is no 64 KiB line limit.
 */
export class LineSplitter {
    private pending: Buffer = Buffer.alloc(0);

    /** Adds a chunk; returns the lines it completed. */
    push(chunk: Buffer): string[] {
        this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
        const lines: string[] = [];
        let start = 0;
        let nl: number;
        while ((nl = this.pending.indexOf(0x0a, start)) >= 0) {
            lines.push(dropCR(this.pending.subarray(start, nl)));
            start = nl + 1;
        }
        this.pending = start === 0 ? this.pending : Buffer.from(this.pending.subarray(start));
        return lines;
    }

    /** At end of input: the last line if it did not end with "\n". */
    end(): string[] {
        const rest = this.pending;
        this.pending = Buffer.alloc(0);
        return rest.length > 0 ? [dropCR(rest)] : [];
    }
}

function dropCR(b: Buffer): string {
    return (b.length > 0 && b[b.length - 1] === 0x0d ? b.subarray(0, b.length - 1) : b).toString("utf8");
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
