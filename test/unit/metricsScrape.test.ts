/**
 * devpi:metricsScrape (config/metricsScrape.ts): the metrics for a Prometheus on another machine,
 * served by nginx over HTTPS to an allow-list. The rules (stack keys and the component's argument),
 * and the rendered server run by the real nginx: an allowed source gets node-exporter's page,
 * any other gets 403, and nothing but /metrics is served.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as os from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import { ConfigError } from "../../config";
import { parseMetricsScrape } from "../../config/metricsScrape";
import type { DevpiArgs } from "../../components/deployment/devpiArgs";
import { resolveDevpiArgs } from "../../components/deployment/resolveArgs";
import { renderNginxSite } from "../../components/nginx/nginxConfig";
import { makeTestCert, startNginx } from "./realNginx";

const PORTS = [80, 443, 4040];
const rejects = (v: unknown, message: RegExp) =>
    assert.throws(
        () => parseMetricsScrape("metricsScrape", v, PORTS, "127.0.0.1:9100"),
        (e: unknown) => e instanceof ConfigError && message.test(e.message),
        `expected ${message}`,
    );

describe("devpi:metricsScrape", () => {
    it("unset or {}: none; addresses of every form with allow-lists of addresses and networks", () => {
        assert.equal(parseMetricsScrape("metricsScrape", undefined, PORTS, "127.0.0.1:9100"), undefined);
        assert.equal(parseMetricsScrape("metricsScrape", {}, PORTS, "127.0.0.1:9100"), undefined);
        for (const address of ["10.0.0.5:9443", "*:9443", "[2001:db8::5]:9443", "127.0.0.1:9443"]) {
            const allow = ["10.0.0.0/24", "192.0.2.7", "2001:db8::/32", "fd00::1"];
            assert.deepEqual(parseMetricsScrape("metricsScrape", { address, allow }, PORTS, "127.0.0.1:9100"), { address, allow });
        }
    });

    it("refuses bad input before any server is touched, naming the key, the value and what is allowed", () => {
        rejects("10.0.0.5:9443", /^devpi:metricsScrape: invalid value "10\.0\.0\.5:9443": must be a map \{address: IP:PORT, allow: \[NETWORK, \.\.\.\]\}/);
        rejects(
            { address: "metrics.example.com:9443", allow: ["10.0.0.0/8"] },
            /^devpi:metricsScrape\.address: invalid value "metrics\.example\.com:9443": must be IPV4:PORT, \[IPV6\]:PORT or \*:PORT/,
        );
        rejects({ address: "10.0.0.300:9443", allow: ["10.0.0.0/8"] }, /^devpi:metricsScrape\.address: invalid value "10\.0\.0\.300:9443"/);
        rejects({ address: "10.0.0.5:70000", allow: ["10.0.0.0/8"] }, /^devpi:metricsScrape\.address:/);
        rejects(
            { address: "*:443", allow: ["10.0.0.0/8"] },
            /^devpi:metricsScrape\.address: invalid value "\*:443": its port must differ from httpPort, httpsPort, devpiPort and metricsAddress's \(80, 443, 4040, 9100\)/,
        );
        rejects({ address: "*:9100", allow: ["10.0.0.0/8"] }, /^devpi:metricsScrape\.address: .*metricsAddress's/);
        rejects({ address: "*:9443" }, /^devpi:metricsScrape\.allow: invalid value undefined: must list 1 to 100 addresses or networks/);
        rejects({ address: "*:9443", allow: [] }, /^devpi:metricsScrape\.allow: invalid value \[\]: .*never served to everyone/);
        rejects({ address: "*:9443", allow: ["0.0.0.0/0"] }, /^devpi:metricsScrape\.allow: invalid value "0\.0\.0\.0\/0": .*\/0 would be the whole Internet/);
        rejects({ address: "*:9443", allow: ["::/0"] }, /^devpi:metricsScrape\.allow: invalid value "::\/0"/);
        rejects({ address: "*:9443", allow: ["all"] }, /^devpi:metricsScrape\.allow: invalid value "all"/);
        rejects({ address: "*:9443", allow: ["10.0.0.0/33"] }, /^devpi:metricsScrape\.allow: invalid value "10\.0\.0\.0\/33"/);
        rejects({ address: "*:9443", allow: ["10.0.0.0/8; allow all"] }, /^devpi:metricsScrape\.allow: invalid value "10\.0\.0\.0\/8; allow all"/);
        rejects({ address: "*:9443", allow: ["10.0.0.0/8"], tls: false }, /^devpi:metricsScrape\.tls: invalid value false: unknown key; allowed: address, allow/);
    });

    it("the component's argument follows the same rules, naming the server", () => {
        const args: DevpiArgs = {
            server: { ssh: { host: "h", privateKey: "k" }, domain: "devpi.example.com", metricsScrape: { address: "*:9443", allow: ["0.0.0.0/0"] } },
            access: { rootPassword: "root-Pw-1234" },
        };
        assert.throws(
            () => resolveDevpiArgs("devpi", args),
            (e: unknown) => e instanceof ConfigError && /server\.metricsScrape\.allow: invalid value "0\.0\.0\.0\/0": /.test(e.message),
        );
    });
});

describe("the metrics server's rendering", () => {
    const site = (address: string, listenIpv6: boolean) =>
        renderNginxSite({
            domain: "devpi.example.com",
            extraNames: ["devpi"],
            httpPort: 80,
            httpsPort: 443,
            listenIpv6,
            certPath: "/c",
            keyPath: "/k",
            upstream: "127.0.0.1:4040",
            serverDir: "/s",
            maxUploadMb: 1,
            replication: false,
            mirrorPageCacheSeconds: 0,
            metricsScrape: { address, allow: ["10.0.0.0/24", "2001:db8::/32"], upstream: "127.0.0.1:9100" },
        });

    it("listens where asked (every address: IPv6 too when the site listens there), allows the list, denies the rest", () => {
        const conf = site("*:9443", true).split("# devpi:metricsScrape")[1];
        assert.match(conf, /^ {4}listen \*:9443 ssl;\n {4}listen \[::\]:9443 ssl;$/m);
        assert.match(conf, / {4}allow 10\.0\.0\.0\/24;\n {4}allow 2001:db8::\/32;\n {4}deny all;/);
        assert.match(conf, /server_name devpi\.example\.com devpi;/);
        assert.match(conf, /proxy_pass http:\/\/127\.0\.0\.1:9100\/metrics;/);
        assert.doesNotMatch(site("*:9443", false), /listen \[::\]:9443/);
        assert.doesNotMatch(site("10.0.0.5:9443", true), /listen \[::\]:9443/);
        assert.doesNotMatch(
            renderNginxSite({
                ...{
                    domain: "d",
                    extraNames: [],
                    httpPort: 80,
                    httpsPort: 443,
                    listenIpv6: true,
                    certPath: "/c",
                    keyPath: "/k",
                    upstream: "u",
                    serverDir: "/s",
                    maxUploadMb: 1,
                    replication: false,
                    mirrorPageCacheSeconds: 0,
                },
            }),
            /metricsScrape|deny all/,
            "none without the setting",
        );
    });
});

describe("the metrics server, run by the real nginx", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "devpi-scrape-"));
    const ports = { https: 18951, http: 18952, scrape: 18953 };
    let exporter: http.Server;
    let nginx: Awaited<ReturnType<typeof startNginx>> | undefined;
    /** curl from source address `from` (async: the stand-in exporter answers from this process). */
    const curl = async (url: string, from: string) =>
        (
            await promisify(execFile)("curl", ["-s", "--cacert", `${dir}/cert.pem`, "--resolve", `localhost:${ports.scrape}:127.0.0.1`, "--interface", from, "-w", "\n%{http_code}", url], {
                encoding: "utf8",
            })
        ).stdout;

    before(async () => {
        exporter = http.createServer((req, res) => {
            res.writeHead(req.url === "/metrics" ? 200 : 404, { "Content-Type": "text/plain" }).end(req.url === "/metrics" ? "devpi_up 1\n" : "not here\n");
        });
        await new Promise<void>((r) => exporter.listen(0, "127.0.0.1", r));
        const upstream = `127.0.0.1:${(exporter.address() as { port: number }).port}`;
        makeTestCert(dir, "localhost", "DNS:localhost");
        const site = renderNginxSite({
            domain: "localhost",
            extraNames: [],
            httpPort: ports.http,
            httpsPort: ports.https,
            listenIpv6: false,
            certPath: `${dir}/cert.pem`,
            keyPath: `${dir}/key.pem`,
            upstream: "127.0.0.1:9",
            serverDir: `${dir}/data`,
            maxUploadMb: 1,
            replication: false,
            mirrorPageCacheSeconds: 0,
            metricsScrape: { address: `127.0.0.1:${ports.scrape}`, allow: ["127.0.0.1/32", "192.0.2.0/24"], upstream },
        });
        nginx = await startNginx(dir, site, ports.scrape);
    });

    after(async () => {
        await nginx?.stop();
        exporter?.close();
        fs.rmSync(dir, { recursive: true, force: true });
    });

    it("serves node-exporter's page over HTTPS to an allowed source, 403 to any other", async () => {
        assert.equal(await curl(`https://localhost:${ports.scrape}/metrics`, "127.0.0.1"), "devpi_up 1\n\n200");
        assert.match(await curl(`https://localhost:${ports.scrape}/metrics`, "127.0.0.2"), /\n403$/);
    });

    it("serves nothing but /metrics, and plain HTTP not at all", async () => {
        assert.match(await curl(`https://localhost:${ports.scrape}/`, "127.0.0.1"), /\n404$/);
        assert.match(await curl(`https://localhost:${ports.scrape}/metrics/../stub_status`, "127.0.0.1"), /\n404$/);
        assert.match(await curl(`http://localhost:${ports.scrape}/metrics`, "127.0.0.1"), /\n400$/, "a plain-HTTP request gets nginx's 400");
    });
});
