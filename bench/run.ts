/**
 * `npm run bench`: the speed users feel, each figure measured beside its baseline in the same
 * run (issue 11). Starts its own test hosts (scripts/testhost/up.sh), runs B1–B8 and writes a
 * Markdown and a JSON table. `--smoke` runs the smallest setting (B2, B4, B5 with one repeat and
 * short load windows) and writes into .bench/ instead of docs/.
 *
 * Options: --smoke, --only=B1,B2,..., --out=DIR, --keep (leave the hosts running), --deadline=ISO-TIME.
 * Run it through scripts/bench.sh, which holds /tmp/devpi-e2e.lock like every e2e run.
 */
import { execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Stack } from "@pulumi/pulumi/automation";
import { HOST_PACKAGES } from "../components/host/hostPreparationScript";
import { measureOffsite } from "./offsite";
import { buildPackage, client, clientVenv, createStack, EventLog, hostConfig, projectCopy, ROOT, startHost, stopHost, TestHost, TESTHOST_RELEASE } from "../test/e2e/harness";

const argv = process.argv.slice(2);
const SMOKE = argv.includes("--smoke");
const KEEP = argv.includes("--keep");
const ONLY = (
    argv
        .find((a) => a.startsWith("--only="))
        ?.slice(7)
        .split(",") ?? (SMOKE ? ["B2", "B4", "B5"] : ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8"])
).map((s) => s.toUpperCase());
const OUT = path.resolve(argv.find((a) => a.startsWith("--out="))?.slice(6) ?? path.join(ROOT, SMOKE ? ".bench" : "docs"));
/**
 * `--deadline=ISO-TIME`: when the run should be over. A measurement is skipped (and says so in the
 * table) when it would start later than the deadline minus its usual length on a busy 2-core machine.
 */
const DEADLINE = Date.parse(argv.find((a) => a.startsWith("--deadline="))?.slice(11) ?? "") || Infinity;
const want = (id: string) => ONLY.includes(id);

/** Repeat counts and load windows: the smoke setting is the smallest that still measures. */
const R = SMOKE ? { noop: 1, loadSeconds: 3, bigMb: 0 } : { noop: 3, loadSeconds: 8, bigMb: Number(process.env.BENCH_BIG_MB ?? 200) };

const MAIN = "bench-main";
const BARE = "bench-bare";
const PORTS = { ssh: 26022, http: 26080, https: 26443, devpi: 26040 };
const BARE_SSH = 26122;
const BASE = `https://localhost:${PORTS.https}`;
/** The same site for wrk, by address: the server listens on IPv4 only (listenIpv6 false). */
const BASE_IP = `https://127.0.0.1:${PORTS.https}`;
const DIRECT = `http://127.0.0.1:${PORTS.devpi}`;
const ROOT_PASSWORD = "root-Pw-bench-5150";
const ALICE_PASSWORD = "alice-Pw-bench-2718";
/** B6 upgrades in place from OLD to MIDDLE, then forces export/import from MIDDLE to NEW. */
const OLD = SMOKE || !want("B6") ? "6.20.3" : "6.19.3";
const MIDDLE = "6.20.2";
const NEW = "6.20.3";
const WEB = "5.1.1";
/** What pip sends for a simple page (PEP 691 negotiation). */
const PIP_ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01";
const MIRROR_PROJECT = "six";

interface Row {
    id: string;
    what: string;
    unit: string;
    /** Every repeat of the figure. */
    values: number[];
    baseline: string;
    baselineValues: number[];
    /** figure / baseline (medians). */
    ratio?: number;
    target?: string;
    note?: string;
}

const rows: Row[] = [];
/** B1's cold up, step by step (written to the JSON beside the table). */
let profile: { step: string; start: number; end: number; seconds: number }[] = [];
const work = fs.mkdtempSync(path.join(os.tmpdir(), "devpi-bench-"));
const caFile = path.join(work, "ca.pem");
const log = new EventLog();
const started = new Date();

function median(xs: number[]): number {
    const s = [...xs].sort((a, b) => a - b);
    const m = Math.floor(s.length / 2);
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function add(r: Omit<Row, "ratio">): void {
    const row: Row = { ...r };
    if (r.values.length && r.baselineValues.length && median(r.baselineValues) !== 0) row.ratio = median(r.values) / median(r.baselineValues);
    rows.push(row);
    console.error(`[bench] ${row.id} ${row.what}: ${fmt(r.values)} ${row.unit} vs ${fmt(r.baselineValues)} (${row.baseline})${row.ratio !== undefined ? ` ratio ${row.ratio.toFixed(2)}` : ""}`);
}

function fmt(xs: number[]): string {
    if (!xs.length) return "–";
    const n = (x: number) => (Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 10 ? x.toFixed(1) : x.toFixed(2));
    return xs.length === 1 ? n(xs[0]) : `${n(median(xs))} (min ${n(Math.min(...xs))}, max ${n(Math.max(...xs))}, n=${xs.length})`;
}

async function timed<T>(fn: () => Promise<T> | T): Promise<[number, T]> {
    const t0 = performance.now();
    const r = await fn();
    return [(performance.now() - t0) / 1000, r];
}

function sh(host: string, command: string, timeoutMs = 30 * 60 * 1000): string {
    return execFileSync(path.join(ROOT, "scripts/testhost/exec.sh"), [host, "bash", "-c", command], { encoding: "utf8", timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
}

interface Load {
    rps: number;
    p50: number;
    p99: number;
    requests: number;
    non2xx: number;
}

/** Asks nginx for `url` until it answers from its cache (X-Cache-Status HIT), at most 10 s. */
function warm(url: string, headers: string[]): void {
    const until = Date.now() + 10_000;
    for (;;) {
        const out = execFileSync("curl", ["-s", "-o", "/dev/null", "-D", "-", "--cacert", caFile, ...headers.flatMap((h) => ["-H", h]), url], { encoding: "utf8" });
        if (/^x-cache-status: HIT/im.test(out)) return;
        if (Date.now() > until) throw new Error(`B5: nginx did not cache ${url} within 10 s:\n${out}`);
        execFileSync("sleep", ["0.5"]);
    }
}

/** wrk (Debian's `wrk` package) against a loopback URL, bounded by `seconds`; latencies in ms. */
function wrk(url: string, connections: number, seconds: number, headers: string[] = []): Load {
    const args = ["-t", "2", "-c", String(connections), "-d", `${seconds}s`, "--timeout", "5s", "--latency", ...headers.flatMap((h) => ["-H", h]), url];
    const out = execFileSync("wrk", args, { encoding: "utf8", timeout: (seconds + 30) * 1000 });
    const ms = (s: string): number => {
        const m = /^([\d.]+)(us|ms|s)$/.exec(s);
        if (!m) return NaN;
        return Math.round(Number(m[1]) * (m[2] === "us" ? 0.001 : m[2] === "s" ? 1000 : 1) * 1000) / 1000;
    };
    const pct = (p: string) => ms(new RegExp(`^\\s+${p}%\\s+(\\S+)`, "m").exec(out)?.[1] ?? "");
    const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? NaN);
    const non2xx =
        Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0) +
        Number(
            /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/
                .exec(out)
                ?.slice(1)
                .reduce((a, b) => a + Number(b), 0) ?? 0,
        );
    return { rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN), p50: pct("50"), p99: pct("99"), requests, non2xx };
}

/** When (performance.now(), ms) each engine event of the last run arrived, in the order of log.events. */
const arrived: number[] = [];
let runStart = 0;
const onEvent = (e: Parameters<EventLog["onEvent"]>[0]): void => {
    arrived.push(performance.now());
    log.onEvent(e);
};

async function up(stack: Stack): Promise<number> {
    log.clear();
    arrived.length = 0;
    runStart = performance.now();
    const [s, r] = await timed(() => stack.up({ onEvent, onOutput: log.onOutput, color: "never" }));
    if (r.summary.result !== "succeeded") throw new Error(`pulumi up failed:\n${log.text().slice(-4000)}`);
    return s;
}

async function preview(stack: Stack): Promise<number> {
    log.clear();
    const [s] = await timed(() => stack.preview({ onEvent: log.onEvent, onOutput: log.onOutput, color: "never" }));
    return s;
}

/** An empty TypeScript Pulumi program with the same toolchain, node_modules and kind of backend. */
async function emptyStack(): Promise<Stack> {
    const dir = fs.mkdtempSync(path.join(work, "empty-"));
    fs.writeFileSync(path.join(dir, "Pulumi.yaml"), "name: empty\nruntime:\n  name: nodejs\n  options:\n    typescript: true\n");
    fs.writeFileSync(path.join(dir, "index.ts"), "export {};\n");
    fs.copyFileSync(path.join(ROOT, "package.json"), path.join(dir, "package.json"));
    fs.copyFileSync(path.join(ROOT, "tsconfig.json"), path.join(dir, "tsconfig.json"));
    fs.symlinkSync(path.join(ROOT, "node_modules"), path.join(dir, "node_modules"));
    const backend = fs.mkdtempSync(path.join(work, "empty-state-"));
    return createStack("bench-empty", dir, backend);
}

/**
 * Every custom resource of the last engine run: when the engine started it and when its outputs
 * arrived, in seconds since the run started (arrival times of the engine's events at this process,
 * which the engine streams as they happen; its own timestamps are whole seconds).
 */
function stepProfile(): { step: string; start: number; end: number; seconds: number }[] {
    const begin = new Map<string, number>();
    const out: { step: string; start: number; end: number; seconds: number }[] = [];
    log.events.forEach((e, i) => {
        const at = (arrived[i] - runStart) / 1000;
        const pre = e.resourcePreEvent?.metadata;
        if (pre && !pre.type.startsWith("devpi:") && !pre.type.startsWith("pulumi:")) begin.set(pre.urn, at);
        const done = e.resOutputsEvent?.metadata;
        if (done && begin.has(done.urn)) {
            const start = begin.get(done.urn)!;
            out.push({ step: done.urn.split("::").pop() ?? done.urn, start: round1(start), end: round1(at), seconds: round1(at - start) });
        }
    });
    return out.sort((a, b) => a.start - b.start);
}

function round1(x: number): number {
    return Math.round(x * 10) / 10;
}

function renderProfile(p: ReturnType<typeof stepProfile>): string {
    return p.map((r) => `${r.start.toFixed(1).padStart(6)} → ${r.end.toFixed(1).padStart(6)}  ${r.seconds.toFixed(1).padStart(5)} s  ${r.step}`).join("\n");
}

/** The `n` custom resources of the last engine run that took longest, from the engine's event timestamps. */
function slowestSteps(n: number): string {
    const begin = new Map<string, number>();
    const took: [string, number][] = [];
    for (const e of log.events) {
        const pre = e.resourcePreEvent?.metadata;
        if (pre && !pre.type.startsWith("devpi:") && !pre.type.startsWith("pulumi:")) begin.set(pre.urn, e.timestamp);
        const done = e.resOutputsEvent?.metadata;
        if (done && begin.has(done.urn)) took.push([done.urn.split("::").pop() ?? done.urn, e.timestamp - begin.get(done.urn)!]);
    }
    return took
        .sort((a, b) => b[1] - a[1])
        .slice(0, n)
        .map(([name, s]) => `${name} ${s} s`)
        .join(", ");
}

/** A wheel of about `mb` MB of incompressible data. */
function bigWheel(venv: string, name: string, mb: number, dist: string): string {
    const src = fs.mkdtempSync(path.join(work, "big-"));
    const mod = name.replace(/-/g, "_");
    fs.mkdirSync(path.join(src, mod));
    fs.writeFileSync(path.join(src, mod, "__init__.py"), "");
    fs.writeFileSync(path.join(src, mod, "blob.bin"), Buffer.from(execFileSync("head", ["-c", String(mb * 1024 * 1024), "/dev/urandom"], { maxBuffer: (mb + 1) * 1024 * 1024 })));
    fs.writeFileSync(
        path.join(src, "pyproject.toml"),
        `[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n\n[project]\nname = "${name}"\nversion = "1.0"\n\n[tool.setuptools.package-data]\n${mod} = ["blob.bin"]\n`,
    );
    execFileSync(path.join(venv, "bin/python"), ["-m", "build", "--wheel", "--no-isolation", "--outdir", dist, src], { stdio: "pipe", maxBuffer: 64 * 1024 * 1024 });
    fs.rmSync(src, { recursive: true, force: true });
    return path.join(dist, `${mod}-1.0-py3-none-any.whl`);
}

/** Runs one measurement; a failure is recorded in the table (and the exit status) instead of ending the run. */
async function section(id: string, fn: () => Promise<void> | void, minutes = 2): Promise<void> {
    if (Date.now() > DEADLINE - minutes * 60_000) {
        rows.push({
            id: id.split(" ")[0],
            what: `${id} not measured`,
            unit: "",
            values: [],
            baseline: "",
            baselineValues: [],
            note: `skipped: the run's --deadline (${new Date(DEADLINE).toISOString()}) would pass before it ends`,
        });
        write();
        return;
    }
    try {
        await fn();
        write();
    } catch (e) {
        process.exitCode = 1;
        const msg = (e instanceof Error ? e.message : String(e)).split("\n").slice(0, 6).join(" ").slice(0, 600);
        console.error(`[bench] ${id} failed:`, e);
        rows.push({ id: id.split(" ")[0], what: `${id} FAILED`, unit: "", values: [], baseline: "", baselineValues: [], note: msg });
        write();
    }
}

async function main(): Promise<void> {
    fs.mkdirSync(OUT, { recursive: true });
    const venv = clientVenv();
    const clientEnv = { REQUESTS_CA_BUNDLE: caFile, PIP_CERT: caFile, DEVPI_CLIENTDIR: path.join(work, "devpi-client"), PIP_DISABLE_PIP_VERSION_CHECK: "1" };
    let mainHost: TestHost | undefined;
    let bareUp = false;
    try {
        // ---- B1: cold pulumi up on a fresh host (its baseline comes later) ----
        mainHost = startHost(MAIN, PORTS.ssh);
        const backend = path.join(work, "state");
        fs.mkdirSync(backend);
        const stack = await createStack("bench", projectCopy(), backend);
        await stack.setAllConfig({
            ...hostConfig(mainHost, PORTS),
            "devpi:rootPassword": { value: ROOT_PASSWORD, secret: true },
            "devpi:devpiServerVersion": { value: OLD },
            "devpi:devpiWebVersion": { value: WEB },
        });
        await stack.setAllConfig(
            {
                "extraIpAddresses[0]": { value: "127.0.0.1" },
                "users.alice.password": { value: ALICE_PASSWORD, secret: true },
                "users.alice.email": { value: "alice@example.com" },
                'indexes["alice/dev"].volatile': { value: "false" },
                'indexes["alice/dev"].bases[0]': { value: "root/pypi" },
            },
            true,
        );
        const cold = await up(stack);
        profile = stepProfile();
        console.error(`[bench] B1 step profile (start → end, seconds since the up began; total ${cold.toFixed(1)} s):\n${renderProfile(profile)}`);
        fs.writeFileSync(caFile, String((await stack.outputs()).caCertificate.value));
        const b1: Row = {
            id: "B1",
            what: "cold `pulumi up` of the dev-like stack on a fresh host",
            unit: "s",
            values: [cold],
            baseline: `bare apt-get install (${BARE_PACKAGES}) + pip install devpi-server devpi-web on another fresh host`,
            baselineValues: [],
            target: "≤ 1.1×",
            note: `first step started ${profile[0]?.start ?? "?"} s after the up began (engine, language host, program compile); slowest steps: ${slowestSteps(5)}`,
        };
        if (want("B1")) rows.push(b1);

        // ---- an upload, installable at once (the check B5's caching must not break) ----
        const dist = path.join(work, "dist");
        const env = clientEnv;
        const use = await client(venv, "devpi", ["use", `${BASE}/alice/dev`], env);
        if (use.code) throw new Error(use.out);
        const login = await client(venv, "devpi", ["login", "alice", "--password", ALICE_PASSWORD], env);
        if (login.code) throw new Error(login.out);
        const pkgName = `bench-pkg-${Date.now() % 100000}`;
        // pip asks for the page first (as a CI job would), so a cache would hold the empty answer.
        await client(venv, "pip", ["download", "--no-deps", "-d", path.join(work, "dl0"), "--index-url", `${BASE}/alice/dev/+simple/`, pkgName], env);
        const upl = await client(venv, "devpi", ["upload", buildPackage(venv, pkgName, "1.0.0", dist)], env);
        if (upl.code) throw new Error(upl.out);
        const inst = await client(venv, "pip", ["download", "--no-deps", "-d", path.join(work, "dl"), "--index-url", `${BASE}/alice/dev/+simple/`, `${pkgName}==1.0.0`], env);
        if (inst.code) throw new Error(`an upload was not installable right after it succeeded:\n${inst.out}`);
        console.error(`[bench] upload ${pkgName} installable at once: ok`);

        // ---- B4: a release file through nginx (from disk) vs devpi directly ----
        if (want("B4"))
            await section("B4", () => {
                const page = JSON.parse(execFileSync("curl", ["-sf", "-H", "Accept: application/vnd.pypi.simple.v1+json", `${DIRECT}/alice/dev/+simple/${pkgName}/`], { encoding: "utf8" })) as {
                    files: { url: string }[];
                };
                const rel = new URL(page.files[0].url, `${DIRECT}/alice/dev/+simple/${pkgName}/`).pathname;
                const viaNginx = wrk(`${BASE_IP}${rel}`, 16, R.loadSeconds);
                const direct = wrk(`${DIRECT}${rel}`, 16, R.loadSeconds);
                if (viaNginx.non2xx || direct.non2xx) throw new Error(`B4: non-2xx answers (nginx ${viaNginx.non2xx}, direct ${direct.non2xx})`);
                add({
                    id: "B4",
                    what: "release file through nginx (from disk), 16 connections",
                    unit: "req/s",
                    values: [viaNginx.rps],
                    baseline: "same file from devpi on its loopback port",
                    baselineValues: [direct.rps],
                    note: `p50/p99 ${viaNginx.p50}/${viaNginx.p99} ms vs ${direct.p50}/${direct.p99} ms; ${viaNginx.requests} and ${direct.requests} requests in ${R.loadSeconds} s each`,
                });
            });

        // ---- B5: simple pages through nginx at 16 and 64 connections ----
        const B5_PAGES = [
            ["mirror project root/pypi", `/root/pypi/+simple/${MIRROR_PROJECT}/`],
            ["user index alice/dev inheriting root/pypi", `/alice/dev/+simple/${MIRROR_PROJECT}/`],
        ] as const;
        /** Each page through nginx and from devpi directly, `headers` on both (a credential where reads need one). */
        const b5Rows = (reads: string, headers: string[]) => {
            const h = [`Accept: ${PIP_ACCEPT}`, "Accept-Encoding: gzip, deflate", ...headers];
            for (const [label, p] of B5_PAGES) {
                // nginx's copy first, as a page pip asks for all day is: a cold page's first requests wait
                // on proxy_cache_lock (nginx looks again every 500 ms), which is not what this row measures.
                warm(`${BASE_IP}${p}`, h);
                for (const c of SMOKE ? [16] : [16, 64]) {
                    const n = wrk(`${BASE_IP}${p}`, c, R.loadSeconds, h);
                    const d = wrk(`${DIRECT}${p}`, c, R.loadSeconds, h);
                    if (n.non2xx || d.non2xx) throw new Error(`B5: non-2xx answers or socket errors (nginx ${n.non2xx}, direct ${d.non2xx}) on ${p} (${reads})`);
                    add({
                        id: "B5",
                        what: `simple page, ${label}, ${c} connections${reads === "anonymous" ? "" : `, reads ${reads} (alice's password on each request)`}`,
                        unit: "req/s",
                        values: [n.rps],
                        baseline: "same page from devpi on its loopback port (what nginx got before caching)",
                        baselineValues: [d.rps],
                        target: reads === "anonymous" ? "≥ 5×, p99 < 100 ms" : "p99 < 100 ms (each request is first asked of devpi's /+authcheck)",
                        note: `p50/p99 ${n.p50}/${n.p99} ms via nginx vs ${d.p50}/${d.p99} ms direct`,
                    });
                }
            }
        };
        if (want("B5"))
            await section("B5", () => {
                execFileSync("curl", ["-sf", "-o", "/dev/null", "-H", `Accept: ${PIP_ACCEPT}`, `${DIRECT}/root/pypi/+simple/${MIRROR_PROJECT}/`]);
                b5Rows("anonymous", []);
            });
        // The same pages with reads authenticated (devpi-lockdown; nginx asks devpi before each answer,
        // cached or not), in the same run; then back to anonymous reads for the sections after it.
        if (want("B5") && !SMOKE)
            await section(
                "B5 authenticated",
                async () => {
                    await stack.setConfig("devpi:reads", { value: "authenticated" });
                    await up(stack);
                    try {
                        b5Rows("authenticated", [`Authorization: Basic ${Buffer.from(`alice:${ALICE_PASSWORD}`).toString("base64")}`]);
                    } finally {
                        await stack.setConfig("devpi:reads", { value: "anonymous" });
                        await up(stack);
                    }
                },
                6,
            );

        // ---- B2: no-op up and preview vs an empty program ----
        if (want("B2"))
            await section(
                "B2",
                async () => {
                    const empty = await emptyStack();
                    await empty.up({ color: "never" });
                    const devUp: number[] = [],
                        devPrev: number[] = [],
                        emptyUp: number[] = [],
                        emptyPrev: number[] = [];
                    let remote = 0;
                    for (let i = 0; i < R.noop; i++) {
                        emptyUp.push((await timed(() => empty.up({ color: "never" })))[0]);
                        devUp.push(await up(stack));
                        remote += log.changed().length;
                        emptyPrev.push((await timed(() => empty.preview({ color: "never" })))[0]);
                        devPrev.push(await preview(stack));
                        remote += log.changed().length;
                    }
                    add({
                        id: "B2",
                        what: "no-op `pulumi up`",
                        unit: "s",
                        values: devUp,
                        baseline: "`pulumi up` of an empty TypeScript program, same toolchain and file backend",
                        baselineValues: emptyUp,
                        target: "≤ 1.3×",
                    });
                    add({ id: "B2", what: "no-op `pulumi preview`", unit: "s", values: devPrev, baseline: "`pulumi preview` of the empty program", baselineValues: emptyPrev, target: "≤ 1.3×" });
                    add({ id: "B2", what: "resources operated on (not `same`) in the no-op runs", unit: "count", values: [remote], baseline: "required", baselineValues: [0], target: "0" });
                    await empty.workspace.removeStack(empty.name, { force: true });
                },
                4,
            );

        // ---- B1 baseline: the bare installs on another fresh host (after the cheap measurements) ----
        let bareSeconds: number[] = [];
        if (want("B1"))
            await section(
                "B1 baseline",
                async () => {
                    startHost(BARE, BARE_SSH);
                    bareUp = true;
                    const [s] = await timed(() =>
                        sh(
                            BARE,
                            `set -e; apt-get update -q >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ${BARE_PACKAGES} >/dev/null; python3 -m venv /opt/devpi; /opt/devpi/bin/pip install -q --cert /etc/ssl/certs/ca-certificates.crt devpi-server==${OLD} devpi-web==${WEB}`,
                        ),
                    );
                    bareSeconds = [s];
                    stopHost(BARE);
                    bareUp = false;
                },
                5,
            );
        if (want("B1") && bareSeconds.length) {
            b1.baselineValues = bareSeconds;
            b1.ratio = cold / median(bareSeconds);
            write();
        }

        // ---- B3: one-setting changes ----
        if (want("B3"))
            await section(
                "B3",
                async () => {
                    const noop = await up(stack);
                    const changes: [string, () => Promise<void>][] = [
                        ["upload limit (maxUploadMb 1024 → 512)", () => stack.setConfig("devpi:maxUploadMb", { value: "512" })],
                        ["a user's password", () => stack.setConfig("users.alice.password", { value: `${ALICE_PASSWORD}-2`, secret: true }, true)],
                        ["a new index", () => stack.setConfig('indexes["alice/b3"].volatile', { value: "true" }, true)],
                    ];
                    for (const [what, change] of changes) {
                        await change();
                        const s = await up(stack);
                        if (what.includes("password")) {
                            const relogin = await client(venv, "devpi", ["login", "alice", "--password", `${ALICE_PASSWORD}-2`], env);
                            if (relogin.code) throw new Error(`B3: alice cannot log in with the new password:\n${relogin.out}`);
                        }
                        add({
                            id: "B3",
                            what: `one-setting change: ${what}`,
                            unit: "s",
                            values: [s],
                            baseline: "no-op `pulumi up` just before",
                            baselineValues: [noop],
                            note: `touched: ${log.changed().join(", ") || "nothing"}`,
                        });
                    }
                },
                5,
            );

        // ---- B6/B7 need a server holding real data ----
        if (want("B6") || want("B7") || want("B8"))
            await section(
                "B6/B7/B8",
                async () => {
                    const each = 40;
                    const count = Math.max(1, Math.round(R.bigMb / each));
                    const bigDist = path.join(work, "bigdist");
                    for (let i = 0; i < count; i++) {
                        const whl = bigWheel(venv, `bench-big-${i}`, Math.min(each, Math.max(1, R.bigMb)), bigDist);
                        const u = await client(venv, "devpi", ["upload", whl], env);
                        if (u.code) throw new Error(u.out);
                        fs.rmSync(whl);
                    }
                    const dataMb = Number(sh(MAIN, "du -sm /srv/devpi/data | cut -f1").trim());
                    console.error(`[bench] server data: ${dataMb} MB`);
                    const probe = `${BASE}/alice/dev/+simple/bench-big-0/`;
                    if (want("B6")) {
                        process.env.NODE_EXTRA_CA_CERTS = caFile;
                        for (const [what, cfg] of [
                            [`in-place upgrade ${OLD} → ${MIDDLE}`, { "devpi:devpiServerVersion": { value: MIDDLE } }],
                            [`forced export/import upgrade ${MIDDLE} → ${NEW}`, { "devpi:devpiServerVersion": { value: NEW }, "devpi:upgradeStrategy": { value: "export-import" } }],
                        ] as const) {
                            await stack.setAllConfig(cfg);
                            const p = pollerTls(probe);
                            const s = await up(stack);
                            const r = await p.stop();
                            add({
                                id: "B6",
                                what: `index unavailable during ${what}, ${dataMb} MB of packages`,
                                unit: "s",
                                values: [r.downSeconds],
                                baseline: "whole `pulumi up` of the upgrade",
                                baselineValues: [s],
                                target: what.startsWith("in-place") ? "≤ 10 s" : undefined,
                                note: `${r.polls} polls every 100 ms`,
                            });
                        }
                    }
                    if (want("B7")) {
                        const [b, name] = await timed(() => path.basename(sh(MAIN, "runuser -u devpi -- /usr/local/sbin/devpi-backup").trim()));
                        const [r] = await timed(() => sh(MAIN, `/usr/local/sbin/devpi-restore ${name}`));
                        const [c] = await timed(() => sh(MAIN, "rm -rf /tmp/copy && cp -a /srv/devpi/data /tmp/copy && sync && rm -rf /tmp/copy"));
                        add({ id: "B7", what: `backup (devpi-export), ${dataMb} MB of packages`, unit: "s", values: [b], baseline: "cp -a of the serverdir + sync", baselineValues: [c] });
                        add({ id: "B7", what: `restore (devpi-restore of that backup)`, unit: "s", values: [r], baseline: "cp -a of the serverdir + sync", baselineValues: [c] });
                        const status = execFileSync("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", caFile, probe], { encoding: "utf8" });
                        if (status !== "200") throw new Error(`B7: the restored index answers ${status} for ${probe}`);
                    }
                    if (want("B8")) {
                        const check = (): void => {
                            const status = execFileSync("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", caFile, probe], { encoding: "utf8" });
                            if (status !== "200") throw new Error(`B8: the restored index answers ${status} for ${probe}`);
                        };
                        await measureOffsite({ stack, host: MAIN, work, sh, timed, up, add, check });
                    }
                },
                20,
            );
    } finally {
        write();
        if (!KEEP) {
            if (bareUp) stopHost(BARE);
            if (mainHost) stopHost(MAIN);
            fs.rmSync(work, { recursive: true, force: true });
        }
    }
}

/** The poller over HTTPS, trusting the stack's CA (NODE_EXTRA_CA_CERTS is read at startup, so use a child). */
function pollerTls(url: string): { stop: () => Promise<{ downSeconds: number; polls: number }> } {
    const child = spawn(process.execPath, ["-e", POLLER_SRC, url], { env: { ...process.env, NODE_EXTRA_CA_CERTS: caFile }, stdio: ["pipe", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    return {
        stop: () =>
            new Promise((resolve) => {
                child.on("close", () => resolve(JSON.parse(out) as { downSeconds: number; polls: number }));
                child.stdin.end("stop\n");
            }),
    };
}

const POLLER_SRC = `
const url = process.argv[1];
let down = 0, polls = 0, running = true;
process.stdin.on("data", () => { running = false; });
(async () => {
  while (running) {
    const t0 = performance.now();
    let ok = false;
    try { const r = await fetch(url, { signal: AbortSignal.timeout(2000) }); ok = r.status === 200; await r.arrayBuffer(); } catch { ok = false; }
    polls++;
    await new Promise((res) => setTimeout(res, Math.max(0, 100 - (performance.now() - t0))));
    if (!ok) down += (performance.now() - t0) / 1000;
  }
  process.stdout.write(JSON.stringify({ downSeconds: down, polls }));
  process.exit(0);
})();
`;

/** B1's baseline installs exactly the Debian packages the program installs (both of its apt runs). */
const BARE_PACKAGES = HOST_PACKAGES.join(" ");

function machine(): string {
    const cpu = os.cpus()[0]?.model ?? "unknown CPU";
    return `${os.hostname()}: ${os.cpus().length} × ${cpu}, ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM, Linux ${os.release()}, load average at start ${os
        .loadavg()
        .map((l) => l.toFixed(1))
        .join(" ")}`;
}

const loadAtStart = os.loadavg();

function write(): void {
    rows.sort((a, b) => a.id.localeCompare(b.id));
    const meta = {
        date: started.toISOString(),
        finished: new Date().toISOString(),
        machine: machine().replace(/load average at start .*/, `load average at start ${loadAtStart.map((l) => l.toFixed(1)).join(" ")}`),
        setting: SMOKE ? "smoke" : "full",
        measurements: ONLY,
        testHost: `chroot test host, Debian ${TESTHOST_RELEASE}`,
        devpi: { server: OLD, web: WEB },
        repeats: R,
        note: "Shared 2-core machine with other jobs running: absolute figures are noisy, only the ratios to the baselines measured in the same run count.",
    };
    fs.writeFileSync(path.join(OUT, "benchmark.json"), JSON.stringify({ ...meta, rows, ...(profile.length ? { b1StepProfile: profile } : {}) }, null, 2) + "\n");
    fs.writeFileSync(path.join(OUT, "benchmark.md"), renderMarkdown(meta, rows));
    console.error(`[bench] wrote ${path.join(OUT, "benchmark.md")} and benchmark.json`);
}

type Meta = { date: string; finished: string; machine: string; setting: string; testHost: string; devpi: { server: string; web: string }; note: string };

/** The Markdown table of a run, with bench/NOTES.md (what was tried and what limits a figure: prose, never figures). */
function renderMarkdown(meta: Meta, table: Row[]): string {
    const md = [
        `# Benchmark (${meta.setting})`,
        "",
        `Generated by \`npm run bench${meta.setting === "smoke" ? " -- --smoke" : ""}\` (bench/run.ts) from benchmark.json; do not edit by hand.`,
        "",
        `- Date: ${meta.date} (finished ${meta.finished})`,
        `- Machine: ${meta.machine}`,
        `- Test host: ${meta.testHost}; devpi-server ${meta.devpi.server}, devpi-web ${meta.devpi.web}`,
        `- ${meta.note}`,
        "",
        "| id | what | figure | baseline | baseline figure | ratio | target | note |",
        "|---|---|---|---|---|---|---|---|",
        ...table.map(
            (r) =>
                `| ${r.id} | ${r.what} | ${fmt(r.values)} ${r.unit} | ${r.baseline} | ${fmt(r.baselineValues)} ${r.unit} | ${r.ratio !== undefined ? r.ratio.toFixed(2) + "×" : "–"} | ${r.target ?? ""} | ${(r.note ?? "").replace(/\|/g, "/")} |`,
        ),
        "",
    ].join("\n");
    const notes = path.join(ROOT, "bench/NOTES.md");
    return md + (fs.existsSync(notes) ? "\n" + fs.readFileSync(notes, "utf8") : "");
}

/** `--render=FILE.json`: rewrite the Markdown beside a measured JSON (after the notes changed); measures nothing. */
const RENDER = argv.find((a) => a.startsWith("--render="))?.slice(9);
if (RENDER) {
    const data = JSON.parse(fs.readFileSync(RENDER, "utf8")) as Meta & { rows: Row[] };
    fs.writeFileSync(path.join(path.dirname(RENDER), "benchmark.md"), renderMarkdown(data, data.rows));
} else
    main().catch((e) => {
        console.error(e);
        process.exitCode = 1;
    });
