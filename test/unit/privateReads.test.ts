/**
 * Private reads and scoped tokens, in our own code: the config rules (stack keys and component
 * arguments), the plugins in the version set, the token generations, and the nginx site run by
 * the real nginx in front of a stand-in for devpi's /+authcheck, so what nginx serves without
 * asking devpi (release files from disk, cached pages) is seen refused or allowed.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { DEVPI_API_PY, DEVPI_TOKEN_API_PY, renderApiScript } from "../../components/access/devpiApi";
import { TOKEN_PERMISSIONS, tokenGeneration, tokenSpec } from "../../components/access/devpiToken";
import { DevpiArgs } from "../../components/deployment/devpiArgs";
import { startNginx } from "./realNginx";
import { resolveDevpiArgs, serverPlugins } from "../../components/deployment/resolveArgs";
import { requirements, venvKey } from "../../components/devpi/devpiServerConfig";
import { PAGE_GENERATION_SETTLE_MS, renderNginxSite, renderPageGenerationModule } from "../../components/nginx/nginxConfig";
import { ConfigError, loadConfig } from "../../config";

const KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n";
const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGf0c3RIb3N0S2V5Rm9yVW5pdFRlc3Rz";

function base(extra: Record<string, unknown> = {}): Record<string, string> {
    const v: Record<string, unknown> = {
        host: "203.0.113.10",
        sshPrivateKey: KEY,
        hostKey: HOST_KEY,
        domain: "devpi.example.com",
        rootPassword: "root-secret-1",
        users: { alice: { password: "alice-secret-1" }, bob: { password: "bob-secret-1" } },
        indexes: { "alice/dev": {}, "bob/prod": { acl_upload: ["bob"] } },
        ...extra,
    };
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, typeof x === "string" ? x : JSON.stringify(x)]));
}
const load = (v: Record<string, string>) => loadConfig((k) => v[k], Object.keys(v));
function rejects(v: Record<string, string>, message: RegExp): void {
    assert.throws(
        () => load(v),
        (e: unknown) => e instanceof ConfigError && message.test(e.message),
        `expected ${message}`,
    );
}

describe("devpi:reads and devpi:tokens", () => {
    it("defaults: anonymous reads, no tokens, no plugins (a stack made before keeps its version set)", () => {
        const c = load(base());
        assert.equal(c.devpi.reads, "anonymous");
        assert.equal(c.devpi.authCacheSeconds, 30, "nginx reuses devpi's yes for 30 s (only with authenticated reads)");
        assert.deepEqual(c.tokens, []);
        assert.deepEqual(serverPlugins(c), []);
        assert.equal(venvKey({ serverVersion: "6.20.3", webVersion: "5.1.1", web: true, plugins: serverPlugins(c) }), "devpi-server-6.20.3_devpi-web-5.1.1");
    });

    it("authenticated reads install devpi-lockdown, tokens devpi-tokens, each pinned and part of the version set", () => {
        const c = load(base({ reads: "authenticated", devpiLockdownVersion: "2.0.0", tokens: { ci: { user: "alice", indexes: ["alice/dev"] } } }));
        assert.deepEqual(serverPlugins(c), [
            { name: "devpi-lockdown", version: "2.0.0" },
            { name: "devpi-tokens", version: "1.1.0" },
        ]);
        const install = { serverVersion: "6.20.3", webVersion: "5.1.1", web: true, plugins: serverPlugins(c) };
        assert.deepEqual(requirements({ ...install, venvDir: "/v" }), ["devpi-server==6.20.3", "devpi-web==5.1.1", "devpi-lockdown==2.0.0", "devpi-tokens==1.1.0"]);
        assert.equal(venvKey(install), "devpi-server-6.20.3_devpi-web-5.1.1_devpi-lockdown-2.0.0_devpi-tokens-1.1.0");
        assert.deepEqual(c.tokens, [{ name: "ci", user: "alice", scope: "read", indexes: ["alice/dev"], validDays: 90, renewBeforeDays: 30 }]);
    });

    it("refuses bad input before any server is touched, naming the key, the value and what is allowed", () => {
        rejects(base({ reads: "private" }), /^devpi:reads: invalid value "private": must be anonymous .* or authenticated/);
        rejects(base({ reads: "authenticated", web: "false" }), /^devpi:reads: invalid value "authenticated": needs devpi-web/);
        rejects(base({ reads: "authenticated", authCacheSeconds: "-1" }), /^devpi:authCacheSeconds: invalid value -1: must be an integer from 0 to 600/);
        rejects(base({ reads: "authenticated", authCacheSeconds: "3600" }), /^devpi:authCacheSeconds: invalid value 3600: must be an integer from 0 to 600/);
        rejects(base({ devpiLockdownVersion: "latest" }), /^devpi:devpiLockdownVersion: invalid value "latest": must be an exact version/);
        rejects(base({ tokens: { ci: { user: "carol", indexes: ["alice/dev"] } } }), /^devpi:tokens\.ci\.user: invalid value "carol": must be root or a declared user \(declared: root, alice, bob\)/);
        rejects(base({ tokens: { ci: { user: "alice", scope: "admin", indexes: ["alice/dev"] } } }), /^devpi:tokens\.ci\.scope: invalid value "admin": must be read .* or upload/);
        rejects(
            base({ tokens: { ci: { user: "alice", indexes: ["alice/nope"] } } }),
            /^devpi:tokens\.ci\.indexes: invalid value "alice\/nope": must be an index declared in devpi:indexes or root\/pypi/,
        );
        rejects(base({ tokens: { ci: { user: "alice", indexes: [] } } }), /^devpi:tokens\.ci\.indexes: invalid value \[\]: must be a non-empty list/);
        rejects(
            base({ tokens: { ci: { user: "alice", scope: "upload", indexes: ["bob/prod"] } } }),
            /^devpi:tokens\.ci\.indexes: invalid value "bob\/prod": user alice may not upload to bob\/prod \(its acl_upload: bob\)/,
        );
        rejects(base({ tokens: { ci: { user: "alice", scope: "upload", indexes: ["root/pypi"] } } }), /^devpi:tokens\.ci\.indexes: invalid value "root\/pypi"/);
        rejects(
            base({ tokens: { ci: { user: "alice", indexes: ["alice/dev"], validDays: 0.0001 } } }),
            /^devpi:tokens\.ci\.validDays: invalid value 0\.0001: must be a number of days from 0\.000694 \(one minute\) to 365/,
        );
        rejects(base({ tokens: { ci: { user: "alice", indexes: ["alice/dev"], validDays: "ninety" } } }), /^devpi:tokens\.ci\.validDays: invalid value "ninety"/);
        rejects(
            base({ tokens: { ci: { user: "alice", indexes: ["alice/dev"], validDays: 30, renewBeforeDays: 30 } } }),
            /^devpi:tokens\.ci\.renewBeforeDays: invalid value 30: must be less than validDays \(30\)/,
        );
        rejects(
            base({ tokens: { ci: { user: "alice", indexes: ["alice/dev"], expires: 5 } } }),
            /^devpi:tokens\.ci\.expires: invalid value 5: unknown key; allowed: user, scope, indexes, validDays, renewBeforeDays/,
        );
        rejects(base({ tokens: { "bad name": { user: "alice", indexes: ["alice/dev"] } } }), /^devpi:tokens\.bad name: invalid value "bad name": token names must match/);
    });

    it("takes the fractions pulumi config set --path stores as strings", () => {
        const c = load(base({ tokens: { ci: { user: "alice", indexes: ["alice/dev"], validDays: "0.5", renewBeforeDays: "0.25" } } }));
        assert.deepEqual([c.tokens[0].validDays, c.tokens[0].renewBeforeDays], [0.5, 0.25]);
    });

    it("token steps run the API program with the token actions; every other step the program as it was", () => {
        assert.notEqual(DEVPI_TOKEN_API_PY, DEVPI_API_PY);
        assert.ok(!DEVPI_API_PY.includes("token"), "the other steps' program has no token code (their scripts stay the same)");
        assert.match(DEVPI_TOKEN_API_PY, /ACTIONS = \{\n {4}"token-ensure": token_ensure,\n {4}"token-delete": token_delete,\n {4}"root-password"/);
        const r = spawnSync("python3", ["-c", "import ast, sys; ast.parse(sys.stdin.read())"], { input: DEVPI_TOKEN_API_PY, encoding: "utf8" });
        assert.equal(r.status, 0, r.stderr);
        assert.match(renderApiScript({ devpiUrl: "http://127.0.0.1:4040", credentialFile: "/etc/devpi/root-credential.json" }, "token-ensure", "ci"), /token_ensure/);
        assert.doesNotMatch(renderApiScript({ devpiUrl: "http://127.0.0.1:4040", credentialFile: "/etc/devpi/root-credential.json" }, "user-ensure", "alice"), /token_ensure/);
    });

    it("the component's arguments follow the same rules and name the argument", () => {
        const args = (access: Partial<DevpiArgs["access"]>, options: DevpiArgs["options"] = {}): DevpiArgs => ({
            server: { ssh: { host: "h", privateKey: KEY, hostKey: HOST_KEY }, domain: "devpi.example.com" },
            options,
            access: { rootPassword: "root-Pw-1234", users: [{ name: "alice", password: "x" }], indexes: [{ name: "alice/dev" }], ...access },
        });
        assert.throws(
            () => resolveDevpiArgs("devpi", args({ tokens: [{ name: "ci", user: "carol", indexes: ["alice/dev"] }] })),
            /^ConfigError: Devpi devpi: access\.tokens\.ci\.user: invalid value "carol"/,
        );
        assert.throws(() => resolveDevpiArgs("devpi", args({ reads: "authenticated" }, { web: false })), /^ConfigError: Devpi devpi: access\.reads: invalid value "authenticated": needs devpi-web/);
        assert.throws(() => resolveDevpiArgs("devpi", args({}, { tokensVersion: "1" })), /^ConfigError: Devpi devpi: options\.tokensVersion: invalid value "1"/);
        const r = resolveDevpiArgs("devpi", args({ reads: "authenticated", tokens: [{ name: "ci", user: "alice", scope: "read", indexes: ["alice/dev"], validDays: 10 }] }));
        assert.equal(r.devpi.reads, "authenticated");
        assert.deepEqual(r.tokens, [{ name: "ci", user: "alice", scope: "read", indexes: ["alice/dev"], validDays: 10, renewBeforeDays: 10 / 3 }]);
    });
});

describe("token generations", () => {
    it("a token made anywhere in a generation has at least renewBeforeDays left when the next begins", () => {
        const t = { validDays: 90, renewBeforeDays: 30 };
        const period = 60 * 86_400_000;
        for (const made of [0, 1, period / 2, period - 1]) {
            const start = 1_800_000_000_000 - (1_800_000_000_000 % period) + made;
            const g = tokenGeneration(t, start);
            const next = (g + 1) * period;
            assert.equal(tokenGeneration(t, next), g + 1);
            assert.equal(tokenGeneration(t, next - 1), g);
            const left = (start + t.validDays * 86_400_000 - next) / 86_400_000;
            assert.ok(left >= t.renewBeforeDays, `made ${made} ms into its generation: ${left} days left at the next`);
        }
    });

    it("the spec sent to the server: devpi-tokens' permissions, lifetime in seconds, the generation", () => {
        assert.deepEqual(TOKEN_PERMISSIONS, { read: ["pkg_read"], upload: ["pkg_read", "upload"] });
        const spec = tokenSpec({ name: "ci", user: "bob", scope: "upload", indexes: ["bob/prod"], validDays: 0.5, renewBeforeDays: 0.25 }, 86_400_000);
        assert.deepEqual(spec, { user: "bob", allowed: ["pkg_read", "upload"], indexes: ["bob/prod"], seconds: 43_200, generation: 4 });
    });
});

/**
 * The real nginx with the rendered site (reads for users only, both page caches on) in front of a
 * stand-in for devpi: /+authcheck allows `Basic alice:pw` only (403 for `Basic tok:other`, as
 * devpi-tokens answers a token used elsewhere); every other request answers a page and is counted.
 */
describe("the site with reads for users only, run by the real nginx", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "devpi-authreq-"));
    const httpsPort = 18643;
    const alice = `Basic ${Buffer.from("alice:pw").toString("base64")}`;
    const elsewhere = `Basic ${Buffer.from("tok:other").toString("base64")}`;
    let upstream: http.Server;
    let nginx: Awaited<ReturnType<typeof startNginx>> | undefined;
    const asked: string[] = [];
    let pages = 0;

    before(async () => {
        upstream = http.createServer((req, res) => {
            if (req.url === "/+authcheck") {
                asked.push(String(req.headers["x-original-uri"]));
                const a = req.headers.authorization;
                res.writeHead(a === alice ? 200 : a === elsewhere ? 403 : 401).end();
                return;
            }
            pages++;
            res.writeHead(200, { "Content-Type": "application/vnd.pypi.simple.v1+json" }).end(JSON.stringify({ page: req.url }));
        });
        await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
        const port = (upstream.address() as { port: number }).port;
        const data = path.join(dir, "data");
        fs.mkdirSync(path.join(data, "+files/alice/dev/+f/abc"), { recursive: true });
        fs.writeFileSync(path.join(data, "+files/alice/dev/+f/abc/pkg-1.0.tar.gz"), "release file\n");
        // Page generations as on a server whose data settled long ago (the index page cache's key).
        fs.writeFileSync(path.join(data, ".sqlite"), "");
        fs.writeFileSync(path.join(data, ".nodeinfo"), "{}");
        fs.chmodSync(dir, 0o755);
        execFileSync(
            "openssl",
            ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", `${dir}/key.pem`, "-out", `${dir}/cert.pem`, "-days", "2", "-subj", "/CN=localhost"],
            { stdio: "pipe" },
        );
        fs.writeFileSync(`${dir}/generation.js`, renderPageGenerationModule(data));
        const site = renderNginxSite({
            domain: "localhost",
            extraNames: [],
            httpPort: 18680,
            httpsPort,
            listenIpv6: false,
            certPath: `${dir}/cert.pem`,
            keyPath: `${dir}/key.pem`,
            upstream: `127.0.0.1:${port}`,
            serverDir: data,
            maxUploadMb: 5,
            replication: false,
            authenticatedReads: true,
            mirrorPageCacheSeconds: 30,
            mirrorPageCacheDir: `${dir}/mirror-cache`,
            indexPageCache: true,
            indexPageCacheDir: `${dir}/index-cache`,
            pageGenerationModulePath: `${dir}/generation.js`,
        });
        // The data must have settled (file times older than PAGE_GENERATION_SETTLE_MS) to be cached.
        nginx = await startNginx(dir, site, httpsPort, { js: true, settleMs: PAGE_GENERATION_SETTLE_MS + 300 });
    });

    after(async () => {
        await nginx?.stop();
        upstream?.close();
        fs.rmSync(dir, { recursive: true, force: true });
    });

    const get = (p: string, headers: Record<string, string> = {}) =>
        new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
            https
                .get({ host: "127.0.0.1", port: httpsPort, path: p, servername: "localhost", rejectUnauthorized: false, headers: { Host: `localhost:${httpsPort}`, ...headers } }, (res) => {
                    let body = "";
                    res.on("data", (c: Buffer) => (body += c.toString()));
                    res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
                })
                .on("error", reject);
        });

    it("serves a release file from disk only after devpi allowed the read", async () => {
        const file = "/alice/dev/+f/abc/pkg-1.0.tar.gz";
        const anonymous = await get(file);
        assert.equal(anonymous.status, 401);
        assert.match(String(anonymous.headers["www-authenticate"]), /^Basic realm="devpi"/, "the same refusal as elsewhere");
        assert.equal((await get(file, { Authorization: elsewhere })).status, 403);
        const ok = await get(file, { Authorization: alice });
        assert.equal(ok.status, 200);
        assert.equal(ok.body, "release file\n");
        assert.ok(asked.includes(file), "devpi was asked about the file");
    });

    it("never serves a cached page to a request devpi refuses, and shares it among those it allows", async () => {
        for (const page of ["/alice/dev/+simple/pkg/", "/root/pypi/+simple/six/"]) {
            const accept = { Accept: "application/vnd.pypi.simple.v1+json", "User-Agent": "pip/25.0" };
            await get(page, { ...accept, Authorization: alice });
            const before = pages;
            const hit = await get(page, { ...accept, Authorization: alice });
            assert.equal(hit.status, 200);
            assert.equal(hit.headers["x-cache-status"], "HIT", `${page}: an allowed reader gets the cached page`);
            assert.equal(pages, before, "from nginx's cache, not from devpi");
            const anonymous = await get(page, accept);
            assert.equal(anonymous.status, 401, `${page}: the cached page is not served anonymously`);
            assert.doesNotMatch(anonymous.body, /"page"/);
            assert.match(String(anonymous.headers["www-authenticate"]), /^Basic realm="devpi"/);
            assert.equal((await get(page, { ...accept, Authorization: elsewhere })).status, 403, `${page}: nor to a token devpi refuses here`);
        }
    });

    it("sends browsers to the login page and keeps the authcheck itself internal", async () => {
        const browser = await get("/alice/dev/pkg", { Accept: "text/html,application/xhtml+xml" });
        assert.equal(browser.status, 302);
        assert.match(String(browser.headers.location), /^(https:\/\/localhost:18643)?\/\+login\?goto_url=\/alice\/dev\/pkg$/);
        assert.equal((await get("/+authcheck", { Authorization: alice })).status, 404, "/+authcheck is internal");
    });
});
