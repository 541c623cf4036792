/**
 * Certificates that reach their renewal window, and traffic the server must refuse, on one fresh
 * test host:
 * - the self-signed server certificate within certRenewBeforeDays: the next `pulumi up` renews it,
 *   nginx serves the new one, clients holding only the old CA verify it, and the run after is a
 *   no-op; the same for the CA within caRenewBeforeDays (re-issued with the same key);
 * - `pulumi up --replace` of the nginx site leaves the site in place;
 * - an upload over maxUploadMb: 413 with a message devpi-client and twine show, nothing stored;
 * - a host key that does not match hostKey: refused before anything runs on the host.
 *
 * "Within the window" is reached honestly: the certificates are made by a `pulumi up` whose
 * plugins run under libfaketime 36 hours in the past (Debian's `faketime` package), so they were
 * issued 36 hours ago; every later run, nginx and every client use the real clock.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, describe } from "node:test";
import { EngineEvent } from "@pulumi/pulumi/automation";
import { buildPackage, client, fetchWithCa, onHost, steps } from "../e2e/harness";
import { ALICE_PASSWORD, aliceClient, disposeEnv, FAULT_PORTS, faultEnv, FaultEnv, hostProcesses, servedWith, spki, startedBySshd, tryUp, withClockBehind } from "./faultHarness";

const PORTS = FAULT_PORTS(23060);
const BASE = `https://localhost:${PORTS.https}`;
const HOUR = 3600_000;
let env: FaultEnv | undefined;
const measured: string[] = [];

async function outputs(e: FaultEnv): Promise<Record<string, string>> {
    const o = await e.stack.outputs();
    return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, typeof v.value === "string" ? v.value : JSON.stringify(v.value)]));
}

/** The engine's planned operation per resource type and name, from a preview at the real time. */
async function plannedOps(e: FaultEnv): Promise<Map<string, string[]>> {
    const ops = new Map<string, string[]>();
    await e.stack.preview({
        color: "never",
        onEvent: (ev: EngineEvent) => {
            const m = ev.resourcePreEvent?.metadata;
            if (!m || m.type.startsWith("pulumi:") || m.type.startsWith("devpi:")) return;
            const k = `${m.type}::${m.urn.split("::").pop()}`;
            ops.set(k, [...(ops.get(k) ?? []), m.op]);
        },
    });
    return ops;
}
/** Per resource of `type`: "replace" when any of its steps is part of a replacement, else its one op. */
const opOf = (ops: Map<string, string[]>, type: string): string[] =>
    [...ops].filter(([k]) => k.startsWith(`${type}::`)).map(([, list]) => (list.some((o) => /replace/.test(o)) ? "replace" : list.join("+")));

async function expectNoChanges(e: FaultEnv): Promise<void> {
    const preview = await e.stack.preview({ expectNoChanges: true, color: "never" });
    assert.deepEqual(Object.keys(preview.changeSummary), ["same"], JSON.stringify(preview.changeSummary));
}

const hoursFromNow = (iso: string): number => (Date.parse(iso) - Date.now()) / HOUR;

describe("certificate expiry and refused traffic", { timeout: 60 * 60 * 1000 }, () => {
    // Each group skips its own later steps after a failure; the groups share only the host.
    const expiry = steps();
    const replace = steps();
    const upload = steps();
    const hostKey = steps();
    after(async () => {
        await disposeEnv(env);
        console.log(measured.join("\n"));
    });

    let oldCa = "";
    let oldSha = "";
    expiry("provisions a server whose certificate (2 days, renewed 1 day before expiry) was issued 36 hours ago", async () => {
        env = await faultEnv("flt2-exp", PORTS);
        await env.stack.setAllConfig({ "devpi:certValidityDays": { value: "2" }, "devpi:certRenewBeforeDays": { value: "1" } });
        const t0 = Date.now();
        const r = await withClockBehind(env.stack, "-36h", () => tryUp(env!));
        assert.ok(r.ok, r.error.slice(0, 3000));
        measured.push(`first pulumi up (plugins 36 h behind): ${((Date.now() - t0) / 1000).toFixed(0)} s`);
        const o = await outputs(env);
        // Issued 36 h ago with 48 h of validity: 12 h left, inside the 24 h renewal window.
        const left = hoursFromNow(o.certificateExpiry);
        assert.ok(left > 11 && left < 13, `the certificate expires in 12 h, not ${left.toFixed(1)} h (the fake clock did not reach the tls plugin)`);
        oldCa = o.caCertificate;
        oldSha = o.certificateSha256;
        const served = await servedWith(env, oldCa, "ca-0");
        assert.deepEqual(served, { status: 200, sha256: oldSha }, "nginx serves the certificate the stack knows");
    });

    expiry("inside the window, the plan renews the server certificate and nothing else of the TLS tree", async () => {
        const ops = await plannedOps(env!);
        assert.deepEqual(opOf(ops, "tls:index/locallySignedCert:LocallySignedCert"), ["replace"], JSON.stringify([...ops]));
        assert.deepEqual(opOf(ops, "tls:index/selfSignedCert:SelfSignedCert"), ["same"], "the CA stays");
        assert.deepEqual(opOf(ops, "tls:index/privateKey:PrivateKey"), ["same", "same"], "both keys stay");
    });

    expiry("pulumi up renews it: nginx serves the new certificate, a client holding only the old CA verifies it, the CA output is unchanged", async () => {
        const e = env!;
        const t0 = Date.now();
        const r = await tryUp(e);
        assert.ok(r.ok, r.error.slice(0, 3000));
        measured.push(`renewal pulumi up: ${((Date.now() - t0) / 1000).toFixed(0)} s; changed: ${e.log.changed().join(" ")}`);
        const o = await outputs(e);
        assert.notEqual(o.certificateSha256, oldSha, "a new certificate");
        assert.equal(o.caCertificate, oldCa, "the same CA");
        const left = hoursFromNow(o.certificateExpiry);
        assert.ok(left > 47 && left < 49, `issued now for 48 h, not ${left.toFixed(1)} h`);
        const served = await servedWith(e, oldCa, "ca-old-only");
        assert.deepEqual(served, { status: 200, sha256: o.certificateSha256 }, "nginx serves the new certificate, verified with the old CA alone");
        oldSha = o.certificateSha256;
    });

    expiry("the run after the renewal is a no-op", async () => {
        await expectNoChanges(env!);
    });

    let ca1 = "";
    expiry("a CA inside its own renewal window (30 days, renewed 29 days before expiry, issued 36 hours ago)", async () => {
        const e = env!;
        await e.stack.removeConfig("devpi:certValidityDays");
        await e.stack.removeConfig("devpi:certRenewBeforeDays");
        await e.stack.setAllConfig({ "devpi:caValidityDays": { value: "30" }, "devpi:caRenewBeforeDays": { value: "29" } });
        const r = await withClockBehind(e.stack, "-36h", () => tryUp(e));
        assert.ok(r.ok, r.error.slice(0, 3000));
        const o = await outputs(e);
        ca1 = o.caCertificate;
        const caLeft = hoursFromNow(new Date(new crypto.X509Certificate(ca1).validTo).toISOString());
        assert.ok(caLeft > 30 * 24 - 37 && caLeft < 30 * 24 - 35, `the CA expires in 28.5 days, not ${(caLeft / 24).toFixed(2)}`);
        assert.equal((await servedWith(e, ca1, "ca-1")).status, 200);
        const ops = await plannedOps(e);
        assert.deepEqual(opOf(ops, "tls:index/selfSignedCert:SelfSignedCert"), ["replace"], "the CA is due");
        assert.deepEqual(opOf(ops, "tls:index/privateKey:PrivateKey"), ["same", "same"], "its key stays");
    });

    expiry("pulumi up re-issues the CA with the same key and re-signs the server certificate; old-CA and new-CA clients both verify it; then a no-op", async () => {
        const e = env!;
        const before = await outputs(e);
        const t0 = Date.now();
        const r = await tryUp(e);
        assert.ok(r.ok, r.error.slice(0, 3000));
        measured.push(`CA re-issue pulumi up: ${((Date.now() - t0) / 1000).toFixed(0)} s; changed: ${e.log.changed().join(" ")}`);
        const o = await outputs(e);
        const ca2 = o.caCertificate;
        assert.notEqual(ca2, ca1, "the caCertificate output carries the new CA");
        assert.equal(spki(ca2), spki(ca1), "same CA key");
        const caLeft = hoursFromNow(new Date(new crypto.X509Certificate(ca2).validTo).toISOString());
        assert.ok(caLeft > 30 * 24 - 1 && caLeft < 30 * 24 + 1, `the new CA runs 30 days from now, not ${(caLeft / 24).toFixed(2)}`);
        assert.notEqual(o.certificateSha256, before.certificateSha256, "the server certificate was re-signed");
        assert.deepEqual(await servedWith(e, ca1, "ca-1-only"), { status: 200, sha256: o.certificateSha256 }, "a client with only the old CA still verifies (until the old CA expires)");
        assert.deepEqual(await servedWith(e, ca2, "ca-2-only"), { status: 200, sha256: o.certificateSha256 }, "a client with the new CA verifies");
        await expectNoChanges(e);
    });

    replace("pulumi up --replace of the nginx site leaves the site installed and serving", async () => {
        const e = env!;
        const urn = `urn:pulumi:${e.stack.name}::devpi::devpi:index:Devpi$devpi:index:DevpiHost$devpi:index:NginxSite$command:remote:Command::nginx-site`;
        const t0 = Date.now();
        e.log.clear();
        const r = await e.stack.up({ replace: [urn], onEvent: e.log.onEvent, color: "never" });
        assert.equal(r.summary.result, "succeeded");
        measured.push(`up --replace nginx-site: ${((Date.now() - t0) / 1000).toFixed(0)} s`);
        const files = onHost(e.host, "ls -l /etc/nginx/sites-available/devpi /etc/nginx/sites-enabled/devpi 2>&1 || true");
        assert.match(files, /^-.* \/etc\/nginx\/sites-available\/devpi$/m, files);
        assert.match(files, /^l.* \/etc\/nginx\/sites-enabled\/devpi -> \/etc\/nginx\/sites-available\/devpi$/m, files);
        assert.equal((await servedWith(e, (await outputs(e)).caCertificate, "ca-now")).status, 200, "nginx serves the site");
        onHost(e.host, "nginx -s reload"); // what any later reload (a renewal, a reboot) does: the site must survive it
        await new Promise((res) => setTimeout(res, 500));
        assert.equal((await servedWith(e, (await outputs(e)).caCertificate, "ca-now")).status, 200, "and still after a reload");
        await expectNoChanges(e);
    });

    upload("an upload over maxUploadMb gets 413 naming the limit and the key, in devpi-client's and twine's output; nothing of it is stored", async () => {
        const e = env!;
        await e.stack.setConfig("devpi:maxUploadMb", { value: "1" });
        const r = await tryUp(e);
        assert.ok(r.ok, r.error.slice(0, 3000));
        const caFile = path.join(e.work, "ca-upload.pem");
        fs.writeFileSync(caFile, (await outputs(e)).caCertificate);
        const { venv, cenv } = await aliceClient(e, caFile);
        const big = bigWheel(venv, path.join(e.work, "big"));
        assert.ok(fs.statSync(big).size > 1.5 * 1024 * 1024);
        const devpiUp = await client(venv, "devpi", ["upload", big], cenv);
        measured.push(`devpi upload of a 2.5 MB wheel with maxUploadMb 1 (exit ${devpiUp.code}):\n${devpiUp.out.trim()}`);
        assert.notEqual(devpiUp.code, 0);
        assert.match(devpiUp.out, /413 FAIL file_upload of flt2_oversized-1\.0-py3-none-any\.whl/);
        assert.match(devpiUp.out, /upload refused: the request is larger than the upload limit of 1 MiB \(devpi:maxUploadMb = 1\); raise devpi:maxUploadMb and run pulumi up/);
        const twine = await client(
            venv,
            "twine",
            ["upload", "--verbose", "--disable-progress-bar", "--cert", caFile, "--repository-url", `${BASE}/alice/dev/`, "-u", "alice", "-p", ALICE_PASSWORD, big],
            { ...cenv, NO_COLOR: "1", COLUMNS: "1000" },
        );
        measured.push(`twine upload --verbose of the same wheel (exit ${twine.code}):\n${twine.out.trim().split("\n").slice(-8).join("\n")}`);
        assert.notEqual(twine.code, 0);
        // (requests prefers REQUESTS_CA_BUNDLE from the environment over twine's --cert, hence cenv.)
        const flat = twine.out.replace(/\x1B\[[0-9;]*m/g, "").replace(/\s+/g, " ");
        assert.match(flat, /HTTPError: 413 Request Entity Too Large/);
        assert.match(flat, /upload limit of 1 MiB \(devpi:maxUploadMb = 1\)/);
        // Nothing stored: not in the index, not on disk, not half-registered.
        const project = await fetchWithCa(`${BASE}/alice/dev/flt2-oversized`, caFile);
        assert.equal(project.status, 404, project.body.slice(0, 300));
        const index = JSON.parse((await fetchWithCa(`${BASE}/alice/dev`, caFile)).body) as { result: { projects: string[] } };
        assert.ok(!index.result.projects.includes("flt2-oversized"), JSON.stringify(index.result.projects));
        assert.equal(onHost(e.host, "find /srv/devpi/data -iname '*oversized*' | wc -l").trim(), "0", "no file of it in devpi's data");
        // The limit refuses only what is over it.
        const small = buildPackage(venv, "flt2-small", "1.0.0", path.join(e.work, "small"));
        const ok = await client(venv, "devpi", ["upload", small], cenv);
        assert.equal(ok.code, 0, ok.out);
    });

    hostKey("a host key that does not match hostKey is refused before anything runs on the host, and says so", async () => {
        const e = env!;
        const keyFile = path.join(e.work, "other-host-key");
        execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", keyFile]);
        const otherKey = fs.readFileSync(`${keyFile}.pub`, "utf8").split(" ").slice(0, 2).join(" ");
        // A pending change that would run a step on the host: backups keep one more.
        const keepLine = () => onHost(e.host, "grep -o 'head -n -[0-9]*' /usr/local/sbin/devpi-backup").trim();
        assert.equal(keepLine(), "head -n -7");
        await e.stack.setConfig("devpi:hostKey", { value: otherKey });
        await e.stack.setConfig("devpi:backupKeep", { value: "8" });
        // Every process that appears on the host during the run, and whether sshd started it (what
        // cron starts meanwhile, e.g. Debian's hourly run-parts or the 03:17 backup, is no fault).
        const seen = new Map<number, { args: string; viaSshd: boolean }>();
        const known = new Set(hostProcesses(e.host).map((p) => p.pid));
        const timer = setInterval(() => {
            for (const p of hostProcesses(e.host)) {
                if (!known.has(p.pid) && !seen.has(p.pid)) seen.set(p.pid, { args: p.args, viaSshd: startedBySshd(e.host, p.pid) });
            }
        }, 20);
        const t0 = Date.now();
        const r = await tryUp(e);
        clearInterval(timer);
        const seconds = (Date.now() - t0) / 1000;
        assert.equal(r.ok, false, "pulumi up fails");
        const line = r.error.split("\n").find((l) => l.includes("host key mismatch")) ?? "";
        measured.push(`wrong hostKey: pulumi up failed after ${seconds.toFixed(0)} s with: ${line.trim()}`);
        assert.match(r.error, /ssh: handshake failed: ssh: host key mismatch/);
        // sshd's own per-connection processes (OpenSSH 10 splits them into sshd-session and
        // sshd-auth) run before any authentication; "" is a process caught while it exited.
        const viaSshd = [...seen.values()].filter((p) => p.viaSshd).map((p) => p.args);
        const ran = viaSshd.filter((a) => a !== "" && !/^(sshd\b|\/usr\/sbin\/sshd |\/usr\/lib\/openssh\/sshd-(session|auth) )/.test(a));
        assert.deepEqual(ran, [], "nothing but sshd's pre-authentication processes ran on the host");
        assert.ok(viaSshd.length > 0, "the sampler saw the connection attempts");
        assert.equal(keepLine(), "head -n -7", "the pending change was not applied");
        await e.stack.setConfig("devpi:hostKey", { value: e.host.hostKey });
        const back = await tryUp(e);
        assert.ok(back.ok, back.error.slice(0, 3000));
        assert.equal(keepLine(), "head -n -8", "with the right key, the change is applied");
        await expectNoChanges(e);
    });
});

/** A wheel of about 2.5 MB that does not compress (random bytes), named flt2-oversized 1.0. */
function bigWheel(venv: string, dir: string): string {
    const src = path.join(dir, "src");
    fs.mkdirSync(path.join(src, "flt2_oversized"), { recursive: true });
    fs.writeFileSync(path.join(src, "flt2_oversized", "__init__.py"), "");
    fs.writeFileSync(path.join(src, "flt2_oversized", "blob.bin"), crypto.randomBytes(2_500_000));
    fs.writeFileSync(
        path.join(src, "pyproject.toml"),
        `[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n\n[project]\nname = "flt2-oversized"\nversion = "1.0"\n\n[tool.setuptools.package-data]\nflt2_oversized = ["*.bin"]\n`,
    );
    execFileSync(path.join(venv, "bin/python"), ["-m", "build", "--wheel", "--no-isolation", "--outdir", path.join(dir, "dist"), src], { stdio: "pipe" });
    return path.join(dir, "dist", "flt2_oversized-1.0-py3-none-any.whl");
}
