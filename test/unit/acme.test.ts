/**
 * sslMode acme's renderers: the nginx site with the challenge location (loaded and served by a
 * real nginx), certbot's deploy hook (run with a stand-in nginx), the renewal script and cron
 * entry, the issuance script (shellcheck) and the failure classifier.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as os from "node:os";
import * as path from "node:path";
import { after, describe, it } from "node:test";
import { PRELUDE } from "../../components/common/shell";
import { renderNginxSite } from "../../components/nginx/nginxConfig";
import {
    ACME_PATHS,
    CLASSIFY_PY,
    parseIssued,
    renderAcmeClientRemoveScript,
    renderAcmeClientScript,
    renderAcmeIssueRemoveScript,
    renderAcmeIssueScript,
    renderDeployHook,
    renderRenewCron,
    renderRenewCronRemoveScript,
    renderRenewCronScript,
    renderRenewScript,
} from "../../components/ssl/acmeScripts";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "devpi-acme-unit-"));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const issue = {
    sslDir: "/srv/ssl/devpi",
    names: ["devpi.example.com", "pypi.example.com"],
    email: "ops@example.com",
    directoryUrl: "https://acme-staging-v02.api.letsencrypt.org/directory",
    caBundle: false,
    renewBeforeDays: 30,
    httpsPort: 443,
};

function get(port: number, pathname: string): Promise<{ status: number; location?: string; body: string }> {
    return new Promise((resolve, reject) => {
        http.get({ host: "127.0.0.1", port, path: pathname, headers: { Host: "devpi.example.com" }, agent: false }, (res) => {
            let body = "";
            res.on("data", (c: Buffer) => (body += c.toString()));
            res.on("end", () => resolve({ status: res.statusCode ?? 0, location: res.headers.location, body }));
        }).on("error", reject);
    });
}

describe("nginx site with the ACME challenge location", () => {
    const dir = path.join(tmp, "nginx");
    const webroot = path.join(dir, "webroot");
    const site = {
        domain: "devpi.example.com",
        extraNames: ["pypi.example.com"],
        httpPort: 24190,
        httpsPort: 24191,
        listenIpv6: false,
        certPath: `${dir}/acme.crt`,
        keyPath: `${dir}/acme.key`,
        upstream: "127.0.0.1:24192",
        serverDir: `${dir}/data`,
        maxUploadMb: 1024,
        replication: false,
        acmeWebroot: webroot,
    };
    fs.mkdirSync(path.join(webroot, ".well-known/acme-challenge"), { recursive: true });
    fs.mkdirSync(path.join(dir, "data/+files"), { recursive: true });
    fs.chmodSync(tmp, 0o755);
    execFileSync(
        "openssl",
        ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", site.keyPath, "-out", site.certPath, "-days", "2", "-subj", "/CN=devpi.example.com"],
        { stdio: "pipe" },
    );
    const conf = renderNginxSite(site);
    fs.writeFileSync(`${dir}/site.conf`, conf);
    fs.writeFileSync(`${dir}/nginx.conf`, `pid ${dir}/nginx.pid;\nerror_log ${dir}/error.log;\ndaemon off;\nevents {}\nhttp {\n  access_log off;\n  include ${dir}/site.conf;\n}\n`);

    it("serves the challenge path only on the HTTP server, from certbot's webroot", () => {
        const http_ = conf.slice(0, conf.indexOf("listen 24191"));
        assert.match(http_, /location \^~ \/\.well-known\/acme-challenge\/ \{\n\s+root [^\n]*webroot;/);
        assert.equal(conf.match(/acme-challenge/g)?.length, 1);
        assert.doesNotMatch(renderNginxSite({ ...site, acmeWebroot: undefined }), /acme-challenge/);
    });

    it("passes the real nginx -t", () => {
        const r = spawnSync("nginx", ["-t", "-p", dir, "-c", `${dir}/nginx.conf`], { encoding: "utf8" });
        assert.equal(r.status, 0, r.stderr);
        assert.match(r.stderr, /test is successful/);
    });

    it("a real nginx answers challenges over HTTP and redirects everything else", async () => {
        fs.writeFileSync(path.join(webroot, ".well-known/acme-challenge/tok-123"), "tok-123.thumbprint");
        fs.chmodSync(dir, 0o755);
        const nginx = spawn("nginx", ["-p", dir, "-c", `${dir}/nginx.conf`], { stdio: "ignore" });
        try {
            let ok = false;
            for (let i = 0; i < 50 && !ok; i++) {
                ok = await get(site.httpPort, "/").then(
                    () => true,
                    () => new Promise<boolean>((r) => setTimeout(() => r(false), 100)),
                );
            }
            const challenge = await get(site.httpPort, "/.well-known/acme-challenge/tok-123");
            assert.equal(challenge.status, 200);
            assert.equal(challenge.body, "tok-123.thumbprint");
            assert.equal((await get(site.httpPort, "/.well-known/acme-challenge/missing")).status, 404);
            const other = await get(site.httpPort, "/root/pypi/");
            assert.equal(other.status, 301);
            assert.equal(other.location, "https://devpi.example.com:24191/root/pypi/");
        } finally {
            const gone = new Promise((r) => nginx.once("exit", r));
            nginx.kill("SIGQUIT");
            await gone;
        }
    });
});

describe("certbot's deploy hook", () => {
    const hook = renderDeployHook();
    const bin = path.join(tmp, "bin");
    const calls = path.join(tmp, "nginx-calls");
    fs.mkdirSync(bin, { recursive: true });
    const run = (lineage: string, nginxTestOk: boolean) => {
        fs.writeFileSync(path.join(bin, "nginx"), `#!/bin/sh\necho "$*" >> ${calls}\n[ "$1" != -t ] || ${nginxTestOk ? "exit 0" : '{ echo "emerg: broken" >&2; exit 1; }'}\n`, { mode: 0o755 });
        fs.rmSync(calls, { force: true });
        const r = spawnSync("sh", ["-c", hook], { env: { PATH: `${bin}:/usr/bin:/bin`, RENEWED_LINEAGE: lineage }, encoding: "utf8" });
        return { status: r.status, stderr: r.stderr, calls: fs.existsSync(calls) ? fs.readFileSync(calls, "utf8").trim().split("\n") : [] };
    };
    it("passes shellcheck", () => {
        const r = spawnSync("shellcheck", ["-"], { input: hook, encoding: "utf8" });
        assert.equal(r.status, 0, r.stdout);
    });
    it("checks nginx -t after a renewal of the devpi certificate", () => {
        const r = run("/etc/letsencrypt/live/devpi", true);
        assert.equal(r.status, 0, r.stderr);
        assert.equal(r.calls[0], "-t");
    });
    it("fails, without reloading, when nginx -t fails", () => {
        const r = run("/etc/letsencrypt/live/devpi", false);
        assert.equal(r.status, 1);
        assert.match(r.stderr, /nginx -t failed, nginx not reloaded and still serving the previous certificate/);
        assert.match(r.stderr, /emerg: broken/);
        assert.deepEqual(r.calls, ["-t"]);
    });
    it("ignores other certificates", () => {
        const r = run("/etc/letsencrypt/live/other.example.com", false);
        assert.equal(r.status, 0);
        assert.deepEqual(r.calls, []);
    });
    it("reloads a running nginx (pid file) after a good nginx -t", () => {
        assert.match(hook, /nginx -t[\s\S]*kill -0 "\$\(cat \/run\/nginx\.pid\)"[\s\S]*nginx -s reload/);
    });
});

describe("renewal", () => {
    it("the renew script runs certbot renew for the devpi lineage, trusting the private CA only when set", () => {
        const plain = renderRenewScript(false);
        const withCa = renderRenewScript(true);
        assert.match(plain, /^exec certbot renew --non-interactive --cert-name devpi "\$@"$/m);
        assert.doesNotMatch(plain, /REQUESTS_CA_BUNDLE/);
        assert.match(withCa, new RegExp(`^export REQUESTS_CA_BUNDLE='${ACME_PATHS.caBundle}'$`, "m"));
        for (const s of [plain, withCa]) assert.equal(spawnSync("shellcheck", ["-"], { input: s, encoding: "utf8" }).status, 0);
    });
    it("cron runs it twice a day as root", () => {
        const line = renderRenewCron()
            .split("\n")
            .find((l) => l.includes(ACME_PATHS.renewScript))!;
        const fields = line.split(/\s+/);
        assert.equal(fields.length >= 7, true);
        assert.deepEqual(fields.slice(1, 6), ["3,15", "*", "*", "*", "root"]);
        assert.equal(fields[6], ACME_PATHS.renewScript);
    });
});

describe("issuance script", () => {
    const scripts: Record<string, string> = {
        client: renderAcmeClientScript({ sslDir: "/srv/ssl/devpi", domain: "devpi.example.com", caBundlePem: "" }),
        clientWithCa: renderAcmeClientScript({ sslDir: "/srv/ssl/devpi", domain: "devpi.example.com", caBundlePem: "-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n" }),
        clientRemove: renderAcmeClientRemoveScript({ sslDir: "/srv/ssl/devpi" }),
        issue: renderAcmeIssueScript(issue),
        issueWithCa: renderAcmeIssueScript({ ...issue, caBundle: true }),
        issueRemove: renderAcmeIssueRemoveScript({ sslDir: "/srv/ssl/devpi" }),
        cron: renderRenewCronScript(),
        cronRemove: renderRenewCronRemoveScript(),
    };
    for (const [name, body] of Object.entries(scripts)) {
        it(`${name} passes shellcheck`, () => {
            const r = spawnSync("shellcheck", ["-s", "bash", "-"], { input: `#!/bin/bash\n${PRELUDE}${body}`, encoding: "utf8" });
            assert.equal(r.status, 0, r.stdout);
        });
    }
    it("asks certbot for every name with the webroot plugin, at the configured directory", () => {
        const s = scripts.issue;
        assert.match(s, /certbot certonly --non-interactive --agree-tos/);
        assert.match(s, /--server 'https:\/\/acme-staging-v02\.api\.letsencrypt\.org\/directory'/);
        assert.match(s, /--webroot --webroot-path '\/var\/lib\/devpi-acme\/webroot' -d 'devpi\.example\.com' -d 'pypi\.example\.com'/);
        assert.match(s, /^want='devpi\.example\.com,pypi\.example\.com'$/m);
        assert.doesNotMatch(s, /--nginx|PRIVATE KEY/);
    });
    it("requests nothing when the live certificate already has the names, directory and time left", () => {
        // The request sits in the else branch of the check on names, directory and expiry.
        const s = scripts.issue;
        const check = s.indexOf('if [ "$have" = "$want" ] && [ "$server" = ');
        assert.ok(check >= 0 && check < s.indexOf("certbot certonly"));
        assert.match(s, /-checkend 2592000/);
    });
    it("the temporary certificate is made on the server only when none is there", () => {
        assert.match(scripts.client, /if \[ ! -e '\/srv\/ssl\/devpi\/acme\.crt' \] \|\| \[ ! -e '\/srv\/ssl\/devpi\/acme\.key' \]; then/);
        assert.match(scripts.client, /openssl req -x509/);
        assert.match(scripts.client, /rm -f '\/etc\/letsencrypt\/devpi-acme-ca\.pem'; ca=none/);
        assert.match(scripts.clientWithCa, /devpi-acme-ca\.pem' 0644 'root:root'/);
    });
    it("removal deletes the lineage from certbot, so no renewal job is left for it", () => {
        assert.match(scripts.issueRemove, /certbot delete --non-interactive --cert-name devpi/);
        assert.match(scripts.cronRemove, /rm -f '\/etc\/cron\.d\/devpi-acme'/);
    });
});

describe("failure classification", () => {
    const classify = (text: string) => execFileSync("python3", ["-c", CLASSIFY_PY, "https://acme.example/dir"], { input: text, encoding: "utf8" }).trim();
    it("names a rate limit", () => {
        assert.match(classify("Error: urn:ietf:params:acme:error:rateLimited :: too many certificates (5) already issued"), /^rate limit/);
    });
    it("names DNS", () => {
        assert.match(classify("Type: dns\nDetail: DNS problem: NXDOMAIN looking up A for devpi.example.com"), /^DNS/);
    });
    it("names port 80", () => {
        assert.match(
            classify("Type: connection\nDetail: 203.0.113.1: Fetching http://devpi.example.com/.well-known/acme-challenge/x: Timeout during connect (likely firewall problem)"),
            /^port 80 unreachable/,
        );
    });
    it("names the directory when the CA cannot be reached", () => {
        assert.match(
            classify(
                "An unexpected error occurred:\nrequests.exceptions.ConnectionError: HTTPSConnectionPool(host='127.0.0.1', port=14000): Max retries exceeded with url: /dir (Caused by NewConnectionError(... Failed to establish a new connection: [Errno 111] Connection refused'))",
            ),
            /^the ACME directory https:\/\/acme\.example\/dir is unreachable/,
        );
    });
    it("otherwise points at the log", () => {
        assert.equal(classify("something else"), "see certbot's output and log below");
    });
});

describe("issued certificate outputs", () => {
    it("parses sha256, expiry and issuer from the issuance step's stdout", () => {
        const p = parseIssued("sha256=abc123\nnotAfter=Nov 29 21:00:00 2031 GMT\nissuer=CN=Pebble Intermediate CA 45c5eb\n");
        assert.deepEqual(p, { sha256: "abc123", notAfter: "2031-11-29T21:00:00.000Z", issuer: "CN=Pebble Intermediate CA 45c5eb" });
    });
});
