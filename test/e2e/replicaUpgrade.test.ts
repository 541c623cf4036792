/**
 * End to end, upgrades of a deployment with a replica: an in-place upgrade of every server keeps
 * replication going, and a forced export/import upgrade of the primary (which gives it a new
 * identity, so devpi refuses the replica's old state) re-syncs the replica in the same
 * `pulumi up`: every package uploaded before and after installs from the replica, and a second
 * run changes nothing. After a restore on the primary, the README's recovery (replacing the
 * replica's resync step) re-syncs it.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe } from "node:test";
import { Stack } from "@pulumi/pulumi/automation";
import { buildPackage, cleanUp, client, clientVenv, createStack, EventLog, fetchWithCa, hostConfig, onHost, projectCopy, setReplicaConfig, startHost, steps, stopHost, TestHost } from "./harness";

const PRIMARY = { name: "repu-p", ports: { ssh: 25201, http: 25280, https: 25643, devpi: 25240 } };
const REPLICA = { name: "repu-r1", label: "r1", ports: { ssh: 25202, http: 25281, https: 25644, devpi: 25241 } };
const ROOT_PASSWORD = "root-Pw-repu-4410";
const ALICE_PASSWORD = "alice-Pw-repu-2291";
const PRIMARY_URL = `https://localhost:${PRIMARY.ports.https}`;
const REPLICA_URL = `https://localhost:${REPLICA.ports.https}`;
const OLD = "6.17.0";
const MIDDLE = "6.19.3";
const NEW = "6.20.3";
const PKG = "e2e-repu";

let primary: TestHost;
let replica: TestHost;
let stack: Stack;
let venv: string;
const log = new EventLog();
const work = fs.mkdtempSync(path.join(os.tmpdir(), "devpi-e2e-repu-"));
const caFile = path.join(work, "ca.pem");
const dist = path.join(work, "dist");
const env = () => ({ REQUESTS_CA_BUNDLE: caFile, PIP_CERT: caFile, DEVPI_CLIENTDIR: path.join(work, "devpi-client"), PIP_DISABLE_PIP_VERSION_CHECK: "1" });

async function up(): Promise<void> {
    log.clear();
    await stack.up({ onEvent: log.onEvent, onOutput: log.onOutput, color: "never" });
}

interface Status {
    versioninfo: Record<string, string>;
    serial: number;
    role: string;
    uuid: string;
    "primary-uuid"?: string;
}
async function status(base: string): Promise<Status> {
    const r = await fetchWithCa(`${base}/+status`, caFile, { headers: { Accept: "application/json" } });
    assert.equal(r.status, 200, `${base}/+status: ${r.status} ${r.body.slice(0, 200)}`);
    return (JSON.parse(r.body) as { result: Status }).result;
}

async function upload(version: string): Promise<void> {
    await client(venv, "devpi", ["use", `${PRIMARY_URL}/alice/dev`], env());
    const login = await client(venv, "devpi", ["login", "alice", "--password", ALICE_PASSWORD], env());
    assert.equal(login.code, 0, login.out);
    const r = await client(venv, "devpi", ["upload", buildPackage(venv, PKG, version, dist)], env());
    assert.equal(r.code, 0, r.out);
}

/** Polls the replica until `version` is installable with pip from it; throws after `limit` s. */
async function installableFromReplica(version: string, limit: number): Promise<void> {
    const end = Date.now() + limit * 1000;
    let last = "";
    for (;;) {
        const target = fs.mkdtempSync(path.join(work, "site-"));
        const r = await client(venv, "pip", ["install", "--no-cache-dir", "--no-deps", "--target", target, "--index-url", `${REPLICA_URL}/alice/dev/+simple/`, `${PKG}==${version}`], env());
        if (r.code === 0) return;
        last = r.out;
        if (Date.now() > end) throw new Error(`${PKG}==${version} not installable from the replica after ${limit} s:\n${last}`);
        await new Promise((res) => setTimeout(res, 1000));
    }
}

/** Waits until the replica has caught up with the primary's serial; throws after `limit` s. */
async function replicaCaughtUp(limit: number): Promise<void> {
    const end = Date.now() + limit * 1000;
    for (;;) {
        const [p, r] = [await status(PRIMARY_URL), await status(REPLICA_URL)];
        if (r.serial >= p.serial && r["primary-uuid"] === p.uuid) return;
        if (Date.now() > end) throw new Error(`replica at serial ${r.serial} (primary-uuid ${r["primary-uuid"]}), primary at ${p.serial} (uuid ${p.uuid}) after ${limit} s`);
        await new Promise((res) => setTimeout(res, 500));
    }
}

describe("upgrading a primary and its replica", { timeout: 60 * 60 * 1000 }, () => {
    const it = steps();
    before(async () => {
        venv = clientVenv();
        primary = startHost(PRIMARY.name, PRIMARY.ports.ssh);
        replica = startHost(REPLICA.name, REPLICA.ports.ssh);
        const backend = path.join(work, "state");
        fs.mkdirSync(backend);
        stack = await createStack("replica-upgrade", projectCopy(), backend);
        await stack.setAllConfig({
            ...hostConfig(primary, PRIMARY.ports, "secret"),
            "devpi:web": { value: "false" },
            "devpi:devpiServerVersion": { value: OLD },
            "devpi:rootPassword": { value: ROOT_PASSWORD, secret: true },
        });
        await stack.setConfig("users.alice.password", { value: ALICE_PASSWORD, secret: true }, true);
        await stack.setConfig('indexes["alice/dev"].volatile', { value: "false" }, true);
        await setReplicaConfig(stack, 0, replica, { name: REPLICA.label, domain: "localhost", ports: REPLICA.ports });
    });
    after(async () => {
        if (process.env.DEVPI_E2E_KEEP !== "1") stopHost(REPLICA.name);
        await cleanUp(stack, PRIMARY.name, work);
    });

    it(`devpi-server ${OLD} on both, an upload reaches the replica`, async () => {
        await up();
        fs.writeFileSync(caFile, String((await stack.outputs()).caCertificate.value));
        assert.equal((await status(PRIMARY_URL)).versioninfo["devpi-server"], OLD);
        assert.equal((await status(REPLICA_URL)).versioninfo["devpi-server"], OLD);
        await upload("1.0");
        await installableFromReplica("1.0", 60);
    });

    it(`an in-place upgrade to ${MIDDLE} upgrades both and replication goes on`, async () => {
        const before = await status(PRIMARY_URL);
        await stack.setConfig("devpi:devpiServerVersion", { value: MIDDLE });
        await up();
        const [p, r] = [await status(PRIMARY_URL), await status(REPLICA_URL)];
        assert.equal(p.versioninfo["devpi-server"], MIDDLE);
        assert.equal(r.versioninfo["devpi-server"], MIDDLE);
        assert.equal(p.uuid, before.uuid, "in place, the primary keeps its identity");
        await upload("2.0");
        await installableFromReplica("2.0", 60);
        await installableFromReplica("1.0", 10);
        await replicaCaughtUp(60);
    });

    it(`a forced export/import upgrade to ${NEW} re-syncs the replica in the same run`, async () => {
        const before = await status(PRIMARY_URL);
        await stack.setAllConfig({ "devpi:devpiServerVersion": { value: NEW }, "devpi:upgradeStrategy": { value: "export-import" } });
        await up();
        const p = await status(PRIMARY_URL);
        assert.equal(p.versioninfo["devpi-server"], NEW);
        assert.notEqual(p.uuid, before.uuid, "export/import gives the primary a new identity");
        assert.match(log.text(), /re-sync/i, "the run says the replica was re-synced");
        // Right after the run (no waiting): the replica follows the new primary and has every package.
        const r = await status(REPLICA_URL);
        assert.equal(r.versioninfo["devpi-server"], NEW);
        assert.equal(r["primary-uuid"], p.uuid, "the replica follows the primary's new identity");
        await installableFromReplica("1.0", 10);
        await installableFromReplica("2.0", 10);
        await upload("3.0");
        await installableFromReplica("3.0", 60);
        await replicaCaughtUp(60);
        // The replica's old data is kept aside, not deleted.
        assert.notEqual(onHost(replica, "ls -d /srv/devpi/data.pre-resync-* 2>/dev/null | wc -l").trim(), "0");
    });

    it("after a restore on the primary, replacing the replica's resync step re-syncs it (the README's recovery)", async () => {
        await upload("4.0");
        await installableFromReplica("4.0", 60);
        const before = await status(PRIMARY_URL);
        const backup = path.basename(onHost(primary, "runuser -u devpi -- /usr/local/sbin/devpi-backup").trim());
        onHost(primary, `/usr/local/sbin/devpi-restore ${backup}`);
        const restored = await status(PRIMARY_URL);
        assert.notEqual(restored.uuid, before.uuid, "a restore is an import: the primary has a new identity");
        const resources = ((await stack.exportStack()).deployment as { resources: { urn: string }[] }).resources;
        const urn = resources.map((r) => r.urn).find((u) => u.endsWith("::replica-r1-resync-identity"));
        assert.ok(urn !== undefined, "the replica's resync step is in the state");
        assert.match(urn, /devpi:index:ReplicaResync\$command:remote:Command::replica-r1-resync-identity$/, "the URN the README gives");
        log.clear();
        await stack.up({ onEvent: log.onEvent, onOutput: log.onOutput, color: "never", replace: [urn] });
        assert.match(log.text(), /re-synced replica: now follows primary/);
        assert.equal((await status(REPLICA_URL))["primary-uuid"], restored.uuid);
        for (const v of ["1.0", "2.0", "3.0", "4.0"]) await installableFromReplica(v, 10);
        await upload("5.0");
        await installableFromReplica("5.0", 60);
    });

    it("a second pulumi up changes nothing; preview --expect-no-changes passes", async () => {
        await stack.preview({ expectNoChanges: true, color: "never" });
        const res = await stack.up({ color: "never" });
        const changed = Object.entries(res.summary.resourceChanges ?? {}).filter(([k, n]) => k !== "same" && (n ?? 0) > 0);
        assert.deepEqual(changed, []);
    });
});
