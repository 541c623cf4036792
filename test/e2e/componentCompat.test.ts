/**
 * A stack made by the program before the Devpi component (main as it was, a primary and a
 * replica) keeps every resource when today's program, `new Devpi("devpi", fromStackConfig())`,
 * takes it over: every command and certificate resource keeps its URN through its alias (no
 * create, no replace, no delete); the only new resources are the components themselves
 * (devpi:index:Devpi and one devpi:index:DevpiHost per server), which run nothing. Steps whose
 * scripts changed since then (the health checks and the replica's identity check read with a
 * credential where reads are restricted) are updated in place: they are idempotent checks. The
 * one new step is root/pypi's settings (managed since the mirror settings, so that the project-list
 * default reaches existing servers too): a DevpiIndex and its command, created. A second up is a
 * no-op, and what was uploaded before installs from both servers.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe } from "node:test";
import { Stack } from "@pulumi/pulumi/automation";
import {
    buildPackage,
    cleanUp,
    client,
    clientVenv,
    createStack,
    EventLog,
    hostConfig,
    METRICS_KEYS,
    programAt,
    setReplicaConfig,
    startHost,
    steps,
    stopHost,
    TestHost,
    testMetricsAddress,
} from "./harness";

/** main before the component (the last commit of the stack-config-only program). */
const BEFORE_COMPONENT_COMMIT = process.env.DEVPI_E2E_BEFORE_COMPONENT_COMMIT ?? "c98ad1b";
const PRIMARY = { name: "cmp-p", ports: { ssh: 26301, http: 26380, https: 26390, devpi: 26340 } };
const REPLICA = { name: "cmp-r1", label: "r1", ports: { ssh: 26302, http: 26381, https: 26391, devpi: 26341 } };
/**
 * Steps whose scripts changed since then, re-run in place: the checks (they read through nginx with a
 * credential where reads are restricted) and the stage index steps (their API program manages per-index
 * readers; it finds the index unchanged), nginx's site (it gained the stub_status socket devpi-metrics
 * reads), the backup's (it records its result for devpi-metrics, checks free space and runs the
 * off-host copy when configured), the package steps, the virtualenv and the upgrade (free space first).
 */
const UPDATED_CHECKS = [
    "health-https",
    "replica-r1-health-https",
    "replica-r1-resync-identity",
    "index-alice/dev-index",
    "nginx-site",
    "replica-r1-nginx-site",
    "backups-cron",
    // They check free space before apt installs anything (a no-op when all packages are there).
    "host-packages",
    "host-service-packages",
    "replica-r1-host-packages",
    "replica-r1-host-service-packages",
    // The virtualenv's and the upgrade's free-space checks (pip finds everything installed; the upgrade has nothing to do).
    "devpi-venv",
    "replica-r1-devpi-venv",
    "devpi-upgrade",
    "replica-r1-devpi-upgrade",
];
/** What today's program adds besides the components: root/pypi's settings (a component and its step), each server's metrics. */
const NEW_STEPS = [
    "devpi:index:DevpiIndex index-root/pypi",
    "command:remote:Command index-root/pypi-index",
    "devpi:index:HostMetrics metrics",
    "command:remote:Command metrics-packages",
    "command:remote:Command metrics-exporter",
    "devpi:index:HostMetrics replica-r1-metrics",
    "command:remote:Command replica-r1-metrics-packages",
    "command:remote:Command replica-r1-metrics-exporter",
];

let primary: TestHost;
let replica: TestHost;
let stack: Stack;
const log = new EventLog();
const work = fs.mkdtempSync(path.join(os.tmpdir(), "devpi-e2e-component-compat-"));
const project = path.join(work, "project");
const caFile = path.join(work, "ca.pem");
let venv: string;
const clientEnv = () => ({ REQUESTS_CA_BUNDLE: caFile, PIP_CERT: caFile, DEVPI_CLIENTDIR: path.join(work, "devpi-client") });

/** `op type name` of every resource event but the stack's. */
function operations(): string[] {
    return log.events
        .filter((e) => e.resourcePreEvent && e.resourcePreEvent.metadata.type !== "pulumi:pulumi:Stack")
        .map((e) => `${e.resourcePreEvent!.metadata.op} ${e.resourcePreEvent!.metadata.type} ${e.resourcePreEvent!.metadata.urn.split("::").pop()}`);
}

describe("a stack made before the Devpi component, taken over by it", { timeout: 40 * 60 * 1000 }, () => {
    const it = steps();
    before(async () => {
        programAt(project, BEFORE_COMPONENT_COMMIT);
        primary = startHost(PRIMARY.name, PRIMARY.ports.ssh, [PRIMARY.ports.https]);
        replica = startHost(REPLICA.name, REPLICA.ports.ssh, [REPLICA.ports.https]);
        fs.mkdirSync(path.join(work, "state"));
        stack = await createStack("component-compat", project, path.join(work, "state"));
        const legacy = Object.fromEntries(Object.entries(hostConfig(primary, PRIMARY.ports)).filter(([k]) => !METRICS_KEYS.includes(k)));
        await stack.setAllConfig({ ...legacy, "devpi:rootPassword": { value: "root-Pw-cmp-1", secret: true } });
        await stack.setConfig("users.alice.password", { value: "alice-Pw-cmp-2", secret: true }, true);
        await stack.setConfig('indexes["alice/dev"].volatile', { value: "false" }, true);
        await setReplicaConfig(stack, 0, replica, { name: REPLICA.label, domain: "localhost", ports: REPLICA.ports }, { legacy: true });
    });
    after(async () => {
        if (process.env.DEVPI_E2E_KEEP !== "1") stopHost(REPLICA.name);
        await cleanUp(stack, PRIMARY.name, work);
    });

    it(`pulumi up with the program before the component (${BEFORE_COMPONENT_COMMIT}) makes a primary and a replica; an upload`, async () => {
        const result = await stack.up({ color: "never", onOutput: log.onOutput, onEvent: log.onEvent });
        assert.equal(result.summary.result, "succeeded");
        fs.writeFileSync(caFile, String((await stack.outputs()).caCertificate.value));
        venv = clientVenv();
        const env = clientEnv();
        assert.equal((await client(venv, "devpi", ["use", `https://localhost:${PRIMARY.ports.https}/alice/dev`], env)).code, 0);
        assert.equal((await client(venv, "devpi", ["login", "alice", "--password", "alice-Pw-cmp-2"], env)).code, 0);
        const upload = await client(venv, "devpi", ["upload", buildPackage(venv, "cmp-pkg", "1.0.0", path.join(work, "dist"))], env);
        assert.equal(upload.code, 0, upload.out);
    });

    it("today's program: the preview and the up create only the components and replace or delete nothing; a second up is a no-op", async () => {
        programAt(project, undefined);
        // Keys today's program knows (the old one refused them): each test host's own metrics address.
        await stack.setConfig("devpi:metricsAddress", { value: testMetricsAddress(primary) });
        await stack.setConfig("replicas[0].metricsAddress", { value: testMetricsAddress(replica) }, true);
        log.clear();
        const preview = await stack.preview({ diff: true, color: "never", onEvent: log.onEvent });
        const changed = operations().filter((o) => !o.startsWith("same ") && !(o.startsWith("update ") && UPDATED_CHECKS.includes(o.split(" ")[2])));
        assert.ok(changed.length > 0 && changed.every((o) => o.startsWith("create ")), `${changed.join("\n")}\n${preview.stdout}`);
        assert.deepEqual(
            changed.map((o) => o.split(" ").slice(1).join(" ")).sort(),
            ["devpi:index:Devpi devpi", "devpi:index:DevpiHost primary", "devpi:index:DevpiHost replica-r1", ...NEW_STEPS].sort(),
        );
        const kept = operations().filter((o) => o.startsWith("same ")).length;
        log.clear();
        const result = await stack.up({ color: "never", onOutput: log.onOutput, onEvent: log.onEvent });
        assert.equal(result.summary.result, "succeeded");
        const changes = result.summary.resourceChanges ?? {};
        assert.deepEqual(Object.keys(changes).sort(), ["create", "same", "update"], JSON.stringify(changes));
        assert.equal(changes.create, 11, "the 3 components, root/pypi's settings and each server's metrics (a component, two steps) are the only resources created");
        assert.deepEqual(
            log.changed(),
            [
                ...UPDATED_CHECKS.map((n) => `update:${n}`),
                "create:index-root/pypi-index",
                "create:metrics-packages",
                "create:metrics-exporter",
                "create:replica-r1-metrics-packages",
                "create:replica-r1-metrics-exporter",
            ].sort(),
            "only the checks whose scripts changed ran again, in place",
        );
        assert.match(log.text(), /mirror index root\/pypi updated: mirror_no_project_list/, "the project-list default reaches the existing server");
        assert.match(log.text(), /index alice\/dev unchanged/, "the index step's new program finds nothing to change");
        console.log(`# ${kept} resources unchanged in the preview (${changes.same} in the up's summary); created: ${changed.join(", ")}`);
        log.clear();
        const again = await stack.up({ color: "never", onOutput: log.onOutput, onEvent: log.onEvent });
        assert.deepEqual(Object.keys(again.summary.resourceChanges ?? {}), ["same"]);
    });

    it("what was uploaded before installs from the primary and from the replica", async () => {
        for (const port of [PRIMARY.ports.https, REPLICA.ports.https]) {
            const target = path.join(work, `site-${port}`);
            const pip = await client(venv, "pip", ["install", "--no-cache-dir", "--target", target, "--index-url", `https://localhost:${port}/alice/dev/+simple/`, "cmp-pkg==1.0.0"], clientEnv());
            assert.equal(pip.code, 0, pip.out);
        }
    });
});
