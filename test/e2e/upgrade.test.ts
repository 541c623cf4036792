/**
 * End to end, upgrades and backups with real devpi-server versions from PyPI: an older 6.x is
 * upgraded in place, then by a forced export/import; a broken upgrade and a downgrade leave the
 * server serving the same packages; a scheduled backup restores into a fresh serverDir.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe } from "node:test";
import { Stack } from "@pulumi/pulumi/automation";
import { buildPackage, cleanUp, client, clientVenv, createStack, EventLog, fetchWithCa, hostConfig, onHost, projectCopy, startHost, steps, TestHost } from "./harness";

const HOST = "e2e-upgrade";
// Below the ephemeral port range (see assertOutsideEphemeralRange in harness.ts).
const PORTS = { ssh: 2233, http: 24480, https: 24643, devpi: 24440 };
const ROOT_PASSWORD = "root-Pw-upgrade-3381";
const CAROL_PASSWORD = "carol-Pw-upgrade-7720";
const BASE = `https://localhost:${PORTS.https}`;
const OLD = "6.14.0";
const MIDDLE = "6.17.0";
const NEW = "6.20.3";

let host: TestHost;
let stack: Stack;
let venv: string;
const log = new EventLog();
const work = fs.mkdtempSync(path.join(os.tmpdir(), "devpi-e2e-upgrade-"));
const caFile = path.join(work, "ca.pem");
const env = () => ({ REQUESTS_CA_BUNDLE: caFile, PIP_CERT: caFile, DEVPI_CLIENTDIR: path.join(work, "devpi-client") });
let scheduledBackup = "";

async function up(): Promise<void> {
    log.clear();
    await stack.up({ onEvent: log.onEvent, onOutput: log.onOutput, color: "never" });
}

async function runningVersion(): Promise<string> {
    const status = JSON.parse((await fetchWithCa(`${BASE}/+status`, caFile)).body) as { result: { versioninfo: Record<string, string> } };
    return status.result.versioninfo["devpi-server"];
}

/** pip-installs `spec` through carol/dev into a fresh directory; true when it worked. */
async function installs(spec: string): Promise<boolean> {
    const target = fs.mkdtempSync(path.join(work, "site-"));
    const r = await client(venv, "pip", ["install", "--no-cache-dir", "--no-deps", "--target", target, "--index-url", `${BASE}/carol/dev/+simple/`, spec], env());
    return r.code === 0;
}

async function loginWorks(user: string, password: string): Promise<boolean> {
    await client(venv, "devpi", ["use", BASE], env());
    return (await client(venv, "devpi", ["login", user, "--password", password], env())).code === 0;
}

async function carolDev(): Promise<Record<string, unknown>> {
    return (JSON.parse((await fetchWithCa(`${BASE}/carol/dev`, caFile)).body) as { result: Record<string, unknown> }).result;
}

describe("upgrades and backups keep every package", { timeout: 60 * 60 * 1000 }, () => {
    const it = steps();

    before(async () => {
        venv = clientVenv();
        host = startHost(HOST, PORTS.ssh, [PORTS.http, PORTS.https]);
        const backend = path.join(work, "state");
        fs.mkdirSync(backend);
        stack = await createStack("e2e-upgrade", projectCopy(), backend);
        await stack.setAllConfig({
            ...hostConfig(host, PORTS),
            "devpi:web": { value: "false" },
            "devpi:devpiServerVersion": { value: OLD },
            "devpi:rootPassword": { value: ROOT_PASSWORD, secret: true },
        });
        await stack.setAllConfig(
            {
                "users.carol.password": { value: CAROL_PASSWORD, secret: true },
                'indexes["carol/dev"].volatile': { value: "false" },
                'indexes["carol/dev"].mirror_whitelist[0]': { value: "six" },
            },
            true,
        );
    });

    after(async () => {
        await cleanUp(stack, HOST, work);
    });

    it(`devpi-server ${OLD} with an upload and a scheduled backup`, async () => {
        await up();
        fs.writeFileSync(caFile, String((await stack.outputs()).caCertificate.value));
        assert.equal(await runningVersion(), OLD);
        await client(venv, "devpi", ["use", `${BASE}/carol/dev`], env());
        assert.ok(await loginWorks("carol", CAROL_PASSWORD));
        await client(venv, "devpi", ["use", `${BASE}/carol/dev`], env());
        const up1 = await client(venv, "devpi", ["upload", buildPackage(venv, "keep-me", "1.0.0", path.join(work, "dist"))], env());
        assert.equal(up1.code, 0, up1.out);
        assert.match(onHost(host, "cat /etc/cron.d/devpi-backup"), /^17 3 \* \* \* devpi \/usr\/local\/sbin\/devpi-backup/m);
        scheduledBackup = path.basename(onHost(host, "runuser -u devpi -- /usr/local/sbin/devpi-backup").trim());
        assert.match(scheduledBackup, /^devpi-export-\d{8}T\d{6}Z$/);
        assert.ok(await installs("keep-me==1.0.0"));
    });

    it(`upgrades in place to ${MIDDLE}, with a backup first`, async () => {
        await stack.setConfig("devpi:devpiServerVersion", { value: MIDDLE });
        const preview = await stack.preview({ color: "never", diff: true });
        assert.match(preview.stdout, /in place when the data format matches, by export\/import otherwise/);
        await up();
        assert.match(log.text(), new RegExp(`upgraded devpi-server ${OLD.replace(/\./g, "\\.")} -> ${MIDDLE.replace(/\./g, "\\.")} \\(in-place\\); backup: /srv/devpi/backups/pre-upgrade-`));
        assert.equal(await runningVersion(), MIDDLE);
        assert.ok(await installs("keep-me==1.0.0"));
        assert.ok(await loginWorks("carol", CAROL_PASSWORD));
        assert.ok(await loginWorks("root", ROOT_PASSWORD));
        assert.deepEqual((await carolDev()).mirror_whitelist, ["six"]);
    });

    it("a new version that does not come up is rolled back automatically", async () => {
        // The new version is installed but its server cannot start: the health check must fail.
        onHost(
            host,
            `v=/opt/devpi/venv.versions/devpi-server-${NEW} && python3 -m venv $v && $v/bin/pip install -q --cert /etc/ssl/certs/ca-certificates.crt devpi-server==${NEW} && printf '#!/bin/sh\\necho broken on purpose >&2\\nexit 1\\n' > $v/bin/devpi-server`,
        );
        await stack.setAllConfig({ "devpi:devpiServerVersion": { value: NEW }, "devpi:upgradeStrategy": { value: "export-import" } });
        await assert.rejects(up(), new RegExp(`devpi-server ${NEW.replace(/\./g, "\\.")} did not come up; rolling back to ${MIDDLE.replace(/\./g, "\\.")}`));
        assert.equal(await runningVersion(), MIDDLE);
        assert.ok(await installs("keep-me==1.0.0"));
        assert.ok(await loginWorks("carol", CAROL_PASSWORD));
        assert.equal(onHost(host, "ls -d /srv/devpi/data.pre-upgrade-* 2>/dev/null | wc -l").trim(), "0", "the old data is back in place");
        onHost(host, `rm -rf /opt/devpi/venv.versions/devpi-server-${NEW}`);
    });

    it(`upgrades to ${NEW} by a forced export/import, keeping the old data aside`, async () => {
        await stack.setAllConfig({ "devpi:devpiServerVersion": { value: NEW }, "devpi:upgradeStrategy": { value: "export-import" } });
        await up();
        assert.match(log.text(), /\(export-import\); backup: .*; old data kept in \/srv\/devpi\/data\.pre-upgrade-/);
        assert.equal(await runningVersion(), NEW);
        assert.ok(await installs("keep-me==1.0.0"));
        assert.ok(await loginWorks("carol", CAROL_PASSWORD));
        assert.ok(await loginWorks("root", ROOT_PASSWORD));
        const dev = await carolDev();
        assert.equal(dev.volatile, false);
        assert.deepEqual(dev.bases, ["root/pypi"]);
        assert.deepEqual(dev.mirror_whitelist, ["six"]);
        assert.match(onHost(host, "ls -d /srv/devpi/data.pre-upgrade-*"), /data\.pre-upgrade-/);
    });

    it("a version that does not exist fails pulumi up and leaves the server as it was", async () => {
        await stack.setConfig("devpi:devpiServerVersion", { value: "6.99.0" });
        await assert.rejects(up(), /No matching distribution found for devpi-server==6\.99\.0/);
        assert.equal(await runningVersion(), NEW);
        assert.ok(await installs("keep-me==1.0.0"));
        await stack.setConfig("devpi:devpiServerVersion", { value: NEW });
        await up();
        assert.equal(await runningVersion(), NEW);
    });

    it("a downgrade is refused with a clear message and changes nothing", async () => {
        await stack.setConfig("devpi:devpiServerVersion", { value: MIDDLE });
        await assert.rejects(up(), /refusing to downgrade devpi-server from 6\.20\.3 to 6\.17\.0.*devpi:allowDowngrade/s);
        assert.equal(await runningVersion(), NEW);
        assert.ok(await installs("keep-me==1.0.0"));
        await stack.setConfig("devpi:devpiServerVersion", { value: NEW });
        await up();
    });

    it("the scheduled backup restores into a fresh serverDir with all its packages", async () => {
        await client(venv, "devpi", ["use", `${BASE}/carol/dev`], env());
        assert.ok(await loginWorks("carol", CAROL_PASSWORD));
        await client(venv, "devpi", ["use", `${BASE}/carol/dev`], env());
        const later = await client(venv, "devpi", ["upload", buildPackage(venv, "after-backup", "1.0.0", path.join(work, "dist"))], env());
        assert.equal(later.code, 0, later.out);
        assert.ok(await installs("after-backup==1.0.0"));
        const out = onHost(host, `/usr/local/sbin/devpi-restore ${scheduledBackup} 2>&1`);
        assert.match(out, new RegExp(`restored ${scheduledBackup}; the previous data is kept in /srv/devpi/data\\.before-restore-`));
        for (let i = 0; i < 60; i++) {
            try {
                if ((await fetchWithCa(`${BASE}/+api`, caFile)).status === 200) break;
            } catch {
                // devpi is still starting
            }
            await new Promise((r) => setTimeout(r, 1000));
        }
        assert.ok(await installs("keep-me==1.0.0"), "the backup's package is back");
        assert.equal(await installs("after-backup==1.0.0"), false, "what came after the backup is not in it");
        assert.ok(await loginWorks("carol", CAROL_PASSWORD));
    });
});
