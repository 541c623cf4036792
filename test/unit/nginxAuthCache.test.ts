/**
 * nginx's cache of devpi's /+authcheck answers (components/nginx/nginxAuthCache.ts), run by the
 * real nginx with njs in front of a stand-in for devpi that counts how often it is asked: what is
 * reused, what always asks devpi, what a commit of devpi's data does, and that no credential lands
 * in the cache's files.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { renderAuthCacheModule, renderAuthCacheSecretLines, renderNginxSite, renderPageGenerationModule } from "../../components/nginx/nginxConfig";
import { makeTestCert, startNginx } from "./realNginx";

const basic = (user: string, pw: string) => `Basic ${Buffer.from(`${user}:${pw}`).toString("base64")}`;
const alice = basic("alice", "alice-pw-1");
const bob = basic("bob", "bob-pw-1");
const elsewhere = basic("tok", "used-elsewhere");
const SETTLE_MS = 300;
const TTL_S = 3;

function site(dir: string, upstreamPort: number, httpsPort: number, authCacheSeconds: number): string {
    return renderNginxSite({
        domain: "localhost",
        extraNames: [],
        httpPort: httpsPort + 1,
        httpsPort,
        listenIpv6: false,
        certPath: `${dir}/cert.pem`,
        keyPath: `${dir}/key.pem`,
        upstream: `127.0.0.1:${upstreamPort}`,
        serverDir: `${dir}/data`,
        maxUploadMb: 5,
        replication: false,
        authenticatedReads: true,
        // No page caches: the generation's variables come with the auth cache alone.
        mirrorPageCacheSeconds: 0,
        pageGenerationModulePath: `${dir}/generation.js`,
        authCacheSeconds,
        authCacheDir: `${dir}/authcheck`,
        authCacheModulePath: `${dir}/authcheck.js`,
        authCacheSecretPath: `${dir}/secret.conf`,
    });
}

const BASE = {
    domain: "d",
    extraNames: [],
    httpPort: 80,
    httpsPort: 443,
    listenIpv6: false,
    certPath: "/c",
    keyPath: "/k",
    upstream: "127.0.0.1:4040",
    serverDir: "/s",
    maxUploadMb: 1,
    replication: false,
};

describe("the auth cache's renderers", () => {
    it("adds nothing with anonymous reads or a lifetime of 0", () => {
        for (const [reads, seconds] of [
            [false, 30],
            [true, 0],
        ] as const) {
            const conf = renderNginxSite({ ...BASE, authenticatedReads: reads, authCacheSeconds: seconds });
            assert.doesNotMatch(conf, /devpi_authcheck|devpi_credential|js_import/, `reads ${reads}, ${seconds}s`);
        }
    });

    it("makes the secret once, root's only, 32 random bytes in hex, and keeps it", () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "devpi-authsecret-"));
        try {
            const secret = `${dir}/secret.conf`;
            const lines = renderAuthCacheSecretLines(secret);
            assert.equal(spawnSync("shellcheck", ["-s", "bash", "-"], { input: `#!/bin/bash\n${lines}`, encoding: "utf8" }).status, 0);
            execFileSync("bash", ["-euo", "pipefail", "-c", lines]);
            const first = fs.readFileSync(secret, "utf8");
            assert.match(first, /^map "" \$devpi_authcheck_secret \{\n {4}default "[0-9a-f]{64}";\n\}\n$/);
            assert.equal(fs.statSync(secret).mode & 0o777, 0o600);
            execFileSync("bash", ["-euo", "pipefail", "-c", lines]);
            assert.equal(fs.readFileSync(secret, "utf8"), first, "a second run keeps the secret");
            fs.rmSync(secret);
            execFileSync("bash", ["-euo", "pipefail", "-c", lines]);
            assert.notEqual(fs.readFileSync(secret, "utf8"), first, "a new one is random");
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });
});

describe("the auth cache, run by the real nginx", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "devpi-authcache-"));
    const httpsPort = 18743;
    let upstream: http.Server;
    let nginx: Awaited<ReturnType<typeof startNginx>> | undefined;
    /** The authchecks devpi answered, as "credential URI". */
    const asked: string[] = [];
    const askedFor = (who: string, uri: string) => asked.filter((a) => a === `${who} ${uri}`).length;
    const names = new Map([
        [alice, "alice"],
        [bob, "bob"],
        [elsewhere, "elsewhere"],
    ]);

    before(async () => {
        upstream = http.createServer((req, res) => {
            if (req.url === "/+authcheck") {
                const a = req.headers.authorization;
                const cookie = /auth_tkt=alice/.test(String(req.headers.cookie ?? ""));
                asked.push(`${cookie ? "cookie" : a ? (names.get(a) ?? "?") : "anonymous"} ${String(req.headers["x-original-uri"])}`);
                res.writeHead(a === alice || a === bob || cookie ? 200 : a === elsewhere ? 403 : 401).end();
                return;
            }
            res.writeHead(200, { "Content-Type": "application/vnd.pypi.simple.v1+json" }).end(JSON.stringify({ page: req.url }));
        });
        await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
        const port = (upstream.address() as { port: number }).port;
        const data = path.join(dir, "data");
        fs.mkdirSync(data, { recursive: true });
        fs.writeFileSync(path.join(data, ".sqlite"), "generation 1");
        fs.writeFileSync(path.join(data, ".nodeinfo"), "{}");
        fs.chmodSync(dir, 0o755);
        makeTestCert(dir);
        fs.writeFileSync(`${dir}/generation.js`, renderPageGenerationModule(data, SETTLE_MS));
        fs.writeFileSync(`${dir}/authcheck.js`, renderAuthCacheModule());
        execFileSync("bash", ["-euo", "pipefail", "-c", renderAuthCacheSecretLines(`${dir}/secret.conf`)]);
        nginx = await startNginx(dir, site(dir, port, httpsPort, TTL_S), httpsPort, { js: true, settleMs: SETTLE_MS + 200 });
    });

    after(async () => {
        await nginx?.stop();
        upstream?.close();
        fs.rmSync(dir, { recursive: true, force: true });
    });

    const get = (p: string, headers: Record<string, string> = {}) =>
        new Promise<number>((resolve, reject) => {
            https
                .get(
                    {
                        host: "127.0.0.1",
                        port: httpsPort,
                        path: p,
                        servername: "localhost",
                        rejectUnauthorized: false,
                        headers: { Host: `localhost:${httpsPort}`, Accept: "application/vnd.pypi.simple.v1+json", ...headers },
                    },
                    (res) => {
                        res.resume();
                        res.on("end", () => resolve(res.statusCode ?? 0));
                    },
                )
                .on("error", reject);
        });
    const settled = () => new Promise((r) => setTimeout(r, SETTLE_MS + 200));

    it("asks devpi once per credential and URL while devpi's data stays as it was", async () => {
        const page = "/alice/dev/+simple/pkg/";
        for (let i = 0; i < 3; i++) assert.equal(await get(page, { Authorization: alice }), 200);
        assert.equal(askedFor("alice", page), 1, "the second and third reads were allowed from the cache");
        assert.equal(await get(page, { Authorization: bob }), 200);
        assert.equal(askedFor("bob", page), 1, "another credential is asked about on its own");
        assert.equal(await get("/alice/dev/+simple/other/", { Authorization: alice }), 200);
        assert.equal(askedFor("alice", "/alice/dev/+simple/other/"), 1, "another URL is asked about on its own");
        assert.equal(await get(page, { Authorization: alice, Accept: "text/html" }), 200);
        assert.equal(askedFor("alice", page), 2, "another Accept (devpi picks routes by it) is asked about on its own");
        for (let i = 0; i < 2; i++) assert.equal(await get(page, { Cookie: "auth_tkt=alice%3Atoken" }), 200);
        assert.equal(askedFor("cookie", page), 1, "a browser's login cookie is a credential too");
    });

    it("never keeps a refusal, and always asks about requests without credentials", async () => {
        const page = "/bob/prod/+simple/pkg/";
        for (let i = 0; i < 2; i++) assert.equal(await get(page, { Authorization: elsewhere }), 403);
        assert.equal(askedFor("elsewhere", page), 2);
        for (let i = 0; i < 2; i++) assert.equal(await get(page), 401);
        assert.equal(askedFor("anonymous", page), 2);
    });

    it("asks again once devpi commits anything, and not from the cache while the data settles", async () => {
        const page = "/alice/dev/+simple/commit/";
        await get(page, { Authorization: alice });
        await get(page, { Authorization: alice });
        assert.equal(askedFor("alice", page), 1);
        fs.writeFileSync(path.join(dir, "data/.sqlite"), "generation 2: a password changed");
        await get(page, { Authorization: alice });
        await get(page, { Authorization: alice });
        assert.equal(askedFor("alice", page), 3, "while the commit settles, every read asks devpi");
        await settled();
        await get(page, { Authorization: alice });
        await get(page, { Authorization: alice });
        assert.equal(askedFor("alice", page), 4, "the new generation is asked about once, then kept");
    });

    it(`asks again after ${TTL_S}s (authCacheSeconds), for what passes with time`, async () => {
        const page = "/alice/dev/+simple/ttl/";
        await get(page, { Authorization: alice });
        // nginx counts whole seconds: an entry is kept TTL_S to TTL_S + 1 seconds.
        await new Promise((r) => setTimeout(r, TTL_S * 1000 + 1200));
        await get(page, { Authorization: alice });
        assert.equal(askedFor("alice", page), 2, asked.join(" | "));
    });

    it("keeps no credential in its files: their keys hold an HMAC under the server's secret", () => {
        const files = execFileSync("find", [`${dir}/authcheck`, "-type", "f"], { encoding: "utf8" })
            .trim()
            .split("\n")
            .filter(Boolean);
        assert.ok(files.length >= 4, `cache files: ${files.length}`);
        const all = Buffer.concat(files.map((f) => fs.readFileSync(f))).toString("latin1");
        for (const secret of [alice, alice.slice(6), "alice-pw-1", bob.slice(6), "alice%3Atoken", "Basic"]) assert.ok(!all.includes(secret), `${secret} is not in the cache`);
        assert.match(all, /KEY: [0-9a-f]{64}\/alice\/dev\/\+simple\/pkg\//, "the key starts with the HMAC");
    });
});
