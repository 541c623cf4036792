/**
 * End to end, private indexes: with `devpi:reads authenticated` a primary and a replica refuse
 * anonymous reads on every path (simple pages, nginx's cached pages, release files from disk, the
 * JSON API, search, project pages; browsers go to the login page), while pip, uv, twine and
 * devpi-client work with credentials (netrc). Scoped tokens (devpi-tokens) read or upload only
 * where declared, are rotated inside their renewal window, expire and are revoked when removed.
 * Per index (`acl_read`), a user is refused another's index on the same paths, on both servers.
 * The replica runs Debian 12 (REPLICA_RELEASE), the primary the release under test.
 * Switching back to anonymous restores open reads. No password or token leaks.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as https from "node:https";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe } from "node:test";
import { Stack } from "@pulumi/pulumi/automation";
import puppeteer from "puppeteer-core";
import { tokenGeneration } from "../../components/access/devpiToken";
import { SUPERVISOR_LOG } from "../../components/constants";
import { PAGE_GENERATION_SETTLE_MS } from "../../components/nginx/nginxConfig";
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
    ROOT,
    setReplicaConfig,
    startHost,
    steps,
    stopHost,
    TestHost,
} from "./harness";

const PRIMARY = { name: "priv-p", ports: { ssh: 27201, http: 27280, https: 27643, devpi: 27240 } };
const REPLICA = { name: "priv-r", label: "r1", ports: { ssh: 27202, http: 27281, https: 27644, devpi: 27241 } };
/**
 * The replica's Debian release: Debian 12 unless DEVPI_E2E_REPLICA_RELEASE says otherwise, so that
 * `npm test` (a Debian 13 primary) also checks restricted reads on Debian 12's nginx, Python and
 * devpi, every path included; `npm run test:extra` runs the whole suite on Debian 12 as well.
 */
const REPLICA_RELEASE = process.env.DEVPI_E2E_REPLICA_RELEASE ?? "bookworm";
const ROOT_PASSWORD = "root-Pw-priv-6610";
const ALICE_PASSWORD = "alice-Pw-priv-2291";
const BOB_PASSWORD = "bob-Pw-priv-7342";
const BASE = `https://localhost:${PRIMARY.ports.https}`;
const REPLICA_BASE = `https://localhost:${REPLICA.ports.https}`;
/**
 * A token that lives 0.0009 days (78 s) and is renewed in its last 0.00045 days: a new generation
 * every 39 s (the step waits for generations and the expiry: shorter is wall time saved in CI).
 */
const SHORT = { validDays: 0.0009, renewBeforeDays: 0.00045 };
const UV_VERSION = "0.13.9";
/** Debian's chromium (scripts/test-packages.sh installs it). */
const CHROMIUM = "/usr/bin/chromium";

let primary: TestHost;
let replica: TestHost;
let stack: Stack;
let venv: string;
let uv: string;
const log = new EventLog();
const sampler = new ProcessSampler(clientVenv(), () => [primary, replica].filter(Boolean).map((h) => h.root));
const work = fs.mkdtempSync(path.join(os.tmpdir(), "devpi-e2e-priv-"));
const backend = path.join(work, "state");
const caFile = path.join(work, "ca.pem");
const dist = path.join(work, "dist");
const noNetrc = path.join(work, "empty-netrc");
/** Client environment; `netrc` (its text) gives credentials the way pip, uv and twine read them. */
function clientEnv(netrc?: string): Record<string, string> {
    const file = netrc === undefined ? noNetrc : path.join(work, `netrc-${Buffer.from(netrc).toString("hex").slice(0, 16)}-${netrc.length}`);
    fs.writeFileSync(file, netrc ?? "", { mode: 0o600 });
    return { REQUESTS_CA_BUNDLE: caFile, SSL_CERT_FILE: caFile, DEVPI_CLIENTDIR: path.join(work, "devpi-client"), PIP_CERT: caFile, PIP_DISABLE_PIP_VERSION_CHECK: "1", NETRC: file, HOME: work };
}
const netrcFor = (login: string, password: string) => `machine localhost login ${login} password ${password}\n`;

async function up() {
    log.clear();
    return stack.up({ onEvent: log.onEvent, onOutput: log.onOutput, color: "never" });
}
const get = (url: string, opts: https.RequestOptions = {}) => fetchWithCa(url, caFile, opts);
const basic = (user: string, password: string) => ({ Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}` });

/** pip downloads `spec` from `indexUrl` (no dependencies) into a fresh directory. */
async function pipDownload(indexUrl: string, spec: string, netrc?: string) {
    return client(venv, "pip", ["download", "--no-input", "--no-cache-dir", "--no-deps", "-d", fs.mkdtempSync(path.join(work, "dl-")), "--index-url", indexUrl, spec], clientEnv(netrc));
}

async function tokens(): Promise<Record<string, { token: string; user: string; expires: string }>> {
    const outputs = await stack.outputs();
    assert.equal(outputs.tokens.secret, true, "the tokens output is a secret");
    return outputs.tokens.value as Record<string, { token: string; user: string; expires: string }>;
}

async function twineUpload(user: string, password: string, index: string, file: string) {
    const pypirc = path.join(work, `pypirc-${user}`);
    fs.writeFileSync(pypirc, `[distutils]\nindex-servers =\n    devpi\n\n[devpi]\nrepository = ${BASE}/${index}/\nusername = ${user}\npassword = ${password}\n`, { mode: 0o600 });
    return client(venv, "twine", ["upload", "--config-file", pypirc, "-r", "devpi", "--cert", caFile, file], clientEnv());
}

/** `page` requested twice by an authorised reader once its generation has settled: the second answer, from nginx's cache. */
async function warmedByAlice(page: string, json: Record<string, string>, alice: Record<string, string>) {
    await new Promise((r) => setTimeout(r, PAGE_GENERATION_SETTLE_MS + 500));
    await get(page, { headers: { ...json, ...alice } });
    const warm = await get(page, { headers: { ...json, ...alice } });
    assert.equal(warm.status, 200);
    assert.equal(warm.headers["x-cache-status"], "HIT", "an authenticated reader is served from nginx's cache");
    return warm;
}

/**
 * On the server at `base`: an authorised reader warms nginx's page cache and reads a release file
 * from disk; then every path refuses an anonymous read (401 with a Basic challenge), a wrong
 * password is refused on the cached page, a browser goes to devpi-lockdown's login page and
 * `/+api` stays open.
 */
async function refusedEverywhere(base: string) {
    const alice = basic("alice", ALICE_PASSWORD);
    const json = { Accept: "application/vnd.pypi.simple.v1+json" };
    const page = `${base}/alice/dev/+simple/priv-pkg/`;
    const warm = await warmedByAlice(page, json, alice);
    const file = (JSON.parse(warm.body) as { files: { url: string }[] }).files[0].url;
    const fileUrl = new URL(file, page).toString();
    const fromDisk = await get(fileUrl, { headers: alice });
    assert.equal(fromDisk.status, 200, `${fileUrl} with alice's password`);
    assert.match(String(fromDisk.headers["cache-control"]), /max-age=315360000/, "served by nginx from disk (expires max)");
    await get(`${base}/root/pypi/+simple/six/`, { headers: { ...json, ...alice } });
    for (const [what, url, headers] of [
        ["the cached simple page", page, json],
        ["the index's simple list", `${base}/alice/dev/+simple/`, json],
        ["the release file on disk", fileUrl, {}],
        ["the JSON API", `${base}/alice/dev`, { Accept: "application/json" }],
        ["a user's JSON", `${base}/alice`, { Accept: "application/json" }],
        ["search", `${base}/+search?query=priv`, { Accept: "*/*" }],
        ["the PyPI mirror", `${base}/root/pypi/+simple/six/`, json],
    ] as const) {
        const r = await get(url, { headers });
        assert.equal(r.status, 401, `${what} (${url}) refuses an anonymous read: HTTP ${r.status}`);
        assert.match(String(r.headers["www-authenticate"]), /^Basic realm="devpi"/, `${what}: a Basic challenge`);
    }
    const wrong = await get(page, { headers: { ...json, ...basic("alice", "not-the-password") } });
    assert.equal(wrong.status, 401, `${base}: a wrong password is refused, cached page or not`);
    const browser = await get(`${base}/alice/dev/priv-pkg`, { headers: { Accept: "text/html,application/xhtml+xml" } });
    assert.equal(browser.status, 302, `${base}: a browser is sent to the login page`);
    assert.match(String(browser.headers.location), /^(https:\/\/localhost:\d+)?\/\+login\?goto_url=\/alice\/dev\/priv-pkg$/);
    const login = await get(`${base}/+login`, { headers: { Accept: "text/html" } });
    assert.equal(login.status, 200);
    assert.match(login.body, /<form[^>]*>[\s\S]*name="password"/, "devpi-lockdown's login form");
    assert.equal((await get(`${base}/+api`)).status, 200, "/+api stays open (clients discover the login URL there)");
}

describe("private indexes: reads for users and tokens only", { timeout: 60 * 60 * 1000 }, () => {
    const it = steps();
    before(async () => {
        venv = clientVenv();
        uv = cachedVenv(`uv-${UV_VERSION}`, [`uv==${UV_VERSION}`]);
        fs.mkdirSync(dist);
        primary = startHost(PRIMARY.name, PRIMARY.ports.ssh, [PRIMARY.ports.http, PRIMARY.ports.https]);
        replica = startHost(REPLICA.name, REPLICA.ports.ssh, [REPLICA.ports.http, REPLICA.ports.https], undefined, REPLICA_RELEASE);
        fs.mkdirSync(backend);
        stack = await createStack("e2e-private", projectCopy(), backend);
        await stack.setAllConfig({
            ...hostConfig(primary, PRIMARY.ports),
            "devpi:rootPassword": { value: ROOT_PASSWORD, secret: true },
            "devpi:reads": { value: "authenticated" },
        });
        await stack.setAllConfig(
            {
                "extraIpAddresses[0]": { value: "127.0.0.1" },
                "users.alice.password": { value: ALICE_PASSWORD, secret: true },
                "users.bob.password": { value: BOB_PASSWORD, secret: true },
                'indexes["alice/dev"].volatile': { value: "false" },
                'indexes["bob/prod"].volatile': { value: "false" },
                'tokens["ci-read"].user': { value: "alice" },
                'tokens["ci-read"].scope': { value: "read" },
                'tokens["ci-read"].indexes[0]': { value: "alice/dev" },
                'tokens["ci-upload"].user': { value: "bob" },
                'tokens["ci-upload"].scope': { value: "upload" },
                'tokens["ci-upload"].indexes[0]': { value: "bob/prod" },
            },
            true,
        );
        await setReplicaConfig(stack, 0, replica, { name: REPLICA.label, domain: "localhost", ports: REPLICA.ports });
    });

    after(async () => {
        sampler.stop();
        if (process.env.DEVPI_E2E_KEEP !== "1") stopHost(REPLICA.name);
        await cleanUp(stack, PRIMARY.name, work);
    });

    it("pulumi up provisions a primary and a replica with reads restricted, and the tokens", async () => {
        sampler.start();
        const result = await up();
        assert.equal(result.summary.result, "succeeded");
        const outputs = await stack.outputs();
        fs.writeFileSync(caFile, String(outputs.caCertificate.value));
        assert.match(String(outputs.serverVersions.value), /devpi-lockdown/);
        assert.match(String(outputs.serverVersions.value), /devpi-tokens/);
        const t = await tokens();
        assert.deepEqual(Object.keys(t).sort(), ["ci-read", "ci-upload"]);
        assert.match(t["ci-read"].token, /^devpi-/);
        assert.equal(t["ci-read"].user, "alice");
        const days = (Date.parse(t["ci-read"].expires) - Date.now()) / 86_400_000;
        assert.ok(days > 89 && days <= 90, `valid for 90 days (default): ${days}`);
    });

    it("alice uploads with devpi-client and twine; pip and uv install with netrc credentials", async () => {
        const env = clientEnv();
        const v1 = buildPackage(venv, "priv-pkg", "1.0.0", dist);
        const v2 = buildPackage(venv, "priv-pkg", "2.0.0", dist);
        assert.equal((await client(venv, "devpi", ["use", `${BASE}/alice/dev`], env)).code, 0);
        const login = await client(venv, "devpi", ["login", "alice", "--password", ALICE_PASSWORD], env);
        assert.equal(login.code, 0, login.out);
        const upload = await client(venv, "devpi", ["upload", v1], env);
        assert.equal(upload.code, 0, upload.out);
        const list = await client(venv, "devpi", ["list", "priv-pkg"], env);
        assert.equal(list.code, 0, list.out);
        assert.match(list.out, /priv_pkg-1\.0\.0/);
        const twine = await twineUpload("alice", ALICE_PASSWORD, "alice/dev", v2);
        assert.equal(twine.code, 0, twine.out);
        const pip = await pipDownload(`${BASE}/alice/dev/+simple/`, "priv-pkg==2.0.0", netrcFor("alice", ALICE_PASSWORD));
        assert.equal(pip.code, 0, pip.out);
        const uvEnv = { ...clientEnv(netrcFor("alice", ALICE_PASSWORD)), UV_CACHE_DIR: path.join(work, "uv-cache"), UV_NO_CONFIG: "1" };
        const target = fs.mkdtempSync(path.join(work, "uv-target-"));
        const uvRun = await client(
            uv,
            "uv",
            ["pip", "install", "--no-deps", "--python", path.join(venv, "bin/python"), "--target", target, "--index-url", `${BASE}/alice/dev/+simple/`, "priv-pkg==1.0.0"],
            uvEnv,
        );
        assert.equal(uvRun.code, 0, uvRun.out);
        assert.ok(fs.existsSync(path.join(target, "priv_pkg/__init__.py")), uvRun.out);
    });

    it("anonymous reads are refused on every path, also for pages nginx has cached and files it serves from disk, on the primary and the replica", async () => {
        await refusedEverywhere(BASE);
        // The replica has the upload once replication brought it (it follows the primary's changelog).
        const alice = basic("alice", ALICE_PASSWORD);
        for (let i = 0; i < 30 && (await get(`${REPLICA_BASE}/alice/dev/+simple/priv-pkg/`, { headers: alice })).status !== 200; i++) await new Promise((r) => setTimeout(r, 1000));
        await refusedEverywhere(REPLICA_BASE);
        const pip = await pipDownload(`${BASE}/alice/dev/+simple/`, "priv-pkg==1.0.0");
        assert.notEqual(pip.code, 0, "anonymous pip cannot download");
        // pip (--no-input) turns the 401 into "no versions found"; with alice's netrc the same command found it above.
        assert.match(pip.out, /401|Unauthorized|No matching distribution found for priv-pkg==1\.0\.0/i, pip.out);
    });

    it("nginx keeps devpi's yes to a password for a URL under an HMAC (never the password): repeated reads ask devpi once", async () => {
        const alice = basic("alice", ALICE_PASSWORD);
        const page = `${BASE}/alice/dev/+simple/priv-pkg/`;
        const json = { Accept: "application/vnd.pypi.simple.v1+json" };
        const authchecks = () => Number(onHost(primary, `grep -c 'GET /+authcheck' ${SUPERVISOR_LOG} || true`).trim());
        assert.equal((await get(page, { headers: { ...json, ...alice } })).status, 200);
        // Nothing is kept while devpi's data settles after a commit.
        await new Promise((r) => setTimeout(r, PAGE_GENERATION_SETTLE_MS + 500));
        const before = authchecks();
        const started = Date.now();
        for (let i = 0; i < 20; i++) assert.equal((await get(page, { headers: { ...json, ...alice } })).status, 200);
        const seconds = (Date.now() - started) / 1000;
        const asked = authchecks() - before;
        assert.ok(asked <= 1, `20 reads with alice's password asked devpi ${asked} times`);
        for (let i = 0; i < 5; i++) assert.equal((await get(page, { headers: json })).status, 401);
        assert.equal(authchecks() - before - asked, 5, "every anonymous request asks devpi");
        console.log(`# auth cache: 20 reads with a password in ${seconds.toFixed(2)} s, devpi asked ${asked} time(s)`);
        const files = onHost(primary, "stat -c '%U %a' /etc/nginx/devpi-authcheck-secret.conf; find /var/lib/nginx/devpi-authcheck -type f -exec cat {} +");
        assert.match(files, /^root 600\n/, "the secret is root's only");
        assert.match(files, /KEY: [0-9a-f]{64}\/alice\/dev\/\+simple\/priv-pkg\//, "keys start with the credential's HMAC");
        for (const secret of [ALICE_PASSWORD, alice.Authorization.slice(6)]) assert.ok(!files.includes(secret), "no credential in the cache's files");
    });

    it("in a real browser (headless Chromium): the login page, then after logging in the project page", async () => {
        const shots = path.join(ROOT, ".pulumi-test", "screenshots");
        fs.mkdirSync(shots, { recursive: true });
        // The site's certificate is checked by every other step; the browser only has to render.
        const browser = await puppeteer.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"], acceptInsecureCerts: true });
        try {
            const page = await browser.newPage();
            await page.setViewport({ width: 1024, height: 700 });
            await page.goto(`${BASE}/alice/dev/priv-pkg`, { waitUntil: "networkidle0" });
            assert.match(page.url(), /\/\+login\?goto_url=\/alice\/dev\/priv-pkg$/, "sent to the login page");
            assert.ok(await page.$('form[name="login"] input[name="password"]'), "the login form is shown");
            const loginShot = path.join(shots, "private-login.png");
            await page.screenshot({ path: loginShot });
            assert.ok(fs.statSync(loginShot).size > 5000, "a rendered page, not a blank one");
            assert.doesNotMatch(await page.content(), /priv-pkg 2\.0\.0|priv_pkg-/, "nothing of the index before logging in");
            await page.type('input[name="username"]', "alice");
            await page.type('input[name="password"]', ALICE_PASSWORD);
            await Promise.all([page.waitForNavigation({ waitUntil: "networkidle0" }), page.click('button[name="submit"]')]);
            assert.equal(new URL(page.url()).pathname, "/alice/dev/priv-pkg", "back where it was going");
            const text = await page.$eval("body", (b) => (b as unknown as { innerText: string }).innerText);
            assert.match(text, /priv-pkg/);
            assert.match(text, /2\.0\.0/, "the project page lists the uploaded versions");
            await page.screenshot({ path: path.join(shots, "private-project.png") });
            console.log(`# screenshots: ${loginShot}, ${path.join(shots, "private-project.png")}`);
        } finally {
            await browser.close();
        }
    });

    it("a read token installs from its index only and cannot upload; an upload token uploads", async () => {
        const t = await tokens();
        const read = t["ci-read"].token;
        const ok = await pipDownload(`${BASE}/alice/dev/+simple/`, "priv-pkg==2.0.0", netrcFor("alice", read));
        assert.equal(ok.code, 0, ok.out);
        const other = await get(`${BASE}/bob/prod/+simple/`, { headers: basic("alice", read) });
        assert.equal(other.status, 403, "the read token is refused on another index");
        const up3 = await twineUpload("alice", read, "alice/dev", buildPackage(venv, "priv-pkg", "3.0.0", dist));
        assert.notEqual(up3.code, 0, "the read token cannot upload");
        assert.match(up3.out, /403/, up3.out);
        const upload = t["ci-upload"].token;
        const bobPkg = buildPackage(venv, "bob-pkg", "1.0.0", dist);
        const up = await twineUpload("bob", upload, "bob/prod", bobPkg);
        assert.equal(up.code, 0, up.out);
        const bobRead = await pipDownload(`${BASE}/bob/prod/+simple/`, "bob-pkg==1.0.0", netrcFor("bob", upload));
        assert.equal(bobRead.code, 0, bobRead.out);
        const aliceWithBobToken = await get(`${BASE}/alice/dev/+simple/`, { headers: basic("bob", upload) });
        assert.equal(aliceWithBobToken.status, 403, "the upload token is refused on another index");
        const bobOwn = await pipDownload(`${BASE}/bob/prod/+simple/`, "bob-pkg==1.0.0", netrcFor("bob", BOB_PASSWORD));
        assert.equal(bobOwn.code, 0, "bob reads his index with his password");
    });

    it("the replica has the uploads and refuses anonymous reads; users and tokens read there", async () => {
        const outputs = await stack.outputs();
        const clients = outputs.replicaClients.value as Record<string, { pipIndexUrl: string }>;
        const index = clients[REPLICA.label].pipIndexUrl;
        assert.equal(index, `${REPLICA_BASE}/alice/dev/+simple/`);
        let pip = await pipDownload(index, "priv-pkg==2.0.0", netrcFor("alice", ALICE_PASSWORD));
        for (let i = 0; i < 20 && pip.code !== 0; i++) {
            await new Promise((r) => setTimeout(r, 1000));
            pip = await pipDownload(index, "priv-pkg==2.0.0", netrcFor("alice", ALICE_PASSWORD));
        }
        assert.equal(pip.code, 0, pip.out);
        const token = await pipDownload(index, "priv-pkg==1.0.0", netrcFor("alice", (await tokens())["ci-read"].token));
        assert.equal(token.code, 0, token.out);
        assert.notEqual((await pipDownload(index, "priv-pkg==1.0.0")).code, 0, "anonymous pip fails on the replica");
    });

    it("a second pulumi up changes nothing and runs nothing", async () => {
        const result = await up();
        assert.deepEqual(Object.keys(result.summary.resourceChanges ?? {}), ["same"]);
        assert.deepEqual(log.changed(), []);
    });

    it("a short-lived token is replaced by pulumi up inside its renewal window, expires, and is revoked when removed", async () => {
        await sampler.unsampled(() =>
            stack.setAllConfig(
                {
                    'tokens["short"].user': { value: "alice" },
                    'tokens["short"].indexes[0]': { value: "alice/dev" },
                    'tokens["short"].validDays': { value: String(SHORT.validDays) },
                    'tokens["short"].renewBeforeDays': { value: String(SHORT.renewBeforeDays) },
                },
                true,
            ),
        );
        // Start right after a generation begins, so the next up below is the first in the next one.
        const gen = () => tokenGeneration(SHORT, Date.now());
        const g0 = gen();
        while (gen() === g0) await new Promise((r) => setTimeout(r, 500));
        assert.equal((await up()).summary.result, "succeeded");
        const first = (await tokens()).short;
        const canRead = async (token: string) => (await get(`${BASE}/alice/dev/+simple/`, { headers: basic("alice", token) })).status;
        assert.equal(await canRead(first.token), 200);
        // Inside its renewal window (the next generation): a new token, the old one revoked.
        const g1 = gen();
        while (gen() === g1) await new Promise((r) => setTimeout(r, 500));
        const renewal = await up();
        assert.deepEqual(log.changed(), ["update:token-short-token"], "only the token's step runs");
        assert.equal(renewal.summary.result, "succeeded");
        const second = (await tokens()).short;
        assert.notEqual(second.token, first.token);
        assert.ok(Date.parse(second.expires) > Date.parse(first.expires));
        assert.equal(await canRead(second.token), 200, "the new token reads");
        assert.equal(await canRead(first.token), 403, "the replaced token is revoked at once");
        // Expiry: devpi refuses it once its time is up.
        const wait = Date.parse(second.expires) - Date.now() + 1500;
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        // nginx may reuse devpi's last yes to it for up to authCacheSeconds (default 30) + 1 more.
        let expired = 0;
        for (const until = Date.now() + 32_000; Date.now() < until; await new Promise((r) => setTimeout(r, 1000))) {
            expired = (await get(`${BASE}/alice/dev/+simple/`, { headers: basic("alice", second.token) })).status;
            if (expired === 403) break;
        }
        assert.equal(expired, 403, "an expired token is refused within authCacheSeconds");
        // Removed from the config: revoked (a fresh one, so the refusal is the revocation's doing).
        const g2 = gen();
        while (gen() === g2) await new Promise((r) => setTimeout(r, 500));
        await up();
        const third = (await tokens()).short;
        assert.equal(await canRead(third.token), 200);
        await sampler.unsampled(() => stack.removeConfig("tokens.short", true));
        await up();
        assert.deepEqual(log.changed(), ["delete:token-short-token"]);
        assert.equal(await canRead(third.token), 403, "a token removed from the config is revoked");
        assert.equal(Object.keys(await tokens()).includes("short"), false);
        assert.match(onHost(primary, "ls /etc/devpi/tokens; stat -c '%U %a' /etc/devpi/tokens /etc/devpi/tokens/ci-read.json"), /^ci-read\.json\nci-upload\.json\nroot 700\nroot 600\n?$/);
    });

    it("no password or token in state, CLI output or any process's argv", async () => {
        sampler.stop();
        const t = await tokens();
        const argv = [...sampler.seen].join("\n");
        const cli = log.text();
        assert.ok(sampler.seen.size > 100, "the sampler saw the run's processes");
        for (const [what, secret] of [
            ["root's password", ROOT_PASSWORD],
            ["alice's password", ALICE_PASSWORD],
            ["bob's password", BOB_PASSWORD],
            ["the read token", t["ci-read"].token],
            ["the upload token", t["ci-upload"].token],
        ]) {
            assert.deepEqual(filesContaining(backend, secret), [], `${what} not in state (checkpoints, history, backups)`);
            assert.ok(!cli.includes(secret), `${what} not in CLI output`);
            assert.ok(!argv.includes(secret), `${what} not in argv`);
        }
    });

    it("per index (acl_read): alice reads alice/dev and bob is refused there, on every path and on the replica; removing it reopens", async () => {
        await stack.setAllConfig({ 'indexes["alice/dev"].acl_read[0]': { value: "alice" }, 'indexes["bob/prod"].acl_read[0]': { value: "bob" } }, true);
        const result = await up();
        assert.equal(result.summary.result, "succeeded");
        assert.match(log.text(), /installed devpi-pulumi-reads 1\.0\.0\+[0-9a-f]{12}/, "the read plugin is installed");
        assert.match(log.text(), /index alice\/dev updated: pulumi_acl_read/);
        const alice = basic("alice", ALICE_PASSWORD);
        const bob = basic("bob", BOB_PASSWORD);
        const json = { Accept: "application/vnd.pypi.simple.v1+json" };
        const page = `${BASE}/alice/dev/+simple/priv-pkg/`;
        // alice warms nginx's cache for her page; bob must still be refused it.
        const warm = await warmedByAlice(page, json, alice);
        const fileUrl = new URL((JSON.parse(warm.body) as { files: { url: string }[] }).files[0].url, page).toString();
        assert.equal((await get(fileUrl, { headers: alice })).status, 200, "alice gets her release file");
        for (const [what, url, headers] of [
            ["the cached simple page", page, json],
            ["the index's simple list", `${BASE}/alice/dev/+simple/`, json],
            ["the release file on disk", fileUrl, {}],
            ["the JSON API", `${BASE}/alice/dev`, { Accept: "application/json" }],
            ["the project page", `${BASE}/alice/dev/priv-pkg`, { Accept: "text/html" }],
            ["search", `${BASE}/+search?query=priv`, { Accept: "text/html" }],
        ] as const) {
            const r = await get(url, { headers: { ...headers, ...bob } });
            assert.equal(r.status, 403, `bob is refused ${what} (${url}): HTTP ${r.status}`);
            const anonymous = await get(url, { headers });
            if (headers.Accept === "text/html") {
                assert.equal(anonymous.status, 302, `anonymous browser: still sent to the login for ${what}`);
                assert.match(String(anonymous.headers.location), /\/\+login\?goto_url=/);
            } else assert.equal(anonymous.status, 401, `anonymous: still 401 (the login) for ${what}`);
        }
        assert.equal((await get(`${BASE}/bob/prod/+simple/`, { headers: { ...json, ...bob } })).status, 200, "bob reads his own index");
        assert.equal((await get(`${BASE}/bob/prod/+simple/`, { headers: { ...json, ...alice } })).status, 403, "alice is refused bob/prod");
        assert.equal((await get(`${BASE}/+search?query=priv`, { headers: basic("root", ROOT_PASSWORD) })).status, 200, "root may search");
        const bobPip = await pipDownload(`${BASE}/alice/dev/+simple/`, "priv-pkg==2.0.0", netrcFor("bob", BOB_PASSWORD));
        assert.notEqual(bobPip.code, 0, "bob's pip cannot install from alice/dev");
        const alicePip = await pipDownload(`${BASE}/alice/dev/+simple/`, "priv-pkg==2.0.0", netrcFor("alice", ALICE_PASSWORD));
        assert.equal(alicePip.code, 0, alicePip.out);
        const token = await pipDownload(`${BASE}/alice/dev/+simple/`, "priv-pkg==1.0.0", netrcFor("alice", (await tokens())["ci-read"].token));
        assert.equal(token.code, 0, `alice's read token still installs: ${token.out}`);
        // The replica has the plugin and the index settings too.
        const replicaPage = `${REPLICA_BASE}/alice/dev/+simple/priv-pkg/`;
        let r = await get(replicaPage, { headers: { ...json, ...bob } });
        for (let i = 0; i < 30 && r.status !== 403; i++) {
            await new Promise((res) => setTimeout(res, 1000));
            r = await get(replicaPage, { headers: { ...json, ...bob } });
        }
        assert.equal(r.status, 403, "bob is refused alice/dev on the replica");
        assert.equal((await get(replicaPage, { headers: { ...json, ...alice } })).status, 200, "alice reads it on the replica");
        const again = await up();
        assert.deepEqual(Object.keys(again.summary.resourceChanges ?? {}), ["same"], "a second up changes nothing");
        // Removing acl_read lets every user read again (the plugin goes with the last one).
        await stack.removeConfig('indexes["alice/dev"].acl_read', true);
        await stack.removeConfig('indexes["bob/prod"].acl_read', true);
        assert.equal((await up()).summary.result, "succeeded");
        assert.equal((await get(`${BASE}/alice/dev/+simple/`, { headers: { ...json, ...bob } })).status, 200, "bob reads alice/dev again");
        assert.equal((await get(fileUrl, { headers: bob })).status, 200);
        assert.equal((await get(`${BASE}/alice/dev/+simple/`, { headers: json })).status, 401, "anonymous still not");
        // devpi keeps the key the plugin no longer knows; a later settings change must not send it back.
        await stack.setConfig('indexes["bob/prod"].mirror_whitelist[0]', { value: "six" }, true);
        assert.equal((await up()).summary.result, "succeeded");
        assert.match(log.text(), /index bob\/prod updated: mirror_whitelist/);
        const third = await up();
        assert.deepEqual(Object.keys(third.summary.resourceChanges ?? {}), ["same"]);
    });

    it("switching reads back to anonymous serves everyone again, on the primary and the replica", async () => {
        await sampler.unsampled(() => stack.setConfig("devpi:reads", { value: "anonymous" }));
        const result = await up();
        assert.equal(result.summary.result, "succeeded");
        assert.doesNotMatch(String((await stack.outputs()).serverVersions.value), /devpi-lockdown/);
        const pip = await pipDownload(`${BASE}/alice/dev/+simple/`, "priv-pkg==2.0.0");
        assert.equal(pip.code, 0, pip.out);
        assert.equal((await get(`${BASE}/alice/dev`)).status, 200);
        let replicaPip = await pipDownload(`${REPLICA_BASE}/alice/dev/+simple/`, "priv-pkg==2.0.0");
        for (let i = 0; i < 20 && replicaPip.code !== 0; i++) {
            await new Promise((r) => setTimeout(r, 1000));
            replicaPip = await pipDownload(`${REPLICA_BASE}/alice/dev/+simple/`, "priv-pkg==2.0.0");
        }
        assert.equal(replicaPip.code, 0, replicaPip.out);
        const again = await up();
        assert.deepEqual(Object.keys(again.summary.resourceChanges ?? {}), ["same"]);
    });
});
