/**
 * End to end, self-signed mode: `pulumi up` on a fresh Debian host gives a working HTTPS devpi;
 * a second run changes nothing; one setting changes only what depends on it; removals keep
 * uploads; destroy keeps data; no secret leaks into state, output or `ps`.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as https from "node:https";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe } from "node:test";
import { Stack } from "@pulumi/pulumi/automation";
import { PAGE_GENERATION_SETTLE_MS } from "../../components/nginx/nginxConfig";
import {
    buildPackage,
    cleanUp,
    client,
    clientVenv,
    createStack,
    EventLog,
    fetchWithCa,
    filesContaining,
    fingerprintHex,
    hostConfig,
    onHost,
    ProcessSampler,
    projectCopy,
    startHost,
    steps,
    TestHost,
} from "./harness";

const HOST = "e2e-selfsigned";
const PORTS = { ssh: 2231, http: 28080, https: 28443, devpi: 24040 };
const ROOT_PASSWORD = "root-Pw-e2e-7731";
const ALICE_PASSWORD = "alice-Pw-e2e-4410";
const BOB_PASSWORD = "bob-Pw-e2e-9083";
const ROTATED_ROOT_PASSWORD = "root-Pw-rotated-5";
const ROTATED_ALICE_PASSWORD = "alice-Pw-rotated-2";
const BASE = `https://localhost:${PORTS.https}`;

let host: TestHost;
let stack: Stack;
let venv: string;
const log = new EventLog();
const sampler = new ProcessSampler(clientVenv(), () => host?.root);
const work = fs.mkdtempSync(path.join(os.tmpdir(), "devpi-e2e-"));
const backend = path.join(work, "state");
const caFile = path.join(work, "ca.pem");
const clientEnv = () => ({ REQUESTS_CA_BUNDLE: caFile, DEVPI_CLIENTDIR: path.join(work, "devpi-client"), PIP_CERT: caFile, PIP_DISABLE_PIP_VERSION_CHECK: "1" });
let sshKeyText = "";

async function up() {
    log.clear();
    return stack.up({ onEvent: log.onEvent, onOutput: log.onOutput, color: "never" });
}

const get = (url: string, opts: https.RequestOptions = {}) => fetchWithCa(url, caFile, opts);

describe("self-signed devpi on a fresh Debian host", { timeout: 60 * 60 * 1000 }, () => {
    const it = steps();
    before(async () => {
        venv = clientVenv();
        assert.ok(fs.existsSync(venv));
        host = startHost(HOST, PORTS.ssh, [PORTS.http, PORTS.https]);
        sshKeyText = fs.readFileSync(host.sshKey, "utf8");
        fs.mkdirSync(backend);
        stack = await createStack("e2e-selfsigned", projectCopy(), backend);
        await stack.setAllConfig({
            ...hostConfig(host, PORTS, "secret"),
            "devpi:rootPassword": { value: ROOT_PASSWORD, secret: true },
            "devpi:clientIncludePassword": { value: "true" },
        });
        await stack.setAllConfig(
            {
                "extraIpAddresses[0]": { value: "127.0.0.1" },
                "users.alice.password": { value: ALICE_PASSWORD, secret: true },
                "users.alice.email": { value: "alice@example.com" },
                "users.bob.password": { value: BOB_PASSWORD, secret: true },
                'indexes["alice/dev"].volatile': { value: "false" },
                'indexes["alice/scratch"].volatile': { value: "true" },
            },
            true,
        );
    });

    after(async () => {
        sampler.stop();
        await cleanUp(stack, HOST, work);
    });

    it("pulumi up on a fresh host provisions everything, in dependency order", async () => {
        sampler.start();
        const result = await up();
        assert.equal(result.summary.result, "succeeded");
        const outputs = await stack.outputs();
        fs.writeFileSync(caFile, String(outputs.caCertificate.value));
        for (const [before_, after_] of [
            ["ssl-files", "nginx-site"],
            ["devpi-venv", "supervisor-program"],
            ["supervisor-program", "root-password-set"],
            ["root-password-set", "user-alice-user"],
            ["user-alice-user", "index-alice/dev-index"],
            ["nginx-site", "health-https"],
            ["index-alice/dev-index", "health-https"],
        ]) {
            assert.ok(log.finished(before_) >= 0 && log.finished(before_) < log.started(after_), `${before_} finishes before ${after_} starts`);
        }
    });

    it("serves HTTPS with the generated certificate and redirects HTTP", async () => {
        const outputs = await stack.outputs();
        const api = await get(`${BASE}/+api`);
        assert.equal(api.status, 200);
        assert.equal(fingerprintHex(api.fingerprint), outputs.certificateSha256.value);
        assert.ok((JSON.parse(api.body) as { result: { login: string } }).result.login.startsWith(BASE));
        const redirect = await get(`http://localhost:${PORTS.http}/alice/dev/`);
        assert.equal(redirect.status, 301);
        assert.equal(redirect.headers.location, `${BASE}/alice/dev/`);
        await assert.rejects(get(`${BASE}/+api`, { ca: undefined }), /self-signed|unable to verify|certificate/i, "untrusted without the CA");
        const changelog = await get(`${BASE}/+changelog/0`);
        assert.equal(changelog.status, 403);
    });

    it("root logs in with the configured password only", async () => {
        const env = clientEnv();
        assert.equal((await client(venv, "devpi", ["use", BASE], env)).code, 0);
        assert.notEqual((await client(venv, "devpi", ["login", "root", "--password", "wrong-password"], env)).code, 0);
        assert.notEqual((await client(venv, "devpi", ["login", "root", "--password", ""], env)).code, 0);
        const ok = await client(venv, "devpi", ["login", "root", "--password", ROOT_PASSWORD], env);
        assert.equal(ok.code, 0, ok.out);
    });

    it("has the configured users and indexes", async () => {
        const alice = JSON.parse((await get(`${BASE}/alice`)).body) as { result: { email: string; indexes: Record<string, unknown> } };
        assert.equal(alice.result.email, "alice@example.com");
        const dev = JSON.parse((await get(`${BASE}/alice/dev`)).body) as { result: Record<string, unknown> };
        assert.deepEqual(dev.result.bases, ["root/pypi"]);
        assert.equal(dev.result.volatile, false);
        assert.deepEqual(dev.result.acl_upload, ["alice"]);
        const scratch = JSON.parse((await get(`${BASE}/alice/scratch`)).body) as { result: Record<string, unknown> };
        assert.equal(scratch.result.volatile, true);
        assert.equal((await get(`${BASE}/bob`)).status, 200);
    });

    it("uploads with devpi and twine, installs with pip, and serves release files from disk", async () => {
        const env = clientEnv();
        const dist = path.join(work, "dist");
        const v1 = buildPackage(venv, "e2e-pkg", "0.1.0", dist);
        const v2 = buildPackage(venv, "e2e-pkg", "0.2.0", dist);
        assert.equal((await client(venv, "devpi", ["use", `${BASE}/alice/dev`], env)).code, 0);
        const login = await client(venv, "devpi", ["login", "alice", "--password", ALICE_PASSWORD], env);
        assert.equal(login.code, 0, login.out);
        const upload = await client(venv, "devpi", ["upload", v1], env);
        assert.equal(upload.code, 0, upload.out);
        const outputs = await stack.outputs();
        const pypirc = path.join(work, "pypirc");
        fs.writeFileSync(pypirc, String(outputs.pypircWithPassword.value));
        assert.equal(outputs.pypircWithPassword.secret, true);
        const twine = await client(venv, "twine", ["upload", "--config-file", pypirc, "-r", "devpi", "--cert", caFile, v2], env);
        assert.equal(twine.code, 0, twine.out);
        const target = path.join(work, "site");
        const pip = await client(venv, "pip", ["install", "--no-cache-dir", "--target", target, "--index-url", String(outputs.pipIndexUrl.value), "e2e-pkg==0.2.0", "six==1.16.0"], env);
        assert.equal(pip.code, 0, pip.out);
        assert.ok(fs.existsSync(path.join(target, "e2e_pkg/__init__.py")));
        assert.ok(fs.existsSync(path.join(target, "six.py")), "a PyPI package installs through root/pypi");
        const simple = await get(`${BASE}/alice/dev/+simple/e2e-pkg/`, { headers: { Accept: "text/html" } });
        const href = /href="([^"#]+e2e_pkg-0\.1\.0[^"#]*)/.exec(simple.body)?.[1];
        assert.ok(href, simple.body);
        const file = await get(new URL(href, `${BASE}/alice/dev/+simple/e2e-pkg/`).toString(), { headers: {} });
        assert.equal(file.status, 200);
        assert.match(String(file.headers["cache-control"]), /max-age=315360000/, "served by nginx from disk (expires max)");
    });

    it("nginx caches user index pages, yet an upload is installable and a removal gone at once, also for writes past nginx", async () => {
        const env = clientEnv();
        const index = `${BASE}/alice/dev/+simple/`;
        const dl = (spec: string) => client(venv, "pip", ["download", "--no-cache-dir", "--no-deps", "-d", path.join(work, "fresh"), "--index-url", index, spec], env);
        const upload = async (version: string, clientEnvironment = env, indexArgs: string[] = []) => {
            const r = await client(venv, "devpi", ["upload", ...indexArgs, buildPackage(venv, "e2e-fresh", version, path.join(work, `dist-fresh-${version}`))], clientEnvironment);
            assert.equal(r.code, 0, r.out);
        };
        const accept = { headers: { Accept: "application/vnd.pypi.simple.v1+json" } };
        const page = `${index}e2e-fresh/`;
        const versionsOn = async (url: string) => {
            const r = await get(url, accept);
            return {
                status: r.status,
                cache: r.headers["x-cache-status"],
                files: r.status === 200 ? (JSON.parse(r.body) as { files: { filename: string }[] }).files.map((f) => f.filename).sort() : [],
            };
        };
        /** Waits until devpi's data has been left alone long enough to be cached, then fills the cache. */
        const cached = async (url = page) => {
            await new Promise((r) => setTimeout(r, PAGE_GENERATION_SETTLE_MS + 500));
            await versionsOn(url);
            const hit = await versionsOn(url);
            assert.equal(hit.cache, "HIT", "the user index page comes from nginx's cache");
            return hit.files;
        };
        // pip asks first (a CI job racing the upload): only 200 answers are kept.
        assert.notEqual((await dl("e2e-fresh==1.0.0")).code, 0, "not there before the upload");
        await upload("1.0.0");
        assert.equal((await dl("e2e-fresh==1.0.0")).code, 0, "installable right after the upload succeeded");

        // Upload through nginx while the page sits in its cache: pip finds it at once.
        assert.deepEqual(await cached(), ["e2e_fresh-1.0.0-py3-none-any.whl"]);
        assert.notEqual((await dl("e2e-fresh==1.1.0")).code, 0, "pip read the cached page without 1.1.0");
        await upload("1.1.0");
        const pip = await dl("e2e-fresh==1.1.0");
        assert.equal(pip.code, 0, `installable right after the upload succeeded, though the page was cached a moment before:\n${pip.out}`);

        // devpi remove through nginx (on the volatile index: alice/dev refuses removals): the cached
        // page no longer lists the file; then the whole project, so the index is empty again.
        const scratch = `${BASE}/alice/scratch/+simple/e2e-fresh/`;
        await upload("1.0.0", env, ["--index", "alice/scratch"]);
        await upload("1.1.0", env, ["--index", "alice/scratch"]);
        assert.deepEqual(await cached(scratch), ["e2e_fresh-1.0.0-py3-none-any.whl", "e2e_fresh-1.1.0-py3-none-any.whl"]);
        const removed = await client(venv, "devpi", ["remove", "-y", "--index", "alice/scratch", "e2e-fresh==1.0.0"], env);
        assert.equal(removed.code, 0, removed.out);
        const afterRemove = await versionsOn(scratch);
        assert.deepEqual(afterRemove.files, ["e2e_fresh-1.1.0-py3-none-any.whl"], "the removed file is gone from the page at once");
        assert.notEqual(afterRemove.cache, "HIT");
        const removedProject = await client(venv, "devpi", ["remove", "-y", "--index", "alice/scratch", "e2e-fresh"], env);
        assert.equal(removedProject.code, 0, removedProject.out);
        assert.deepEqual((await versionsOn(scratch)).files, [], "the removed project is gone at once");

        // A write that never passes nginx: an upload to devpi's loopback port.
        assert.deepEqual(await cached(), ["e2e_fresh-1.0.0-py3-none-any.whl", "e2e_fresh-1.1.0-py3-none-any.whl"]);
        const direct = { ...env, DEVPI_CLIENTDIR: path.join(work, "devpi-client-direct") };
        assert.equal((await client(venv, "devpi", ["use", `http://127.0.0.1:${PORTS.devpi}/alice/dev`], direct)).code, 0);
        assert.equal((await client(venv, "devpi", ["login", "alice", "--password", ALICE_PASSWORD], direct)).code, 0);
        await upload("1.2.0", direct);
        assert.deepEqual((await versionsOn(page)).files, ["e2e_fresh-1.0.0-py3-none-any.whl", "e2e_fresh-1.1.0-py3-none-any.whl", "e2e_fresh-1.2.0-py3-none-any.whl"], "visible through nginx at once");
        assert.equal((await dl("e2e-fresh==1.2.0")).code, 0);

        // devpi answers installers and browsers differently ("Vary: User-Agent"): one cached page per
        // kind, shared by every pip version.
        await new Promise((r) => setTimeout(r, PAGE_GENERATION_SETTLE_MS + 500));
        const as = (agent: string) => get(page, { headers: { Accept: "text/html", "User-Agent": agent } });
        await as('pip/24.0 {"python":"3.13.5"}');
        assert.equal((await as('pip/23.1 {"python":"3.11.2"}')).headers["x-cache-status"], "HIT", "another pip shares the installers' page");
        assert.notEqual((await as("Mozilla/5.0 (X11; Linux x86_64)")).headers["x-cache-status"], "HIT", "a browser never gets the installers' page");
        assert.equal((await as("Mozilla/5.0 (Windows NT 10.0)")).headers["x-cache-status"], "HIT", "browsers share theirs");

        // Requests with credentials always go to devpi.
        const authed = await get(page, { headers: { ...accept.headers, Authorization: "Basic YWxpY2U6eA==" } });
        assert.notEqual(authed.headers["x-cache-status"], "HIT");

        await get(`${BASE}/root/pypi/+simple/six/`, accept);
        const mirror = await get(`${BASE}/root/pypi/+simple/six/`, accept);
        assert.equal(mirror.status, 200);
        assert.equal(mirror.headers["x-cache-status"], "HIT", "the mirror's page comes from nginx's cache");
        assert.match(String(mirror.headers["strict-transport-security"]), /max-age=31536000/);
    });

    it("a second pulumi up and preview change nothing and run nothing", async () => {
        const result = await up();
        assert.deepEqual(Object.keys(result.summary.resourceChanges ?? {}), ["same"]);
        assert.deepEqual(log.changed(), []);
        const preview = await stack.preview({ expectNoChanges: true, color: "never" });
        assert.deepEqual(Object.keys(preview.changeSummary), ["same"]);
    });

    it("a new upload limit reloads nginx only", async () => {
        await stack.setConfig("devpi:maxUploadMb", { value: "200" });
        await up();
        assert.deepEqual(log.changed(), ["update:health-https", "update:nginx-site"]);
        assert.match(onHost(host, "cat /etc/nginx/sites-available/devpi"), /client_max_body_size 200m;/);
    });

    it("a new user password rotates that password only", async () => {
        const changed = ROTATED_ALICE_PASSWORD;
        await sampler.unsampled(() => stack.setConfig("users.alice.password", { value: changed, secret: true }, true));
        await up();
        assert.deepEqual(log.changed(), ["update:user-alice-user"]);
        const env = clientEnv();
        assert.notEqual((await client(venv, "devpi", ["login", "alice", "--password", ALICE_PASSWORD], env)).code, 0);
        assert.equal((await client(venv, "devpi", ["login", "alice", "--password", changed], env)).code, 0);
    });

    it("a new root password rotates root's password only", async () => {
        const rotated = ROTATED_ROOT_PASSWORD;
        await sampler.unsampled(() => stack.setConfig("devpi:rootPassword", { value: rotated, secret: true }));
        await up();
        assert.deepEqual(log.changed(), ["update:root-password-set"]);
        const env = clientEnv();
        assert.equal((await client(venv, "devpi", ["use", BASE], env)).code, 0);
        assert.notEqual((await client(venv, "devpi", ["login", "root", "--password", ROOT_PASSWORD], env)).code, 0);
        assert.equal((await client(venv, "devpi", ["login", "root", "--password", rotated], env)).code, 0);
    });

    it("a new index is created without touching the others", async () => {
        await stack.setConfig('indexes["alice/new"].volatile', { value: "true" }, true);
        await up();
        assert.deepEqual(log.changed(), ["create:index-alice/new-index", "update:health-https"]);
        assert.equal((await get(`${BASE}/alice/new`)).status, 200);
    });

    it("removing a user and an empty volatile index deletes them; an index with uploads is kept", async () => {
        await stack.removeAllConfig(['indexes["alice/scratch"]', 'indexes["alice/dev"]', "users.bob"], true);
        await up();
        assert.equal((await get(`${BASE}/bob`)).status, 404);
        assert.equal((await get(`${BASE}/alice/scratch`)).status, 404);
        assert.equal((await get(`${BASE}/alice/dev`)).status, 200);
        assert.match(log.text(), /KEPT index alice\/dev: it holds 2 project\(s\) \(e2e-fresh, e2e-pkg\)/);
        assert.ok(JSON.parse((await get(`${BASE}/alice/dev/e2e-pkg`)).body), "uploads are still there");
    });

    it("no password or private key in state, CLI output or any process's command line", () => {
        sampler.stop();
        const stateFiles = fs.readdirSync(backend, { recursive: true }).length;
        const cli = log.text();
        const argv = [...sampler.seen].join("\n");
        const keyBody = sshKeyText
            .split("\n")
            .filter((l) => l && !l.startsWith("-----"))
            .join("");
        const serverKey = onHost(host, "cat /srv/ssl/devpi/server.key")
            .split("\n")
            .filter((l) => l && !l.startsWith("-----"))
            .join("");
        assert.ok(sampler.seen.size > 100, "the sampler saw the run's processes");
        assert.ok(stateFiles > 3, "the backend holds the stack's checkpoints");
        assert.ok(
            [...sampler.onHost].some((c) => c.includes("python3 -c")),
            "the sampler saw the API steps run on the server",
        );
        assert.ok(
            [...sampler.onHost].some((c) => c.includes("devpi-server")),
            "the sampler saw devpi-server on the server",
        );
        for (const [what, secret] of [
            ["root password", ROOT_PASSWORD],
            ["alice's password", ALICE_PASSWORD],
            ["bob's password", BOB_PASSWORD],
            ["rotated root password", ROTATED_ROOT_PASSWORD],
            ["rotated alice password", ROTATED_ALICE_PASSWORD],
            // Past the header every OpenSSH ed25519 key shares ("openssh-key-v1", "none", ...): another suite's key in another process would match it; this part is the private key's own.
            ["ssh key", keyBody.slice(240, 300)],
            ["tls key", serverKey.slice(0, 40)],
        ]) {
            assert.deepEqual(filesContaining(backend, secret), [], `${what} not in state (checkpoints, history, backups)`);
            assert.ok(!cli.includes(secret), `${what} not in CLI output`);
            assert.ok(!argv.replace(/\s/g, "").includes(secret.replace(/\s/g, "")), `${what} not in argv`);
        }
    });

    it("pulumi destroy removes the program's files but keeps devpi's data and backups", async () => {
        const result = await stack.destroy({ color: "never", onOutput: log.onOutput });
        assert.equal(result.summary.result, "succeeded");
        const listing = onHost(
            host,
            "for f in /etc/nginx/sites-enabled/devpi /etc/nginx/devpi-page-generation.js /etc/supervisor/conf.d/devpi.conf /opt/devpi/venv /opt/devpi/venv.versions /etc/devpi/devpi-server.yml /srv/ssl/devpi/server.key /etc/cron.d/devpi-backup /srv/devpi/data/.nodeinfo /etc/devpi/secret; do if [ -e $f ]; then echo present $f; else echo absent $f; fi; done; find /srv/devpi/data/+files -name 'e2e_pkg-*.whl' | wc -l",
        );
        for (const gone of [
            "/etc/nginx/sites-enabled/devpi",
            "/etc/nginx/devpi-page-generation.js",
            "/etc/supervisor/conf.d/devpi.conf",
            "/opt/devpi/venv",
            "/opt/devpi/venv.versions",
            "/etc/devpi/devpi-server.yml",
            "/srv/ssl/devpi/server.key",
            "/etc/cron.d/devpi-backup",
        ]) {
            assert.match(listing, new RegExp(`absent ${gone}$`, "m"));
        }
        assert.match(listing, /present \/srv\/devpi\/data\/.nodeinfo/);
        assert.match(listing, /present \/etc\/devpi\/secret/);
        assert.match(listing, /^2$/m, "both uploaded wheels are still on disk");
    });
});
