/**
 * The private CA reaching its renewal window on a stack with a replica (self-signed mode): the
 * next `pulumi up` re-issues the CA with the same key, re-signs both servers' certificates,
 * gives the replica's devpi the new CA for its primary, and replication goes on; clients holding
 * either CA verify both servers; the run after is a no-op.
 *
 * As in expiryAndTraffic.test.ts, the window is reached honestly: the stack is provisioned by a
 * `pulumi up` whose plugins run under libfaketime 36 hours in the past.
 */
import assert from "node:assert/strict";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, describe } from "node:test";
import { buildPackage, client, fetchWithCa, onHost, setReplicaConfig, startHost, steps, stopHost, TestHost } from "../e2e/harness";
import { aliceClient, disposeEnv, FAULT_PORTS, faultEnv, FaultEnv, servedWith, spki, tryUp, withClockBehind } from "./faultHarness";

const PORTS = FAULT_PORTS(23080);
const REPLICA = { host: "flt-rca-r1", name: "r1", domain: "localhost", ports: FAULT_PORTS(23081) };
const PKG = "flt-rca";
let env: FaultEnv | undefined;
let replica: TestHost | undefined;
const measured: string[] = [];

async function outputs(e: FaultEnv) {
    const o = await e.stack.outputs();
    const clients = o.replicaClients.value as Record<string, { certificateSha256: string }>;
    return { ca: String(o.caCertificate.value), primarySha: String(o.certificateSha256.value), replicaSha: clients[REPLICA.name].certificateSha256 };
}

/** Uploads PKG==version to the primary and waits (bounded) until the replica lists it; seconds taken. */
async function uploadAndReplicate(e: FaultEnv, caPem: string, version: string): Promise<number> {
    const caFile = path.join(e.work, `ca-upload-${version}.pem`);
    fs.writeFileSync(caFile, caPem);
    const { venv, cenv } = await aliceClient(e, caFile);
    const wheel = buildPackage(venv, PKG, version, path.join(e.work, `dist-${version}`));
    const up = await client(venv, "devpi", ["upload", wheel], cenv);
    assert.equal(up.code, 0, up.out);
    const t0 = Date.now();
    const page = `https://localhost:${REPLICA.ports.https}/alice/dev/+simple/${PKG}/`;
    for (;;) {
        const r = await fetchWithCa(page, caFile, { headers: { Accept: "text/html" } });
        if (r.status === 200 && r.body.includes(`${PKG.replace(/-/g, "_")}-${version}`)) return (Date.now() - t0) / 1000;
        if (Date.now() - t0 > 60_000) throw new Error(`${version} not on the replica's ${page} after 60 s (HTTP ${r.status})`);
        await new Promise((res) => setTimeout(res, 300));
    }
}

describe("the private CA renewed on a stack with a replica", { timeout: 60 * 60 * 1000 }, () => {
    const it = steps();
    after(async () => {
        if (replica && process.env.DEVPI_E2E_KEEP !== "1") stopHost(replica.name);
        await disposeEnv(env);
        console.log(measured.join("\n"));
    });

    let ca1 = "";
    it("provisions a primary and a replica whose CA (30 days, renewed 29 days before expiry) was issued 36 hours ago; replication works", async () => {
        env = await faultEnv("flt-rca-p", PORTS);
        replica = startHost(REPLICA.host, REPLICA.ports.ssh);
        await setReplicaConfig(env.stack, 0, replica, REPLICA);
        await env.stack.setAllConfig({ "devpi:caValidityDays": { value: "30" }, "devpi:caRenewBeforeDays": { value: "29" } });
        const t0 = Date.now();
        const r = await withClockBehind(env.stack, "-36h", () => tryUp(env!));
        assert.ok(r.ok, r.error.slice(0, 3000));
        measured.push(`first pulumi up (plugins 36 h behind), primary + replica: ${((Date.now() - t0) / 1000).toFixed(0)} s`);
        const o = await outputs(env);
        ca1 = o.ca;
        const caLeft = (Date.parse(new crypto.X509Certificate(ca1).validTo) - Date.now()) / 86400_000;
        assert.ok(caLeft > 28 && caLeft < 29, `the CA expires in 28.5 days, not ${caLeft.toFixed(2)} (the fake clock did not reach the tls plugin)`);
        assert.deepEqual(await servedWith(env, ca1, "ca1-p", PORTS.https), { status: 200, sha256: o.primarySha });
        assert.deepEqual(await servedWith(env, ca1, "ca1-r", REPLICA.ports.https), { status: 200, sha256: o.replicaSha });
        measured.push(`1.0 on the replica ${(await uploadAndReplicate(env, ca1, "1.0.0")).toFixed(1)} s after its upload`);
    });

    it("pulumi up re-issues the CA with the same key, re-signs both servers and gives the replica the new CA; replication goes on; both CAs verify both servers; then a no-op", async () => {
        const e = env!;
        const before = await outputs(e);
        const t0 = Date.now();
        const r = await tryUp(e);
        assert.ok(r.ok, r.error.slice(0, 3000));
        const changed = e.log.changed();
        measured.push(`CA re-issue pulumi up: ${((Date.now() - t0) / 1000).toFixed(0)} s; changed: ${changed.join(" ")}`);
        for (const step of ["replace:ssl-ca", "update:ssl-files", "update:replica-r1-ssl-files", "update:replica-r1-devpi-primary-ca"]) {
            assert.ok(changed.includes(step), `${step} in ${changed.join(" ")}`);
        }
        const o = await outputs(e);
        assert.notEqual(o.ca, ca1, "a new CA certificate");
        assert.equal(spki(o.ca), spki(ca1), "with the same key");
        assert.notEqual(o.primarySha, before.primarySha, "the primary's certificate was re-signed");
        assert.notEqual(o.replicaSha, before.replicaSha, "the replica's certificate was re-signed");
        assert.ok(onHost(replica!, "cat /etc/devpi/ca-bundle.pem").includes(o.ca.trim()), "the replica's devpi trusts the new CA for its primary");
        for (const [label, caPem] of [
            ["old", ca1],
            ["new", o.ca],
        ] as const) {
            assert.deepEqual(await servedWith(e, caPem, `${label}-p`, PORTS.https), { status: 200, sha256: o.primarySha }, `the primary, verified with the ${label} CA alone`);
            assert.deepEqual(await servedWith(e, caPem, `${label}-r`, REPLICA.ports.https), { status: 200, sha256: o.replicaSha }, `the replica, verified with the ${label} CA alone`);
        }
        measured.push(`2.0 on the replica ${(await uploadAndReplicate(e, o.ca, "2.0.0")).toFixed(1)} s after its upload (after the re-issue)`);
        const preview = await e.stack.preview({ expectNoChanges: true, color: "never" });
        assert.deepEqual(Object.keys(preview.changeSummary), ["same"]);
    });
});
