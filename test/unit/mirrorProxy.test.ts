/**
 * Mirror indexes with credentials: the loopback proxies' nginx site run by the real nginx in front
 * of a stand-in upstream that demands basic auth, the ports and URLs devpi is given, the step
 * script (shellcheck), and where the credentials go (stdin, secret; never a command or devpi).
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { DEVPI_MIRROR_API_PY, renderApiScript } from "../../components/access/devpiApi";
import { mirrorSpec } from "../../components/access/devpiIndex";
import { PRELUDE } from "../../components/common/shell";
import { startNginx } from "./realNginx";
import {
    basicAuthorization,
    loopbackMirrorUrl,
    MIRROR_AUTH_DIR,
    mirrorAuthFile,
    mirrorProxyUpstreams,
    renderMirrorProxyRemoveScript,
    renderMirrorProxyScript,
    renderMirrorProxySite,
} from "../../components/nginx/mirrorProxy";

describe("mirror proxies: ports, URLs and files", () => {
    it("gives each credentialed mirror, by name, the next loopback port after devpi's + 100, and devpi the same path there", () => {
        const u = mirrorProxyUpstreams(
            [
                { index: "root/pypi", url: "https://art.example.com/api/pypi/pypi/simple/" },
                { index: "root/gitlab", url: "https://gitlab.example.com/api/v4/groups/7/-/packages/pypi/simple" },
            ],
            4040,
        );
        assert.deepEqual(
            u.map((x) => [x.index, x.port]),
            [
                ["root/gitlab", 4140],
                ["root/pypi", 4141],
            ],
        );
        assert.equal(loopbackMirrorUrl(u[1]), "http://127.0.0.1:4141/api/pypi/pypi/simple/");
        assert.equal(loopbackMirrorUrl(u[0]), "http://127.0.0.1:4140/api/v4/groups/7/-/packages/pypi/simple");
        assert.equal(mirrorAuthFile("root/gitlab"), `${MIRROR_AUTH_DIR}/root+gitlab.conf`);
    });

    it("sends devpi only devpi's own mirror keys, and only the ones that differ from its defaults", () => {
        assert.deepEqual(mirrorSpec({ url: "http://127.0.0.1:4140/simple/", projectList: false, useExternalUrls: false, ignoreSerialHeader: true, cacheExpiry: 60 }), {
            mirror_url: "http://127.0.0.1:4140/simple/",
            mirror_no_project_list: true,
            mirror_ignore_serial_header: true,
            mirror_cache_expiry: 60,
        });
        assert.deepEqual(mirrorSpec({ url: "https://pypi.org/simple/", webUrlFmt: "https://pypi.org/project/{name}/", projectList: true, useExternalUrls: false, ignoreSerialHeader: false }), {
            mirror_url: "https://pypi.org/simple/",
            mirror_web_url_fmt: "https://pypi.org/project/{name}/",
        });
    });

    it("runs mirror steps with the mirror actions, and leaves the other steps' program as it was", () => {
        const api = { devpiUrl: "http://127.0.0.1:4040", credentialFile: "/etc/devpi/root-credential.json" };
        assert.match(renderApiScript(api, "mirror-ensure", "root/pypi"), /def mirror_ensure\(\)/);
        assert.doesNotMatch(renderApiScript(api, "index-ensure", "alice/dev"), /mirror_ensure/);
        assert.match(DEVPI_MIRROR_API_PY, /ACTIONS = \{\n {4}"mirror-ensure": mirror_ensure,\n {4}"mirror-delete": mirror_delete,\n {4}"root-password"/);
        const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "devpi-mirror-py-")), "api.py");
        fs.writeFileSync(file, DEVPI_MIRROR_API_PY);
        execFileSync("python3", ["-m", "py_compile", file]);
    });

    it("the step scripts pass shellcheck and write no credential into a command line", () => {
        const site = renderMirrorProxySite(mirrorProxyUpstreams([{ index: "root/pypi", url: "https://art.example.com/simple/" }], 4040), "/etc/ssl/certs/ca-certificates.crt");
        for (const script of [renderMirrorProxyScript(site), renderMirrorProxyRemoveScript()]) {
            const r = spawnSync("shellcheck", ["-s", "bash", "-"], { input: `#!/bin/bash\n${PRELUDE}${script}`, encoding: "utf8" });
            assert.equal(r.status, 0, r.stdout + r.stderr);
        }
        assert.match(site, /proxy_ssl_verify on;\n {8}proxy_ssl_verify_depth 5;\n {8}proxy_ssl_trusted_certificate \/etc\/ssl\/certs\/ca-certificates.crt;/);
        assert.match(site, /listen 127\.0\.0\.1:4140;/);
        assert.doesNotMatch(site, /listen (?!127\.0\.0\.1:)/, "loopback only");
    });
});

/**
 * The rendered proxies run by the real nginx in front of a stand-in registry that answers only
 * `Basic ci:s3cret` and writes absolute links to its own origin and to a CDN.
 */
describe("the mirror proxies, run by the real nginx", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "devpi-mirrorproxy-"));
    const proxyPort = 18740;
    let upstream: http.Server;
    let origin = "";
    let nginx: Awaited<ReturnType<typeof startNginx>> | undefined;
    const seen: { url: string; auth?: string; encoding?: string }[] = [];

    before(async () => {
        upstream = http.createServer((req, res) => {
            seen.push({ url: String(req.url), auth: req.headers.authorization, encoding: req.headers["accept-encoding"] });
            if (req.headers.authorization !== basicAuthorization("ci", "s3cret")) {
                res.writeHead(401, { "WWW-Authenticate": 'Basic realm="registry"' }).end();
                return;
            }
            if (req.url === "/simple/pkg/") {
                res.writeHead(200, { "Content-Type": "text/html" }).end(
                    `<a href="${origin}/files/pkg-1.0.tar.gz#sha256=00">pkg-1.0.tar.gz</a>\n<a href="../../files/pkg-1.1.tar.gz">pkg-1.1.tar.gz</a>\n<a href="https://cdn.example.net/pkg-0.9.tar.gz">pkg-0.9.tar.gz</a>\n`,
                );
                return;
            }
            if (req.url === "/simple/pkg-json/") {
                res.writeHead(200, { "Content-Type": "application/vnd.pypi.simple.v1+json" }).end(JSON.stringify({ files: [{ url: `${origin}/files/pkg-1.0.tar.gz` }] }));
                return;
            }
            if (req.url === "/files/pkg-1.0.tar.gz") {
                res.writeHead(200, { "Content-Type": "application/octet-stream" }).end("release file\n");
                return;
            }
            if (req.url === "/moved") {
                res.writeHead(302, { Location: `${origin}/simple/pkg/` }).end();
                return;
            }
            res.writeHead(404).end();
        });
        await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
        origin = `http://127.0.0.1:${(upstream.address() as { port: number }).port}`;
        const [u] = mirrorProxyUpstreams([{ index: "root/company", url: `${origin}/simple/` }], proxyPort - 100);
        assert.equal(u.port, proxyPort);
        // The site as rendered; only the auth directory moves into the test's own directory.
        const site = renderMirrorProxySite([u], "/etc/ssl/certs/ca-certificates.crt").split(MIRROR_AUTH_DIR).join(dir);
        fs.writeFileSync(`${dir}/root+company.conf`, `proxy_set_header Authorization "${basicAuthorization("ci", "s3cret")}";\n`);
        nginx = await startNginx(dir, site, proxyPort);
    });

    after(async () => {
        await nginx?.stop();
        upstream?.close();
        fs.rmSync(dir, { recursive: true, force: true });
    });

    const get = (p: string, headers: Record<string, string> = {}) =>
        new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
            http.get({ host: "127.0.0.1", port: proxyPort, path: p, headers: { "Accept-Encoding": "gzip", ...headers } }, (res) => {
                let body = "";
                res.on("data", (c: Buffer) => (body += c.toString()));
                res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
            }).on("error", reject);
        });

    it("adds the credentials to what devpi asks, and asks for it uncompressed", async () => {
        const r = await get("/simple/pkg/");
        assert.equal(r.status, 200, r.body);
        const last = seen[seen.length - 1];
        assert.equal(last.auth, basicAuthorization("ci", "s3cret"));
        assert.equal(last.encoding, undefined, "no Accept-Encoding (the client's gzip dropped), so that links can be rewritten");
    });

    it("replaces a client's own Authorization with the configured one", async () => {
        const r = await get("/simple/pkg/", { Authorization: basicAuthorization("eve", "guess") });
        assert.equal(r.status, 200);
        assert.equal(seen[seen.length - 1].auth, basicAuthorization("ci", "s3cret"));
    });

    it("turns links to the upstream's own origin into loopback paths (HTML and JSON), and leaves relative and foreign links", async () => {
        const html = await get("/simple/pkg/");
        assert.match(html.body, /href="\/files\/pkg-1\.0\.tar\.gz#sha256=00"/);
        assert.match(html.body, /href="\.\.\/\.\.\/files\/pkg-1\.1\.tar\.gz"/);
        assert.match(html.body, /href="https:\/\/cdn\.example\.net\/pkg-0\.9\.tar\.gz"/);
        assert.doesNotMatch(html.body, new RegExp(origin.replace(/[.:/]/g, "\\$&")));
        const json = await get("/simple/pkg-json/", { Accept: "application/vnd.pypi.simple.v1+json" });
        assert.deepEqual(JSON.parse(json.body), { files: [{ url: "/files/pkg-1.0.tar.gz" }] });
    });

    it("serves the release file through the proxy, and rewrites a redirect to the upstream", async () => {
        const f = await get("/files/pkg-1.0.tar.gz");
        assert.equal(f.status, 200);
        assert.equal(f.body, "release file\n");
        const moved = await get("/moved");
        assert.equal(moved.status, 302);
        assert.equal(moved.headers.location, `http://127.0.0.1:${proxyPort}/simple/pkg/`);
    });

    it("without the credentials file's header, the upstream's 401 comes through (what a wrong password looks like to devpi)", async () => {
        fs.writeFileSync(`${dir}/root+company.conf`, `proxy_set_header Authorization "${basicAuthorization("ci", "wrong")}";\n`);
        spawnSync("nginx", ["-p", dir, "-c", `${dir}/nginx.conf`, "-s", "reload"]);
        let status = 0;
        for (let i = 0; i < 50 && status !== 401; i++) {
            await new Promise((r) => setTimeout(r, 100));
            status = await get("/simple/pkg/").then(
                (r) => r.status,
                () => 0, // the old worker closing during the reload
            );
        }
        assert.equal(status, 401);
    });
});
