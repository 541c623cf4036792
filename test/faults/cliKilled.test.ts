/**
 * Fault injection: the `pulumi` CLI itself killed mid-run (SIGKILL of the CLI and its plugins, as
 * when the workstation dies; SIGINT, as Ctrl-C) on the local file backend, and the recovery
 * path the README documents, run exactly as written there.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, describe } from "node:test";
import { execFile, execFileSync } from "node:child_process";
import { EngineEvent, LocalWorkspace } from "@pulumi/pulumi/automation";
import { steps } from "../e2e/harness";
import { disposeEnv, FAULT_PORTS, FaultEnv, faultEnv, running, tryUp, until } from "./faultHarness";

const PORTS = FAULT_PORTS(23040);
let env: FaultEnv | undefined;

/** Children of `pid` (from /proc/PID/stat's ppid field), recursively. */
function descendants(pid: number): number[] {
    const kids: number[] = [];
    for (const p of fs.readdirSync("/proc")) {
        if (!/^\d+$/.test(p)) continue;
        try {
            const stat = fs.readFileSync(`/proc/${p}/stat`, "utf8");
            const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
            if (ppid === pid) kids.push(Number(p), ...descendants(Number(p)));
        } catch {
            // gone
        }
    }
    return kids;
}

/** The `pulumi` CLI the Automation API started for this test process. */
function pulumiCli(): number | undefined {
    return descendants(process.pid).find((p) => {
        try {
            return fs.readFileSync(`/proc/${p}/comm`, "utf8").trim() === "pulumi";
        } catch {
            return false;
        }
    });
}

/** A handler that sends `signal` to the CLI once `step` starts and `ready` holds on the host. */
function signalAt(e: FaultEnv, step: string, signal: "SIGINT" | "SIGKILL", ready: () => boolean, sent: { pid?: number }, before?: () => Promise<void>): (ev: EngineEvent) => void {
    let armed = true;
    return (ev) => {
        e.log.onEvent(ev);
        if (!armed || !ev.resourcePreEvent?.metadata.urn.endsWith(`::${step}`)) return;
        armed = false;
        void (async () => {
            await until(ready, 120_000);
            if (before) await before();
            const cli = pulumiCli();
            if (cli === undefined) return;
            // SIGKILL takes the plugins with it, as when the machine running pulumi dies.
            const victims = signal === "SIGKILL" ? [cli, ...descendants(cli)] : [cli];
            for (const v of victims) process.kill(v, signal);
            sent.pid = cli;
        })();
    };
}

/** Runs the pulumi CLI as a person would (the README's commands), in the stack's project. */
function pulumi(e: FaultEnv, args: string[]): string {
    const ws = e.stack.workspace as LocalWorkspace;
    return execFileSync("pulumi", [...args, "--stack", e.stack.name, "--non-interactive", "--color", "never"], {
        cwd: ws.workDir,
        env: { ...process.env, ...ws.envVars },
        encoding: "utf8",
        timeout: 600_000,
    });
}

/** `pulumi up` as a second person would start it; resolves with its output, never throws. */
function secondUp(e: FaultEnv): Promise<string> {
    const ws = e.stack.workspace as LocalWorkspace;
    return new Promise((resolve) => {
        execFile(
            "pulumi",
            ["up", "--yes", "--skip-preview", "--stack", e.stack.name, "--non-interactive", "--color", "never"],
            { cwd: ws.workDir, env: { ...process.env, ...ws.envVars }, timeout: 120_000 },
            (err, stdout, stderr) => resolve(`${err ? "failed" : "succeeded"}\n${stdout}${stderr}`),
        );
    });
}

function lockFiles(e: FaultEnv): string[] {
    const dir = path.join(e.work, "state", ".pulumi", "locks");
    return fs.existsSync(dir)
        ? fs
              .readdirSync(dir, { recursive: true })
              .map(String)
              .filter((f) => f.endsWith(".json"))
        : [];
}

async function pendingOperations(e: FaultEnv): Promise<string[]> {
    const state = await e.stack.exportStack();
    const pending = (state.deployment as { pending_operations?: { resource: { urn: string }; type: string }[] }).pending_operations ?? [];
    return pending.map((p) => `${p.type} ${p.resource.urn.split("::").pop()}`);
}

describe("the pulumi CLI killed mid-run", { timeout: 60 * 60 * 1000 }, () => {
    const it = steps();
    after(() => disposeEnv(env));

    it("SIGKILL while devpi installs: the stack stays locked and the create is pending", async () => {
        env = await faultEnv("flt-cli", PORTS);
        const sent: { pid?: number } = {};
        const host = env.host;
        const r = await tryUp(
            env,
            signalAt(env, "devpi-venv", "SIGKILL", () => running(/^pip/)(host), sent),
        );
        assert.ok(sent.pid, "the CLI was killed");
        assert.equal(r.ok, false);
        assert.equal(lockFiles(env).length, 1, "the killed CLI left its lock");
        // devpi's install runs beside the second apt run (host-service-packages), which may still be in flight.
        const pending = await pendingOperations(env);
        assert.ok(pending.includes("creating devpi-venv"), `devpi-venv's create is pending: ${pending.join(", ")}`);
        assert.deepEqual(
            pending.filter((p) => p !== "creating devpi-venv" && p !== "creating host-service-packages"),
            [],
            "nothing else is pending",
        );
        const blocked = await tryUp(env);
        assert.equal(blocked.ok, false);
        assert.match(blocked.error, /the stack is currently locked by 1 lock\(s\)\. Either wait for the other process\(es\) to end or delete the lock file with `pulumi cancel`/);
    });

    it("recovers with: pulumi cancel; pulumi refresh --clear-pending-creates; pulumi up", async () => {
        const e = env!;
        assert.match(pulumi(e, ["cancel", "--yes"]), /has been canceled/);
        assert.deepEqual(lockFiles(e), [], "pulumi cancel removed the lock");
        pulumi(e, ["refresh", "--clear-pending-creates", "--yes"]);
        assert.deepEqual(await pendingOperations(e), []);
        const r = await tryUp(e);
        assert.ok(r.ok, r.error.slice(0, 3000));
        const outputs = await e.stack.outputs();
        assert.match(String(outputs.healthCheck.value), /^healthy/);
        const preview = await e.stack.preview({ expectNoChanges: true, color: "never" });
        assert.deepEqual(Object.keys(preview.changeSummary), ["same"]);
    });

    it("a second pulumi up while one runs is refused; SIGINT (Ctrl-C) then cancels cleanly: no lock, nothing pending, and the next pulumi up converges", async () => {
        const e = env!;
        await e.stack.setAllConfig({ "users.bob.password": { value: "bob-Pw-faults-8812", secret: true }, 'indexes["bob/dev"].volatile': { value: "false" } }, true);
        const sent: { pid?: number } = {};
        let second = "";
        const r = await tryUp(
            e,
            signalAt(
                e,
                "user-bob-user",
                "SIGINT",
                () => true,
                sent,
                async () => void (second = await secondUp(e)),
            ),
        );
        assert.match(second, /^failed\n[\s\S]*the stack is currently locked by 1 lock\(s\)/, "a second pulumi up while one runs is refused by the backend's lock");
        assert.ok(sent.pid, "the CLI got SIGINT");
        assert.equal(r.ok, false, "the run was cancelled");
        assert.match(r.error, /\^C received; cancelling/);
        assert.deepEqual(lockFiles(e), [], "a cancelled run releases its lock");
        assert.deepEqual(await pendingOperations(e), []);
        const again = await tryUp(e);
        assert.ok(again.ok, again.error.slice(0, 3000));
        const resources = ((await e.stack.exportStack()).deployment as { resources: { urn: string }[] }).resources.map((x) => x.urn.split("::").pop());
        assert.ok(resources.includes("index-bob/dev-index") && resources.includes("health-https"), "the next run finished what was left");
        const preview = await e.stack.preview({ expectNoChanges: true, color: "never" });
        assert.deepEqual(Object.keys(preview.changeSummary), ["same"]);
    });
});
