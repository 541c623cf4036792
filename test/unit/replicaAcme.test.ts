/**
 * The program with sslMode acme and a replica under Pulumi's mocks: each server gets its own
 * certificate for its own names from the ACME CA (issued and renewed on that server), no
 * Pulumi-made TLS resources exist, and the replica trusts the primary through acmeCaBundle.
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { Registered, runProgramUnderMocks, TEST_CERT, TEST_HOST_KEY as HOST_KEY, TEST_SSH_KEY as KEY, value } from "./programUnderMocks";

let registered = new Map<string, Registered>();
const text = (v: unknown) => value<unknown>(v).then(String);

before(async () => {
    ({ registered } = await runProgramUnderMocks(
        {
            "devpi:host": "203.0.113.10",
            "devpi:sshUser": "deploy",
            "devpi:sshPrivateKey": KEY,
            "devpi:hostKey": HOST_KEY,
            "devpi:domain": "devpi.example.com",
            "devpi:rootPassword": "root-secret-1",
            "devpi:sslMode": "acme",
            "devpi:acmeEmail": "ops@example.com",
            "devpi:acmeDirectoryUrl": "https://acme.example.com/dir",
            "devpi:acmeCaBundle": TEST_CERT,
            "devpi:replicas": JSON.stringify([{ name: "r1", host: "203.0.113.11", sshPrivateKey: KEY, domain: "r1.example.com", extraDnsNames: ["pypi-eu.example.com"], hostKey: HOST_KEY }]),
        },
        ["devpi:sshPrivateKey", "devpi:rootPassword", "devpi:replicas"],
    ));
});

describe("replicas with sslMode acme", () => {
    it("gives each server its own ACME client and certificate, and no Pulumi-made TLS resources", () => {
        const of = (type: string) =>
            [...registered.values()]
                .filter((r) => r.type === type)
                .map((r) => r.name)
                .sort();
        assert.deepEqual(of("devpi:index:AcmeClient"), ["acme-client", "replica-r1-acme-client"]);
        assert.deepEqual(of("devpi:index:AcmeCertificate"), ["acme", "replica-r1-acme"]);
        assert.deepEqual(of("devpi:index:SslCertificate"), []);
        assert.deepEqual(
            [...registered.values()].filter((r) => r.type.startsWith("tls:")),
            [],
            "no private CA, no Pulumi-made keys",
        );
    });

    it("asks the CA for each server's own names, from that server", async () => {
        const primaryIssue = await text(registered.get("acme-issue")!.inputs.stdin);
        const replicaIssue = await text(registered.get("replica-r1-acme-issue")!.inputs.stdin);
        assert.match(primaryIssue, /-d 'devpi\.example\.com'/);
        assert.doesNotMatch(primaryIssue, /r1\.example\.com/);
        assert.match(replicaIssue, /-d 'r1\.example\.com' -d 'pypi-eu\.example\.com'/);
        assert.doesNotMatch(replicaIssue, /devpi\.example\.com/);
        assert.ok(registered.get("replica-r1-acme-renewal"), "the replica renews its own certificate");
        assert.ok(registered.get("replica-r1-acme")!.dependsOn.includes("replica-r1-nginx"), "issued after its own site serves the challenge");
    });

    it("the replica trusts the primary, and checks itself, with acmeCaBundle", async () => {
        const bundle = TEST_CERT.trim();
        // (A step's stdin is its script, then its payload.)
        assert.ok((await text(registered.get("replica-r1-devpi-primary-ca")!.inputs.stdin)).trimEnd().endsWith(bundle), "devpi's trust bundle for primary-url");
        assert.ok((await text(registered.get("replica-r1-resync-identity")!.inputs.stdin)).trimEnd().endsWith(bundle));
        const health = await text(registered.get("replica-r1-health-https")!.inputs.stdin);
        assert.ok(health.includes(bundle), "the replica's health check verifies with the ACME CA");
        assert.match(health, /'https:\/\/devpi\.example\.com' 'r1\.example\.com' '443' '120'/);
    });
});
