/**
 * End to end, sslMode acme against a real ACME server on loopback (Debian's pebble, with
 * pebble-challtestsrv resolving every name to 127.0.0.1): certbot on a fresh Debian test host
 * gets a certificate over HTTP-01 through nginx's site; renewal on the server needs no `pulumi
 * up`; a second `pulumi up` requests nothing; a new name gets a new certificate; switching to
 * self-signed and back removes and restores the renewal job; with the CA down `pulumi up` fails
 * naming the directory and showing certbot's log while the old certificate keeps being served;
 * no private key reaches state, CLI output or argv. No public CA is ever contacted.
 */
import assert from "node:assert/strict";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe } from "node:test";
import { Stack } from "@pulumi/pulumi/automation";
import { cleanUp, clientVenv, createStack, EventLog, filesContaining, fingerprintHex, hostConfig, onHost, ProcessSampler, projectCopy, startHost, steps, TestHost } from "./harness";
import { Pebble } from "./pebble";

const HOST = "acme-e2e";
const PORTS = { ssh: 24122, http: 24180, https: 24443, devpi: 24140 };
const PEBBLE_PORTS = { acme: 24114, management: 24115, dns: 24153, dnsManagement: 24155, http: PORTS.http, tls: 24181 };
const DOMAIN = "devpi.acme.test";
const EXTRA = "pypi.acme.test";
const ROOT_PASSWORD = "root-Pw-acme-5521";

let host: TestHost;
let stack: Stack;
let pebble: Pebble;
let pebbleRoot = "";
const log = new EventLog();
/** The CLI's output of every run (EventLog keeps only the last one). */
const cli: string[] = [];
const sampler = new ProcessSampler(clientVenv(), () => host?.root);
const work = fs.mkdtempSync(path.join(os.tmpdir(), "devpi-e2e-acme-"));
const backend = path.join(work, "state");

interface Served {
    status: number;
    headers: http.IncomingHttpHeaders;
    body: string;
    cert?: { fingerprint256: string; serialNumber: string; subjectaltname?: string; issuer: Record<string, string> };
}

/** GET over HTTPS from 127.0.0.1 with SNI `name`, trusting only `ca`. */
function getHttps(pathname: string, ca: string, name = DOMAIN): Promise<Served> {
    return new Promise((resolve, reject) => {
        const req = https.get(
            { host: "127.0.0.1", port: PORTS.https, path: pathname, servername: name, ca, headers: { Host: `${name}:${PORTS.https}`, Accept: "application/json" }, agent: false },
            (res) => {
                const cert = (res.socket as unknown as { getPeerCertificate(): Served["cert"] }).getPeerCertificate();
                let body = "";
                res.on("data", (c: Buffer) => (body += c.toString()));
                res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, cert }));
            },
        );
        req.on("error", reject);
    });
}

function getHttp(pathname: string): Promise<Served> {
    return new Promise((resolve, reject) => {
        http.get({ host: "127.0.0.1", port: PORTS.http, path: pathname, headers: { Host: DOMAIN }, agent: false }, (res) => {
            let body = "";
            res.on("data", (c: Buffer) => (body += c.toString()));
            res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        }).on("error", reject);
    });
}

async function up() {
    log.clear();
    return stack.up({
        onEvent: log.onEvent,
        onOutput: (o) => {
            log.onOutput(o);
            cli.push(o);
        },
        color: "never",
    });
}

async function acmeConfig(): Promise<void> {
    await sampler.unsampled(() =>
        stack.setAllConfig({
            "devpi:sslMode": { value: "acme" },
            "devpi:acmeEmail": { value: "ops@acme.test" },
            "devpi:acmeDirectoryUrl": { value: pebble.directoryUrl },
            // certbot trusts pebble's HTTPS certificate's CA; the health check trusts pebble's root.
            "devpi:acmeCaBundle": { value: fs.readFileSync(pebble.tlsCaFile, "utf8") + pebbleRoot },
        }),
    );
}

function onServer(cmd: string): string {
    return onHost(host, cmd).trim();
}

describe("sslMode acme against pebble on loopback", { timeout: 60 * 60 * 1000 }, () => {
    const it = steps();
    let firstSerial = "";
    before(async () => {
        pebble = new Pebble(path.join(work, "pebble"), PEBBLE_PORTS);
        await pebble.start();
        pebbleRoot = await pebble.root();
        host = startHost(HOST, PORTS.ssh);
        fs.mkdirSync(backend);
        stack = await createStack("e2e-acme", projectCopy(), backend);
        await stack.setAllConfig({
            ...hostConfig(host, PORTS),
            "devpi:domain": { value: DOMAIN },
            "devpi:rootPassword": { value: ROOT_PASSWORD, secret: true },
        });
        await acmeConfig();
    });

    after(async () => {
        sampler.stop();
        await pebble?.stop();
        await cleanUp(stack, HOST, work);
    });

    it("pulumi up on a fresh host gets a certificate from pebble, after nginx serves port 80", async () => {
        sampler.start();
        const result = await up();
        assert.equal(result.summary.result, "succeeded");
        console.log(`test host: Debian ${onServer("cat /etc/debian_version")}, ${onServer("certbot --version 2>&1")}`);
        for (const [first, then] of [
            ["acme-client-certbot", "nginx-site"],
            ["nginx-site", "acme-issue"],
            ["acme-issue", "acme-renewal"],
            ["acme-issue", "health-https"],
        ]) {
            assert.ok(log.finished(first) >= 0 && log.finished(first) < log.started(then), `${first} finishes before ${then} starts`);
        }
        assert.equal(pebble.issued(), 1, "pebble issued exactly one certificate");
        const outputs = await stack.outputs();
        assert.match(String(outputs.certificateSha256.value), /^[0-9a-f]{64}$/);
        assert.match(String(outputs.certificateIssuer.value), /Pebble Intermediate CA/);
        assert.ok(Date.parse(String(outputs.certificateExpiry.value)) > Date.now() + 30 * 86400_000, `expiry ${outputs.certificateExpiry.value}`);
        assert.match(String(outputs.healthCheck.value), /healthy/);
    });

    it("serves HTTPS with pebble's certificate, verified with pebble's root only; HTTP redirects; the challenge path answers over HTTP", async () => {
        const outputs = await stack.outputs();
        const api = await getHttps("/+api", pebbleRoot);
        assert.equal(api.status, 200);
        assert.equal(fingerprintHex(api.cert?.fingerprint256), outputs.certificateSha256.value);
        assert.match(api.cert?.issuer.CN ?? "", /^Pebble Intermediate CA/);
        assert.match(api.cert?.subjectaltname ?? "", new RegExp(`DNS:${DOMAIN.replace(/\./g, "\\.")}`));
        firstSerial = api.cert!.serialNumber;
        // The chain nginx sends ends at pebble's intermediate; pebble's root alone verifies it, the TLS CA does not.
        const intermediate = new crypto.X509Certificate(await pebble.intermediate());
        assert.ok(intermediate.verify(new crypto.X509Certificate(pebbleRoot).publicKey), "pebble's intermediate is signed by its root");
        await assert.rejects(getHttps("/+api", fs.readFileSync(pebble.tlsCaFile, "utf8")), /unable to (get|verify)|self.signed|certificate/i);

        const redirect = await getHttp("/root/pypi/");
        assert.equal(redirect.status, 301);
        assert.equal(redirect.headers.location, `https://${DOMAIN}:${PORTS.https}/root/pypi/`);
        const token = `probe-${crypto.randomBytes(6).toString("hex")}`;
        onServer(`printf '%s' ${token}.content > /var/lib/devpi-acme/webroot/.well-known/acme-challenge/${token}`);
        const challenge = await getHttp(`/.well-known/acme-challenge/${token}`);
        assert.equal(challenge.status, 200);
        assert.equal(challenge.body, `${token}.content`);
        onServer(`rm -f /var/lib/devpi-acme/webroot/.well-known/acme-challenge/${token}`);
        assert.equal((await getHttp(`/.well-known/acme-challenge/${token}`)).status, 404);

        // The key is certbot's, on the server, readable by root only.
        assert.equal(onServer("readlink /srv/ssl/devpi/acme.key"), "/etc/letsencrypt/live/devpi/privkey.pem");
        assert.equal(onServer("stat -c %a /etc/letsencrypt/live"), "700");
        assert.match(onServer("cat /etc/cron.d/devpi-acme"), /devpi-acme-renew/);
    });

    it("a second pulumi up changes nothing and requests nothing", async () => {
        const issued = pebble.issued();
        // certbot keeps every certificate it got in its archive: certN.pem, one per issuance.
        const archived = () => onServer("ls /etc/letsencrypt/archive/devpi | grep -c '^cert'");
        const before_ = archived();
        assert.match(before_, /^[1-9]\d*$/);
        const result = await up();
        assert.equal(result.summary.result, "succeeded");
        assert.deepEqual(log.changed(), []);
        assert.equal(pebble.issued(), issued, "pebble issued nothing");
        assert.equal(archived(), before_, "certbot's archive has no new certificate");
    });

    it("a renewal forced on the server with certbot is served at once, and the next pulumi up is a no-op", async () => {
        const issued = pebble.issued();
        const out = onServer("/usr/local/sbin/devpi-acme-renew --force-renewal --no-random-sleep-on-renew 2>&1");
        assert.match(out, /Congratulations|renewed|success/i, out);
        assert.equal(pebble.issued(), issued + 1);
        assert.match(onServer("grep -h 'devpi-nginx-reload' /var/log/letsencrypt/letsencrypt.log* | tail -n 3"), /devpi-nginx-reload/, "certbot ran the deploy hook");
        // `nginx -s reload` only signals the master: connections made in the next moments may
        // still reach old workers, so look for the new serial for a few seconds.
        let served = await getHttps("/+api", pebbleRoot);
        for (let i = 0; i < 50 && served.cert?.serialNumber === firstSerial; i++) {
            await new Promise((r) => setTimeout(r, 200));
            served = await getHttps("/+api", pebbleRoot);
        }
        assert.equal(served.status, 200);
        assert.notEqual(served.cert?.serialNumber, firstSerial, "nginx serves the renewed certificate (new serial)");
        const hex = (x: string | undefined) => (x ?? "").toLowerCase().replace(/^0+/, "");
        assert.equal(
            hex(served.cert?.serialNumber),
            hex(onServer("openssl x509 -noout -serial -in /etc/letsencrypt/live/devpi/cert.pem | cut -d= -f2")),
            "the served certificate is certbot's live one",
        );
        const result = await up();
        assert.equal(result.summary.result, "succeeded");
        assert.deepEqual(log.changed(), []);
        assert.equal(pebble.issued(), issued + 1);
    });

    it("adding a name to extraDnsNames requests a certificate that carries it", async () => {
        const issued = pebble.issued();
        await stack.setConfig("extraDnsNames[0]", { value: EXTRA }, true);
        const result = await up();
        assert.equal(result.summary.result, "succeeded");
        assert.ok(log.changed().includes("update:acme-issue"), log.changed().join(" "));
        assert.equal(pebble.issued(), issued + 1);
        const served = await getHttps("/+api", pebbleRoot, EXTRA);
        assert.equal(served.status, 200);
        assert.match(served.cert?.subjectaltname ?? "", new RegExp(`DNS:${EXTRA.replace(/\./g, "\\.")}`));
        assert.match(served.cert?.subjectaltname ?? "", new RegExp(`DNS:${DOMAIN.replace(/\./g, "\\.")}`));
        assert.equal(fingerprintHex(served.cert?.fingerprint256), (await stack.outputs()).certificateSha256.value);
    });

    it("switching to self-signed removes certbot's certificate and renewal job; switching back issues again", async () => {
        await sampler.unsampled(async () => {
            for (const k of ["acmeEmail", "acmeDirectoryUrl", "acmeCaBundle"]) await stack.removeConfig(`devpi:${k}`);
            await stack.setConfig("devpi:sslMode", { value: "self-signed" });
        });
        let result = await up();
        assert.equal(result.summary.result, "succeeded");
        const outputs = await stack.outputs();
        const ca = String(outputs.caCertificate.value);
        assert.match(ca, /BEGIN CERTIFICATE/);
        const selfSigned = await getHttps("/+api", ca);
        assert.equal(fingerprintHex(selfSigned.cert?.fingerprint256), outputs.certificateSha256.value);
        assert.equal(
            onServer(
                "for f in /etc/cron.d/devpi-acme /etc/letsencrypt/renewal/devpi.conf /etc/letsencrypt/live/devpi /usr/local/sbin/devpi-acme-renew /srv/ssl/devpi/acme.crt; do [ -e $f ] && echo present $f; done; true",
            ),
            "",
            "no renewal job, certbot lineage or ACME links left",
        );
        // Debian's certbot timer/cron entry has nothing left to renew either.
        assert.match(onServer("certbot certificates 2>&1"), /No certificates found/);

        const issued = pebble.issued();
        await acmeConfig();
        result = await up();
        assert.equal(result.summary.result, "succeeded");
        assert.equal(pebble.issued(), issued + 1);
        const served = await getHttps("/+api", pebbleRoot);
        assert.equal(fingerprintHex(served.cert?.fingerprint256), (await stack.outputs()).certificateSha256.value);
        assert.match(onServer("cat /etc/cron.d/devpi-acme"), /devpi-acme-renew/);
        assert.equal(onServer("[ -e /srv/ssl/devpi/server.key ] && echo present || echo absent"), "absent", "self-signed files removed");
    });

    it("with the ACME server down, pulumi up fails naming the directory with certbot's log, and the old certificate stays served", async () => {
        const before_ = await getHttps("/+api", pebbleRoot);
        await pebble.stop();
        await stack.setConfig("extraDnsNames[1]", { value: "mirror.acme.test" }, true);
        await assert.rejects(up(), (e: unknown) => {
            const msg = String(e);
            assert.ok(msg.includes(`from the ACME directory ${pebble.directoryUrl}`), msg);
            assert.match(msg, /unreachable or not trusted/);
            assert.match(msg, /tail of \/var\/log\/letsencrypt\/letsencrypt\.log/);
            return true;
        });
        const after_ = await getHttps("/+api", pebbleRoot);
        assert.equal(after_.status, 200);
        assert.equal(after_.cert?.fingerprint256, before_.cert?.fingerprint256, "the previous certificate is still served");
    });

    it("no private key (certificate or ACME account) in state, CLI output or argv", () => {
        sampler.stop();
        const certKey = onServer("sed -n 2p /etc/letsencrypt/live/devpi/privkey.pem");
        const accountKey = onServer("cat /etc/letsencrypt/accounts/*/*/*/private_key.json | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"d\"])'");
        assert.ok(certKey.length > 20 && accountKey.length > 20);
        const argv = [...sampler.seen].join("\n");
        assert.ok(
            [...sampler.onHost].some((c) => c.includes("certbot")),
            "the sampler saw certbot run on the server",
        );
        for (const [what, secret] of [
            ["certificate key", certKey],
            ["account key", accountKey],
        ]) {
            assert.deepEqual(filesContaining(backend, secret), [], `${what} not in state`);
            assert.ok(!cli.join("").includes(secret), `${what} not in CLI output`);
            assert.ok(!argv.includes(secret), `${what} not in argv`);
        }
    });
});
