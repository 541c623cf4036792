/**
 * A stack created by the single-server program (the last commit before replicas existed) keeps
 * every resource when previewed and updated with today's code: the per-host tree keeps every
 * type token and resource name of the primary, so nothing is deleted or replaced, and nothing
 * is created but the steps added since (ADDED_SINCE). Steps whose scripts changed since then may
 * update in place (they are idempotent); with no script change in between (as when the refactor
 * landed) the check is "no change at all".
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe } from "node:test";
import { Stack } from "@pulumi/pulumi/automation";
import { buildPackage, cleanUp, client, clientVenv, createStack, EventLog, fetchWithCa, hostConfig, METRICS_KEYS, onHost, programAt, startHost, steps, TestHost, testMetricsAddress } from "./harness";

/** The single-server program to compare with: main just before devpi:replicas was merged. */
const SINGLE_HOST_COMMIT = process.env.DEVPI_E2E_SINGLE_HOST_COMMIT ?? "9b790fb";
const HOST = "rep-compat";
const PORTS = { ssh: 25001, http: 25080, https: 25443, devpi: 25040 };
/**
 * Steps added since then, created on the existing stack's first up with today's code (nothing
 * else may be created): the second apt run (nginx, supervisor, ... while pip installs devpi) and
 * root/pypi's settings (managed since the mirror settings) and the server's metrics.
 * With another DEVPI_E2E_SINGLE_HOST_COMMIT, DEVPI_E2E_ADDED_SINCE lists them (comma-separated; empty: none).
 */
const ADDED_SINCE =
    process.env.DEVPI_E2E_ADDED_SINCE !== undefined
        ? process.env.DEVPI_E2E_ADDED_SINCE.split(",").filter(Boolean)
        : ["host-service-packages", "index-root/pypi-index", "metrics-packages", "metrics-exporter"];

let host: TestHost;
let stack: Stack;
const log = new EventLog();
const work = fs.mkdtempSync(path.join(os.tmpdir(), "devpi-e2e-compat-"));
const project = path.join(work, "project");
const caFile = path.join(work, "ca.pem");
const BASE = `https://localhost:${PORTS.https}`;
let venv: string;
const clientEnv = () => ({ REQUESTS_CA_BUNDLE: caFile, PIP_CERT: caFile, DEVPI_CLIENTDIR: path.join(work, "devpi-client") });

describe("an existing single-server stack after the per-host refactor", { timeout: 40 * 60 * 1000 }, () => {
    const it = steps();
    before(async () => {
        programAt(project, SINGLE_HOST_COMMIT);
        host = startHost(HOST, PORTS.ssh, [PORTS.http, PORTS.https]);
        fs.mkdirSync(path.join(work, "state"));
        stack = await createStack("compat", project, path.join(work, "state"));
        await stack.setAllConfig({
            ...Object.fromEntries(Object.entries(hostConfig(host, PORTS)).filter(([k]) => !METRICS_KEYS.includes(k))),
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
        fs.writeFileSync(caFile, String((await stack.outputs()).caCertificate.value));
        venv = clientVenv();
        const env = clientEnv();
        assert.equal((await client(venv, "devpi", ["use", `${BASE}/alice/dev`], env)).code, 0);
        assert.equal((await client(venv, "devpi", ["login", "alice", "--password", "alice-Pw-compat-2"], env)).code, 0);
        const upload = await client(venv, "devpi", ["upload", buildPackage(venv, "compat-pkg", "1.0.0", path.join(work, "dist"))], env);
        assert.equal(upload.code, 0, upload.out);
    });

    it("today's program keeps every resource: nothing deleted or replaced, only new steps created; a second up runs nothing", async () => {
        programAt(project, undefined);
        await stack.setConfig("devpi:metricsAddress", { value: testMetricsAddress(host) });
        log.clear();
        const preview = await stack.preview({ diff: true, color: "never", onEvent: log.onEvent });
        const ops = Object.keys(preview.changeSummary).filter((op) => op !== "same" && op !== "update" && op !== "create");
        assert.deepEqual(ops, [], preview.stdout);
        assert.deepEqual(
            log.changed().filter((c) => c.startsWith("create:")),
            ADDED_SINCE.map((n) => `create:${n}`).sort(),
            preview.stdout,
        );
        log.clear();
        const result = await stack.up({ color: "never", onOutput: log.onOutput, onEvent: log.onEvent });
        assert.equal(result.summary.result, "succeeded");
        const updated = log.changed().filter((c) => !ADDED_SINCE.some((n) => c === `create:${n}`));
        assert.ok(
            updated.every((c) => c.startsWith("update:")),
            updated.join(", "),
        );
        const names = log.events.filter((e) => e.resourcePreEvent).map((e) => e.resourcePreEvent!.metadata.urn.split("::").pop());
        console.log(`# ${names.length} resources kept; updated in place (changed scripts since ${SINGLE_HOST_COMMIT}): ${updated.join(", ") || "none"}`);
        log.clear();
        const again = await stack.up({ color: "never", onOutput: log.onOutput, onEvent: log.onEvent });
        assert.deepEqual(Object.keys(again.summary.resourceChanges ?? {}), ["same"]);
        const preview2 = await stack.preview({ expectNoChanges: true, color: "never" });
        assert.deepEqual(Object.keys(preview2.changeSummary), ["same"]);
    });

    it("the layout moved to the privilege rule: the secret (the same one, so sessions stay valid) in root's /etc/devpi, backups 0700, TLS files root's; root and alice log in", () => {
        const files = onHost(
            host,
            "stat -c '%n %U:%G %a' /etc/devpi /etc/devpi/secret /srv/devpi/backups /srv/ssl/devpi /srv/ssl/devpi/server.key; cmp /srv/devpi/.secret /etc/devpi/secret && echo same-secret",
        );
        assert.match(files, /^\/etc\/devpi root:root 755$/m, files);
        assert.match(files, /^\/etc\/devpi\/secret devpi:devpi 600$/m, files);
        assert.match(files, /^\/srv\/devpi\/backups devpi:devpi 700$/m, files);
        assert.match(files, /^\/srv\/ssl\/devpi root:root 700$/m, files);
        assert.match(files, /^\/srv\/ssl\/devpi\/server\.key root:root 400$/m, files);
        assert.match(files, /^same-secret$/m, "the old secret was moved, not replaced");
        for (const [user, password] of [
            ["root", "root-Pw-compat-1"],
            ["alice", "alice-Pw-compat-2"],
        ]) {
            const code = onHost(
                host,
                `printf '%s' '{"user":"${user}","password":"${password}"}' | curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' -H 'Accept: application/json' --data-binary @- http://127.0.0.1:${PORTS.devpi}/+login`,
            );
            assert.equal(code.trim(), "200", `${user} logs in`);
        }
    });

    it("what was uploaded before the move still installs", async () => {
        const pip = await client(venv, "pip", ["install", "--no-cache-dir", "--target", path.join(work, "site"), "--index-url", `${BASE}/alice/dev/+simple/`, "compat-pkg==1.0.0"], clientEnv());
        assert.equal(pip.code, 0, pip.out);
    });

    it("without replicas /+changelog stays 403", async () => {
        assert.equal((await fetchWithCa(`https://localhost:${PORTS.https}/+changelog/0`, caFile)).status, 403);
        assert.equal((await fetchWithCa(`https://localhost:${PORTS.https}/+api`, caFile)).status, 200);
    });
});
