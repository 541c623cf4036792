/**
 * Shared machinery of the end-to-end tests: a fresh Debian test host, a stack of this project run
 * by the real Pulumi engine through the Automation API, real devpi-client/pip/twine on this
 * machine, and samplers that catch secrets where they must never be.
 */
import { execFile, execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import * as os from "node:os";
import * as path from "node:path";
import { it as nodeIt } from "node:test";
import { promisify } from "node:util";
import { ConfigMap, EngineEvent, LocalWorkspace, Stack } from "@pulumi/pulumi/automation";

export const ROOT = path.resolve(__dirname, "../..");
const execFileP = promisify(execFile);

export interface TestHost {
    name: string;
    /** `chroot` (shares this machine's kernel and network) or `vm` (QEMU, systemd as PID 1, can reboot). */
    kind: "chroot" | "vm";
    /** The chroot's root directory on this machine; "" for a VM. */
    root: string;
    sshHost: string;
    sshPort: number;
    sshUser: string;
    sshKey: string;
    hostKey: string;
}

/** The Debian release and kind of test host the e2e tests run against (scripts/testhost/, docs/testhost.md). */
export const TESTHOST_RELEASE = process.env.DEVPI_TESTHOST_RELEASE ?? "trixie";

/**
 * Starts a fresh test host (scripts/testhost/up.sh) and parses what it prints. `forward` lists
 * the ports a VM host forwards from 127.0.0.1 to itself (a chroot host shares the network);
 * `kind` overrides DEVPI_TESTHOST_KIND, `release` DEVPI_TESTHOST_RELEASE.
 */
export function startHost(name: string, sshPort: number, forward: number[] = [], kind?: "chroot" | "vm", release = TESTHOST_RELEASE): TestHost {
    const out = execFileSync(path.join(ROOT, "scripts/testhost/up.sh"), [name, String(sshPort), ...forward.map(String)], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "inherit"],
        timeout: 30 * 60 * 1000,
        env: { ...process.env, DEVPI_TESTHOST_RELEASE: release, ...(kind ? { DEVPI_TESTHOST_KIND: kind } : {}) },
    });
    const env: Record<string, string> = {};
    for (const line of out.split("\n")) {
        const m = /^(TESTHOST_[A-Z_]+)=(.*)$/.exec(line);
        if (m) env[m[1]] = execFileSync("bash", ["-c", `printf %s ${m[2]}`], { encoding: "utf8" });
    }
    return {
        name,
        kind: env.TESTHOST_KIND === "vm" ? "vm" : "chroot",
        root: env.TESTHOST_ROOT,
        sshHost: env.TESTHOST_SSH_HOST,
        sshPort: Number(env.TESTHOST_SSH_PORT),
        sshUser: env.TESTHOST_SSH_USER,
        sshKey: env.TESTHOST_SSH_KEY,
        hostKey: env.TESTHOST_HOST_KEY,
    };
}

export function stopHost(name: string): void {
    execFileSync(path.join(ROOT, "scripts/testhost/down.sh"), [name], { stdio: "inherit", timeout: 120_000 });
}

/** Runs a shell command inside the test host as root (for inspection only). */
export function onHost(host: TestHost, command: string): string {
    return execFileSync(path.join(ROOT, "scripts/testhost/exec.sh"), [host.name, "bash", "-c", command], { encoding: "utf8", timeout: 120_000 });
}

/**
 * Throws unless every port is below this machine's ephemeral range (ip_local_port_range): a port
 * in it may be held, at the moment a test server binds it, by an outgoing connection of another
 * suite (two run side by side in npm test), and nginx then fails with "Address already in use".
 */
export function assertOutsideEphemeralRange(ports: number[]): void {
    const [low, high] = fs.readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);
    const inside = ports.filter((p) => p >= low && p <= high);
    if (inside.length) throw new Error(`test ports ${inside.join(", ")} are in the ephemeral port range ${low}-${high}: pick ports below ${low}`);
}

/**
 * Starts a test host that serves as an off-host backup target: a user `restic` that logs in with
 * the key `keyFile` (made here when missing; ed25519, no passphrase) only, and the empty directory
 * /srv/restic for its repositories. The offsite settings point at `sftp:restic@127.0.0.1:/srv/restic/...`.
 */
export function startSftpTarget(name: string, sshPort: number, keyFile: string): TestHost {
    if (!fs.existsSync(keyFile)) execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "devpi-offsite", "-f", keyFile]);
    const target = startHost(name, sshPort);
    onHost(target, "id restic >/dev/null 2>&1 || useradd -m -s /bin/bash restic; install -d -m 0700 -o restic -g restic /home/restic/.ssh /srv/restic");
    fs.writeFileSync(path.join(target.root, "home/restic/.ssh/authorized_keys"), fs.readFileSync(`${keyFile}.pub`));
    onHost(target, "chown restic:restic /home/restic/.ssh/authorized_keys && chmod 0600 /home/restic/.ssh/authorized_keys");
    return target;
}

/** The files that make the Pulumi program (what a stack's project directory holds); config.ts is the single file older commits had instead of config/. */
export const PROGRAM_FILES = ["Pulumi.yaml", "package.json", "tsconfig.json", "index.ts", "config.ts", "config", "components"];

/**
 * Puts the program of `commit` (undefined: the working tree) into `dir`, replacing what was there,
 * with this checkout's node_modules linked in: a stack can be made by an older main, then updated
 * by today's program.
 */
export function programAt(dir: string, commit: string | undefined): void {
    fs.mkdirSync(dir, { recursive: true });
    for (const f of PROGRAM_FILES) fs.rmSync(path.join(dir, f), { recursive: true, force: true });
    if (commit) {
        const tar = execFileSync("git", ["-C", ROOT, "archive", commit, ...PROGRAM_FILES.filter((f) => gitHas(commit, f))], { maxBuffer: 64 * 1024 * 1024 });
        execFileSync("tar", ["-x", "-C", dir], { input: tar });
    } else {
        for (const f of PROGRAM_FILES.filter((f) => fs.existsSync(path.join(ROOT, f)))) fs.cpSync(path.join(ROOT, f), path.join(dir, f), { recursive: true });
    }
    if (!fs.existsSync(path.join(dir, "node_modules"))) fs.symlinkSync(path.join(ROOT, "node_modules"), path.join(dir, "node_modules"));
}

function gitHas(commit: string, file: string): boolean {
    try {
        execFileSync("git", ["-C", ROOT, "cat-file", "-e", `${commit}:${file}`], { stdio: "ignore" });
        return true;
    } catch {
        return false;
    }
}

/** A throwaway copy of today's program (its stack files must not land in the repository). */
export function projectCopy(): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "devpi-e2e-project-"));
    programAt(dir, undefined);
    return dir;
}

export const PASSPHRASE = "e2e-passphrase";

/** A stack of the project copy on a local file backend in `backend` (a fresh directory). */
export async function createStack(name: string, workDir: string, backend: string): Promise<Stack> {
    const envVars = {
        PULUMI_BACKEND_URL: `file://${backend}`,
        PULUMI_CONFIG_PASSPHRASE: PASSPHRASE,
        PULUMI_SKIP_UPDATE_CHECK: "true",
        PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
    };
    const ws = await LocalWorkspace.create({ workDir, envVars });
    return Stack.create(name, ws);
}

/**
 * Every file of a file backend (checkpoints, history, backups) whose text contains `secret`.
 * The Automation API's exportStack() decrypts secrets (--show-secrets), so state at rest is
 * checked here instead.
 */
export function filesContaining(dir: string, secret: string): string[] {
    const found: string[] = [];
    for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
        if (!entry.isFile()) continue;
        const file = path.join(entry.parentPath, entry.name);
        const text = fs.readFileSync(file, "utf8").replace(/\\n/g, "");
        if (text.includes(secret)) found.push(file);
    }
    return found;
}

/** Records what the engine did, in order. */
export class EventLog {
    readonly events: EngineEvent[] = [];
    readonly output: string[] = [];
    onEvent = (e: EngineEvent): void => {
        this.events.push(e);
    };
    onOutput = (s: string): void => {
        this.output.push(s);
    };
    clear(): void {
        this.events.length = 0;
        this.output.length = 0;
    }
    /** Index of the event that finished the resource whose URN ends with `::name`. */
    finished(name: string): number {
        return this.events.findIndex((e) => e.resOutputsEvent?.metadata.urn.endsWith(`::${name}`));
    }
    started(name: string): number {
        return this.events.findIndex((e) => e.resourcePreEvent?.metadata.urn.endsWith(`::${name}`));
    }
    /** Names of custom resources the engine actually operated on (anything but `same`). */
    changed(): string[] {
        return this.events
            .filter(
                (e) =>
                    e.resourcePreEvent &&
                    e.resourcePreEvent.metadata.op !== "same" &&
                    !e.resourcePreEvent.metadata.type.startsWith("devpi:") &&
                    !e.resourcePreEvent.metadata.type.startsWith("pulumi:"),
            )
            .map((e) => `${e.resourcePreEvent!.metadata.op}:${e.resourcePreEvent!.metadata.urn.split("::").pop()}`)
            .sort();
    }
    text(): string {
        return this.output.join("");
    }
}

/**
 * Samples every process's command line on this machine (the test host's included) until
 * stopped, except the test's own client tools under `ignorePrefix` (devpi-client takes
 * passwords in argv; that is the test's doing, not the program's).
 */
export class ProcessSampler {
    readonly seen = new Set<string>();
    /** Command lines of processes running inside the test host's root (any of them, with several hosts). */
    readonly onHost = new Set<string>();
    /** The same, per host root. */
    readonly byRoot = new Map<string, Set<string>>();
    private timer?: NodeJS.Timeout;
    constructor(
        private readonly ignorePrefix: string,
        private readonly hostRoot: () => string | string[] | undefined,
    ) {}
    start(): void {
        this.timer = setInterval(() => {
            for (const pid of fs.readdirSync("/proc")) {
                if (!/^\d+$/.test(pid)) continue;
                try {
                    const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ");
                    if (!cmd || cmd.startsWith(this.ignorePrefix)) continue;
                    this.seen.add(cmd);
                    const roots = this.hostRoot();
                    const root = fs.readlinkSync(`/proc/${pid}/root`);
                    if (roots && (Array.isArray(roots) ? roots : [roots]).includes(root)) {
                        this.onHost.add(cmd);
                        if (!this.byRoot.has(root)) this.byRoot.set(root, new Set());
                        this.byRoot.get(root)!.add(cmd);
                    }
                } catch {
                    // the process ended meanwhile
                }
            }
        }, 25);
    }
    stop(): void {
        if (this.timer) clearInterval(this.timer);
        this.timer = undefined;
    }
    /**
     * Runs `fn` unsampled: the Automation API passes config values to `pulumi config set` in
     * argv, which is the test setting config, not the program running.
     */
    async unsampled<T>(fn: () => Promise<T>): Promise<T> {
        const running = this.timer !== undefined;
        this.stop();
        try {
            return await fn();
        } finally {
            if (running) this.start();
        }
    }
}

/** A virtualenv on this machine with devpi-client, twine and build, cached across runs. */
export function clientVenv(): string {
    return cachedVenv("client-venv-1", ["devpi-client==7.3.0", "twine", "build", "setuptools", "wheel"]);
}

/**
 * A virtualenv on this machine under the cache directory, made once with `requirements` (pip).
 * Suites in both of npm test's lanes ask for the same ones at the same moment on a cold cache:
 * one makes it under a lock (flock), the others wait and then use it; `.complete` marks it done.
 */
export function cachedVenv(name: string, requirements: string[]): string {
    // An empty XDG_CACHE_HOME counts as unset (as in the shell scripts' ${XDG_CACHE_HOME:-...}):
    // a relative cache path would also slip past the ProcessSampler's prefix for this venv.
    const cache = path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache"), "devpi-pulumi");
    const dir = path.join(cache, name);
    if (fs.existsSync(path.join(dir, ".complete"))) return dir;
    fs.mkdirSync(cache, { recursive: true });
    // bash -c SCRIPT DIR REQUIREMENT...: $0 is the directory, "$@" the requirements.
    const make = 'set -e; d=$0; [ -e "$d/.complete" ] && exit 0; rm -rf "$d"; python3 -m venv "$d"; "$d/bin/pip" install -q "$@"; touch "$d/.complete"';
    execFileSync("flock", [`${dir}.lock`, "bash", "-c", make, dir, ...requirements], { stdio: "inherit", timeout: 10 * 60 * 1000 });
    return dir;
}

/** Runs a program from the client venv; resolves with exit status and output, never throws. */
export async function client(venv: string, program: string, args: string[], env: Record<string, string> = {}, cwd?: string): Promise<{ code: number; out: string }> {
    try {
        const r = await execFileP(path.join(venv, "bin", program), args, { env: { ...process.env, ...env }, cwd, timeout: 10 * 60 * 1000, maxBuffer: 64 * 1024 * 1024 });
        return { code: 0, out: r.stdout + r.stderr };
    } catch (e) {
        const err = e as { code?: number; stdout?: string; stderr?: string };
        return { code: typeof err.code === "number" ? err.code : 1, out: (err.stdout ?? "") + (err.stderr ?? "") };
    }
}

/** Builds a wheel of a tiny package `name` at `version` into `dist`. */
export function buildPackage(venv: string, name: string, version: string, dist: string): string {
    const src = fs.mkdtempSync(path.join(os.tmpdir(), "devpi-e2e-pkg-"));
    const mod = name.replace(/-/g, "_");
    fs.mkdirSync(path.join(src, mod));
    fs.writeFileSync(path.join(src, mod, "__init__.py"), `VERSION = "${version}"\n`);
    fs.writeFileSync(path.join(src, "pyproject.toml"), `[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n\n[project]\nname = "${name}"\nversion = "${version}"\n`);
    execFileSync(path.join(venv, "bin/python"), ["-m", "build", "--wheel", "--no-isolation", "--outdir", dist, src], { stdio: "pipe" });
    return path.join(dist, `${mod}-${version}-py3-none-any.whl`);
}

/**
 * `it` for a scenario whose steps build on each other: after the first failure the remaining
 * steps are skipped (and say why) instead of failing for the same reason.
 */
export function steps(): (name: string, fn: () => Promise<void> | void) => void {
    let failed: string | undefined;
    return (name, fn) => {
        void nodeIt(name, async (t) => {
            if (failed) {
                t.skip(`an earlier step failed: ${failed}`);
                return;
            }
            try {
                await fn();
            } catch (e) {
                failed = name;
                throw e;
            }
        });
    };
}

export interface Fetched {
    status: number;
    headers: http.IncomingHttpHeaders;
    body: string;
    /** SHA-256 fingerprint (AA:BB:...) of the server certificate, for HTTPS. */
    fingerprint?: string;
}

/** A TLS fingerprint as Node reports it ("AB:CD:...") in the form the stack outputs use (lower-case hex); "" when absent. */
export const fingerprintHex = (fp: string | undefined): string => (fp ?? "").replace(/:/g, "").toLowerCase();

/** GET `url` trusting only the CA in `caFile` (for HTTPS); JSON unless headers say otherwise. */
export function fetchWithCa(url: string, caFile: string, opts: https.RequestOptions = {}): Promise<Fetched> {
    const mod = url.startsWith("https:") ? https : http;
    return new Promise((resolve, reject) => {
        const req = mod.get(url, { ca: fs.readFileSync(caFile), headers: { Accept: "application/json" }, ...opts }, (res) => {
            // Read the certificate now: the socket is detached once the response ends.
            const sock = res.socket as unknown as { getPeerCertificate?: () => { fingerprint256?: string } } | null;
            const fingerprint = sock?.getPeerCertificate?.().fingerprint256;
            let body = "";
            res.on("data", (c: Buffer) => (body += c.toString()));
            res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, fingerprint }));
            res.on("error", reject);
        });
        req.on("error", reject);
    });
}

export interface Ports {
    ssh: number;
    http: number;
    https: number;
    devpi: number;
}

/**
 * Config every e2e stack shares: the test host's SSH access (host key pinned; the private key
 * as a local file or as a secret config value), `localhost` as
 * the domain, ports that cannot clash with another test host, and the machine's CA bundle for
 * outbound HTTPS (this machine reaches PyPI through a TLS-inspecting proxy).
 */
export function hostConfig(host: TestHost, ports: Ports, keyAs: "file" | "secret" = "file"): ConfigMap {
    assertOutsideEphemeralRange([ports.ssh, ports.http, ports.https, ports.devpi]);
    return {
        "devpi:host": { value: host.sshHost },
        "devpi:sshPort": { value: String(host.sshPort) },
        "devpi:sshUser": { value: host.sshUser },
        ...(keyAs === "file" ? { "devpi:sshPrivateKeyFile": { value: host.sshKey } } : { "devpi:sshPrivateKey": { value: fs.readFileSync(host.sshKey, "utf8"), secret: true } }),
        "devpi:hostKey": { value: host.hostKey },
        "devpi:domain": { value: "localhost" },
        "devpi:httpPort": { value: String(ports.http) },
        "devpi:httpsPort": { value: String(ports.https) },
        "devpi:devpiPort": { value: String(ports.devpi) },
        "devpi:metricsAddress": { value: testMetricsAddress(host) },
        "devpi:listenIpv6": { value: "false" },
        "devpi:upstreamCaBundle": { value: "/etc/ssl/certs/ca-certificates.crt" },
    };
}

/**
 * node-exporter's address on a test host: chroot test hosts share the machine's loopback, so each
 * gets its own loopback address (127.X.Y.1, from its unique SSH port) with Prometheus's usual port.
 */
export function testMetricsAddress(host: TestHost): string {
    return `127.${(host.sshPort >> 8) & 255}.${host.sshPort & 255}.1:9100`;
}

/** Config keys a program older than the metrics (issue 20) refuses: the compat tests set them after switching to today's. */
export const METRICS_KEYS = ["devpi:metricsAddress"];

/**
 * Sets `devpi:replicas[i]` to follow test host `host`: its SSH access (key file, pinned host
 * key), `name`, `domain` and ports, each key set by path as a user would.
 */
export async function setReplicaConfig(stack: Stack, i: number, host: TestHost, replica: { name: string; domain: string; ports: Ports }, opts: { legacy?: boolean } = {}): Promise<void> {
    const entry: Record<string, string> = {
        name: replica.name,
        host: host.sshHost,
        sshPort: String(host.sshPort),
        sshUser: host.sshUser,
        sshPrivateKeyFile: host.sshKey,
        hostKey: host.hostKey,
        domain: replica.domain,
        httpPort: String(replica.ports.http),
        httpsPort: String(replica.ports.https),
        devpiPort: String(replica.ports.devpi),
        ...(opts.legacy ? {} : { metricsAddress: testMetricsAddress(host) }),
    };
    for (const [k, v] of Object.entries(entry)) await stack.setConfig(`replicas[${i}].${k}`, { value: v }, true);
}

/** Removes the stack, the test host and the scratch directory, unless DEVPI_E2E_KEEP=1. */
export async function cleanUp(stack: Stack | undefined, hostName: string, work: string): Promise<void> {
    if (process.env.DEVPI_E2E_KEEP === "1") return;
    try {
        if (stack) await stack.workspace.removeStack(stack.name, { force: true });
    } catch {
        // best effort: the backend is a scratch directory
    }
    stopHost(hostName);
    fs.rmSync(work, { recursive: true, force: true });
}
