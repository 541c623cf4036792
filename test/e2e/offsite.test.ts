/**
 * End to end, backups that survive the server (issue 20): a primary sends its scheduled exports
 * with restic to a second test host over SFTP; restic's retention keeps the configured counts
 * (snapshots with faked dates); the primary's host is then destroyed entirely and a fresh host,
 * set up by a new stack (on Debian 12: RESTORE_RELEASE), restores from the off-host copy alone:
 * every package installs with the same sha256 and the users log in. No repository password or SSH key in any argv, log or state.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
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
    fetchWithCa,
    filesContaining,
    hostConfig,
    onHost,
    ProcessSampler,
    projectCopy,
    startHost,
    startSftpTarget,
    steps,
    stopHost,
    TestHost,
} from "./harness";

const PRIMARY = { name: "off-p", ports: { ssh: 27301, http: 27380, https: 27343, devpi: 27340 } };
const TARGET = { name: "off-t", ssh: 27302 };
/**
 * The Debian release of the fresh host the backup is restored onto: Debian 12 unless
 * DEVPI_E2E_RESTORE_RELEASE says otherwise, so that npm test provisions a whole primary on Debian
 * 12 (and restores a Debian 13 server's export there, as a move to another server would).
 */
const RESTORE_RELEASE = process.env.DEVPI_E2E_RESTORE_RELEASE ?? "bookworm";
const ROOT_PASSWORD = "root-Pw-off-4410";
const ALICE_PASSWORD = "alice-Pw-off-9921";
const REPO_PASSWORD = "repo-Pw-off-0173-long";
const BASE = `https://localhost:${PRIMARY.ports.https}`;

let primary: TestHost;
let target: TestHost;
let stack: Stack;
let venv: string;
const log = new EventLog();
const work = fs.mkdtempSync(path.join(os.tmpdir(), "devpi-e2e-offsite-"));
const caFile = path.join(work, "ca.pem");
const env = () => ({ REQUESTS_CA_BUNDLE: caFile, PIP_CERT: caFile, DEVPI_CLIENTDIR: path.join(work, "devpi-client") });
const sampler = new ProcessSampler(clientVenv(), () => [primary, target].filter(Boolean).map((h) => h.root));
const sshKey = path.join(work, "offsite_key");
const sha256: Record<string, string> = {};

async function up(s: Stack): Promise<void> {
    log.clear();
    const r = await s.up({ onEvent: log.onEvent, onOutput: log.onOutput, color: "never" });
    assert.equal(r.summary.result, "succeeded");
}

/** A stack for `host` with the off-host copy to the target. */
async function offsiteStack(name: string, host: TestHost): Promise<Stack> {
    const backend = path.join(work, `state-${name}`);
    fs.mkdirSync(backend);
    const s = await createStack(name, projectCopy(), backend);
    await s.setAllConfig({ ...hostConfig(host, PRIMARY.ports), "devpi:rootPassword": { value: ROOT_PASSWORD, secret: true } });
    await s.setAllConfig(
        {
            "users.alice.password": { value: ALICE_PASSWORD, secret: true },
            'indexes["alice/dev"].volatile': { value: "false" },
            "offsite.repository": { value: "sftp:restic@127.0.0.1:/srv/restic/devpi" },
            "offsite.sshPort": { value: String(TARGET.ssh) },
            "offsite.sshHostKey": { value: target.hostKey },
            "offsite.keep.daily": { value: "2" },
            "offsite.keep.weekly": { value: "0" },
            "offsite.keep.monthly": { value: "0" },
        },
        true,
    );
    // Secrets from files and stdin-free config calls: set as secrets (the Automation API passes them to the CLI).
    await s.setConfig("offsite.password", { value: REPO_PASSWORD, secret: true }, true);
    await s.setConfig("offsite.sshPrivateKey", { value: fs.readFileSync(sshKey, "utf8"), secret: true }, true);
    return s;
}

/** The off-host snapshots, newest last, as `TIME` lines (restic snapshots on the primary, as devpi). */
function snapshots(host: TestHost): string[] {
    const out = onHost(host, "runuser -u devpi -- /usr/local/sbin/devpi-offsite --restic snapshots --json");
    return (JSON.parse(out) as { time: string }[]).map((s) => s.time.slice(0, 10));
}

describe("backups that survive the server: restic to another host, restored onto a fresh one", { timeout: 60 * 60 * 1000 }, () => {
    const it = steps();

    before(async () => {
        venv = clientVenv();
        target = startSftpTarget(TARGET.name, TARGET.ssh, sshKey);
        primary = startHost(PRIMARY.name, PRIMARY.ports.ssh, [PRIMARY.ports.http, PRIMARY.ports.https]);
        stack = await offsiteStack("e2e-offsite", primary);
    });

    after(async () => {
        sampler.stop();
        if (process.env.DEVPI_E2E_KEEP !== "1") stopHost(TARGET.name);
        await cleanUp(stack, PRIMARY.name, work);
    });

    it("pulumi up sets up the off-host copy; a scheduled backup goes to the other host, encrypted", async () => {
        sampler.start();
        await up(stack);
        // (The setup step's output is not logged: its stdin holds the secrets.) The repository answers, empty.
        assert.deepEqual(snapshots(primary), []);
        fs.writeFileSync(caFile, String((await stack.outputs()).caCertificate.value));
        await client(venv, "devpi", ["use", `${BASE}/alice/dev`], env());
        assert.equal((await client(venv, "devpi", ["login", "alice", "--password", ALICE_PASSWORD], env())).code, 0);
        for (const [name, version] of [
            ["off-one", "1.0.0"],
            ["off-two", "2.1.0"],
        ]) {
            const upload = await client(venv, "devpi", ["upload", buildPackage(venv, name, version, path.join(work, "dist"))], env());
            assert.equal(upload.code, 0, upload.out);
            const links = (
                JSON.parse((await fetchWithCa(`${BASE}/alice/dev/${name}/${version}`, caFile, { headers: { Accept: "application/json" } })).body) as {
                    result: { "+links": { href: string; hash_spec: string }[] };
                }
            ).result["+links"];
            for (const l of links) if (l.href.endsWith(".whl")) sha256[path.basename(l.href)] = l.hash_spec;
        }
        const dest = onHost(primary, "runuser -u devpi -- /usr/local/sbin/devpi-backup").trim().split("\n").pop()!;
        assert.match(dest, /devpi-export-\d{8}T\d{6}Z$/);
        assert.equal(onHost(primary, "cat /var/lib/devpi-metrics/offsite-result").split(" ")[0], "ok");
        assert.equal(snapshots(primary).length, 1);
        // On the target: restic's files only, nothing readable (no package name, no user name).
        const onTarget = onHost(target, "find /srv/restic/devpi -type f | wc -l; grep -rl -e off_one -e alice /srv/restic/devpi | wc -l").trim().split("\n");
        assert.ok(Number(onTarget[0]) > 5, `restic's files on the target: ${onTarget[0]}`);
        assert.equal(onTarget[1], "0", "the copy is encrypted");
    });

    it("retention: restic keeps the configured counts (2 daily) over backups with faked dates", () => {
        for (const day of ["2026-11-20 03:17:00", "2026-11-28 03:17:00", "2026-11-29 03:17:00"]) {
            onHost(
                primary,
                `cd /srv/devpi/backups && runuser -u devpi -- /usr/local/sbin/devpi-offsite --restic backup --tag devpi --host devpi --time '${day}' -- "$(ls -1d devpi-export-* | tail -n 1)" >/dev/null`,
            );
        }
        assert.equal(snapshots(primary).length, 4);
        onHost(primary, "runuser -u devpi -- /usr/local/sbin/devpi-backup >/dev/null");
        const kept = snapshots(primary);
        assert.equal(kept.length, 2, `kept: ${kept.join(", ")}`);
        assert.equal(kept[0], "2026-11-29", "the newest of the older days");
        assert.equal(kept[1], new Date().toISOString().slice(0, 10), "and today's newest");
    });

    it(`the primary's host destroyed entirely; a fresh host (Debian ${RESTORE_RELEASE}) from a new stack restores from the off-host copy alone`, async () => {
        sampler.stop();
        stopHost(PRIMARY.name);
        primary = startHost(PRIMARY.name, PRIMARY.ports.ssh, [PRIMARY.ports.http, PRIMARY.ports.https], undefined, RESTORE_RELEASE);
        // (The Automation API hands config values to the CLI in its argv: set before sampling.)
        const fresh = await offsiteStack("e2e-offsite-fresh", primary);
        sampler.start();
        await up(fresh);
        assert.equal(snapshots(primary).length, 2, "the new server sees the repository's snapshots");
        fs.writeFileSync(caFile, String((await fresh.outputs()).caCertificate.value));
        const restored = onHost(primary, `${String((await fresh.outputs()).offsiteRestoreCommand.value).replace(/^sudo /, "")} 2>&1`);
        assert.match(restored, /restored devpi-export-\d{8}T\d{6}Z from the off-host repository/);
        assert.match(restored, /restored devpi-export-\d{8}T\d{6}Z; the previous data is kept in/);
        assert.equal(Object.keys(sha256).length, 2, JSON.stringify(sha256));
        for (const [file, hash] of Object.entries(sha256)) {
            const name = file.split("-")[0].replace(/_/g, "-");
            const site = fs.mkdtempSync(path.join(work, "site-"));
            const pip = await client(venv, "pip", ["download", "--no-deps", "--no-cache-dir", "-d", site, "--index-url", `${BASE}/alice/dev/+simple/`, `${name}==${file.split("-")[1]}`], env());
            assert.equal(pip.code, 0, pip.out);
            const got = execFileSync("sha256sum", [path.join(site, file)], { encoding: "utf8" }).split(" ")[0];
            assert.equal(`sha256=${got}`, hash, `${file}: the same bytes`);
        }
        await client(venv, "devpi", ["use", BASE], env());
        assert.equal((await client(venv, "devpi", ["login", "alice", "--password", ALICE_PASSWORD], env())).code, 0, "alice logs in");
        await fresh.workspace.removeStack(fresh.name, { force: true }).catch(() => undefined);
    });

    it("no repository password or SSH key in any argv on either host, in the CLI output or in the state", () => {
        sampler.stop();
        const argv = [...sampler.seen].join("\n").replace(/\s/g, "");
        const keyPart = fs
            .readFileSync(sshKey, "utf8")
            .split("\n")
            .filter((l) => l && !l.startsWith("-----"))
            .join("")
            .slice(240, 300);
        for (const [what, secret] of [
            ["repository password", REPO_PASSWORD],
            ["SSH key", keyPart],
        ]) {
            assert.ok(!argv.includes(secret), `${what} not in argv`);
            assert.ok(!log.text().includes(secret), `${what} not in the CLI output`);
            assert.deepEqual(filesContaining(path.join(work, "state-e2e-offsite"), secret), [], `${what} not in state`);
        }
        assert.ok(
            [...sampler.onHost].some((c) => c.includes("restic")),
            "the sampler saw restic run on the hosts",
        );
    });
});
