/**
 * Fault injection: `pulumi up` cut mid-run by killing the test host's SSH sessions (and apt/dpkg
 * or pip) at points picked from the engine's events. After each cut, the next `pulumi up`
 * must converge to what an uninterrupted run gives (files, users, indexes, outputs), and a
 * preview afterwards must show no changes.
 */
import assert from "node:assert/strict";
import { after, describe } from "node:test";
import { steps, TestHost } from "../e2e/harness";
import { CutPoint, CutReport, cuttingLog, disposeEnv, endCut, FAULT_PORTS, FaultEnv, faultEnv, holdPackageLock, hostProcesses, snapshot, tryUp } from "./faultHarness";

const PORTS = FAULT_PORTS(23022);
const HOST = "flt-cut";
/** What each cut did and whether the next run converged: printed at the end for the report. */
const table: string[] = [];
let baseline: Record<string, unknown> | undefined;
let env: FaultEnv | undefined;

async function converges(e: FaultEnv, label: string): Promise<void> {
    const r = await tryUp(e);
    assert.ok(r.ok, `the run after "${label}" converges: ${r.error.slice(0, 3000)}\nso far:\n${table.join("\n")}`);
    const repairs = [
        ...new Set(
            e.log
                .text()
                .match(/(an earlier package operation was interrupted[^\n]*|broken dependencies left behind[^\n]*|waiting for another package manager[^\n(]*|waiting for an earlier install[^\n]*)/g) ??
                [],
        ),
    ];
    table.push(`  -> next pulumi up converged${repairs.length ? `; it said: ${repairs.join(" | ")}` : ""}`);
    const snap = await snapshot(e);
    assert.deepEqual(snap, baseline, `after "${label}" the server matches an uninterrupted run`);
    const preview = await e.stack.preview({ expectNoChanges: true, color: "never" });
    assert.deepEqual(Object.keys(preview.changeSummary), ["same"]);
}

/** One run cut at `cut`; asserts it fired and the run failed, and returns the run's error. */
async function cutRun(e: FaultEnv, cut: CutPoint): Promise<string> {
    const report: CutReport = { fired: false, killed: [] };
    const r = await tryUp(e, cuttingLog(e.log, e.host, cut, report));
    await endCut(report);
    table.push(`${cut.label}: killed ${report.killed.join(" ") || "nothing"}; run ${r.ok ? "SUCCEEDED (cut too late)" : "failed"}`);
    // The table so far goes into the message: CI shows a failing case's message, not the after() hook's output.
    assert.ok(report.fired, `the cut "${cut.label}" fired; so far:\n${table.join("\n")}`);
    assert.equal(r.ok, false, `the run cut at "${cut.label}" fails; so far:\n${table.join("\n")}`);
    return r.error;
}

describe("SSH cut mid-run: the next pulumi up converges", { timeout: 60 * 60 * 1000 }, () => {
    const it = steps();
    after(async () => {
        await disposeEnv(env);
        console.log(`interruption points:\n  ${table.join("\n  ")}`);
    });

    it("baseline: an uninterrupted run on a fresh host", async () => {
        env = await faultEnv(HOST, PORTS);
        const t0 = Date.now();
        const r = await tryUp(env);
        assert.ok(r.ok, r.error);
        table.push(`baseline: uninterrupted pulumi up in ${Math.round((Date.now() - t0) / 1000)} s`);
        baseline = await snapshot(env);
        assert.equal((baseline.aliceDev as { status: number }).status, 200);
        await disposeEnv(env);
        env = undefined;
    });

    it("1. dpkg's lock held by another process when the package step starts, then apt and dpkg killed mid-install", async () => {
        env = await faultEnv(HOST, PORTS);
        // Held until the step has waited for it 3 s: a fixed time ran out before a busy machine (two
        // suites side by side) even reached the step, and then nothing waited.
        holdPackageLock(env.host, "/var/lib/dpkg/lock-frontend", 300);
        let stepSeen = 0;
        let released = false;
        // Killed while dpkg configures: that leaves dpkg's journal, the state that needs `dpkg --configure -a`.
        const configuring = (h: TestHost) => {
            const ps = hostProcesses(h);
            if (!released) {
                if (!stepSeen && ps.some((p) => p.comm === "bash" && / host-packages$/.test(p.args))) stepSeen = Date.now();
                if (stepSeen && Date.now() - stepSeen > 3000) {
                    for (const p of ps) if (p.comm === "perl" && p.args.includes("/var/lib/dpkg/lock-frontend")) process.kill(p.pid);
                    released = true;
                }
                return false;
            }
            return ps.some((p) => p.comm === "dpkg" && p.args.includes("--configure"));
        };
        const error = await cutRun(env, {
            label: "lock held until the step had waited 3 s, then sessions+apt-get+dpkg killed while dpkg configures",
            step: "host-packages",
            ready: configuring,
            alsoKill: [/^apt-get$/, /^dpkg$/, /^dpkg-deb$/],
        });
        assert.match(env.log.text(), /waiting for another package manager: \/var\/lib\/dpkg\/lock-frontend is held by process \d+ \(perl -e /, "the step said what it waited for");
        assert.match(error, /host-packages/);
        await converges(env, "lock held + apt/dpkg killed");
        await disposeEnv(env);
        env = undefined;
    });

    it("2. the connection cut while dpkg unpacks (apt goes on on the server)", async () => {
        env = await faultEnv(HOST, PORTS);
        await cutRun(env, { label: "sessions killed while dpkg unpacks; apt left running on the server", step: "host-packages", readyComm: /^dpkg$/ });
        await converges(env, "cut during apt");
        await disposeEnv(env);
        env = undefined;
    });

    // 3-10: one fresh host; each run is cut at the next point, so each run first has to finish
    // what the previous cut interrupted before it reaches its own cut.
    const chain: CutPoint[] = [
        { label: "devpi install: sessions and pip killed while pip runs", step: "devpi-venv", readyComm: /^pip/, alsoKill: [/^pip/] },
        { label: "devpi init", step: "devpi-init" },
        { label: "supervisor program", step: "supervisor-program" },
        { label: "nginx site", step: "nginx-site" },
        { label: "root password", step: "root-password-set" },
        { label: "user alice", step: "user-alice-user" },
        { label: "index alice/dev", step: "index-alice/dev-index" },
        { label: "health check", step: "health-https" },
    ];
    it(`3-${2 + chain.length}. cut at each later step in turn, then converge`, async () => {
        env = await faultEnv(HOST, PORTS);
        for (const [i, cut] of chain.entries()) {
            await cutRun(env, { ...cut, label: `${i + 3}. ${cut.label}` });
        }
        await converges(env, "the chain of cuts");
    });
});
