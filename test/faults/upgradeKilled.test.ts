/**
 * devpi's export killed in the middle of an upgrade (devpi-export is devpi-server's own export
 * command; on the export/import path the server is stopped for it): the upgrade goes back to the
 * old version, nothing uploaded is lost, and the next `pulumi up` completes the upgrade. Then the
 * whole upgrade step (its shell, sudo, runuser and devpi-import) killed while it imports into the
 * moved-aside server directory, and before that between the move aside and the import: each next
 * `pulumi up` repairs it from the marker the step left and says what it did; the last completes
 * the upgrade.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, describe } from "node:test";
import { buildPackage, client, fetchWithCa, onHost, steps } from "../e2e/harness";
import { aliceClient, disposeEnv, FAULT_PORTS, faultEnv, FaultEnv, hostProcesses, killStepTree, killWholeStep, startedBySshd, tryUp, until } from "./faultHarness";

const PORTS = FAULT_PORTS(23070);
const BASE = `https://localhost:${PORTS.https}`;
const OLD = "6.17.0";
const NEW = "6.20.3";
let env: FaultEnv | undefined;
let caFile = "";
const measured: string[] = [];

async function runningVersion(): Promise<string> {
    const status = JSON.parse((await fetchWithCa(`${BASE}/+status`, caFile)).body) as { result: { versioninfo: Record<string, string> } };
    return status.result.versioninfo["devpi-server"];
}

/** The upload is listed in alice/dev and its file downloads. */
async function uploadIsThere(): Promise<void> {
    const project = await fetchWithCa(`${BASE}/alice/dev/flt2-kept`, caFile);
    assert.equal(project.status, 200, project.body.slice(0, 300));
    const links = (JSON.parse(project.body) as { result: Record<string, { "+links"?: { href: string }[] }> }).result["1.0.0"]?.["+links"] ?? [];
    assert.equal(links.length, 1, project.body.slice(0, 500));
    const file = await fetchWithCa(links[0].href, caFile, { headers: {} });
    assert.equal(file.status, 200, `the release file downloads: ${links[0].href}`);
}

/**
 * A `pulumi up` with `watch` looking at the host from its start. The watch does not wait for the
 * engine's event for the upgrade step: events reach the program late under load (CI once saw the
 * step over before its event arrived, so nothing was killed), while the host's processes and
 * directories are there at once. `running()` turns false when the run has ended.
 */
async function upWatching(e: FaultEnv, watch: (running: () => boolean) => Promise<void>): Promise<{ ok: boolean; error: string }> {
    let running = true;
    const watcher = watch(() => running);
    const r = await tryUp(e);
    running = false;
    await watcher;
    return r;
}

/** A process of the upgrade step (started through sshd, so no cron backup) whose command line matches `re`. */
function stepProcess(e: FaultEnv, re: RegExp): { pid: number; comm: string; args: string } | undefined {
    return hostProcesses(e.host).find((p) => re.test(p.args) && !p.args.startsWith("runuser") && startedBySshd(e.host, p.pid));
}

describe("devpi-export killed during an upgrade", { timeout: 60 * 60 * 1000 }, () => {
    const it = steps();
    after(async () => {
        await disposeEnv(env);
        console.log(measured.join("\n"));
    });

    it(`devpi-server ${OLD} with an upload`, async () => {
        env = await faultEnv("flt2-upg", PORTS);
        await env.stack.setAllConfig({ "devpi:devpiServerVersion": { value: OLD }, "devpi:web": { value: "false" } });
        const r = await tryUp(env);
        assert.ok(r.ok, r.error.slice(0, 3000));
        caFile = path.join(env.work, "ca.pem");
        fs.writeFileSync(caFile, String((await env.stack.outputs()).caCertificate.value));
        assert.equal(await runningVersion(), OLD);
        const { venv, cenv } = await aliceClient(env, caFile);
        const upload = await client(venv, "devpi", ["upload", buildPackage(venv, "flt2-kept", "1.0.0", path.join(env.work, "dist"))], cenv);
        assert.equal(upload.code, 0, upload.out);
        await uploadIsThere();
    });

    it(`upgrading to ${NEW} by export/import with devpi-export SIGKILLed: the step fails saying so, ${OLD} serves again, nothing lost`, async () => {
        const e = env!;
        await e.stack.setAllConfig({ "devpi:devpiServerVersion": { value: NEW }, "devpi:upgradeStrategy": { value: "export-import" } });
        let killed = "";
        const r = await upWatching(e, async (running) => {
            const exporting = () => stepProcess(e, /\/bin\/devpi-export /);
            if (!(await until(() => !running() || exporting() !== undefined, 300_000, 5))) return;
            // Killed the moment it runs (polled every 5 ms): a small export can finish
            // in well under a second, so waiting longer would race it.
            const p = exporting();
            if (!p) return;
            try {
                process.kill(p.pid, "SIGKILL");
                killed = `${p.comm}[${p.pid}] ${p.args}`;
            } catch {
                // it ended first: the assertion on `killed` says so
            }
        });
        measured.push(`killed: ${killed}`);
        assert.ok(killed, `devpi-export was running and was killed (pulumi up ${r.ok ? "succeeded" : `failed: ${r.error.slice(-1500)}`})`);
        assert.equal(r.ok, false);
        const cause = r.error.split("\n").find((l) => l.includes("devpi step devpi-upgrade failed")) ?? "";
        measured.push(`pulumi up failed with: ${cause.trim()}`);
        // The property first (the old version serves, with the upload), then the message.
        assert.equal(await runningVersion().catch((err: Error) => `nothing (${err.message})`), OLD, "the old version serves");
        await uploadIsThere();
        assert.match(
            cause,
            new RegExp(
                `devpi step devpi-upgrade failed: devpi-export with ${OLD.replace(/\./g, "\\.")} into /srv/devpi/backups/pre-upgrade-\\S+\\.partial failed; nothing was switched, ${OLD.replace(/\./g, "\\.")} serves again\\. Run pulumi up again to retry the upgrade\\.`,
            ),
        );
        const left = onHost(e.host, "ls -a /srv/devpi/backups; ls -d /srv/devpi/data.pre-upgrade-* 2>/dev/null || true; readlink /opt/devpi/venv");
        assert.doesNotMatch(left, /\.partial/, "no partial export left");
        assert.doesNotMatch(left, /data\.pre-upgrade-/, "the data was not moved aside");
        assert.match(left, new RegExp(`devpi-server-${OLD.replace(/\./g, "\\.")}`), left);
    });

    it("the whole upgrade step killed between the move aside and the import: the run fails, the data is aside and marked", async () => {
        const e = env!;
        let killed: string[] = [];
        const dataDir = path.join(e.host.root, "srv/devpi");
        const r = await upWatching(e, async (running) => {
            const aside = () => fs.readdirSync(dataDir).some((n) => n.startsWith("data.pre-upgrade-"));
            if (!(await until(() => !running() || aside(), 300_000, 2)) || !aside()) return;
            // The step's shell and everything under it (mkdir, or devpi-import just started) and above it.
            const shell = hostProcesses(e.host).find((p) => p.args.startsWith("bash -c ") && p.args.endsWith(" devpi-upgrade"));
            if (!shell) return;
            killed = killWholeStep(e.host, shell.pid);
        });
        measured.push(`killed between move and import: ${killed.join(" ")}`);
        assert.ok(
            killed.some((k) => k.startsWith("bash")),
            `the step's shell was killed (got ${killed.join(", ") || "nothing"}; pulumi up ${r.ok ? "succeeded" : "failed"})`,
        );
        assert.equal(r.ok, false, "the killed step fails the run");
        const left = onHost(e.host, "cat /var/lib/devpi-pulumi/upgrade-devpi.state; ls -d /srv/devpi/data.pre-upgrade-*");
        assert.match(left, /^stage=moved$/m, left);
    });

    it("the next pulumi up repairs that (says so); its upgrade, killed whole during devpi-import, fails with the data aside and marked", async () => {
        const e = env!;
        let killed: string[] = [];
        const r = await upWatching(e, async (running) => {
            const importing = () => stepProcess(e, /\/bin\/devpi-import /);
            if (!(await until(() => !running() || importing() !== undefined, 300_000, 5))) return;
            // Some import work first: the new server directory is half-written when killed.
            await new Promise((r) => setTimeout(r, 300));
            const p = importing();
            if (p) killed = killStepTree(e.host, p.pid);
        });
        const said = (e.log.text().match(/undid the interrupted upgrade [^\n;]*/) ?? [""])[0];
        measured.push(`repair of the kill between move and import: ${said}`);
        assert.match(
            said,
            new RegExp(
                `undid the interrupted upgrade ${OLD.replace(/\./g, "\\.")} -> ${NEW.replace(/\./g, "\\.")} \\(stopped before its new data was complete\\): ${OLD.replace(/\./g, "\\.")} answers again on the old data`,
            ),
        );
        measured.push(`killed whole: ${killed.join(" <- ")}`);
        assert.ok(
            killed.length >= 3 && killed.some((k) => k.startsWith("bash")),
            `the step's shell, runuser and devpi-import were killed (got ${killed.join(", ") || "nothing"}; pulumi up ${r.ok ? "succeeded" : "failed"})`,
        );
        assert.equal(r.ok, false, "the killed step fails the run");
        const left = onHost(e.host, "cat /var/lib/devpi-pulumi/upgrade-devpi.state; ls -d /srv/devpi/data.pre-upgrade-*");
        assert.match(left, /^stage=moved$/m, left);
        assert.match(left, /^aside=\/srv\/devpi\/data\.pre-upgrade-\S+$/m, left);
    });

    it(`the next pulumi up repairs it, says so, and completes the upgrade to ${NEW}, with the upload`, async () => {
        const e = env!;
        const t0 = Date.now();
        const r = await tryUp(e);
        assert.ok(r.ok, r.error.slice(0, 3000));
        const said = (e.log.text().match(/undid the interrupted upgrade [^\n;]*/) ?? [""])[0];
        measured.push(`repairing pulumi up: ${((Date.now() - t0) / 1000).toFixed(0)} s: ${said}; ${(e.log.text().match(/upgraded devpi-server [^\n]*/) ?? [""])[0]}`);
        assert.match(
            said,
            new RegExp(
                `undid the interrupted upgrade ${OLD.replace(/\./g, "\\.")} -> ${NEW.replace(/\./g, "\\.")} \\(stopped before its new data was complete\\): ${OLD.replace(/\./g, "\\.")} answers again on the old data`,
            ),
        );
        assert.match(e.log.text(), /upgraded devpi-server [^\n]*export-import/);
        assert.equal(onHost(e.host, "ls /var/lib/devpi-pulumi/upgrade-devpi.state 2>/dev/null || echo none").trim(), "none", "the marker is gone");
        assert.equal(await runningVersion(), NEW);
        await uploadIsThere();
        const preview = await e.stack.preview({ expectNoChanges: true, color: "never" });
        assert.deepEqual(Object.keys(preview.changeSummary), ["same"]);
    });
});
