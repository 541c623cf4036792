// Running a local process the way upstream's local.run does it with Go's
// os/exec (exec.CommandContext + Start + Wait), with Go's error texts, for the
// command:local:Command stand-in. Mirrors pulumi-command v1.2.1
// provider/pkg/provider/local/commandOutputs.go and, for the process
// details, Go's os/exec (Command, LookPath, environ/dedupEnv, Start, Wait) and
// os.StartProcess on Linux.

import * as child_process from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as util from "node:util";
import { LineSplitter, goQuote } from "./logic";

/** Upstream's interpreter when `interpreter` is unset or empty. */
export function defaultInterpreter(): string[] {
    return process.platform === "win32" ? ["cmd", "/C"] : ["/bin/sh", "-c"];
}

/** Go's syscall.Errno strings (zerrors_linux_amd64.go) by errno number. */
const GO_ERRNO_TEXT: Record<number, string> = {
    1: "operation not permitted",
    2: "no such file or directory",
    3: "no such process",
    4: "interrupted system call",
    5: "input/output error",
    6: "no such device or address",
    7: "argument list too long",
    8: "exec format error",
    9: "bad file descriptor",
    10: "no child processes",
    11: "resource temporarily unavailable",
    12: "cannot allocate memory",
    13: "permission denied",
    14: "bad address",
    16: "device or resource busy",
    17: "file exists",
    19: "no such device",
    20: "not a directory",
    21: "is a directory",
    22: "invalid argument",
    23: "too many open files in system",
    24: "too many open files",
    26: "text file busy",
    27: "file too large",
    28: "no space left on device",
    30: "read-only file system",
    36: "file name too long",
    38: "function not implemented",
    40: "too many levels of symbolic links",
};

/** Go's text for the errno behind a Node system error (`ENOENT` -> "no such file or directory"). */
export function goErrnoText(e: NodeJS.ErrnoException): string {
    const n = e.code ? (os.constants.errno as Record<string, number | undefined>)[e.code] : undefined;
    if (n !== undefined && GO_ERRNO_TEXT[n]) {
        return GO_ERRNO_TEXT[n];
    }
    if (typeof e.errno === "number") {
        const m = util.getSystemErrorMessage(e.errno);
        return m.charAt(0).toLowerCase() + m.slice(1);
    }
    return e.message;
}

/** Go's syscall.Signal strings (zerrors_linux_amd64.go) by signal number. */
const GO_SIGNAL_TEXT: Record<number, string> = {
    1: "hangup",
    2: "interrupt",
    3: "quit",
    4: "illegal instruction",
    5: "trace/breakpoint trap",
    6: "aborted",
    7: "bus error",
    8: "floating point exception",
    9: "killed",
    10: "user defined signal 1",
    11: "segmentation fault",
    12: "user defined signal 2",
    13: "broken pipe",
    14: "alarm clock",
    15: "terminated",
    16: "stack fault",
    17: "child exited",
    18: "continued",
    19: "stopped (signal)",
    20: "stopped",
    21: "stopped (tty input)",
    22: "stopped (tty output)",
    23: "urgent I/O condition",
    24: "CPU time limit exceeded",
    25: "file size limit exceeded",
    26: "virtual timer expired",
    27: "profiling timer expired",
    28: "window changed",
    29: "I/O possible",
    30: "power failure",
    31: "bad system call",
};

/** exec.ExitError's text (ProcessState.String) for how a process ended; undefined for success. */
export function goExitError(code: number | null, signal: NodeJS.Signals | null): string | undefined {
    if (signal) {
        const n = (os.constants.signals as Record<string, number | undefined>)[signal];
        if (n === undefined) {
            return `signal: ${signal}`;
        }
        return `signal: ${GO_SIGNAL_TEXT[n] ?? `signal ${n}`}`;
    }
    if (code === null || code === 0) {
        return code === 0 ? undefined : "exit status -1";
    }
    return `exit status ${code}`;
}

/** exec.Error's text: `exec: "name": <reason>`. */
function execError(name: string, reason: string): string {
    return `exec: ${goQuote(name)}: ${reason}`;
}

const ERR_NOT_FOUND = "executable file not found in $PATH";
const ERR_DOT = "cannot run executable found relative to current directory";

/** exec.findExecutable: a regular file (not a directory) the process may execute. */
function isExecutable(file: string): boolean {
    try {
        if (fs.statSync(file).isDirectory()) {
            return false;
        }
        fs.accessSync(file, fs.constants.X_OK);
        return true;
    } catch {
        return false;
    }
}

/**
 * What exec.Command(name) resolves: a name without "/" is looked up in the
 * provider's own $PATH (not the command's `environment`), like exec.LookPath
 * (an empty PATH entry means ".", and a match relative to the current
 * directory is refused); a name with "/" is used as it is.
 */
export function goCommandPath(name: string, envPath: string = process.env.PATH ?? ""): { path: string; error?: string } {
    // filepath.Base(name) == name: non-empty and without a separator.
    if (name === "" || name.includes("/")) {
        return { path: name, error: name === "" ? "exec: no command" : undefined };
    }
    if (name === "." || name === "..") {
        return { path: name, error: execError(name, ERR_NOT_FOUND) }; // validateLookPath
    }
    // filepath.SplitList("") is an empty list.
    for (let dir of envPath === "" ? [] : envPath.split(path.delimiter)) {
        if (dir === "") {
            dir = ".";
        }
        const candidate = path.join(dir, name);
        if (isExecutable(candidate)) {
            return path.isAbsolute(candidate) ? { path: candidate } : { path: candidate, error: execError(name, ERR_DOT) };
        }
    }
    return { path: name, error: execError(name, ERR_NOT_FOUND) };
}

/**
 * The child's environment as Go builds it: `base` (the provider's own
 * environment), then `extra` in order, as KEY=VALUE entries; on duplicates the
 * last one wins (dedupEnv), and an entry containing NUL is an error.
 */
export function goEnviron(base: NodeJS.ProcessEnv, extra: [string, string][]): { env: Record<string, string>; error?: string } {
    const entries: string[] = [];
    for (const [k, v] of Object.entries(base)) {
        if (v !== undefined) {
            entries.push(`${k}=${v}`);
        }
    }
    for (const [k, v] of extra) {
        entries.push(`${k}=${v}`);
    }
    let error: string | undefined;
    const seen = new Set<string>();
    const kept: [string, string][] = [];
    for (let n = entries.length - 1; n >= 0; n--) {
        const kv = entries[n];
        if (kv.includes("\0")) {
            error = "exec: environment variable contains NUL";
            continue;
        }
        let i = kv.indexOf("=");
        if (i === 0) {
            i = kv.indexOf("=", 1);
        }
        if (i < 0) {
            continue; // cannot be passed through Node's env object; Go would pass "KEY" without a value
        }
        const k = kv.slice(0, i);
        if (seen.has(k)) {
            continue;
        }
        seen.add(k);
        kept.push([k, kv.slice(i + 1)]);
    }
    const env: Record<string, string> = {};
    for (const [k, v] of kept.reverse()) {
        env[k] = v;
    }
    return { env, error };
}

/** Binary formats registered with the kernel beyond ELF and "#!" scripts (binfmt_misc entries). */
function binfmtMiscInUse(): boolean {
    try {
        return fs.readdirSync("/proc/sys/fs/binfmt_misc").some((e) => e !== "register" && e !== "status");
    } catch {
        return false;
    }
}

const ELF_MAGIC = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);

/**
 * Whether execve would fail with ENOEXEC (Go: "fork/exec <path>: exec format
 * error"): an executable regular file that is neither ELF nor a "#!" script.
 * Node's spawn (libuv) would instead run such a file with /bin/sh, as execvp
 * does, so the stand-in refuses it first. Unreadable files and machines with
 * binfmt_misc formats registered are left to the kernel.
 */
function execFormatError(file: string, dir: string | undefined): boolean {
    const p = path.resolve(dir || ".", file);
    let fd: number | undefined;
    try {
        if (!fs.statSync(p).isFile()) {
            return false;
        }
        fs.accessSync(p, fs.constants.X_OK);
        fd = fs.openSync(p, "r");
        const head = Buffer.alloc(4);
        const n = fs.readSync(fd, head, 0, 4, 0);
        if ((n >= 2 && head[0] === 0x23 && head[1] === 0x21) || (n === 4 && head.equals(ELF_MAGIC))) {
            return false;
        }
        return !binfmtMiscInUse();
    } catch {
        return false;
    } finally {
        if (fd !== undefined) {
            fs.closeSync(fd);
        }
    }
}

export interface LocalRunOptions {
    /** The full argv: interpreter then the command. */
    args: string[];
    /** `dir`; undefined runs in the provider's working directory. */
    dir?: string;
    /** Variables added over the provider's environment, in order (later wins). */
    extraEnv: [string, string][];
    /** Written to the process's stdin, which is then closed; otherwise stdin is /dev/null. */
    stdin?: string;
    logStdout: boolean;
    logStderr: boolean;
    onLine?(line: string): void;
    /** Called with the child once it runs (for cancellation). */
    onStart?(child: child_process.ChildProcess): void;
    /** The provider's environment (default process.env). */
    baseEnv?: NodeJS.ProcessEnv;
}

export interface LocalRunResult {
    stdout: string;
    stderr: string;
    /** stdout and stderr interleaved as they arrived (for the error message). */
    combined: string;
    /** Undefined on success; otherwise the text of the error Go's Start/Wait returns. */
    error?: string;
}

/**
 * exec.CommandContext(args...) with Dir, Env, Stdin set, Start, Wait: waits
 * for the process to exit and for its stdout/stderr to be closed (a
 * background child holding them open keeps it waiting, as in Go).
 */
export function runLocal(opts: LocalRunOptions): Promise<LocalRunResult> {
    const fail = (error: string): Promise<LocalRunResult> => Promise.resolve({ stdout: "", stderr: "", combined: "", error });
    const [name, ...rest] = opts.args;
    const resolved = goCommandPath(name ?? "");
    if (resolved.error) {
        return fail(resolved.error);
    }
    const baseEnv = opts.baseEnv ?? process.env;
    const environ = goEnviron(baseEnv, opts.extraEnv);
    if (environ.error) {
        return fail(environ.error);
    }
    if (opts.dir !== undefined && opts.dir !== "") {
        // os.StartProcess checks the directory first, for a clearer error.
        if (opts.dir.includes("\0")) {
            return fail(`chdir ${opts.dir}: invalid argument`);
        }
        try {
            fs.statSync(opts.dir);
        } catch (e) {
            return fail(`chdir ${opts.dir}: ${goErrnoText(e as NodeJS.ErrnoException)}`);
        }
    }
    const forkExecError = (reason: string) => `fork/exec ${resolved.path}: ${reason}`;
    if (opts.args.some((a) => a.includes("\0"))) {
        return fail(forkExecError("invalid argument"));
    }
    if (execFormatError(resolved.path, opts.dir)) {
        return fail(forkExecError("exec format error"));
    }
    const stdinData = opts.stdin !== undefined && opts.stdin.length > 0 ? opts.stdin : undefined;

    return new Promise((resolve) => {
        let child: child_process.ChildProcess;
        try {
            child = child_process.spawn(resolved.path, rest, {
                argv0: name,
                cwd: opts.dir || undefined,
                env: environ.env,
                stdio: [stdinData !== undefined ? "pipe" : "ignore", "pipe", "pipe"],
            });
        } catch (e) {
            resolve({ stdout: "", stderr: "", combined: "", error: forkExecError(goErrnoText(e as NodeJS.ErrnoException)) });
            return;
        }
        const stdout: Buffer[] = [];
        const stderr: Buffer[] = [];
        const combined: Buffer[] = [];
        const lines = new LineSplitter();
        const feed = (chunk: Buffer, log: boolean) => {
            combined.push(chunk);
            if (log && opts.onLine) {
                lines.push(chunk).forEach((l) => opts.onLine?.(l));
            }
        };
        child.stdout?.on("data", (d: Buffer) => {
            stdout.push(d);
            feed(d, opts.logStdout);
        });
        child.stderr?.on("data", (d: Buffer) => {
            stderr.push(d);
            feed(d, opts.logStderr);
        });
        let settled = false;
        const finish = (error: string | undefined) => {
            if (settled) {
                return;
            }
            settled = true;
            if (opts.onLine) {
                lines.end().forEach((l) => opts.onLine?.(l));
            }
            resolve({
                stdout: Buffer.concat(stdout).toString("utf8"),
                stderr: Buffer.concat(stderr).toString("utf8"),
                combined: Buffer.concat(combined).toString("utf8"),
                error,
            });
        };
        child.on("error", (e: NodeJS.ErrnoException) => {
            if (child.pid === undefined) {
                // The exec failed (fork/exec): nothing ran.
                finish(forkExecError(goErrnoText(e)));
            }
        });
        child.on("close", (code: number | null, signal: NodeJS.Signals | null) => {
            if (child.pid !== undefined) {
                finish(goExitError(code, signal));
            }
        });
        if (child.pid !== undefined) {
            opts.onStart?.(child);
        }
        if (child.stdin) {
            // Go's stdin copy ignores EPIPE (the process need not read its input).
            child.stdin.on("error", () => undefined);
            child.stdin.end(stdinData);
        }
    });
}
