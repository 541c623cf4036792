/**
 * A stack created by the single-server program (the last commit before replicas existed) keeps
 * every resource when previewed and updated with today's code: the per-host tree keeps every
 * type token and resource name of the primary, so nothing is deleted or replaced, and nothing
 * is created but the steps added since (ADDED_SINCE). Steps whose scripts changed since then may
 * update in place (they are idempotent); with no script change in between (as when the refactor
 * landed) the check is "no change at all".
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe } from "node:test";
import { Stack } from "@pulumi/pulumi/automation";
import { cleanUp, createStack, EventLog, fetchWithCa, hostConfig, onHost, ROOT, startHost, steps, TestHost } from "./harness";

/** The single-server program to compare with: main just before devpi:replicas was merged. */
const SINGLE_HOST_COMMIT = process.env.DEVPI_E2E_SINGLE_HOST_COMMIT ?? "9b790fb";
const HOST = "rep-compat";
const PORTS = { ssh: 25001, http: 25080, https: 25443, devpi: 25040 };
/**
 * Steps added since then, created on the existing stack's first up with today's code (nothing
 * else may be created): the second apt run (nginx, supervisor, ... while pip installs devpi).
 */
const ADDED_SINCE = ["host-service-packages"];
const PROJECT_FILES = ["Pulumi.yaml", "package.json", "tsconfig.json", "index.ts", "config.ts", "components"];

let host: TestHost;
let stack: Stack;
const log = new EventLog();
const work = fs.mkdtempSync(path.join(os.tmpdir(), "devpi-e2e-compat-"));
const project = path.join(work, "project");

/** Replaces the project's program files with those of `commit` (undefined: the working tree). */
function checkout(commit: string | undefined): void {
    for (const f of PROJECT_FILES) fs.rmSync(path.join(project, f), { recursive: true, force: true });
    if (commit) {
        const tar = execFileSync("git", ["-C", ROOT, "archive", commit, ...PROJECT_FILES], { maxBuffer: 64 * 1024 * 1024 });
        execFileSync("tar", ["-x", "-C", project], { input: tar });
    } else {
        for (const f of PROJECT_FILES) fs.cpSync(path.join(ROOT, f), path.join(project, f), { recursive: true });
    }
}

describe("an existing single-server stack after the per-host refactor", { timeout: 40 * 60 * 1000 }, () => {
    const it = steps();
    before(async () => {
        fs.mkdirSync(project);
        fs.symlinkSync(path.join(ROOT, "node_modules"), path.join(project, "node_modules"));
        checkout(SINGLE_HOST_COMMIT);
        host = startHost(HOST, PORTS.ssh, [PORTS.http, PORTS.https]);
        fs.mkdirSync(path.join(work, "state"));
        stack = await createStack("compat", project, path.join(work, "state"));
        await stack.setAllConfig({
            ...hostConfig(host, PORTS),
            "devpi:rootPassword": { value: "root-Pw-compat-1", secret: true },
        });
        await stack.setConfig("users.alice.password", { value: "alice-Pw-compat-2", secret: true }, true);
        await stack.setConfig('indexes["alice/dev"].volatile', { value: "false" }, true);
    });
    after(() => cleanUp(stack, HOST, work));

    it(`pulumi up with the single-server program (${SINGLE_HOST_COMMIT}) succeeds`, async () => {
        const result = await stack.up({ color: "never", onOutput: log.onOutput, onEvent: log.onEvent });
        assert.equal(result.summary.result, "succeeded");
        assert.ok((result.summary.resourceChanges?.create ?? 0) > 15, "it created the whole server");
    });

    it("today's program keeps every resource: nothing deleted or replaced, only new steps created; a second up runs nothing", async () => {
        checkout(undefined);
        log.clear();
        const preview = await stack.preview({ diff: true, color: "never", onEvent: log.onEvent });
        const ops = Object.keys(preview.changeSummary).filter((op) => op !== "same" && op !== "update" && op !== "create");
        assert.deepEqual(ops, [], preview.stdout);
        assert.deepEqual(log.changed().filter((c) => c.startsWith("create:")), ADDED_SINCE.map((n) => `create:${n}`), preview.stdout);
        log.clear();
        const result = await stack.up({ color: "never", onOutput: log.onOutput, onEvent: log.onEvent });
        assert.equal(result.summary.result, "succeeded");
        const updated = log.changed().filter((c) => !ADDED_SINCE.some((n) => c === `create:${n}`));
        assert.ok(updated.every((c) => c.startsWith("update:")), updated.join(", "));
        const names = log.events.filter((e) => e.resourcePreEvent).map((e) => e.resourcePreEvent!.metadata.urn.split("::").pop());
        console.log(`# ${names.length} resources kept; updated in place (changed scripts since ${SINGLE_HOST_COMMIT}): ${updated.join(", ") || "none"}`);
        log.clear();
        const again = await stack.up({ color: "never", onOutput: log.onOutput, onEvent: log.onEvent });
        assert.deepEqual(Object.keys(again.summary.resourceChanges ?? {}), ["same"]);
        const preview2 = await stack.preview({ expectNoChanges: true, color: "never" });
        assert.deepEqual(Object.keys(preview2.changeSummary), ["same"]);
    });

    it("the layout moved to the privilege rule: the secret (the same one, so logins stay valid) in root's /etc/devpi, backups 0700, TLS files root's; root and alice log in", () => {
        const files = onHost(host, "stat -c '%n %U:%G %a' /etc/devpi /etc/devpi/secret /srv/devpi/backups /srv/ssl/devpi /srv/ssl/devpi/server.key; cmp /srv/devpi/.secret /etc/devpi/secret && echo same-secret");
        assert.match(files, /^\/etc\/devpi root:root 755$/m, files);
        assert.match(files, /^\/etc\/devpi\/secret devpi:devpi 600$/m, files);
        assert.match(files, /^\/srv\/devpi\/backups devpi:devpi 700$/m, files);
        assert.match(files, /^\/srv\/ssl\/devpi root:root 700$/m, files);
        assert.match(files, /^\/srv\/ssl\/devpi\/server\.key root:root 400$/m, files);
        assert.match(files, /^same-secret$/m, "the old secret was moved, not replaced");
        for (const [user, password] of [["root", "root-Pw-compat-1"], ["alice", "alice-Pw-compat-2"]]) {
            const code = onHost(host, `printf '%s' '{"user":"${user}","password":"${password}"}' | curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' -H 'Accept: application/json' --data-binary @- http://127.0.0.1:${PORTS.devpi}/+login`);
            assert.equal(code.trim(), "200", `${user} logs in`);
        }
    });

    it("without replicas /+changelog stays 403", async () => {
        const caFile = path.join(work, "ca.pem");
        fs.writeFileSync(caFile, String((await stack.outputs()).caCertificate.value));
        assert.equal((await fetchWithCa(`https://localhost:${PORTS.https}/+changelog/0`, caFile)).status, 403);
        assert.equal((await fetchWithCa(`https://localhost:${PORTS.https}/+api`, caFile)).status, 200);
    });
});
