/**
 * Fault injection for the end-to-end fault suite: a stack on a fresh test host whose `pulumi up`
 * can be cut at points picked from the engine's events, and a snapshot of what the server holds
 * (files, users, indexes, outputs) to compare a recovered server with an uninterrupted one.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { EngineEvent, LocalWorkspace, Stack } from "@pulumi/pulumi/automation";
import { listenerPid, watchForCut } from "./cutWatch";
import { cleanUp, client, clientVenv, createStack, EventLog, fetchWithCa, fingerprintHex, hostConfig, onHost, Ports, projectCopy, startHost, TestHost } from "../e2e/harness";

export const ROOT_PASSWORD = "root-Pw-faults-5521";
export const ALICE_PASSWORD = "alice-Pw-faults-1170";

/** Processes running inside the test host (their /proc/PID/root is the host's root), by name. */
export function hostProcesses(host: TestHost): { pid: number; comm: string; args: string }[] {
    const found: { pid: number; comm: string; args: string }[] = [];
    for (const pid of fs.readdirSync("/proc")) {
        if (!/^\d+$/.test(pid)) continue;
        try {
            if (fs.readlinkSync(`/proc/${pid}/root`) !== host.root) continue;
            const comm = fs.readFileSync(`/proc/${pid}/comm`, "utf8").trim();
            const args = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ").trim();
            found.push({ pid: Number(pid), comm, args });
        } catch {
            // gone meanwhile
        }
    }
    return found;
}

/** The parent pid of `pid` (0 when it is gone). */
function parentPid(pid: number): number {
    try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
        // "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses, so split after the last ")".
        return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    } catch {
        return 0;
    }
}

/**
 * Kills `pid` and every ancestor up to (not including) the SSH session that started it: the
 * step's shell, sudo, runuser and the command itself, as a crash or a cut connection that takes
 * the whole step down would. All are stopped first, so none reacts to another's death. Returns
 * what was killed ("comm[pid]" each).
 */
export function killStepTree(host: TestHost, pid: number): string[] {
    const chain: number[] = [];
    for (let p = pid, hops = 0; p > 1 && hops < 64; p = parentPid(p), hops++) {
        let comm = "";
        try {
            comm = fs.readFileSync(`/proc/${p}/comm`, "utf8").trim();
        } catch {
            break;
        }
        if (comm.startsWith("sshd")) break;
        // Only the host's own processes (a chroot's /proc/PID/root is the host's root).
        if (fs.readlinkSync(`/proc/${p}/root`) !== host.root) break;
        chain.push(p);
    }
    const names = chain.map((p) => `${comm(p)}[${p}]`);
    const stopped = chain.filter((p) => signal(p, "SIGSTOP"));
    for (const p of stopped) signal(p, "SIGKILL");
    return names.filter((_, i) => stopped.includes(chain[i]));
}

function comm(pid: number): string {
    try {
        return fs.readFileSync(`/proc/${pid}/comm`, "utf8").trim();
    } catch {
        return "?";
    }
}

/** Every descendant of `pid` (its children, theirs, ...), from /proc. */
export function descendants(pid: number): number[] {
    const children = new Map<number, number[]>();
    for (const d of fs.readdirSync("/proc")) {
        if (!/^\d+$/.test(d)) continue;
        const ppid = parentPid(Number(d));
        children.set(ppid, [...(children.get(ppid) ?? []), Number(d)]);
    }
    const found: number[] = [];
    const walk = (p: number): void => (children.get(p) ?? []).forEach((c) => (found.push(c), walk(c)));
    walk(pid);
    return found;
}

/**
 * Kills a step whole, as a crash or reboot would: `pid` (the step's shell), every ancestor up to
 * its SSH session (killStepTree) and everything it started. All are stopped first. Returns what was
 * killed (the descendants as "child[pid]").
 */
export function killWholeStep(host: TestHost, pid: number): string[] {
    const below = descendants(pid).filter((p) => signal(p, "SIGSTOP"));
    const killed = [...killStepTree(host, pid), ...below.map((p) => `child[${p}]`)];
    for (const p of below) signal(p, "SIGKILL");
    return killed;
}

/** Sends `sig` to `pid`; false when the process has already exited (a short-lived child often has). */
function signal(pid: number, sig: NodeJS.Signals): boolean {
    try {
        process.kill(pid, sig);
        return true;
    } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ESRCH") return false;
        throw e;
    }
}

/**
 * Whether `pid` was started through the host's sshd (the listener is among its ancestors), as
 * anything a `pulumi up` runs on the host is; what cron or the harness starts is not.
 */
export function startedBySshd(host: TestHost, pid: number): boolean {
    const listener = listenerPid(host);
    for (let p = parentPid(pid), hops = 0; p > 1 && hops < 64; p = parentPid(p), hops++) {
        if (p === listener) return true;
    }
    return false;
}

/** SIGKILLs every SSH session of the host (all sshd processes but the listener) and, if asked, more processes by name. */
export function cutSessions(host: TestHost, alsoKill: RegExp[] = []): string[] {
    const listener = listenerPid(host);
    const killed: string[] = [];
    for (const p of hostProcesses(host)) {
        const isSession = p.comm.startsWith("sshd") && p.pid !== listener;
        if (isSession || alsoKill.some((r) => r.test(p.comm))) {
            try {
                process.kill(p.pid, "SIGKILL");
                killed.push(`${p.comm}[${p.pid}]`);
            } catch {
                // gone meanwhile
            }
        }
    }
    return killed;
}

/** Polls (every 50 ms, up to `timeoutMs`) until `pred` holds; resolves with whether it did. */
export async function until(pred: () => boolean, timeoutMs: number, everyMs = 50): Promise<boolean> {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
        if (pred()) return true;
        await new Promise((r) => setTimeout(r, everyMs));
    }
    return pred();
}

/**
 * Where a run is cut: once `step`'s script runs on the host (or `readyComm` runs, or `ready`
 * holds, e.g. dpkg configures), kill the SSH sessions and `alsoKill`.
 */
export interface CutPoint {
    label: string;
    step: string;
    /** What must hold on the host before the cut, polled (default: the step's own script runs). */
    ready?: (host: TestHost) => boolean;
    /** Or: a process whose name matches runs on the host (watched as the default is). */
    readyComm?: RegExp;
    alsoKill?: RegExp[];
}

/** PIDs of the host's SSH session processes (every sshd but the listener). */
export function sessionPids(host: TestHost): number[] {
    const l = listenerPid(host);
    return hostProcesses(host)
        .filter((p) => p.comm.startsWith("sshd") && p.pid !== l)
        .map((p) => p.pid);
}

/** A predicate for `until`: a process whose name matches `re` runs on the host (all of /proc, polled: for states that last seconds). */
export const running =
    (re: RegExp) =>
    (host: TestHost): boolean =>
        hostProcesses(host).some((p) => re.test(p.comm));

/** What happened at a cut: whether it fired, what was killed; end the watch with `endCut` when the run is over. */
export interface CutReport {
    fired: boolean;
    killed: string[];
    /** Ends the watch (set by cuttingLog; endCut calls it). */
    stop?: () => void;
    /** Resolves once the watch has ended and `fired`/`killed` are final. */
    settled?: Promise<void>;
}

/** Ends the watch of a cut run (call it when the run is over) and waits until its report is final. */
export async function endCut(report: CutReport): Promise<void> {
    report.stop?.();
    await report.settled;
}

/**
 * An EventLog handler for a run that is cut at `cut`: from the moment it is made (just before the
 * run starts) the host is watched until the step's own script runs (the step runner passes the
 * step's name as the script's $0), or a process named `cut.readyComm` does, or `cut.ready` holds;
 * then the SSH sessions and `alsoKill` are killed. The first two are watched by cutWatch's worker
 * thread (every 2 ms, at a raised priority): a short step on a busy machine ended between two looks
 * of a watch on the test's own event loop (CI of stop 26), and from the engine's event for the step
 * even more often (stop 25: "cut too late"). `cut.ready` (a predicate of the test's) is polled every
 * 5 ms on the event loop: for states that last seconds. Call `endCut(report)` when the run is over.
 */
export function cuttingLog(log: EventLog, host: TestHost, cut: CutPoint, report: CutReport): (e: EngineEvent) => void {
    if (cut.ready) {
        const ready = cut.ready;
        let ended = false;
        report.stop = () => {
            ended = true;
        };
        report.settled = (async () => {
            const ok = await until(() => ended || ready(host), 30 * 60_000, 5);
            if (!ok || ended) return;
            report.killed = cutSessions(host, cut.alsoKill);
            report.fired = report.killed.length > 0;
        })();
    } else {
        const watch = watchForCut(host, cut.readyComm ? { comm: cut.readyComm } : { step: cut.step }, cut.alsoKill);
        report.stop = watch.stop;
        report.settled = watch.done.then((killed) => {
            report.killed = killed;
            report.fired = killed.length > 0;
        });
    }
    return (e) => log.onEvent(e);
}

/** Holds an fcntl() lock (as apt/dpkg do) on `file` inside the host for `seconds`, as a process of the host. */
export function holdPackageLock(host: TestHost, file: string, seconds: number): void {
    const script = `use Fcntl; open(my $f, ">>", $ARGV[0]) or die; my $l = pack("ssx4qqix4", F_WRLCK, 0, 0, 0, 0); fcntl($f, F_SETLKW, $l) or die; sleep $ARGV[1];`;
    execFileSync(path.join(__dirname, "../../scripts/testhost/exec.sh"), [host.name, "bash", "-c", `nohup perl -e '${script}' ${file} ${seconds} >/dev/null 2>&1 & sleep 0.3`], { stdio: "ignore" });
}

const LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/**
 * Runs `fn` with the engine's plugins (and the program) of `stack` on a clock `offset` behind,
 * e.g. "-36h" (Debian's libfaketime; the Node stand-in plugins read the faked clock, the official
 * Go ones would not). Every later run, the servers and the clients use the real clock.
 */
export async function withClockBehind<T>(stack: Stack, offset: string, fn: () => Promise<T>): Promise<T> {
    if (!fs.existsSync(LIBFAKETIME)) throw new Error(`${LIBFAKETIME} is missing: apt-get install faketime`);
    const ws = stack.workspace as LocalWorkspace;
    Object.assign(ws.envVars, { LD_PRELOAD: LIBFAKETIME, FAKETIME: offset, FAKETIME_DONT_FAKE_MONOTONIC: "1" });
    try {
        return await fn();
    } finally {
        for (const k of ["LD_PRELOAD", "FAKETIME", "FAKETIME_DONT_FAKE_MONOTONIC"]) delete ws.envVars[k];
    }
}

export const FAULT_PORTS = (ssh: number): Ports => ({ ssh, http: ssh + 100, https: ssh + 200, devpi: ssh + 300 });

/** A fresh host and a stack with one user and two indexes; everything the suite compares. */
export interface FaultEnv {
    host: TestHost;
    stack: Stack;
    work: string;
    ports: Ports;
    log: EventLog;
}

export async function faultEnv(name: string, ports: Ports): Promise<FaultEnv> {
    const host = startHost(name, ports.ssh);
    const work = fs.mkdtempSync(path.join(os.tmpdir(), `devpi-faults-${name}-`));
    fs.mkdirSync(path.join(work, "state"));
    const stack = await createStack(name, projectCopy(), path.join(work, "state"));
    await stack.setAllConfig({
        ...hostConfig(host, ports),
        "devpi:rootPassword": { value: ROOT_PASSWORD, secret: true },
        "devpi:backupDir": { value: "/srv/devpi/backups" },
    });
    await stack.setAllConfig(
        {
            "users.alice.password": { value: ALICE_PASSWORD, secret: true },
            "users.alice.email": { value: "alice@example.com" },
            'indexes["alice/dev"].volatile': { value: "false" },
            'indexes["alice/scratch"].volatile': { value: "true" },
        },
        true,
    );
    return { host, stack, work, ports, log: new EventLog() };
}

/**
 * What `https://localhost:PORT/+api` serves (the env's own HTTPS port by default), fetched by a
 * client that trusts only the CA in `caPem`: the status and the certificate's sha256 (lower hex).
 */
export async function servedWith(env: FaultEnv, caPem: string, label: string, port = env.ports.https): Promise<{ status: number; sha256: string }> {
    const file = path.join(env.work, `${label}.pem`);
    fs.writeFileSync(file, caPem);
    const r = await fetchWithCa(`https://localhost:${port}/+api`, file);
    return { status: r.status, sha256: fingerprintHex(r.fingerprint) };
}

/**
 * devpi-client using `env`'s alice/dev and logged in as alice, trusting only the CA in `caFile`:
 * the client virtualenv and the environment to run `client()` with.
 */
export async function aliceClient(env: FaultEnv, caFile: string): Promise<{ venv: string; cenv: Record<string, string> }> {
    const venv = clientVenv();
    const cenv = { REQUESTS_CA_BUNDLE: caFile, DEVPI_CLIENTDIR: path.join(env.work, "devpi-client") };
    assert.equal((await client(venv, "devpi", ["use", `https://localhost:${env.ports.https}/alice/dev`], cenv)).code, 0);
    assert.equal((await client(venv, "devpi", ["login", "alice", "--password", ALICE_PASSWORD], cenv)).code, 0);
    return { venv, cenv };
}

/** A certificate's public key (SPKI, hex): the same for a CA re-issued with the same key. */
export const spki = (pem: string): string => new crypto.X509Certificate(pem).publicKey.export({ type: "spki", format: "der" }).toString("hex");

export async function disposeEnv(env: FaultEnv | undefined): Promise<void> {
    if (env) await cleanUp(env.stack, env.host.name, env.work);
}

/** `pulumi up`, resolving with the result or the error (never throws). */
export async function tryUp(env: FaultEnv, onEvent?: (e: EngineEvent) => void): Promise<{ ok: boolean; error: string }> {
    env.log.clear();
    try {
        await env.stack.up({ onEvent: onEvent ?? env.log.onEvent, onOutput: env.log.onOutput, color: "never" });
        return { ok: true, error: "" };
    } catch (e) {
        return { ok: false, error: String((e as Error).message) };
    }
}

/**
 * What the server holds, independent of the keys each stack generates: the program's files
 * (content hashes, except the private keys and certificates, which are per stack: names and modes
 * only), users and indexes as devpi reports them, packages' state, the running services, and the
 * stack outputs (minus the certificate-derived ones).
 */
export async function snapshot(env: FaultEnv): Promise<Record<string, unknown>> {
    const files = onHost(
        env.host,
        `for f in /etc/nginx/sites-enabled/* /etc/nginx/sites-available/devpi /etc/supervisor/conf.d/devpi.conf /etc/devpi/devpi-server.yml /etc/cron.d/devpi-backup /usr/local/sbin/devpi-backup /usr/local/sbin/devpi-restore; do
           [ -e "$f" ] && echo "$f $(stat -c %a:%U:%G "$f") $(sha256sum <"$f" | cut -c1-16)"; done
         for f in /srv/ssl/devpi/server.key /srv/ssl/devpi/ssl-unified.crt /etc/devpi/secret /etc/devpi/root-credential.json /srv/ssl/devpi; do
           [ -e "$f" ] && echo "$f $(stat -c %a:%U:%G "$f")"; done
         readlink /opt/devpi/venv; ls /opt/devpi/venv.versions
         echo "dpkg audit: [$(dpkg --audit)] journal: [$(ls /var/lib/dpkg/updates)]"
         dpkg-query -W -f='\${Package} \${Status}\\n' nginx supervisor python3-venv curl cron
         echo "half-written: $(find /etc/nginx /etc/supervisor /etc/devpi /etc/cron.d /usr/local/sbin /srv/ssl -name '.*.??????' | wc -l)"
         echo "nginx running: $( [ -s /run/nginx.pid ] && kill -0 "$(cat /run/nginx.pid)" 2>/dev/null && echo yes || echo no)"
         supervisorctl status devpi | awk '{print "devpi:", $2}'`,
    )
        .trim()
        .split("\n");
    const caFile = path.join(env.work, "ca.pem");
    const outputs = await env.stack.outputs();
    fs.writeFileSync(caFile, String(outputs.caCertificate.value));
    const base = `https://localhost:${env.ports.https}`;
    const json = async (p: string) => {
        const r = await fetchWithCa(`${base}${p}`, caFile);
        // Creation times differ from run to run; everything else must match.
        const result = r.status === 200 ? (JSON.parse(r.body, (k, v: unknown) => (k === "created" || k === "modified" ? undefined : v)) as { result: unknown }).result : undefined;
        return { status: r.status, result };
    };
    const plainOutputs: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(outputs)) {
        if (["caCertificate", "certificateSha256", "certificateExpiry", "healthCheck"].includes(k)) continue;
        plainOutputs[k] = v.value;
    }
    return {
        files,
        users: (await json("/+api")).status === 200 ? await json("/") : "no API",
        alice: await json("/alice"),
        aliceDev: await json("/alice/dev"),
        aliceScratch: await json("/alice/scratch"),
        outputs: plainOutputs,
        health: /ok|healthy|serving/i.test(String(outputs.healthCheck?.value ?? "")) ? "ok" : String(outputs.healthCheck?.value),
    };
}
