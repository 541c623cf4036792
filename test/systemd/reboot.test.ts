/**
 * End to end on the kind of server users run: a Debian VM (QEMU) with its own kernel and systemd
 * as PID 1. A cold `pulumi up`; nginx, supervisor and cron enabled and active; devpi answering
 * through nginx; then a real reboot (`systemctl reboot`) and, with no `pulumi up` in between,
 * everything serves again as before: same certificate, uploads installable, root's password,
 * the backup schedule. Finally the stack still matches the server: preview and up are no-ops.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe } from "node:test";
import { Stack } from "@pulumi/pulumi/automation";
import { buildPackage, cleanUp, client, clientVenv, createStack, EventLog, fetchWithCa, hostConfig, onHost, projectCopy, startHost, steps, TESTHOST_RELEASE, TestHost } from "../e2e/harness";

const HOST = "sd-reboot";
const PORTS = { ssh: 2236, http: 29080, https: 29443, devpi: 29040 };
const ROOT_PASSWORD = "root-Pw-systemd-3318";
const ALICE_PASSWORD = "alice-Pw-systemd-5521";
const BASE = `https://localhost:${PORTS.https}`;

let host: TestHost;
let stack: Stack;
let venv: string;
const log = new EventLog();
const work = fs.mkdtempSync(path.join(os.tmpdir(), "devpi-systemd-"));
const backend = path.join(work, "state");
const caFile = path.join(work, "ca.pem");
const clientEnv = () => ({ REQUESTS_CA_BUNDLE: caFile, DEVPI_CLIENTDIR: path.join(work, "devpi-client"), PIP_CERT: caFile, PIP_DISABLE_PIP_VERSION_CHECK: "1" });
const get = (url: string) => fetchWithCa(url, caFile);
const bootId = () => onHost(host, "cat /proc/sys/kernel/random/boot_id").trim();
const SERVICES = ["nginx", "supervisor", "cron"];

async function up() {
    log.clear();
    return stack.up({ onEvent: log.onEvent, onOutput: log.onOutput, color: "never" });
}

/** pip installs `requirement` from the client index into a fresh directory, without any cache; `file` is what it must leave there. */
async function pipInstall(requirement: string, file = "sd_pkg/__init__.py"): Promise<void> {
    const outputs = await stack.outputs();
    const target = fs.mkdtempSync(path.join(work, "site-"));
    const pip = await client(venv, "pip", ["install", "--no-cache-dir", "--target", target, "--index-url", String(outputs.pipIndexUrl.value), requirement], clientEnv());
    assert.equal(pip.code, 0, pip.out);
    assert.ok(fs.existsSync(path.join(target, file)), pip.out);
}

/** Asserts PID 1 is systemd and each service is enabled at boot and running now. */
function assertServicesUp(): void {
    assert.equal(onHost(host, "cat /proc/1/comm").trim(), "systemd");
    for (const s of SERVICES) {
        assert.equal(onHost(host, `systemctl is-enabled ${s}`).trim(), "enabled", `${s} is enabled at boot`);
        assert.equal(onHost(host, `systemctl is-active ${s}`).trim(), "active", `${s} is active`);
    }
}

describe(`devpi on a systemd host (${TESTHOST_RELEASE} VM): cold up, reboot, still serving`, { timeout: 90 * 60 * 1000 }, () => {
    const it = steps();
    let fingerprint = "";

    before(async () => {
        venv = clientVenv();
        const started = Date.now();
        host = startHost(HOST, PORTS.ssh, [PORTS.http, PORTS.https], "vm");
        console.log(`# VM ${HOST} booted and reachable over SSH in ${((Date.now() - started) / 1000).toFixed(0)} s`);
        fs.mkdirSync(backend);
        stack = await createStack("systemd", projectCopy(), backend);
        await stack.setAllConfig({
            ...hostConfig(host, PORTS),
            "devpi:rootPassword": { value: ROOT_PASSWORD, secret: true },
        });
        await stack.setAllConfig(
            {
                "extraIpAddresses[0]": { value: "127.0.0.1" },
                "users.alice.password": { value: ALICE_PASSWORD, secret: true },
                'indexes["alice/dev"].volatile': { value: "false" },
            },
            true,
        );
    });

    after(async () => {
        await cleanUp(stack, HOST, work);
    });

    it("a cold pulumi up provisions the VM", async () => {
        const started = Date.now();
        const result = await up();
        assert.equal(result.summary.result, "succeeded");
        console.log(`# cold pulumi up on the VM: ${((Date.now() - started) / 1000).toFixed(0)} s`);
        fs.writeFileSync(caFile, String((await stack.outputs()).caCertificate.value));
    });

    it("nginx, supervisor and cron are enabled and active under systemd; devpi answers through nginx", async () => {
        assertServicesUp();
        const api = await get(`${BASE}/+api`);
        assert.equal(api.status, 200);
        fingerprint = api.fingerprint ?? "";
        assert.equal(fingerprint.replace(/:/g, "").toLowerCase(), (await stack.outputs()).certificateSha256.value);
        assert.match(onHost(host, "supervisorctl status devpi"), /RUNNING/);
    });

    it("an uploaded package installs with pip", async () => {
        const env = clientEnv();
        const wheel = buildPackage(venv, "sd-pkg", "1.0.0", path.join(work, "dist"));
        assert.equal((await client(venv, "devpi", ["use", `${BASE}/alice/dev`], env)).code, 0);
        const login = await client(venv, "devpi", ["login", "alice", "--password", ALICE_PASSWORD], env);
        assert.equal(login.code, 0, login.out);
        const upload = await client(venv, "devpi", ["upload", wheel], env);
        assert.equal(upload.code, 0, upload.out);
        await pipInstall("sd-pkg==1.0.0");
    });

    it("the demo's printed command works: six from PyPI installs through root/pypi on a new VM", async () => {
        // Under the VM kind the first server used to time out downloading PyPI's project list (issue 19).
        await pipInstall("six", "six.py");
    });

    it("the host really reboots (systemctl reboot: new boot id, same disk)", async () => {
        const before_ = bootId();
        const started = Date.now();
        try {
            onHost(host, "systemctl reboot");
        } catch {
            // the SSH session may be cut by the reboot itself
        }
        let after_ = "";
        while (Date.now() - started < 15 * 60 * 1000) {
            await new Promise((r) => setTimeout(r, 3000));
            try {
                after_ = bootId();
            } catch {
                continue; // down or still booting
            }
            if (after_ !== before_) break;
        }
        assert.ok(after_ && after_ !== before_, `a new boot id after the reboot (before ${before_}, after ${after_})`);
        console.log(`# reboot: SSH back with a new boot id after ${((Date.now() - started) / 1000).toFixed(0)} s`);
    });

    it("after the reboot, with no pulumi up: services are back and devpi serves HTTPS with the same certificate", async () => {
        // systemd starts supervisor, which starts devpi; give devpi the time it needs to open its port.
        const deadline = Date.now() + 5 * 60 * 1000;
        let status = 0;
        while (Date.now() < deadline) {
            try {
                status = (await get(`${BASE}/+api`)).status;
            } catch {
                status = 0;
            }
            if (status === 200) break;
            await new Promise((r) => setTimeout(r, 2000));
        }
        assert.equal(status, 200, "devpi answers through nginx after the reboot");
        assertServicesUp();
        const api = await get(`${BASE}/+api`);
        assert.equal(api.fingerprint, fingerprint, "the same certificate");
    });

    it("after the reboot: the upload still installs, root's password works, the backup schedule is there", async () => {
        await pipInstall("sd-pkg==1.0.0");
        const env = clientEnv();
        assert.equal((await client(venv, "devpi", ["use", BASE], env)).code, 0);
        const login = await client(venv, "devpi", ["login", "root", "--password", ROOT_PASSWORD], env);
        assert.equal(login.code, 0, login.out);
        assert.match(onHost(host, "cat /etc/cron.d/devpi-backup"), /devpi-backup/);
        assert.match(onHost(host, "systemctl is-active cron"), /^active/);
    });

    it("the stack still matches the server: preview expects no changes and up runs nothing", async () => {
        const preview = await stack.preview({ expectNoChanges: true, color: "never" });
        assert.deepEqual(Object.keys(preview.changeSummary), ["same"]);
        const result = await up();
        assert.deepEqual(Object.keys(result.summary.resourceChanges ?? {}), ["same"]);
        assert.deepEqual(log.changed(), []);
    });
});
