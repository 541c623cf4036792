/**
 * End to end, mirrors: a new server with the defaults (root/pypi on PyPI without its project list)
 * stays nearly idle over its first 5 minutes, devpi-web is not degraded and its search finds an
 * upload. Then root/pypi follows the company's registry (a second devpi on this machine behind
 * nginx's basic auth, holding a package PyPI does not have): pip installs it through a user index;
 * then root/pypi goes back to PyPI and the company registry becomes a mirror index of its own, a
 * second base. devpi is only ever given a loopback URL; the credentials are in no state, argv,
 * output or devpi answer.
 */
import assert from "node:assert/strict";
import { ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe } from "node:test";
import { Stack } from "@pulumi/pulumi/automation";
import { basicAuthorization } from "../../components/nginx/mirrorProxy";
import {
    buildPackage,
    cachedVenv,
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
    steps,
    TestHost,
} from "./harness";

const HOST = { name: "mirr-p", ports: { ssh: 27401, http: 27480, https: 27443, devpi: 27440 } };
/** The company registry: devpi-server on this machine (loopback), nginx with basic auth in front. */
const COMPANY = { devpi: 27411, nginx: 27412, user: "corp-ci", password: "corp-Pw-mirror-5129" };
const COMPANY_URL = `http://127.0.0.1:${COMPANY.nginx}/root/internal/+simple/`;
const COMPANY_ROOT_PASSWORD = "company-root-Pw-3310";
const ROOT_PASSWORD = "root-Pw-mirror-8841";
const ALICE_PASSWORD = "alice-Pw-mirror-1276";
const BASE = `https://localhost:${HOST.ports.https}`;
const SERVER_VERSION = "6.20.3";
/** How long a new server is watched after its first `pulumi up`, and the most of a core it may use on average. */
const IDLE_WINDOW_S = 300;
const IDLE_MAX_CORES = 0.1;

let host: TestHost;
let stack: Stack;
let venv: string;
let companyDevpi: ChildProcess | undefined;
let companyNginx: ChildProcess | undefined;
const log = new EventLog();
const sampler = new ProcessSampler(clientVenv(), () => host?.root);
const work = fs.mkdtempSync(path.join(os.tmpdir(), "devpi-e2e-mirrors-"));
const backend = path.join(work, "state");
const caFile = path.join(work, "ca.pem");
const dist = path.join(work, "dist");
const clientEnv = () => ({ REQUESTS_CA_BUNDLE: caFile, SSL_CERT_FILE: caFile, PIP_CERT: caFile, PIP_DISABLE_PIP_VERSION_CHECK: "1", DEVPI_CLIENTDIR: path.join(work, "devpi-client"), HOME: work });
const companyEnv = () => ({ DEVPI_CLIENTDIR: path.join(work, "company-client"), HOME: work });
const get = (url: string, headers: Record<string, string> = {}) => fetchWithCa(url, caFile, { headers: { Accept: "application/json", ...headers } });
/** The first up's end, and devpi-server's pid and CPU ticks then. */
let watch: { at: number; pid: number; ticks: number } | undefined;

/** Everything the runs printed. */
let output = "";
async function up() {
    log.clear();
    try {
        return await stack.up({ onEvent: log.onEvent, onOutput: log.onOutput, color: "never" });
    } finally {
        output += log.text();
    }
}

/** pip downloads `spec` (no dependencies) through alice/dev; resolves with the file's sha256. */
async function pipDownload(spec: string): Promise<{ code: number; out: string; sha256?: string }> {
    const dir = fs.mkdtempSync(path.join(work, "dl-"));
    const r = await client(venv, "pip", ["download", "--no-input", "--no-cache-dir", "--no-deps", "-d", dir, "--index-url", `${BASE}/alice/dev/+simple/`, spec], clientEnv());
    const files = fs.readdirSync(dir);
    return {
        ...r,
        sha256:
            files.length === 1
                ? crypto
                      .createHash("sha256")
                      .update(fs.readFileSync(path.join(dir, files[0])))
                      .digest("hex")
                : undefined,
    };
}

const sha256Of = (file: string) => crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex");

/** devpi-server's pid on the test host (this machine runs others: the company's, other hosts') and its CPU time (utime + stime, in clock ticks). */
function devpiCpu(): { pid: number; ticks: number } {
    const pids = fs.readdirSync("/proc").filter((p) => {
        try {
            return /^\d+$/.test(p) && fs.readlinkSync(`/proc/${p}/root`) === host.root && /bin\/devpi-server( |$)/.test(fs.readFileSync(`/proc/${p}/cmdline`, "utf8").replace(/\0/g, " "));
        } catch {
            return false;
        }
    });
    assert.equal(pids.length, 1, `one devpi-server on the host: ${pids.join(", ")}`);
    const pid = Number(pids[0]);
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { pid, ticks: Number(fields[11]) + Number(fields[12]) };
}

/** A virtualenv on this machine with devpi-server (the company registry), cached by version. */
function companyVenv(): string {
    return cachedVenv(`company-devpi-${SERVER_VERSION}`, [`devpi-server==${SERVER_VERSION}`]);
}

async function waitFor(url: string, what: string): Promise<void> {
    for (let i = 0; i < 120; i++) {
        try {
            const r = await fetch(url);
            if (r.status < 500) return;
        } catch {
            // not up yet
        }
        await new Promise((r) => setTimeout(r, 500));
    }
    throw new Error(`${what} did not answer at ${url}`);
}

/** The company registry: devpi-server with root/internal, nginx in front asking for basic auth. */
async function startCompanyRegistry(): Promise<void> {
    const server = companyVenv();
    const data = path.join(work, "company-data");
    execFileSync(path.join(server, "bin/devpi-init"), ["--serverdir", data, "--no-root-pypi", "--root-passwd", COMPANY_ROOT_PASSWORD], { stdio: "pipe" });
    companyDevpi = spawn(path.join(server, "bin/devpi-server"), ["--serverdir", data, "--host", "127.0.0.1", "--port", String(COMPANY.devpi)], { stdio: "ignore" });
    const conf = path.join(work, "company-nginx");
    fs.mkdirSync(conf, { mode: 0o755 });
    // nginx's workers (not root) read the password file: through the scratch directory, no listing.
    fs.chmodSync(work, 0o711);
    const hash = execFileSync("openssl", ["passwd", "-apr1", "-stdin"], { input: COMPANY.password, encoding: "utf8" }).trim();
    fs.writeFileSync(path.join(conf, "htpasswd"), `${COMPANY.user}:${hash}\n`, { mode: 0o644 });
    fs.writeFileSync(
        path.join(conf, "nginx.conf"),
        `daemon off;\npid ${conf}/nginx.pid;\nerror_log ${conf}/error.log;\nevents {}\nhttp {\n  access_log ${conf}/access.log;\n  server {\n    listen 127.0.0.1:${COMPANY.nginx};\n    auth_basic "company";\n    auth_basic_user_file ${conf}/htpasswd;\n    location / { proxy_pass http://127.0.0.1:${COMPANY.devpi}; proxy_set_header Host $http_host; }\n  }\n}\n`,
    );
    companyNginx = spawn("nginx", ["-p", conf, "-c", path.join(conf, "nginx.conf")], { stdio: "ignore" });
    await waitFor(`http://127.0.0.1:${COMPANY.devpi}/+api`, "the company's devpi");
    await waitFor(`http://127.0.0.1:${COMPANY.nginx}/`, "the company's nginx");
    const devpi = (...args: string[]) => client(venv, "devpi", args, companyEnv());
    for (const args of [
        ["use", `http://127.0.0.1:${COMPANY.devpi}/`],
        ["login", "root", "--password", COMPANY_ROOT_PASSWORD],
        ["index", "-c", "root/internal", "bases=", "volatile=False"],
        ["use", "root/internal"],
        ["upload", buildPackage(venv, "corp-only-pkg", "1.0", dist)],
    ]) {
        const r = await devpi(...args);
        assert.equal(r.code, 0, `devpi ${args.join(" ")}: ${r.out}`);
    }
    const anonymous = await fetch(COMPANY_URL + "corp-only-pkg/");
    assert.equal(anonymous.status, 401, "the company registry asks for credentials");
    const authorised = await fetch(COMPANY_URL + "corp-only-pkg/", { headers: { Authorization: basicAuthorization(COMPANY.user, COMPANY.password) } });
    assert.equal(authorised.status, 200);
}

async function companyUpload(name: string, version: string): Promise<string> {
    const file = buildPackage(venv, name, version, dist);
    const r = await client(venv, "devpi", ["upload", file], companyEnv());
    assert.equal(r.code, 0, r.out);
    return file;
}

/** What devpi says about an index (as root), without its project list. */
async function indexConfig(name: string): Promise<Record<string, unknown>> {
    const r = await get(`${BASE}/${name}?no_projects=`);
    assert.equal(r.status, 200, r.body.slice(0, 300));
    return (JSON.parse(r.body) as { result: Record<string, unknown> }).result;
}

describe("mirrors: PyPI without its project list, a company registry with credentials", { timeout: 60 * 60 * 1000 }, () => {
    const it = steps();
    before(async () => {
        venv = clientVenv();
        fs.mkdirSync(dist);
        fs.mkdirSync(backend);
        host = startHost(HOST.name, HOST.ports.ssh, [HOST.ports.http, HOST.ports.https]);
        stack = await createStack("e2e-mirrors", projectCopy(), backend);
        await stack.setAllConfig({ ...hostConfig(host, HOST.ports), "devpi:rootPassword": { value: ROOT_PASSWORD, secret: true } });
        await stack.setConfig("users.alice.password", { value: ALICE_PASSWORD, secret: true }, true);
        await stack.setConfig('indexes["alice/dev"].volatile', { value: "false" }, true);
        sampler.start();
    });
    after(async () => {
        sampler.stop();
        companyNginx?.kill();
        companyDevpi?.kill();
        await cleanUp(stack, HOST.name, work);
    });

    it("a new server with the defaults: root/pypi on PyPI without its project list, devpi-web not degraded, search finds an upload", async () => {
        const r = await up();
        assert.equal(r.summary.result, "succeeded");
        watch = { at: Date.now(), ...devpiCpu() };
        fs.writeFileSync(caFile, String((await stack.outputs()).caCertificate.value));
        const pypi = await indexConfig("root/pypi");
        assert.equal(pypi.mirror_url, "https://pypi.org/simple/");
        assert.equal(pypi.mirror_web_url_fmt, "https://pypi.org/project/{name}/");
        assert.equal(pypi.mirror_no_project_list, true);
        assert.equal(pypi.title, "PyPI", "devpi-init's own settings are kept");
        const six = await pipDownload("six");
        assert.equal(six.code, 0, six.out);
        for (const args of [
            ["use", `${BASE}/alice/dev`],
            ["login", "alice", "--password", ALICE_PASSWORD],
            ["upload", buildPackage(venv, "mirr-private-pkg", "1.0", dist)],
        ]) {
            const c = await client(venv, "devpi", args, clientEnv());
            assert.equal(c.code, 0, `devpi ${args.join(" ")}: ${c.out}`);
        }
        let found = false;
        let body = "";
        for (let i = 0; i < 60 && !found; i++) {
            const search = await fetchWithCa(`${BASE}/+search?query=mirr-private-pkg`, caFile, { headers: { Accept: "text/html" } });
            body = search.body;
            found = search.status === 200 && /href="[^"]*\/alice\/dev\/mirr-private-pkg[/"]/.test(body);
            if (!found) await new Promise((res) => setTimeout(res, 2000));
        }
        assert.ok(found, `devpi-web's search finds the upload: ${body.replace(/\s+/g, " ").slice(body.indexOf("<body"), body.indexOf("<body") + 3000)}`);
        const page = await fetchWithCa(`${BASE}/`, caFile, { headers: { Accept: "text/html" } });
        const badge = /class="statusbadge (\w+)"[^>]*>\s*(\w+)/.exec(page.body);
        assert.deepEqual(badge?.slice(1), ["ok", "ok"], `devpi-web's status badge: ${badge?.[0] ?? page.body.slice(0, 300)}`);
        const status = await fetchWithCa(`${BASE}/+status`, caFile, { headers: { Accept: "text/html" } });
        assert.doesNotMatch(status.body, /Warning:|Error:|items in index queue/, "no message on devpi-web's status page");
    });

    it("root/pypi follows the company registry with credentials: pip installs its package through alice/dev, devpi holds only a loopback URL", async () => {
        await startCompanyRegistry();
        await sampler.unsampled(async () => {
            await stack.setConfig('indexes["root/pypi"].mirror_url', { value: COMPANY_URL }, true);
            await stack.setConfig('indexes["root/pypi"].mirror_allow_http', { value: "true" }, true);
            await stack.setConfig('indexes["root/pypi"].mirror_username', { value: COMPANY.user }, true);
            await stack.setConfig('indexes["root/pypi"].mirror_password', { value: COMPANY.password, secret: true }, true);
        });
        const r = await up();
        assert.equal(r.summary.result, "succeeded");
        assert.match(log.text(), /mirror index root\/pypi updated: mirror_url, mirror_web_url_fmt/);
        const pypi = await indexConfig("root/pypi");
        assert.equal(pypi.mirror_url, `http://127.0.0.1:${HOST.ports.devpi + 100}/root/internal/+simple/`);
        assert.equal(pypi.mirror_web_url_fmt, undefined, "PyPI's project page no longer applies");
        const got = await pipDownload("corp-only-pkg");
        assert.equal(got.code, 0, got.out);
        assert.equal(got.sha256, sha256Of(path.join(dist, "corp_only_pkg-1.0-py3-none-any.whl")), "the company's file, byte for byte");
        const files = onHost(host, "stat -c '%n %a %U:%G' /etc/nginx/devpi-mirror-auth /etc/nginx/devpi-mirror-auth/*");
        assert.equal(files.trim(), "/etc/nginx/devpi-mirror-auth 700 root:root\n/etc/nginx/devpi-mirror-auth/root+pypi.conf 600 root:root");
        const again = await stack.preview({ expectNoChanges: true, color: "never" });
        assert.deepEqual(Object.keys(again.changeSummary), ["same"], "a second run changes nothing");
    });

    it("root/pypi back to PyPI, the company registry as a mirror index and a second base: both install", async () => {
        const second = await companyUpload("corp-second-pkg", "2.0");
        await sampler.unsampled(async () => {
            await stack.removeConfig('indexes["root/pypi"]', true);
            await stack.setAllConfig(
                {
                    'indexes["root/company"].type': { value: "mirror" },
                    'indexes["root/company"].mirror_url': { value: COMPANY_URL },
                    'indexes["root/company"].mirror_allow_http': { value: "true" },
                    'indexes["root/company"].mirror_username': { value: COMPANY.user },
                    'indexes["root/company"].mirror_password': { value: COMPANY.password, secret: true },
                    'indexes["alice/dev"].bases[0]': { value: "root/company" },
                    'indexes["alice/dev"].bases[1]': { value: "root/pypi" },
                },
                true,
            );
        });
        const r = await up();
        assert.equal(r.summary.result, "succeeded");
        const pypi = await indexConfig("root/pypi");
        assert.equal(pypi.mirror_url, "https://pypi.org/simple/");
        assert.equal(pypi.mirror_web_url_fmt, "https://pypi.org/project/{name}/");
        const company = await indexConfig("root/company");
        assert.equal(company.type, "mirror");
        assert.equal(company.mirror_url, `http://127.0.0.1:${HOST.ports.devpi + 100}/root/internal/+simple/`);
        const got = await pipDownload("corp-second-pkg");
        assert.equal(got.code, 0, got.out);
        assert.equal(got.sha256, sha256Of(second), "only the company mirror index has it");
        const fromPypi = await pipDownload("iniconfig==2.0.0");
        assert.equal(fromPypi.code, 0, `PyPI again through root/pypi: ${fromPypi.out}`);
        assert.equal(onHost(host, "ls /etc/nginx/devpi-mirror-auth").trim(), "root+company.conf", "root/pypi's credentials are gone");
    });

    it(`devpi-server used less than ${IDLE_MAX_CORES} of a core on average over the ${IDLE_WINDOW_S} s after the first pulumi up`, async () => {
        const left = watch!.at + IDLE_WINDOW_S * 1000 - Date.now();
        if (left > 0) await new Promise((r) => setTimeout(r, left));
        const now = devpiCpu();
        assert.equal(now.pid, watch!.pid, "the same devpi-server all along");
        const seconds = (Date.now() - watch!.at) / 1000;
        const cores = (now.ticks - watch!.ticks) / Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" })) / seconds;
        console.log(`devpi-server: ${cores.toFixed(3)} cores on average over ${seconds.toFixed(0)} s after the first up (with this test's requests)`);
        assert.ok(cores < IDLE_MAX_CORES, `${cores.toFixed(3)} cores`);
    });

    it("the company's credentials are nowhere: state, argv on the host, the run's output, devpi's answers", async () => {
        sampler.stop();
        const header = basicAuthorization(COMPANY.user, COMPANY.password).slice("Basic ".length);
        for (const secret of [COMPANY.password, header]) {
            assert.deepEqual(filesContaining(backend, secret), [], "not in the state");
            assert.ok(![...sampler.onHost].some((cmd) => cmd.includes(secret)), "not in argv on the host");
            assert.ok(!output.includes(secret), "not in pulumi's output");
        }
        for (const p of ["/", "/root", "/root/pypi", "/root/company"]) {
            const r = await get(`${BASE}${p}`);
            assert.ok(!r.body.includes(COMPANY.password) && !r.body.includes(header) && !r.body.includes(COMPANY.user), `${p} does not show them`);
        }
        const inFile = spawnSync("grep", ["-rl", COMPANY.password, path.join(host.root, "etc"), path.join(host.root, "srv")], { encoding: "utf8" });
        assert.equal(inFile.stdout.trim(), "", "the password itself is in no file on the server (nginx's file holds the header)");
    });
});
