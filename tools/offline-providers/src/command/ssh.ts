// SSH transport for the command:remote:Command stand-in, mirroring
// pulumi-command v1.2.1 provider/pkg/provider/remote/connection.go and
// commandOutputs.go (which use golang.org/x/crypto/ssh) on top of the ssh2
// npm package.

import * as crypto from "node:crypto";
import * as net from "node:net";
import { Client, ClientChannel, ConnectConfig, utils as ssh2utils } from "ssh2";
import { opensshPrivateKey, parseAuthorizedKey } from "../common/sshkeys";
import { LineSplitter } from "./logic";

export interface ConnectionSpec {
    host: string;
    port: number;
    user: string;
    password?: string;
    privateKey?: string;
    privateKeyPassword?: string;
    agentSocketPath?: string;
    dialErrorLimit: number;
    perDialTimeout: number;
    hostKey?: string;
}

export interface Connection extends ConnectionSpec {
    proxy?: ConnectionSpec;
}

export const DIAL_ERROR_DEFAULT = 10;
export const PER_DIAL_TIMEOUT_DEFAULT = 15;

/** Reads a (deep-unwrapped) connection object, applying the schema defaults. */
export function parseConnection(raw: unknown, what = "connection"): Connection {
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
        throw new Error(`${what} must be an object`);
    }
    const o = raw as Record<string, unknown>;
    const str = (k: string): string | undefined => {
        const v = o[k];
        if (v === undefined || v === null) {
            return undefined;
        }
        if (typeof v !== "string") {
            throw new Error(`${what}.${k} must be a string`);
        }
        return v;
    };
    const num = (k: string, dflt: number): number => {
        const v = o[k];
        if (v === undefined || v === null) {
            return dflt;
        }
        if (typeof v !== "number") {
            throw new Error(`${what}.${k} must be a number`);
        }
        return v;
    };
    const host = str("host");
    if (host === undefined) {
        throw new Error(`${what}.host is required`);
    }
    const c: Connection = {
        host,
        port: num("port", 22),
        user: str("user") ?? "root",
        password: str("password"),
        privateKey: str("privateKey"),
        privateKeyPassword: str("privateKeyPassword"),
        agentSocketPath: str("agentSocketPath"),
        dialErrorLimit: Math.trunc(num("dialErrorLimit", DIAL_ERROR_DEFAULT)),
        perDialTimeout: Math.trunc(num("perDialTimeout", PER_DIAL_TIMEOUT_DEFAULT)),
        hostKey: str("hostKey"),
    };
    if (o.proxy !== undefined && o.proxy !== null) {
        const p = parseConnection(o.proxy, `${what}.proxy`);
        delete p.proxy;
        c.proxy = p;
    }
    return c;
}

/** net.JoinHostPort. */
export function joinHostPort(host: string, port: number): string {
    const p = String(Math.trunc(port));
    return host.includes(":") ? `[${host}]:${p}` : `${host}:${p}`;
}

export interface DialHooks {
    /** Status messages such as "Dial 1/10 failed: retrying" (upstream logs these as ephemeral info). */
    status?(message: string): void;
    /** Aborts dialing / running (provider Cancel). */
    signal?: AbortSignal;
    /** Overrides the retry delays (tests). */
    delays?: { initial: number; backoff: number; max: number };
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
        if (signal?.aborted) {
            reject(new Error("context canceled"));
            return;
        }
        const t = setTimeout(() => {
            signal?.removeEventListener("abort", onAbort);
            resolve();
        }, ms);
        const onAbort = () => {
            clearTimeout(t);
            reject(new Error("context canceled"));
        };
        signal?.addEventListener("abort", onAbort, { once: true });
    });
}

/**
 * pulumi-command's dialWithRetry on pulumi's retry.Until (100ms delay, x1.5
 * backoff, 5s cap). Like upstream, a limit of N allows N+1 attempts and the
 * final error reads "after N failed attempts: <last error>"; -1 is unlimited.
 */
export async function dialWithRetry<T>(msg: string, maxAttempts: number, hooks: DialHooks, f: () => Promise<T>): Promise<T> {
    const d = hooks.delays ?? { initial: 100, backoff: 1.5, max: 5000 };
    let delay = d.initial;
    for (let attempt = 0; ; attempt++) {
        if (delay > d.max) {
            delay = d.max;
        }
        try {
            return await f();
        } catch (e) {
            const err = e as Error;
            const dials = attempt + 1;
            if (maxAttempts > -1 && dials > maxAttempts) {
                throw new Error(`after ${attempt} failed attempts: ${err.message}`);
            }
            hooks.status?.(`${msg} ${dials}/${maxAttempts === -1 ? "inf" : maxAttempts} failed: retrying`);
        }
        await sleep(delay, hooks.signal);
        delay = delay * d.backoff;
    }
}

/** ssh.ClientConfig.Timeout: a TCP connect timeout (0 = none), with Go-style error text. */
function tcpConnect(host: string, port: number, timeoutSeconds: number, signal?: AbortSignal): Promise<net.Socket> {
    const endpoint = joinHostPort(host, port);
    return new Promise((resolve, reject) => {
        const sock = net.connect({ host, port });
        let timer: NodeJS.Timeout | undefined;
        const onAbort = () => fail("context canceled");
        const fail = (message: string) => {
            if (timer) {
                clearTimeout(timer);
            }
            signal?.removeEventListener("abort", onAbort);
            sock.destroy();
            reject(new Error(message));
        };
        if (timeoutSeconds > 0) {
            timer = setTimeout(() => fail(`dial tcp ${endpoint}: i/o timeout`), timeoutSeconds * 1000);
        }
        signal?.addEventListener("abort", onAbort, { once: true });
        sock.once("connect", () => {
            if (timer) {
                clearTimeout(timer);
            }
            signal?.removeEventListener("abort", onAbort);
            sock.removeAllListeners("error");
            resolve(sock);
        });
        sock.once("error", (err: NodeJS.ErrnoException) => {
            const reason =
                err.code === "ECONNREFUSED"
                    ? "connect: connection refused"
                    : err.code === "ENOTFOUND" || err.code === "EAI_AGAIN"
                      ? `lookup ${host}: no such host`
                      : err.code === "EHOSTUNREACH"
                        ? "connect: no route to host"
                        : err.message;
            fail(`dial tcp ${endpoint}: ${reason}`);
        });
    });
}

/** Parses connection.privateKey the way ssh.ParsePrivateKey(WithPassphrase) accepts it. */
function parsePrivateKey(pem: string, passphrase: string | undefined): ReturnType<typeof ssh2utils.parseKey> {
    let parsed = ssh2utils.parseKey(pem, passphrase);
    if (parsed instanceof Error || Array.isArray(parsed)) {
        // ssh2 does not read PKCS#8 ("PRIVATE KEY") or ENCRYPTED PRIVATE KEY, which Go's
        // ssh.ParsePrivateKey does: convert through Node's crypto into the OpenSSH format.
        try {
            const key = crypto.createPrivateKey(passphrase !== undefined ? { key: pem, format: "pem", passphrase } : { key: pem, format: "pem" });
            const openssh = opensshPrivateKey(key);
            if (openssh) {
                parsed = ssh2utils.parseKey(openssh);
            }
        } catch {
            // fall through with ssh2's error
        }
    }
    if (Array.isArray(parsed)) {
        parsed = (parsed as ReturnType<typeof ssh2utils.parseKey>[])[0];
    }
    return parsed;
}

/** Host key algorithms to offer for a pinned host key type (ssh.FixedHostKey + HostKeyAlgorithms). */
function hostKeyAlgorithms(type: string): string[] {
    return type === "ssh-rsa" ? ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] : [type];
}

interface PreparedAuth {
    spec: ConnectionSpec;
    /** Auth methods in Go's order: none, key, password, keyboard-interactive, agent. */
    methods: Record<string, unknown>[];
    pinned?: { type: string; blob: Buffer };
}

/**
 * ConnectionBase.SSHConfig: parse the key and the pinned host key once, before
 * dialing. Like upstream, a bad key or hostKey fails at once (no retries).
 */
export function prepareAuth(spec: ConnectionSpec): PreparedAuth {
    let pinned: PreparedAuth["pinned"];
    if (spec.hostKey !== undefined) {
        try {
            pinned = parseAuthorizedKey(spec.hostKey);
        } catch (e) {
            throw new Error(`failed to parse host key: ${(e as Error).message}`);
        }
    }
    // Go's client always starts with "none", then the configured methods in this order.
    const methods: Record<string, unknown>[] = [{ type: "none", username: spec.user }];
    if (spec.privateKey !== undefined) {
        const key = parsePrivateKey(spec.privateKey, spec.privateKeyPassword);
        if (key instanceof Error) {
            throw new Error(key.message.startsWith("ssh:") ? key.message : `ssh: ${key.message}`);
        }
        methods.push({ type: "publickey", username: spec.user, key });
    }
    if (spec.password !== undefined) {
        const password = spec.password;
        methods.push({ type: "password", username: spec.user, password });
        methods.push({
            type: "keyboard-interactive",
            username: spec.user,
            prompt: (_n: string, _i: string, _l: string, prompts: unknown[], finish: (answers: string[]) => void) => finish(prompts.map(() => password)),
        });
    }
    const agent = spec.agentSocketPath ?? (process.env.SSH_AUTH_SOCK || undefined);
    if (agent !== undefined) {
        methods.push({ type: "agent", username: spec.user, agent });
    }
    return { spec, methods, pinned };
}

/** One SSH handshake + authentication over an established stream. */
function sshHandshake(auth: PreparedAuth, sock: NodeJS.ReadableStream & NodeJS.WritableStream, active: Set<Client>): Promise<Client> {
    const { spec, pinned } = auth;
    const methods = [...auth.methods];
    return new Promise((resolve, reject) => {
        const client = new Client();
        const attempted: string[] = [];
        let presentedKey: Buffer | undefined;
        const cfg: ConnectConfig = {
            sock: sock as never,
            username: spec.user,
            readyTimeout: 0, // golang.org/x/crypto/ssh has no handshake timeout
            keepaliveInterval: 0,
            authHandler: (_left, _partial, next) => {
                const m = methods.shift();
                if (!m) {
                    next(false as never);
                    return;
                }
                attempted.push(String(m.type));
                next(m as never);
            },
            hostVerifier: (key: Buffer) => {
                presentedKey = key;
                return pinned === undefined || key.equals(pinned.blob);
            },
        };
        if (pinned) {
            cfg.algorithms = { serverHostKey: hostKeyAlgorithms(pinned.type) as never };
        }
        let settled = false;
        client.on("ready", () => {
            settled = true;
            active.add(client);
            client.on("close", () => active.delete(client));
            resolve(client);
        });
        client.on("error", (err: Error & { level?: string }) => {
            if (settled) {
                return;
            }
            settled = true;
            client.end();
            let message = err.message;
            if (err.level === "client-authentication") {
                message = `ssh: unable to authenticate, attempted methods [${attempted.join(" ")}], no supported methods remain`;
            } else if (pinned && presentedKey && !presentedKey.equals(pinned.blob)) {
                // Exactly ssh.FixedHostKey's error, as upstream reports it (no fingerprints).
                message = "ssh: host key mismatch";
            } else if (pinned && !presentedKey && /handshake|algorithm/i.test(message)) {
                message = `ssh: no common host key algorithm: the connection's hostKey is ${pinned.type} (${message})`;
            }
            reject(new Error(`ssh: handshake failed: ${message}`));
        });
        client.on("close", () => {
            if (!settled) {
                settled = true;
                reject(new Error("ssh: handshake failed: EOF"));
            }
        });
        client.connect(cfg);
    });
}

/** Connection.Dial: dial (optionally through a bastion) with retries. */
export async function dial(conn: Connection, hooks: DialHooks, active: Set<Client>): Promise<Client> {
    const endpoint = { host: conn.host, port: conn.port };
    const tries = conn.dialErrorLimit;
    const auth = prepareAuth(conn);
    if (!conn.proxy) {
        return dialWithRetry("Dial", tries, hooks, async () => {
            const sock = await tcpConnect(endpoint.host, endpoint.port, conn.perDialTimeout, hooks.signal);
            return sshHandshake(auth, sock, active);
        });
    }
    const proxy = conn.proxy;
    let proxyAuth: PreparedAuth;
    try {
        proxyAuth = prepareAuth(proxy);
    } catch (e) {
        throw new Error(`proxy: ${(e as Error).message}`);
    }
    let proxyClient: Client;
    try {
        proxyClient = await dialWithRetry("Dial proxy", proxy.dialErrorLimit, hooks, async () => {
            const sock = await tcpConnect(proxy.host, proxy.port, proxy.perDialTimeout, hooks.signal);
            return sshHandshake(proxyAuth, sock, active);
        });
    } catch (e) {
        throw new Error(`proxy: ${(e as Error).message}`);
    }
    try {
        const stream = await dialWithRetry(
            "Dial from proxy",
            tries,
            hooks,
            () =>
                new Promise<ClientChannel>((resolve, reject) => {
                    proxyClient.forwardOut("127.0.0.1", 0, endpoint.host, endpoint.port, (err, ch) => {
                        if (err) {
                            reject(new Error(`ssh: rejected: connect failed (${err.message})`));
                        } else {
                            resolve(ch);
                        }
                    });
                }),
        );
        const client = await sshHandshake(auth, stream, active);
        client.on("close", () => proxyClient.end());
        return client;
    } catch (e) {
        proxyClient.end();
        throw new Error(`proxy: ${(e as Error).message}`);
    }
}

// ---------------------------------------------------------------------------
// Sessions. ssh2's exec() sends "env" requests without asking for a reply, so
// a server that refuses them (stock sshd without AcceptEnv) goes unnoticed.
// golang.org/x/crypto/ssh's Session.Setenv asks for a reply and fails with
// "ssh: setenv failed"; upstream relies on that. So sessions are opened here
// with ssh2's channel plumbing directly (ssh2 is pinned to an exact version).

interface ChannelInternals {
    _callbacks: ((hadErr: boolean | Error) => void)[];
    outgoing: { id: number };
    subtype?: string;
    allowHalfOpen?: boolean;
}

interface ClientInternals {
    _chanMgr: { add(cb: unknown): number };
    _protocol: {
        session(local: number, window: number, packetSize: number): void;
        env(chan: number, key: string, value: string, wantReply: boolean): void;
        exec(chan: number, cmd: string, wantReply: boolean): void;
    };
}

// eslint-disable-next-line @typescript-eslint/no-require-imports
const channelConsts = require("ssh2/lib/Channel.js") as { MAX_WINDOW: number; PACKET_SIZE: number };

export class Session {
    private constructor(
        private readonly client: Client,
        readonly channel: ClientChannel,
    ) {}

    static open(client: Client): Promise<Session> {
        const c = client as unknown as ClientInternals;
        return new Promise((resolve, reject) => {
            const wrapper = Object.assign(
                (err: Error | undefined, chan: ClientChannel) => {
                    if (err) {
                        reject(err);
                    } else {
                        resolve(new Session(client, chan));
                    }
                },
                { type: "session" },
            );
            const local = c._chanMgr.add(wrapper);
            if (local === -1) {
                reject(new Error("No free channels available"));
                return;
            }
            c._protocol.session(local, channelConsts.MAX_WINDOW, channelConsts.PACKET_SIZE);
        });
    }

    private request(send: (proto: ClientInternals["_protocol"], id: number) => void): Promise<boolean> {
        const ch = this.channel as unknown as ChannelInternals;
        const proto = (this.client as unknown as ClientInternals)._protocol;
        return new Promise((resolve, reject) => {
            // ssh2 drops pending request callbacks when a channel closes: don't wait forever.
            const onClose = () => reject(new Error("ssh: channel closed before the server answered a request"));
            this.channel.once("close", onClose);
            ch._callbacks.push((hadErr) => {
                this.channel.removeListener("close", onClose);
                resolve(hadErr === false);
            });
            send(proto, ch.outgoing.id);
        });
    }

    /** Session.Setenv: true if the server accepted the variable. */
    setenv(key: string, value: string): Promise<boolean> {
        return this.request((p, id) => p.env(id, key, value, true));
    }

    /** Session.Start: sends the exec request and waits for the server's answer. */
    async exec(cmd: string): Promise<void> {
        const ok = await this.request((p, id) => p.exec(id, cmd, true));
        if (!ok) {
            throw new Error(`ssh: command ${cmd} failed`);
        }
        const ch = this.channel as unknown as ChannelInternals;
        ch.subtype = "exec";
        ch.allowHalfOpen = true;
    }
}

/** Go's ssh signal names to numbers (for "Process exited with status 128+N from signal X"). */
const SIGNALS: Record<string, number> = {
    ABRT: 6,
    ALRM: 14,
    FPE: 8,
    HUP: 1,
    ILL: 4,
    INT: 2,
    KILL: 9,
    PIPE: 13,
    QUIT: 3,
    SEGV: 11,
    TERM: 15,
    USR1: 10,
    USR2: 12,
};

export interface RunOptions {
    /** Variables that must be accepted by the server (connection `environment`). */
    env: [string, string][];
    /** Variables that are set optimistically (PULUMI_COMMAND_STDOUT/STDERR). */
    optionalEnv: [string, string][];
    stdin?: string;
    logStdout: boolean;
    logStderr: boolean;
    onLine?(line: string): void;
    onEnvRejected?(key: string, required: boolean): Promise<void>;
}

export interface RunResult {
    stdout: string;
    stderr: string;
    combined: string;
    /** Undefined on success; otherwise Go's ExitError / ExitMissingError text. */
    exitError?: string;
}

/** Runs one command in a new session (session.Run semantics). */
export async function runInSession(client: Client, cmd: string, opts: RunOptions): Promise<RunResult> {
    const session = await Session.open(client);
    const ch = session.channel;
    try {
        for (const [k, v] of opts.env) {
            if (!(await session.setenv(k, v))) {
                await opts.onEnvRejected?.(k, true);
                throw new Error(`could not set environment variable ${JSON.stringify(k)}: ssh: setenv failed`);
            }
        }
        for (const [k, v] of opts.optionalEnv) {
            if (!(await session.setenv(k, v))) {
                await opts.onEnvRejected?.(k, false);
            }
        }
        const stdout: Buffer[] = [];
        const stderr: Buffer[] = [];
        const combined: Buffer[] = [];
        // One splitter for both streams: upstream scans them as one interleaved stream.
        const lines = new LineSplitter();
        const feedLog = (chunk: Buffer) => {
            if (opts.onLine) {
                lines.push(chunk).forEach((l) => opts.onLine?.(l));
            }
        };
        let exitCode: number | undefined;
        let exitSignal: string | undefined;
        let exitMsg = "";
        const done = new Promise<void>((resolve) => {
            ch.on("data", (d: Buffer) => {
                stdout.push(d);
                combined.push(d);
                if (opts.logStdout) {
                    feedLog(d);
                }
            });
            ch.stderr.on("data", (d: Buffer) => {
                stderr.push(d);
                combined.push(d);
                if (opts.logStderr) {
                    feedLog(d);
                }
            });
            ch.on("exit", (code: number | null, signal?: string, _dump?: boolean, desc?: string) => {
                if (typeof code === "number") {
                    exitCode = code;
                } else if (signal) {
                    exitSignal = signal.replace(/^SIG/, "");
                    exitMsg = desc ?? "";
                }
            });
            ch.on("close", () => resolve());
        });
        await session.exec(cmd);
        if (opts.stdin !== undefined && opts.stdin.length > 0) {
            ch.write(opts.stdin);
        }
        ch.end();
        await done;
        if (opts.onLine) {
            lines.end().forEach((l) => opts.onLine?.(l));
        }
        const res: RunResult = {
            stdout: Buffer.concat(stdout).toString("utf8"),
            stderr: Buffer.concat(stderr).toString("utf8"),
            combined: Buffer.concat(combined).toString("utf8"),
        };
        if (exitCode !== undefined) {
            if (exitCode !== 0) {
                res.exitError = `Process exited with status ${exitCode}`;
            }
        } else if (exitSignal !== undefined) {
            const status = 128 + (SIGNALS[exitSignal] ?? 0);
            res.exitError = `Process exited with status ${status} from signal ${exitSignal}`;
            if (exitMsg) {
                res.exitError += `. Reason was: ${exitMsg}`;
            }
        } else {
            res.exitError = "wait: remote command exited without exit status or exit signal";
        }
        return res;
    } finally {
        ch.destroy();
    }
}
