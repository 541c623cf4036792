/**
 * A replica's upgrade and re-sync: the rendered scripts (shellcheck, what they do and do not do)
 * and the identity program run against stand-in /+status endpoints on loopback.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import * as http from "node:http";
import { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { describeUpgrade, renderUpgradeScript } from "../../components/devpi/devpiUpgradeScript";
import { renderReplicaResyncScript, REPLICA_IDENTITY_PY } from "../../components/devpi/replicaResyncScript";
import { PRELUDE } from "../../components/common/shell";

const upgrade = {
    venvDir: "/opt/devpi/venv",
    key: "devpi-server-6.20.3",
    configFile: "/etc/devpi/devpi-server.yml",
    serverDir: "/srv/devpi/data",
    backupDir: "/srv/devpi/backups",
    serviceUser: "devpi",
    program: "devpi",
    devpiUrl: "http://127.0.0.1:4040",
    strategy: "export-import" as const,
    allowDowngrade: false,
    readyTimeout: 120,
    logFile: "/var/log/supervisor/devpi.log",
};
const resync = {
    primaryUrl: "https://devpi.example.com",
    devpiUrl: "http://127.0.0.1:4040",
    serverDir: "/srv/devpi/data",
    configFile: "/etc/devpi/devpi-server.yml",
    venvDir: "/opt/devpi/venv",
    serviceUser: "devpi",
    program: "devpi",
    timeout: 600,
    revision: "primary devpi-server-6.20.3, replica devpi-server-6.20.3",
};

function shellcheck(body: string): void {
    const r = spawnSync("shellcheck", ["-s", "bash", "-"], { input: `#!/bin/bash\n${PRELUDE}${body}`, encoding: "utf8" });
    assert.equal(r.status, 0, r.stdout);
}

describe("a replica's upgrade", () => {
    const script = renderUpgradeScript({ ...upgrade, replica: true });
    it("passes shellcheck", () => shellcheck(script));
    it("never exports or imports, even when export/import is forced: a new data format means a fresh sync", () => {
        assert.doesNotMatch(script, /devpi-export|devpi-import/);
        assert.match(script, /^\[ "\$old_db" = "\$new_db" \] \|\| path=resync$/m);
        assert.match(script, /"\$new\/bin\/devpi-init" -c "\$cfg"/);
        assert.match(describeUpgrade({ ...upgrade, replica: true }), /in place when the data format matches, by a fresh sync from the primary otherwise/);
    });
    it("keeps the old data aside and puts it back when the new version does not come up", () => {
        assert.match(script, /aside="\$sd\.pre-resync-/);
        assert.match(script, /if \[ -n "\$aside" \]; then as_user rm -rf -- "\$sd"; as_user mv -T -- "\$aside" "\$sd"; fi/);
    });
    it("leaves the primary's script as it was (export first, export/import when forced)", () => {
        const primary = renderUpgradeScript(upgrade);
        assert.match(primary, /devpi-export/);
        assert.match(primary, /devpi-import/);
        assert.doesNotMatch(primary, /pre-resync/);
    });
});

describe("a replica's re-sync step", () => {
    const script = renderReplicaResyncScript(resync);
    it("passes shellcheck", () => shellcheck(script));
    it("re-runs when either version changes, and starts over only on a changed identity", () => {
        assert.match(script, /^# revision primary devpi-server-6\.20\.3, replica devpi-server-6\.20\.3$/m);
        const compare = script.indexOf('if [ "$primary_uuid" = "$followed" ]');
        assert.ok(compare > 0 && compare < script.indexOf('mv -T -- "$sd" "$aside"'), "compares before moving anything");
        assert.match(script, /echo "the re-sync failed; putting the replica's old data back"/);
    });
    it("fails, rather than calling two unreadable identities equal, when the identity program fails", () => {
        assert.match(script, /^ids=\$\(printf '%s' "\$payload" \| python3 -c "\$identity_py" identity /m);
        assert.match(script, /if \[ -z "\$primary_uuid" \] \|\| \[ -z "\$followed" \]; then/);
    });
});

describe("the identity program", () => {
    let primary: { uuid: string; serial: number };
    let replica: { role: string; serial: number; "primary-uuid"?: string };
    const servers: http.Server[] = [];
    const urls: string[] = [];
    const serve = (body: () => object) =>
        new Promise<string>((resolve) => {
            const s = http.createServer((req, res) => {
                assert.equal(req.url, "/+status");
                res.setHeader("Content-Type", "application/json");
                res.end(JSON.stringify({ type: "status", result: body() }));
            });
            s.listen(0, "127.0.0.1", () => resolve(`http://127.0.0.1:${(s.address() as AddressInfo).port}`));
            servers.push(s);
        });
    before(async () => {
        urls.push(await serve(() => primary), await serve(() => replica));
    });
    after(() => servers.forEach((s) => s.close()));
    // Asynchronous: the stand-in servers run on this process's event loop.
    const run = (mode: string, timeout = 3) =>
        new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
            const p = spawn("python3", ["-c", REPLICA_IDENTITY_PY, mode, urls[0], urls[1], String(timeout)]);
            let out = "";
            let err = "";
            p.stdout.on("data", (d) => (out += d));
            p.stderr.on("data", (d) => (err += d));
            p.on("close", (code) => resolve({ code, out, err }));
            p.stdin.end("");
        });

    it("prints the primary's identity and the one the replica follows", async () => {
        primary = { uuid: "new", serial: 3 };
        replica = { role: "REPLICA", serial: 40, "primary-uuid": "old" };
        const r = await run("identity");
        assert.equal(r.code, 0, r.err);
        assert.equal(r.out.trim(), "new old");
    });
    it("is not synced by a higher serial under another identity", async () => {
        const r = await run("synced", 2);
        assert.equal(r.code, 1);
        assert.match(r.err, /did not catch up with the primary new \(serial 3\) within 2s/);
        assert.match(r.err, /primary-uuid old/);
    });
    it("is synced once it follows the primary and reached its serial", async () => {
        replica = { role: "REPLICA", serial: 3, "primary-uuid": "new" };
        const r = await run("synced");
        assert.equal(r.code, 0, r.err);
        assert.match(r.out, /replica at serial 3 of the primary's 3/);
    });
    it("waits for a fresh replica to learn its primary, and fails when it never does", async () => {
        replica = { role: "REPLICA", serial: -1 };
        const r = await run("identity", 2);
        assert.equal(r.code, 1);
        assert.match(r.err, /did not learn its primary's identity within 2s/);
    });
    it("refuses a server that is not a replica", async () => {
        replica = { role: "PRIMARY", serial: 3 };
        const r = await run("identity");
        assert.equal(r.code, 1);
        assert.match(r.err, /is not a replica \(role PRIMARY\)/);
    });
});
