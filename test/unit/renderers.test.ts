import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, describe, it } from "node:test";
import { parse } from "yaml";
import { renderBackupInstallScript, renderBackupRemoveScript, renderBackupScript, renderCronEntry, renderRestoreScript } from "../../components/backup/backupScript";
import { describeUpgrade, renderUpgradeScript } from "../../components/devpi/devpiUpgradeScript";
import { devpiUseCommand, indexUrl, renderPipConf, renderPypirc, renderUvToml } from "../../components/client/clientConfig";
import { DEVPI_API_PY, renderApiScript } from "../../components/access/devpiApi";
import {
    renderConfigScript,
    renderDevpiServerYaml,
    renderInitScript,
    renderInstallScript,
    renderSecretExportScript,
    renderTrustBundleScript,
    renderUninstallScript,
    requirements,
} from "../../components/devpi/devpiServerConfig";
import { HEALTH_PY, renderHealthCheckScript, renderReplicaHealthCheckScript, REPLICA_SYNC_PY } from "../../components/health/healthCheckScript";
import { renderPackagesScript, renderServiceUserScript } from "../../components/host/hostPreparationScript";
import {
    mirrorPageCacheSeconds,
    NginxSiteSettings,
    renderNginxRemoveScript,
    renderNginxScript,
    renderNginxSite,
    renderPageGenerationModule,
    TLS_ECDH_CURVES,
    TLS12_CIPHERS,
} from "../../components/nginx/nginxConfig";
import { PRELUDE, shellQuote, stepCommand, writeFileLines } from "../../components/common/shell";
import { renderSslFilesScript, renderSslRemoveScript } from "../../components/ssl/sslFilesScript";
import { renderSupervisorProgram, renderSupervisorRemoveScript, renderSupervisorScript } from "../../components/supervisor/supervisorConfig";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "devpi-render-"));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const site: NginxSiteSettings = {
    domain: "devpi.example.com",
    extraNames: ["pypi.example.com"],
    httpPort: 80,
    httpsPort: 443,
    listenIpv6: true,
    certPath: "/srv/ssl/devpi/ssl-unified.crt",
    keyPath: "/srv/ssl/devpi/server.key",
    upstream: "127.0.0.1:4040",
    serverDir: "/srv/devpi/data",
    maxUploadMb: 1024,
    replication: false,
};

describe("shell quoting", () => {
    for (const s of ["plain", "it's", "$(rm -rf /)", "a\nb", "'", ""]) {
        it(`round-trips ${JSON.stringify(s)} through bash`, () => {
            const out = execFileSync("bash", ["-c", `printf %s ${shellQuote(s)}`]).toString();
            assert.equal(out, s);
        });
    }
    it("runs scripts through sudo unless the login is root", () => {
        assert.match(stepCommand("s", "create", "true", "deploy"), /^sudo -n bash -c '/);
        assert.match(stepCommand("s", "create", "true", "root"), /^bash -c '/);
    });
});

describe("devpi-server.yml", () => {
    const yaml = renderDevpiServerYaml({
        serverDir: "/srv/devpi/data",
        host: "127.0.0.1",
        port: 4040,
        secretFile: "/srv/devpi/.secret",
        restrictModify: "root",
        mirrorCacheExpiry: 1800,
        maxUploadMb: 1024,
    });
    it("puts every option under devpi-server with long-option names", () => {
        assert.deepEqual(parse(yaml), {
            "devpi-server": {
                serverdir: "/srv/devpi/data",
                host: "127.0.0.1",
                port: 4040,
                secretfile: "/srv/devpi/.secret",
                "restrict-modify": "root",
                "mirror-cache-expiry": 1800,
                "max-request-body-size": 1073741824,
            },
        });
    });
    it("keeps devpi's body limit at or above nginx's", () => {
        const limit = (maxUploadMb: number) =>
            (
                parse(renderDevpiServerYaml({ serverDir: "/d", host: "127.0.0.1", port: 4040, secretFile: "/s", restrictModify: "root", mirrorCacheExpiry: 1800, maxUploadMb })) as Record<
                    string,
                    Record<string, number>
                >
            )["devpi-server"]["max-request-body-size"];
        assert.equal(limit(5), 1073741824);
        assert.equal(limit(2048), 2147483648);
    });
    it("sets role primary only on a primary with replicas, role replica and primary-url on a replica", () => {
        const base = { serverDir: "/d", host: "127.0.0.1", port: 4040, secretFile: "/s", restrictModify: "root", mirrorCacheExpiry: 1800, maxUploadMb: 1024 };
        const body = (y: string) => (parse(y) as Record<string, Record<string, unknown>>)["devpi-server"];
        assert.equal(body(renderDevpiServerYaml(base)).role, undefined, "a single server keeps devpi's default (standalone)");
        assert.equal(body(renderDevpiServerYaml({ ...base, role: "primary" })).role, "primary");
        assert.deepEqual(
            [body(renderDevpiServerYaml({ ...base, primaryUrl: "https://p.example.com" })).role, body(renderDevpiServerYaml({ ...base, primaryUrl: "https://p.example.com" }))["primary-url"]],
            ["replica", "https://p.example.com"],
        );
    });
    it("a replica's config step installs the primary's secret from stdin and refuses a short one", () => {
        const dir = fs.mkdtempSync(path.join(tmp, "secret-"));
        const script = renderConfigScript({
            configFile: `${dir}/devpi-server.yml`,
            yaml: "devpi-server: {}\n",
            secretFile: `${dir}/.secret`,
            serviceUser: os.userInfo().username,
            venvDir: "/nonexistent",
            secretFromStdin: true,
        });
        const run = (input: string) => spawnSync("bash", ["-c", PRELUDE + script], { input, encoding: "utf8" });
        const secret = "A".repeat(44);
        const ok = run(Buffer.from(secret).toString("base64"));
        assert.equal(ok.status, 0, ok.stderr);
        assert.equal(fs.readFileSync(`${dir}/.secret`, "utf8"), secret);
        assert.equal((fs.statSync(`${dir}/.secret`).mode & 0o777).toString(8), "600");
        assert.match(run(Buffer.from(secret).toString("base64")).stdout, /secret from the primary unchanged/);
        assert.notEqual(run(Buffer.from("short").toString("base64")).status, 0);
    });
    it("never carries options devpi 6 removed", () => {
        assert.doesNotMatch(yaml, /refresh/);
    });
    it("pins exact versions and leaves devpi-web out when disabled", () => {
        assert.deepEqual(requirements({ venvDir: "/v", serverVersion: "6.20.3", webVersion: "5.1.1", web: true }), ["devpi-server==6.20.3", "devpi-web==5.1.1"]);
        assert.deepEqual(requirements({ venvDir: "/v", serverVersion: "6.20.3", webVersion: "5.1.1", web: false }), ["devpi-server==6.20.3"]);
    });
});

/** Loads njs into the tests' own nginx.conf (Debian's libnginx-mod-http-js). */
const NJS_MODULE = "load_module /usr/lib/nginx/modules/ngx_http_js_module.so;\n";

describe("nginx site", () => {
    const cases: [string, Partial<NginxSiteSettings>, RegExp[], RegExp[]][] = [
        [
            "defaults",
            {},
            [
                /listen 443 ssl http2;/,
                /listen \[::\]:443 ssl http2;/,
                /return 301 https:\/\/\$host\$request_uri;/,
                /client_max_body_size 1024m;/,
                /location \^~ \/\+changelog/,
                /try_files \/\+files\$uri @proxy_to_app;/,
                /X-outside-url \$scheme:\/\/\$http_host/,
                /ssl_protocols TLSv1\.2 TLSv1\.3;/,
                /server_name devpi\.example\.com pypi\.example\.com;/,
                /keepalive_requests 10000;/,
            ],
            [/TLSv1(\.1)? /, /SSLv3/],
        ],
        ["custom ports", { httpPort: 18080, httpsPort: 18443, listenIpv6: false }, [/listen 18443 ssl http2;/, /return 301 https:\/\/\$host:18443\$request_uri;/], [/\[::\]/]],
        ["replication allows the changelog", { replication: true }, [/proxy_pass/], [/\+changelog/]],
        ["upload limit follows devpi's", { maxUploadMb: 5 }, [/client_max_body_size 5m;/], []],
        [
            "an upload over the limit gets a 413 that names the limit and the key",
            { maxUploadMb: 5 },
            [
                /error_page 413 @upload_too_large;/,
                /location @upload_too_large \{\n\s+default_type application\/json;\n\s+return 413 '\{"type":"actionlog","status":413,"result":\["upload refused: [^"']*upload limit of 5 MiB \(devpi:maxUploadMb = 5\); raise devpi:maxUploadMb and run pulumi up"\]/,
            ],
            [],
        ],
        ["no page cache by default", {}, [/location \/ \{/], [/proxy_cache/]],
        [
            "mirror pages cached briefly, user indexes never",
            { mirrorPageCacheSeconds: 30 },
            [
                /proxy_cache_path \/var\/lib\/nginx\/devpi-mirror-pages /,
                /proxy_cache_key \$scheme\$http_host\$request_uri\$http_accept\$devpi_installer;/,
                /proxy_ignore_headers Cache-Control Expires Vary;/,
                /location \^~ \/root\/pypi\/\+simple\/ \{\n[^}]*proxy_cache devpi_mirror_pages;[^}]*proxy_cache_valid 200 30s;[^}]*Strict-Transport-Security/,
            ],
            [/location[^{]*\+simple[^{]*\{[^}]*\$http_host\/(?!root\/pypi)/, /proxy_cache_use_stale/, /devpi_index_pages/, /js_/],
        ],
        [
            "index pages cached under the data's generation, never with credentials",
            { mirrorPageCacheSeconds: 30, indexPageCache: true },
            [
                /js_import devpi_pages from \/etc\/nginx\/devpi-page-generation\.js;/,
                /js_set \$devpi_generation devpi_pages\.generation;/,
                /map \$devpi_generation \$devpi_page_uncached \{\n\s+"" 1;/,
                /location ~ \^\/\[\^\/\]\+\/\[\^\/\]\+\/\\\+simple\/ \{\n[^}]*proxy_cache devpi_index_pages;[^}]*proxy_cache_key [^;]*\$http_accept\$devpi_installer\$devpi_generation;[^}]*proxy_cache_bypass \$devpi_page_uncached \$http_authorization \$http_x_devpi_auth;[^}]*proxy_no_cache \$devpi_page_uncached \$http_authorization \$http_x_devpi_auth;[^}]*proxy_cache_valid 200 30s;[^}]*Strict-Transport-Security/,
                // The mirror keeps its own location, which nginx picks before any regex location.
                /location \^~ \/root\/pypi\/\+simple\/ \{[^}]*proxy_cache devpi_mirror_pages;/,
            ],
            [/proxy_cache_use_stale/],
        ],
        ["no index page cache without a cache lifetime", { mirrorPageCacheSeconds: 0, indexPageCache: true }, [], [/proxy_cache/, /js_/]],
    ];
    for (const [name, override, present, absent] of cases) {
        it(name, () => {
            const conf = renderNginxSite({ ...site, ...override });
            for (const re of present) assert.match(conf, re);
            for (const re of absent) assert.doesNotMatch(conf, re);
        });
    }

    it("sets Mozilla's intermediate TLS profile (5.7) without DHE", () => {
        // Mozilla's list, in its order; the DHE suites are left out (no dhparam file on the server).
        const intermediate =
            "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305";
        assert.equal(
            TLS12_CIPHERS,
            intermediate
                .split(":")
                .filter((c) => !c.startsWith("DHE-"))
                .join(":"),
        );
        assert.equal(TLS_ECDH_CURVES, "X25519:prime256v1:secp384r1");
        const conf = renderNginxSite(site);
        const directive = (name: string) => [...conf.matchAll(new RegExp(`^\\s*${name} (.*);$`, "gm"))].map((m) => m[1]);
        assert.deepEqual(directive("ssl_protocols"), ["TLSv1.2 TLSv1.3"]);
        assert.deepEqual(directive("ssl_ciphers"), [TLS12_CIPHERS]);
        assert.deepEqual(directive("ssl_ecdh_curve"), ["X25519:prime256v1:secp384r1"]);
        assert.deepEqual(directive("ssl_prefer_server_ciphers"), ["off"]);
        assert.deepEqual(directive("ssl_session_tickets"), ["off"]);
        assert.deepEqual(directive("ssl_dhparam"), [], "no DHE, so no dhparam file");
        assert.deepEqual(directive("ssl_conf_command"), [], "TLS 1.3 keeps OpenSSL's (all AEAD) suites");
        // OpenSSL itself: every suite is ECDHE + AEAD, nothing CBC/SHA-1/CCM/ARIA/CAMELLIA or without forward secrecy.
        const suites = execFileSync("openssl", ["ciphers", "-v", "-tls1_2", TLS12_CIPHERS], { encoding: "utf8" })
            .trim()
            .split("\n")
            .filter((l) => !/ TLSv1\.3 /.test(l));
        assert.equal(suites.length, 6, suites.join("\n"));
        for (const line of suites) {
            assert.match(line, / TLSv1\.2 +Kx=ECDH +Au=(ECDSA|RSA) +Enc=(AESGCM\((128|256)\)|CHACHA20\/POLY1305\(256\)) +Mac=AEAD$/, line);
        }
    });

    it("the real nginx, with the site's TLS settings, refuses weak TLS 1.2 suites and old protocols", async () => {
        const dir = path.join(tmp, "tls");
        fs.mkdirSync(dir, { recursive: true });
        const sock = path.join(dir, "tls.sock");
        // An RSA certificate: it is the one that would also allow static-RSA key exchange.
        execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", `${dir}/rsa.key`, "-out", `${dir}/rsa.crt`, "-days", "2", "-subj", "/CN=devpi.example.com"], {
            stdio: "pipe",
        });
        // The site's own ssl_* lines, on a unix socket (no TCP port taken).
        const tlsLines = renderNginxSite({ ...site, certPath: `${dir}/rsa.crt`, keyPath: `${dir}/rsa.key` })
            .split("\n")
            .filter((l) => /^\s*ssl_/.test(l))
            .join("\n");
        fs.writeFileSync(
            `${dir}/nginx.conf`,
            `daemon off;\npid ${dir}/nginx.pid;\nerror_log ${dir}/error.log;\nevents {}\nhttp {\n  access_log off;\n  server {\n    listen unix:${sock} ssl;\n${tlsLines}\n    location / { return 200 "ok"; }\n  }\n}\n`,
        );
        const nginx = spawn("nginx", ["-p", dir, "-c", `${dir}/nginx.conf`], { stdio: "ignore" });
        try {
            for (let i = 0; i < 50 && !fs.existsSync(sock); i++) await new Promise((r) => setTimeout(r, 100));
            const handshake = (...args: string[]) => spawnSync("openssl", ["s_client", "-unix", sock, "-servername", "devpi.example.com", ...args], { input: "", encoding: "utf8", timeout: 10000 });
            const accepted = (...args: string[]) => {
                const r = handshake(...args);
                return r.status === 0 && /^New, [^,]+, Cipher is (?!\(NONE\))\S+$/m.test(r.stdout);
            };
            assert.ok(accepted("-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"), "ECDHE with AES-GCM");
            assert.ok(accepted("-tls1_2", "-cipher", "ECDHE-RSA-CHACHA20-POLY1305"), "ECDHE with ChaCha20-Poly1305");
            assert.ok(accepted("-tls1_3"), "TLS 1.3");
            for (const weak of ["ECDHE-RSA-AES128-SHA", "ECDHE-RSA-AES256-SHA384", "AES128-GCM-SHA256", "AES256-SHA", "DHE-RSA-AES128-GCM-SHA256", "ECDHE-ARIA128-GCM-SHA256", "CAMELLIA128-SHA256"]) {
                assert.ok(!accepted("-tls1_2", "-cipher", `${weak}:@SECLEVEL=0`), `${weak} refused`);
            }
            assert.ok(!accepted("-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"), "TLS 1.1 refused");
        } finally {
            nginx.kill();
            await new Promise((r) => nginx.once("exit", r));
        }
    });

    it("passes the real nginx -t", () => {
        const dir = path.join(tmp, "nginx");
        fs.mkdirSync(path.join(dir, "data/+files"), { recursive: true });
        execFileSync(
            "openssl",
            [
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                `${dir}/server.key`,
                "-out",
                `${dir}/chain.crt`,
                "-days",
                "2",
                "-subj",
                "/CN=devpi.example.com",
            ],
            { stdio: "pipe" },
        );
        fs.writeFileSync(`${dir}/generation.js`, renderPageGenerationModule(`${dir}/data`));
        for (const replication of [false, true]) {
            const conf = renderNginxSite({
                ...site,
                httpPort: 18081,
                httpsPort: 18444,
                certPath: `${dir}/chain.crt`,
                keyPath: `${dir}/server.key`,
                serverDir: `${dir}/data`,
                replication,
                // Reads for users only (auth_request before the caches and release files), in one of the two.
                authenticatedReads: replication,
                mirrorPageCacheSeconds: replication ? 0 : 30,
                mirrorPageCacheDir: `${dir}/cache`,
                indexPageCache: true,
                indexPageCacheDir: `${dir}/index-cache`,
                pageGenerationModulePath: `${dir}/generation.js`,
            });
            fs.writeFileSync(`${dir}/site.conf`, conf);
            fs.writeFileSync(`${dir}/nginx.conf`, `${NJS_MODULE}pid ${dir}/nginx.pid;\nerror_log ${dir}/error.log;\nevents {}\nhttp {\n  access_log off;\n  include ${dir}/site.conf;\n}\n`);
            const r = spawnSync("nginx", ["-t", "-p", dir, "-c", `${dir}/nginx.conf`], { encoding: "utf8" });
            assert.equal(r.status, 0, r.stderr);
            assert.match(r.stderr, /test is successful/);
        }
    });

    it("the generation module, run by the real nginx, changes with every commit and restart and is empty while unsettled", async () => {
        const dir = path.join(tmp, "njs");
        const data = path.join(dir, "data");
        fs.mkdirSync(data, { recursive: true });
        // nginx's workers (nobody when started by root) must reach the files, as www-data must on a server.
        for (const d of [tmp, dir, data]) fs.chmodSync(d, 0o755);
        const settle = 300;
        fs.writeFileSync(`${dir}/generation.js`, renderPageGenerationModule(`${data}/`, settle));
        const sock = path.join(dir, "s.sock");
        fs.writeFileSync(
            `${dir}/nginx.conf`,
            `${NJS_MODULE}daemon off;\npid ${dir}/nginx.pid;\nerror_log ${dir}/error.log;\nevents {}\nhttp {\n  access_log off;\n  js_import devpi_pages from ${dir}/generation.js;\n  js_set $devpi_generation devpi_pages.generation;\n  server {\n    listen unix:${sock};\n    location / { return 200 "[$devpi_generation]"; }\n  }\n}\n`,
        );
        const nginx = spawn("nginx", ["-p", dir, "-c", `${dir}/nginx.conf`], { stdio: "ignore" });
        try {
            for (let i = 0; i < 50 && !fs.existsSync(sock); i++) await new Promise((r) => setTimeout(r, 100));
            const gen = () => /^\[(.*)\]$/.exec(execFileSync("curl", ["-sf", "--unix-socket", sock, "http://x/"], { encoding: "utf8" }))![1];
            const settled = () => new Promise((r) => setTimeout(r, settle + 100));
            const db = `${data}/.sqlite`,
                node = `${data}/.nodeinfo`;
            assert.equal(gen(), "", "no data yet");
            fs.writeFileSync(db, "page 1");
            fs.writeFileSync(node, "{}");
            assert.equal(gen(), "", "just written");
            await settled();
            const g1 = gen();
            assert.match(g1, /^\d+\.6\.[\d.]+$/);
            assert.equal(gen(), g1, "stable while nothing changes");
            fs.writeFileSync(db, "page 2");
            assert.equal(gen(), "", "a commit a moment ago");
            await settled();
            const g2 = gen();
            assert.notEqual(g2, "");
            assert.notEqual(g2, g1, "same size, other content: a new generation (ctime moved)");
            fs.writeFileSync(`${node}.tmp`, "{}");
            fs.renameSync(`${node}.tmp`, node);
            await settled();
            const g3 = gen();
            assert.notEqual(g3, "");
            assert.notEqual(g3, g2, "devpi restarted (new .nodeinfo)");
            fs.writeFileSync(`${db}-wal`, "");
            assert.equal(gen(), "", "a write-ahead log: file times say nothing");
            fs.rmSync(`${db}-wal`);
            assert.equal(gen(), g3);
            if (process.getuid?.() === 0) {
                fs.chmodSync(data, 0o700);
                assert.equal(gen(), "", "nginx cannot read the data: no cache");
            }
        } finally {
            nginx.kill();
        }
    });

    it("sorts User-Agents into installers and browsers as devpi does", () => {
        const re = /"~(.*)" installer;/.exec(renderNginxSite({ ...site, mirrorPageCacheSeconds: 30 }))![1];
        // devpi's INSTALLER_USER_AGENT, matched from the start (Python's re.match); PCRE and JS agree on it.
        const installer = new RegExp(re);
        for (const ua of ['pip/24.0 {"ci":null,"cpython":"3.11.2"}', "uv/0.4.18 (x86_64-unknown-linux-gnu)", "setuptools/68.0 Python-urllib/3.11", "Foo/1.0 pip/9.0"]) assert.match(ua, installer, ua);
        for (const ua of ["Mozilla/5.0 (X11; Linux x86_64)", "curl/8.5.0", "devpi-client/7.3.0", "", "pipx/1.0"]) assert.doesNotMatch(ua, installer, ua);
    });

    it("keeps a mirror page at most a tenth of mirrorCacheExpiry and never over 30 s", () => {
        assert.equal(mirrorPageCacheSeconds(1800), 30);
        assert.equal(mirrorPageCacheSeconds(60), 6);
        assert.equal(mirrorPageCacheSeconds(5), 0);
        assert.equal(mirrorPageCacheSeconds(0), 0);
    });

    it("a broken site fails nginx -t (the install script relies on that)", () => {
        const dir = path.join(tmp, "nginx");
        fs.writeFileSync(`${dir}/site.conf`, renderNginxSite({ ...site, certPath: `${dir}/missing.crt`, keyPath: `${dir}/server.key`, serverDir: `${dir}/data` }));
        const r = spawnSync("nginx", ["-t", "-p", dir, "-c", `${dir}/nginx.conf`], { encoding: "utf8" });
        assert.notEqual(r.status, 0);
    });
});

describe("supervisor program", () => {
    const settings = {
        name: "devpi",
        venvDir: "/opt/devpi/venv",
        configFile: "/etc/devpi/devpi-server.yml",
        serviceUser: "devpi",
        homeDir: "/srv/devpi",
        debug: false,
        logFile: "/var/log/supervisor/devpi.log",
    };
    it("runs devpi-server from its config as the service user", () => {
        const conf = renderSupervisorProgram(settings);
        assert.match(conf, /^\[program:devpi\]$/m);
        assert.match(conf, /^command = \/opt\/devpi\/venv\/bin\/devpi-server -c \/etc\/devpi\/devpi-server.yml$/m);
        assert.match(conf, /^user = devpi$/m);
        assert.doesNotMatch(conf, /--refresh|--debug/);
    });
    it("adds --debug when asked", () => {
        assert.match(renderSupervisorProgram({ ...settings, debug: true }), /devpi-server.yml --debug$/m);
    });
    it("is loaded by the real supervisord", async () => {
        const dir = path.join(tmp, "supervisor");
        fs.mkdirSync(dir, { recursive: true });
        fs.writeFileSync(`${dir}/devpi.conf`, renderSupervisorProgram({ ...settings, serviceUser: "nobody", homeDir: dir, venvDir: dir, logFile: `${dir}/devpi.log` }));
        fs.writeFileSync(
            `${dir}/supervisord.conf`,
            `[unix_http_server]\nfile=${dir}/s.sock\n[supervisord]\nlogfile=${dir}/supervisord.log\npidfile=${dir}/s.pid\nnodaemon=true\n` +
                `[rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n` +
                `[supervisorctl]\nserverurl=unix://${dir}/s.sock\n[include]\nfiles=${dir}/devpi.conf\n`,
        );
        const daemon = spawn("supervisord", ["-c", `${dir}/supervisord.conf`], { stdio: "ignore" });
        try {
            let out = "";
            for (let i = 0; i < 50 && !out.includes("devpi"); i++) {
                await new Promise((r) => setTimeout(r, 200));
                out = spawnSync("supervisorctl", ["-c", `${dir}/supervisord.conf`, "avail"], { encoding: "utf8" }).stdout ?? "";
            }
            assert.match(out, /^devpi\s+in use\s+auto\s+999:999$/m);
        } finally {
            daemon.kill("SIGTERM");
        }
    });
});

describe("client configuration", () => {
    const s = { baseUrl: "https://devpi.example.com", index: "bz/dev", username: "bz", caPath: "~/.config/devpi/ca.pem" };
    it("points pip and uv at the simple index", () => {
        assert.equal(indexUrl(s), "https://devpi.example.com/bz/dev/+simple/");
        assert.equal(renderPipConf(s), "[global]\nindex-url = https://devpi.example.com/bz/dev/+simple/\ncert = ~/.config/devpi/ca.pem\n");
        assert.match(renderUvToml(s), /url = "https:\/\/devpi.example.com\/bz\/dev\/\+simple\/"/);
    });
    it("gives twine the index URL without +simple and the password only when asked", () => {
        const p = renderPypirc(s);
        assert.match(p, /^repository = https:\/\/devpi.example.com\/bz\/dev\/$/m);
        assert.match(p, /^username = bz$/m);
        assert.doesNotMatch(p, /password/);
        assert.match(renderPypirc(s, "s3cret"), /^password = s3cret$/m);
    });
    it("prints the devpi use command", () => {
        assert.equal(devpiUseCommand(s), "devpi use https://devpi.example.com/bz/dev/ --set-cfg");
    });
});

describe("remote scripts", () => {
    const layout = {
        serviceUser: "devpi",
        homeDir: "/srv/devpi",
        serverDir: "/srv/devpi/data",
        backupDir: "/srv/devpi/backups",
        secretFile: "/srv/devpi/.secret",
        configDir: "/etc/devpi",
        webUser: "www-data",
    };
    const ssl = { dir: "/srv/ssl/devpi", keyFile: "server.key", chainFile: "ssl-unified.crt" };
    const api = { devpiUrl: "http://127.0.0.1:4040", credentialFile: "/etc/devpi/root-credential.json" };
    const backup = renderBackupScript({ venvDir: "/opt/devpi/venv", configFile: "/etc/devpi/devpi-server.yml", backupDir: "/srv/devpi/backups", keep: 7 });
    const restore = renderRestoreScript({
        venvDir: "/opt/devpi/venv",
        configFile: "/etc/devpi/devpi-server.yml",
        backupDir: "/srv/devpi/backups",
        serverDir: "/srv/devpi/data",
        serviceUser: "devpi",
        program: "devpi",
        devpiUrl: "http://127.0.0.1:4040",
    });
    const upgrade = {
        venvDir: "/opt/devpi/venv",
        key: "devpi-server-6.20.3",
        configFile: "/etc/devpi/devpi-server.yml",
        serverDir: "/srv/devpi/data",
        backupDir: "/srv/devpi/backups",
        serviceUser: "devpi",
        program: "devpi",
        devpiUrl: "http://127.0.0.1:4040",
        allowDowngrade: false,
        readyTimeout: 120,
        logFile: "/var/log/supervisor/devpi.log",
    };
    const scripts: Record<string, string> = {
        packages: renderPackagesScript(),
        serviceUser: renderServiceUserScript(layout),
        sslFiles: renderSslFilesScript(ssl),
        sslRemove: renderSslRemoveScript(ssl),
        install: renderInstallScript({ venvDir: "/opt/devpi/venv", serverVersion: "6.20.3", webVersion: "5.1.1", web: true, packageIndex: "https://pypi.org/simple" }),
        installNoWeb: renderInstallScript({ venvDir: "/opt/devpi/venv", serverVersion: "6.20.3", webVersion: "5.1.1", web: false }),
        uninstall: renderUninstallScript("/opt/devpi/venv"),
        config: renderConfigScript({
            configFile: "/etc/devpi/devpi-server.yml",
            yaml: "devpi-server:\n  port: 4040\n",
            secretFile: "/srv/devpi/.secret",
            serviceUser: "devpi",
            venvDir: "/opt/devpi/venv",
        }),
        configReplica: renderConfigScript({
            configFile: "/etc/devpi/devpi-server.yml",
            yaml: "devpi-server:\n  port: 4040\n",
            secretFile: "/srv/devpi/.secret",
            serviceUser: "devpi",
            venvDir: "/opt/devpi/venv",
            secretFromStdin: true,
        }),
        secretExport: renderSecretExportScript("/srv/devpi/.secret"),
        trustBundle: renderTrustBundleScript("/etc/devpi/ca-bundle.pem", "/etc/ssl/certs/ca-certificates.crt"),
        replicaHealth: renderReplicaHealthCheckScript(
            { domain: "r1.example.com", httpPort: 80, httpsPort: 443, certSha256: "ab", indexes: ["bz/dev"], replication: false, devpiLog: "/var/log/supervisor/devpi.log", revision: "1" },
            { primaryUrl: "https://devpi.example.com", timeout: 120 },
        ),
        init: renderInitScript({ configFile: "/etc/devpi/devpi-server.yml", serverDir: "/srv/devpi/data", serviceUser: "devpi", venvDir: "/opt/devpi/venv" }),
        supervisor: renderSupervisorScript({
            name: "devpi",
            confPath: "/etc/supervisor/conf.d/devpi.conf",
            program: "[program:devpi]\n",
            devpiUrl: "http://127.0.0.1:4040",
            logFile: "/var/log/supervisor/devpi.log",
            readyTimeout: 90,
        }),
        supervisorRemove: renderSupervisorRemoveScript({ name: "devpi", confPath: "/etc/supervisor/conf.d/devpi.conf" }),
        nginx: renderNginxScript({ sitePath: "/etc/nginx/sites-available/devpi", enabledPath: "/etc/nginx/sites-enabled/devpi", site: renderNginxSite(site), certFingerprint: "ab" }),
        nginxWithModule: renderNginxScript({
            sitePath: "/etc/nginx/sites-available/devpi",
            enabledPath: "/etc/nginx/sites-enabled/devpi",
            site: renderNginxSite({ ...site, mirrorPageCacheSeconds: 30, indexPageCache: true }),
            extraFiles: [{ path: "/etc/nginx/devpi-page-generation.js", content: renderPageGenerationModule(site.serverDir) }],
            certFingerprint: "ab",
        }),
        nginxRemove: renderNginxRemoveScript({ sitePath: "/etc/nginx/sites-available/devpi", enabledPath: "/etc/nginx/sites-enabled/devpi", extraPaths: ["/etc/nginx/devpi-page-generation.js"] }),
        rootPassword: renderApiScript(api, "root-password"),
        userEnsure: renderApiScript(api, "user-ensure", "bz"),
        indexDelete: renderApiScript(api, "index-delete", "bz/dev"),
        health: renderHealthCheckScript({
            domain: "devpi.example.com",
            httpPort: 80,
            httpsPort: 443,
            certSha256: "ab",
            indexes: ["bz/dev"],
            replication: false,
            devpiLog: "/var/log/supervisor/devpi.log",
            revision: "1",
        }),
        backupInstall: renderBackupInstallScript(
            "/usr/local/sbin/devpi-backup",
            backup,
            "/etc/cron.d/devpi-backup",
            renderCronEntry("17 3 * * *", "devpi", "/usr/local/sbin/devpi-backup"),
            "/usr/local/sbin/devpi-restore",
            restore,
        ),
        backupRemove: renderBackupRemoveScript("/usr/local/sbin/devpi-backup", "/etc/cron.d/devpi-backup", "/usr/local/sbin/devpi-restore"),
        upgradeAuto: renderUpgradeScript({ ...upgrade, strategy: "auto" }),
        upgradeForced: renderUpgradeScript({ ...upgrade, strategy: "export-import", allowDowngrade: true }),
    };
    for (const [name, body] of Object.entries(scripts)) {
        it(`${name} passes shellcheck`, () => {
            const r = spawnSync("shellcheck", ["-s", "bash", "-"], { input: `#!/bin/bash\n${PRELUDE}${body}`, encoding: "utf8" });
            assert.equal(r.status, 0, r.stdout);
        });
    }
    for (const [name, script] of [
        ["backup", backup],
        ["restore", restore],
    ]) {
        it(`the ${name} script itself passes shellcheck`, () => {
            const r = spawnSync("shellcheck", ["-"], { input: script, encoding: "utf8" });
            assert.equal(r.status, 0, r.stdout);
        });
    }
    it("the upgrade says in preview which path it takes, and exports before switching", () => {
        assert.match(describeUpgrade({ key: "devpi-server-6.20.3", strategy: "auto" }), /in place when the data format matches, by export\/import otherwise/);
        assert.match(describeUpgrade({ key: "devpi-server-6.20.3", strategy: "export-import" }), /export\/import \(forced\)/);
        const auto = renderUpgradeScript({ ...upgrade, strategy: "auto" });
        assert.ok(auto.indexOf("devpi-export") < auto.indexOf('switch_to "$new"'), "export before the switch");
        const exportAt = auto.indexOf('"$cur/bin/devpi-export"');
        assert.ok(auto.lastIndexOf('if [ "$path" = export-import ]; then supervisorctl stop', exportAt) >= 0, "export/import stops devpi before the export");
        assert.ok(auto.indexOf('if [ "$path" != export-import ]; then supervisorctl stop', exportAt) > exportAt, "in place, devpi serves during the export and stops only for the switch");
        assert.match(auto, /refusing to downgrade/);
        assert.match(auto, /^allow_downgrade=0$/m, "downgrades refused unless allowed");
        assert.match(renderUpgradeScript({ ...upgrade, strategy: "auto", allowDowngrade: true }), /^allow_downgrade=1$/m);
    });
    it("no script carries a secret-looking argument", () => {
        for (const body of Object.values(scripts)) assert.doesNotMatch(body, /--root-passwd|password=|PASSWORD=/);
    });
    for (const [name, code] of [
        ["devpi API", DEVPI_API_PY],
        ["health check", HEALTH_PY],
        ["replica sync check", REPLICA_SYNC_PY],
    ] as const) {
        it(`the ${name} program compiles with python3`, () => {
            const file = path.join(tmp, `${name.replace(/ /g, "_")}.py`);
            fs.writeFileSync(file, code);
            execFileSync("python3", ["-m", "py_compile", file]);
        });
    }
    it("the replica sync check fails, naming the primary, when the primary cannot be read", () => {
        const r = spawnSync("python3", ["-c", REPLICA_SYNC_PY, "https://127.0.0.1:1/", "localhost", "1", "5"], { input: "", encoding: "utf8" });
        assert.equal(r.status, 1);
        assert.match(r.stderr, /cannot read the primary's \/\+status at https:\/\/127\.0\.0\.1:1\//);
    });
    it("write_if_changed reports changed, then unchanged, and keeps the mode", () => {
        const dest = path.join(tmp, "wic.txt");
        const run = (content: string) =>
            execFileSync("bash", ["-c", `${PRELUDE}\nwrite_if_changed ${shellQuote(dest)} 0640 "$(id -un):$(id -gn)"`], { input: content })
                .toString()
                .trim();
        assert.equal(run("a\n"), "changed");
        assert.equal(run("a\n"), "unchanged");
        assert.equal(run("b\n"), "changed");
        assert.equal(fs.readFileSync(dest, "utf8"), "b\n");
        assert.equal((fs.statSync(dest).mode & 0o777).toString(8), "640");
    });
    it("writeFileLines installs any content, also inside $(...)", () => {
        const dest = path.join(tmp, "wfl.conf");
        const content = "a line\n)\nDEVPI_EOF_0\n$(echo not run)\n";
        const script = `${PRELUDE}state=$(${writeFileLines(dest, "0640", "root:root", content)})\necho "$state"\n`;
        assert.equal(execFileSync("bash", ["-c", script]).toString().trim(), "changed");
        assert.equal(execFileSync("bash", ["-c", script]).toString().trim(), "unchanged");
        assert.equal(fs.readFileSync(dest, "utf8"), content);
    });
    it("the nginx script installs the module and the site, then tests and starts nginx", () => {
        const dir = fs.mkdtempSync(path.join(tmp, "nginx-step-"));
        const script = renderNginxScript({
            sitePath: `${dir}/site`,
            enabledPath: `${dir}/enabled`,
            site: renderNginxSite({ ...site, mirrorPageCacheSeconds: 30, indexPageCache: true }),
            extraFiles: [{ path: `${dir}/generation.js`, content: renderPageGenerationModule(site.serverDir) }],
            certFingerprint: "ab",
        });
        // nginx and the service helpers stubbed: this checks the script's own flow.
        const stubs = `nginx() { echo "nginx $*" >>${dir}/calls; }\nsvc_enable() { :; }\nsvc_running() { [ -f ${dir}/calls ]; }\nsvc() { :; }\n`;
        const out = execFileSync("bash", ["-c", `${PRELUDE}${stubs}${script}`], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
        assert.match(out, /^site changed, nginx reloaded$/m);
        assert.equal(fs.readFileSync(`${dir}/generation.js`, "utf8"), renderPageGenerationModule(site.serverDir));
        assert.match(fs.readFileSync(`${dir}/site`, "utf8"), /js_import devpi_pages from/);
        assert.match(fs.readFileSync(`${dir}/calls`, "utf8"), /^nginx -t\nnginx -s reload\n$/);
    });
    describe("the SSL files script", () => {
        const key = "-----BEGIN PRIVATE KEY-----\nAAA\n-----END PRIVATE KEY-----\n";
        const chain = "-----BEGIN CERTIFICATE-----\nBBB\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nCCC\n-----END CERTIFICATE-----\n";
        const stat = (p: string) => execFileSync("stat", ["-c", "%F %U:%G %a", p], { encoding: "utf8" }).trim();
        const run = (dir: string) => spawnSync("bash", ["-c", PRELUDE + renderSslFilesScript({ dir, keyFile: "server.key", chainFile: "ssl-unified.crt" })], { input: key + chain, encoding: "utf8" });
        // A user that is not root (the seed's www-data, or nobody where there is none).
        const web = spawnSync("id", ["-u", "www-data"]).status === 0 ? "www-data" : "nobody";

        it("splits key and chain read from stdin into root's 0400 files in root's 0700 directory", () => {
            const dir = path.join(tmp, "ssl");
            const r = run(dir);
            assert.equal(r.status, 0, r.stderr);
            assert.equal(r.stdout.trim(), "key changed, chain changed");
            assert.equal(fs.readFileSync(`${dir}/server.key`, "utf8"), key);
            assert.equal(fs.readFileSync(`${dir}/ssl-unified.crt`, "utf8"), chain);
            assert.equal(stat(dir), "directory root:root 700");
            assert.equal(stat(`${dir}/server.key`), "regular file root:root 400");
            assert.equal(stat(`${dir}/ssl-unified.crt`), "regular file root:root 400");
            assert.deepEqual(fs.readdirSync(dir).sort(), ["server.key", "ssl-unified.crt"], "no temporaries left");
            assert.equal(run(dir).stdout.trim(), "key unchanged, chain unchanged");
        });

        it("takes over a seed's directory and files owned by the web user (0500/0400)", () => {
            const dir = path.join(tmp, "ssl-seed");
            fs.mkdirSync(dir);
            fs.writeFileSync(`${dir}/server.key`, key);
            fs.writeFileSync(`${dir}/ssl-unified.crt`, chain);
            fs.writeFileSync(`${dir}/old.pem`, "left by hand\n");
            execFileSync("chown", ["-R", `${web}:`, dir]);
            fs.chmodSync(`${dir}/server.key`, 0o400);
            fs.chmodSync(`${dir}/ssl-unified.crt`, 0o400);
            fs.chmodSync(dir, 0o500);
            const r = run(dir);
            assert.equal(r.status, 0, r.stderr);
            assert.equal(r.stdout.trim(), "key changed, chain changed", "same content, new owner: replaced");
            assert.match(r.stderr, new RegExp(`${dir} was owned by ${web}:`));
            assert.equal(stat(dir), "directory root:root 700");
            assert.equal(stat(`${dir}/server.key`), "regular file root:root 400");
            assert.equal(stat(`${dir}/ssl-unified.crt`), "regular file root:root 400");
            assert.match(stat(`${dir}/old.pem`), /^regular file root:root /);
            assert.equal(run(dir).stdout.trim(), "key unchanged, chain unchanged");
        });

        it("never writes through a symbolic link planted in the directory or in its place", () => {
            const dir = path.join(tmp, "ssl-links");
            const outside = path.join(tmp, "ssl-links-outside");
            fs.mkdirSync(outside);
            fs.writeFileSync(`${outside}/victim`, "not a key\n");
            fs.mkdirSync(dir);
            fs.symlinkSync(`${outside}/victim`, `${dir}/server.key`);
            fs.symlinkSync(`${outside}/missing`, `${dir}/ssl-unified.crt`);
            fs.symlinkSync(outside, `${dir}/elsewhere`);
            execFileSync("chown", ["-hR", `${web}:`, dir]);
            const r = run(dir);
            assert.equal(r.status, 0, r.stderr);
            assert.match(r.stderr, /removed the symbolic link at .*server\.key \(not followed\)/);
            assert.equal(fs.readFileSync(`${outside}/victim`, "utf8"), "not a key\n", "the link's target is untouched");
            assert.equal(fs.existsSync(`${outside}/missing`), false, "nothing created through a dangling link");
            assert.equal(stat(`${dir}/server.key`), "regular file root:root 400");
            assert.equal(stat(`${dir}/ssl-unified.crt`), "regular file root:root 400");
            assert.equal(stat(`${dir}/elsewhere`), "symbolic link root:root 777", "other links are re-owned (chown -h), not followed");
            assert.equal(stat(outside), "directory root:root 755");

            // SSLDIR itself a link to a directory of the web user: the link goes, a root directory replaces it.
            const linked = path.join(tmp, "ssl-linked");
            const target = path.join(tmp, "ssl-linked-target");
            fs.mkdirSync(target);
            execFileSync("chown", [`${web}:`, target]);
            fs.symlinkSync(target, linked);
            const r2 = run(linked);
            assert.equal(r2.status, 0, r2.stderr);
            assert.match(r2.stderr, /removed the symbolic link at .*ssl-linked \(not followed\)/);
            assert.equal(stat(linked), "directory root:root 700");
            assert.deepEqual(fs.readdirSync(target), [], "nothing written into the link's target");
            assert.match(stat(target), new RegExp(`^directory ${web}:`), "the target keeps its owner");
        });

        it("fails, writing nothing, when SSLDIR or a file's name is something else", () => {
            const file = path.join(tmp, "ssl-file");
            fs.writeFileSync(file, "x");
            const r = run(file);
            assert.notEqual(r.status, 0);
            assert.match(r.stderr, /ssl-file exists and is not a directory/);
            const dir = path.join(tmp, "ssl-dirkey");
            fs.mkdirSync(`${dir}/server.key`, { recursive: true });
            const r2 = run(dir);
            assert.notEqual(r2.status, 0);
            assert.match(r2.stderr, /server\.key exists and is not a regular file/);
            assert.deepEqual(fs.readdirSync(dir), ["server.key"], "the temporaries are removed");
        });
    });
});
