/**
 * The whole program in sslMode acme under Pulumi's mocks: certbot's setup before the nginx site,
 * the issuance after it (HTTP-01 needs the site), the health check after the issuance, no
 * @pulumi/tls resources (no key made or kept by Pulumi), and the certificate outputs.
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { Registered, runProgramUnderMocks, TEST_HOST_KEY as HOST_KEY, TEST_SSH_KEY as KEY, value } from "./programUnderMocks";

const ISSUED = "sha256=0a1b2c\nnotAfter=Nov 29 21:00:00 2031 GMT\nissuer=CN=Pebble Intermediate CA 45c5eb\n";
let registered = new Map<string, Registered>();
let exports: Record<string, unknown>;

/** A step's script as bash sees it (remote steps carry it single-quoted inside `bash -c '...'`). */
async function script(name: string): Promise<string> {
    return (await value<string>(registered.get(name)?.inputs.stdin)).replace(/'\\''/g, "'");
}

before(async () => {
    ({ registered, exports } = await runProgramUnderMocks(
        {
            "devpi:host": "203.0.113.10",
            "devpi:sshPrivateKey": KEY,
            "devpi:hostKey": HOST_KEY,
            "devpi:domain": "devpi.example.com",
            "devpi:extraDnsNames": JSON.stringify(["pypi.example.com"]),
            "devpi:rootPassword": "root-secret-1",
            "devpi:sslMode": "acme",
            "devpi:acmeEmail": "ops@example.com",
        },
        ["devpi:sshPrivateKey", "devpi:rootPassword"],
        (name) => (name === "acme-issue" ? ISSUED : "ok"),
    ));
});

describe("the program in sslMode acme", () => {
    it("replaces SslCertificate by certbot's setup and certificate, with no key in Pulumi", () => {
        const names = [...registered.values()].map((r) => `${r.type} ${r.name}`);
        assert.ok(names.includes("devpi:index:AcmeClient acme-client"));
        assert.ok(names.includes("devpi:index:AcmeCertificate acme"));
        for (const n of ["acme-client-certbot", "acme-issue", "acme-renewal"]) assert.ok(registered.has(n), n);
        assert.equal(registered.get("acme-issue")?.parent, "acme");
        assert.equal(registered.get("acme-client-certbot")?.parent, "acme-client");
        assert.deepEqual(
            names.filter((n) => n.startsWith("tls:") || n.includes("SslCertificate") || n.endsWith(" ssl-files")),
            [],
        );
    });

    it("orders certbot's setup after the host's packages, the site after it, the issuance after the site, the check after the issuance", () => {
        assert.deepEqual(registered.get("acme-client")?.dependsOn, ["host"]);
        assert.ok(registered.get("nginx")?.dependsOn.includes("acme-client"));
        assert.deepEqual(registered.get("acme")?.dependsOn, ["nginx"]);
        assert.deepEqual(registered.get("acme-renewal")?.dependsOn, ["acme-issue"]);
        assert.ok(registered.get("health")?.dependsOn.includes("acme"));
    });

    it("installs certbot with the host's packages and serves the challenge path", async () => {
        const packages = await script("host-service-packages");
        assert.match(packages, /'cron' 'certbot'\)/);
        assert.match(await script("host-packages"), /pkgs=\('python3' 'python3-venv' 'ca-certificates'\)/);
        const site = await script("nginx-site");
        assert.match(site, /location \^~ \/\.well-known\/acme-challenge\/ \{\n\s+root \/var\/lib\/devpi-acme\/webroot;/);
        assert.match(site, /ssl_certificate \/srv\/ssl\/devpi\/acme\.crt;/);
        const issue = await script("acme-issue");
        assert.match(issue, /--server 'https:\/\/acme-v02\.api\.letsencrypt\.org\/directory'/);
        assert.match(issue, /-d 'devpi\.example\.com' -d 'pypi\.example\.com'/);
    });

    it("exports the issued certificate's sha256, expiry and issuer", async () => {
        assert.equal(await value<string>(exports.certificateSha256), "0a1b2c");
        assert.equal(await value<string>(exports.certificateExpiry), "2031-11-29T21:00:00.000Z");
        assert.equal(await value<string>(exports.certificateIssuer), "CN=Pebble Intermediate CA 45c5eb");
        assert.equal(await value<string>(exports.caCertificate), "");
    });
});
