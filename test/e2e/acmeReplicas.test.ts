/**
 * End to end, sslMode acme with a replica: one `pulumi up` gets each server its own certificate
 * from a real ACME server on loopback (Debian's pebble), each issued on its own host over
 * HTTP-01, and the replica follows the primary over HTTPS, trusting it through acmeCaBundle.
 *
 * The two test hosts share this machine's loopback, where real servers would each have their
 * own address: pebble's HTTP-01 checks go through `routeByHostName` to the named host's nginx,
 * and each host's /etc/hosts maps both names to 127.0.0.1 (what DNS does for real servers).
 */
import assert from "node:assert/strict";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import type * as http from "node:http";
import * as https from "node:https";
import type { LookupFunction } from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe } from "node:test";
import { Stack } from "@pulumi/pulumi/automation";
import { buildPackage, cleanUp, clientVenv, createStack, EventLog, fingerprintHex, hostConfig, onHost, projectCopy, setReplicaConfig, startHost, steps, stopHost, TestHost } from "./harness";
import { Pebble, routeByHostName } from "./pebble";

const PRIMARY = { name: "acr-p", domain: "devpi.acmerep.test", ports: { ssh: 27101, http: 27180, https: 27543, devpi: 27140 } };
const REPLICA = { name: "acr-r1", label: "r1", domain: "r1.acmerep.test", ports: { ssh: 27102, http: 27181, https: 27544, devpi: 27141 } };
const PEBBLE_PORTS = { acme: 27114, management: 27115, dns: 27153, dnsManagement: 27155, http: 27190, tls: 27191 };
const ROOT_PASSWORD = "root-Pw-acr-5521";
const ALICE_PASSWORD = "alice-Pw-acr-8830";
const PKG = "e2e-acr";

let primary: TestHost;
let replica: TestHost;
let stack: Stack;
let pebble: Pebble;
let pebbleRoot = "";
let router: http.Server | undefined;
const log = new EventLog();
const work = fs.mkdtempSync(path.join(os.tmpdir(), "devpi-e2e-acr-"));
const backend = path.join(work, "state");

/** Every name resolves to 127.0.0.1 (both hosts listen there, on their own ports). */
const loopback: LookupFunction = (_host, options, cb) => {
    if (options.all) (cb as unknown as (e: null, a: { address: string; family: number }[]) => void)(null, [{ address: "127.0.0.1", family: 4 }]);
    else cb(null, "127.0.0.1", 4);
};

interface Answer {
    status: number;
    body: string;
    cert: { fingerprint256: string; subjectaltname?: string; issuer: Record<string, string> };
}

/** An HTTPS request to `name:port` (on loopback), trusting only `ca`. */
function request(name: string, port: number, pathname: string, opts: { method?: string; headers?: Record<string, string>; body?: Buffer } = {}): Promise<Answer> {
    return new Promise((resolve, reject) => {
        const req = https.request(
            { host: name, port, path: pathname, method: opts.method ?? "GET", lookup: loopback, ca: pebbleRoot, agent: false, headers: { Accept: "application/json", ...opts.headers } },
            (res) => {
                const cert = (res.socket as unknown as { getPeerCertificate(): Answer["cert"] }).getPeerCertificate();
                let body = "";
                res.on("data", (c: Buffer) => (body += c.toString()));
                res.on("end", () => resolve({ status: res.statusCode ?? 0, body, cert }));
            },
        );
        req.on("error", reject);
        req.end(opts.body);
    });
}

/** Uploads a wheel to USER/INDEX on the primary as twine does (multipart form, basic auth). */
async function upload(wheel: string, version: string): Promise<Answer> {
    const boundary = `----devpi-e2e-${crypto.randomBytes(8).toString("hex")}`;
    const field = (k: string, v: string) => `--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`;
    const fields = { ":action": "file_upload", protocol_version: "1", name: PKG, version, filetype: "bdist_wheel", pyversion: "py3", metadata_version: "2.1" };
    const body = Buffer.concat([
        Buffer.from(
            Object.entries(fields)
                .map(([k, v]) => field(k, v))
                .join(""),
        ),
        Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="content"; filename="${path.basename(wheel)}"\r\nContent-Type: application/octet-stream\r\n\r\n`),
        fs.readFileSync(wheel),
        Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    return request(PRIMARY.domain, PRIMARY.ports.https, "/alice/dev/", {
        method: "POST",
        body,
        headers: { "Content-Type": `multipart/form-data; boundary=${boundary}`, Authorization: `Basic ${Buffer.from(`alice:${ALICE_PASSWORD}`).toString("base64")}` },
    });
}

async function up() {
    log.clear();
    return stack.up({ onEvent: log.onEvent, onOutput: log.onOutput, color: "never" });
}

describe("sslMode acme with a replica, against pebble on loopback", { timeout: 60 * 60 * 1000 }, () => {
    const it = steps();
    before(async () => {
        pebble = new Pebble(path.join(work, "pebble"), PEBBLE_PORTS);
        await pebble.start();
        pebbleRoot = await pebble.root();
        router = await routeByHostName(PEBBLE_PORTS.http, { [PRIMARY.domain]: PRIMARY.ports.http, [REPLICA.domain]: REPLICA.ports.http });
        primary = startHost(PRIMARY.name, PRIMARY.ports.ssh);
        replica = startHost(REPLICA.name, REPLICA.ports.ssh);
        for (const h of [primary, replica]) onHost(h, `echo '127.0.0.1 ${PRIMARY.domain} ${REPLICA.domain}' >> /etc/hosts`);
        fs.mkdirSync(backend);
        stack = await createStack("e2e-acme-replicas", projectCopy(), backend);
        await stack.setAllConfig({
            ...hostConfig(primary, PRIMARY.ports),
            "devpi:domain": { value: PRIMARY.domain },
            "devpi:rootPassword": { value: ROOT_PASSWORD, secret: true },
            "devpi:sslMode": { value: "acme" },
            "devpi:acmeEmail": { value: "ops@acmerep.test" },
            "devpi:acmeDirectoryUrl": { value: pebble.directoryUrl },
            "devpi:acmeCaBundle": { value: fs.readFileSync(pebble.tlsCaFile, "utf8") + pebbleRoot },
        });
        await stack.setConfig("users.alice.password", { value: ALICE_PASSWORD, secret: true }, true);
        await stack.setConfig('indexes["alice/dev"].volatile', { value: "false" }, true);
        await setReplicaConfig(stack, 0, replica, { name: REPLICA.label, domain: REPLICA.domain, ports: REPLICA.ports });
    });
    after(async () => {
        router?.close();
        await pebble?.stop();
        if (process.env.DEVPI_E2E_KEEP !== "1") stopHost(REPLICA.name);
        await cleanUp(stack, PRIMARY.name, work);
    });

    it("one pulumi up gets each server its own certificate from pebble, issued on that server", async () => {
        const result = await up();
        assert.equal(result.summary.result, "succeeded");
        assert.equal(pebble.issued(), 2, "pebble issued one certificate per server");
        for (const [first, then] of [
            ["replica-r1-nginx-site", "replica-r1-acme-issue"],
            ["replica-r1-acme-issue", "replica-r1-health-https"],
            ["health-https", "replica-r1-supervisor-program"],
        ]) {
            assert.ok(log.finished(first) >= 0 && log.finished(first) < log.started(then), `${first} finishes before ${then} starts`);
        }
        const outputs = await stack.outputs();
        const clients = outputs.replicaClients.value as Record<string, { url: string; certificateSha256: string; healthCheck: string }>;
        assert.equal(clients.r1.url, `https://${REPLICA.domain}:${REPLICA.ports.https}`);
        assert.match(clients.r1.healthCheck, /healthy/);
        assert.notEqual(clients.r1.certificateSha256, outputs.certificateSha256.value, "two certificates");
        for (const [server, h, want] of [
            [PRIMARY, primary, String(outputs.certificateSha256.value)],
            [REPLICA, replica, clients.r1.certificateSha256],
        ] as const) {
            const api = await request(server.domain, server.ports.https, "/+api");
            assert.equal(api.status, 200);
            assert.equal(fingerprintHex(api.cert.fingerprint256), want, `${server.domain} serves the certificate its outputs name`);
            assert.match(api.cert.issuer.CN ?? "", /^Pebble Intermediate CA/);
            assert.equal(api.cert.subjectaltname, `DNS:${server.domain}`, "each certificate names its own server only");
            assert.equal(onHost(h, "readlink /srv/ssl/devpi/acme.key").trim(), "/etc/letsencrypt/live/devpi/privkey.pem", "the key stays on its server");
            assert.match(onHost(h, "cat /etc/cron.d/devpi-acme"), /devpi-acme-renew/, "each server renews its own certificate");
        }
        assert.ok(onHost(replica, "cat /etc/devpi/ca-bundle.pem").includes(pebbleRoot.trim()), "the replica's devpi trusts the ACME CA for primary-url");
    });

    it("an upload to the primary replicates and installs with pip on the replica host from the replica, verified with the ACME CA", async () => {
        const wheel = buildPackage(clientVenv(), PKG, "1.0.0", path.join(work, "dist"));
        const r = await upload(wheel, "1.0.0");
        assert.equal(r.status, 200, r.body);
        const since = Date.now();
        let page = await request(REPLICA.domain, REPLICA.ports.https, `/alice/dev/+simple/${PKG}/`, { headers: { Accept: "text/html" } });
        while (!(page.status === 200 && page.body.includes("e2e_acr-1.0.0")) && Date.now() - since < 60_000) {
            await new Promise((res) => setTimeout(res, 300));
            page = await request(REPLICA.domain, REPLICA.ports.https, `/alice/dev/+simple/${PKG}/`, { headers: { Accept: "text/html" } });
        }
        assert.ok(page.body.includes("e2e_acr-1.0.0"), `the replica lists the upload (HTTP ${page.status})`);
        console.log(`# the upload was on the replica after ${((Date.now() - since) / 1000).toFixed(1)} s`);
        // Real pip, on the replica host, against the replica's public name and certificate.
        const out = onHost(
            replica,
            `/opt/devpi/venv/bin/pip download --no-deps --no-cache-dir --disable-pip-version-check -d /tmp/acr-dl --cert /etc/devpi/ca-bundle.pem --index-url https://${REPLICA.domain}:${REPLICA.ports.https}/alice/dev/+simple/ ${PKG}==1.0.0 2>&1`,
        );
        assert.match(out, /Saved \/tmp\/acr-dl\/e2e_acr-1\.0\.0-py3-none-any\.whl/, out);
        assert.equal(onHost(replica, "sha256sum /tmp/acr-dl/e2e_acr-1.0.0-py3-none-any.whl").split(" ")[0], crypto.createHash("sha256").update(fs.readFileSync(wheel)).digest("hex"));
    });

    it("a second pulumi up changes nothing and requests nothing", async () => {
        const issued = pebble.issued();
        const result = await up();
        assert.equal(result.summary.result, "succeeded");
        assert.deepEqual(log.changed(), []);
        assert.equal(pebble.issued(), issued);
        const preview = await stack.preview({ expectNoChanges: true, color: "never" });
        assert.deepEqual(Object.keys(preview.changeSummary), ["same"]);
    });
});
