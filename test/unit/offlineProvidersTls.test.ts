// The tls stand-in (tools/offline-providers): keys and certificates checked
// with the real openssl and ssh-keygen, and the plugin driven over the
// ResourceProvider gRPC protocol the way the Pulumi engine drives it.

import assert from "node:assert/strict";
import * as child_process from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { PluginUnderTest, urnOf } from "../../tools/offline-providers/testing/plugin";
import { generateKey, privateKeyAttributes } from "../../tools/offline-providers/src/tls/keys";

const SECRET_KEY = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";
const isSecret = (v: unknown) => typeof v === "object" && v !== null && (v as Record<string, unknown>)[SECRET_KEY] === SECRET_SIG;
const plain = (v: unknown): string => (isSecret(v) ? (v as { value: string }).value : (v as string));

const PK = "tls:index/privateKey:PrivateKey";
const SSC = "tls:index/selfSignedCert:SelfSignedCert";
const CR = "tls:index/certRequest:CertRequest";
const LSC = "tls:index/locallySignedCert:LocallySignedCert";

const missingTool = ["openssl", "ssh-keygen"].find((t) => child_process.spawnSync(t, ["version"], { stdio: "ignore" }).error);

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "offline-tls-"));
let n = 0;
function file(content: string): string {
    const f = path.join(tmp, `f${n++}`);
    fs.writeFileSync(f, content, { mode: 0o600 });
    return f;
}
function run(cmd: string, args: string[]): string {
    const r = child_process.spawnSync(cmd, args, { encoding: "utf8" });
    if (r.status !== 0) {
        throw new Error(`${cmd} ${args.join(" ")} failed (${r.status}): ${r.stdout}${r.stderr}`);
    }
    return r.stdout + r.stderr;
}
const x509Text = (pem: string) => run("openssl", ["x509", "-noout", "-text", "-in", file(pem)]);

describe("offline tls stand-in", { skip: missingTool ? `${missingTool} not installed` : false }, () => {
    after(() => fs.rmSync(tmp, { recursive: true, force: true }));

    describe("private keys", () => {
        const variants: [string, number, string][] = [
            ["RSA", 2048, "P224"],
            ["ECDSA", 2048, "P224"],
            ["ECDSA", 2048, "P256"],
            ["ECDSA", 2048, "P384"],
            ["ECDSA", 2048, "P521"],
            ["ED25519", 2048, "P224"],
        ];
        for (const [alg, bits, curve] of variants) {
            it(`${alg} ${alg === "ECDSA" ? curve : ""} encodings are what openssl / ssh-keygen expect`, () => {
                const a = privateKeyAttributes(generateKey(alg, bits, curve));
                const preamble = { RSA: "RSA PRIVATE KEY", ECDSA: "EC PRIVATE KEY", ED25519: "PRIVATE KEY" }[alg];
                assert.match(a.privateKeyPem, new RegExp(`^-----BEGIN ${preamble}-----\\n`));
                assert.match(a.privateKeyPemPkcs8, /^-----BEGIN PRIVATE KEY-----\n/);
                assert.ok(a.publicKeyPem.endsWith("-----END PUBLIC KEY-----\n"));
                // All PEM encodings are the same key.
                const pubFromPem = run("openssl", ["pkey", "-in", file(a.privateKeyPem), "-pubout"]);
                const pubFromPkcs8 = run("openssl", ["pkey", "-in", file(a.privateKeyPemPkcs8), "-pubout"]);
                assert.equal(pubFromPem, a.publicKeyPem);
                assert.equal(pubFromPkcs8, a.publicKeyPem);
                assert.match(a.id, /^[0-9a-f]{40}$/);
                if (alg === "ECDSA" && curve === "P224") {
                    // SSH has no P-224: the official provider leaves these empty.
                    assert.equal(a.privateKeyOpenssh, "");
                    assert.equal(a.publicKeyOpenssh, "");
                    assert.equal(a.publicKeyFingerprintMd5, "");
                    assert.equal(a.publicKeyFingerprintSha256, "");
                    return;
                }
                assert.match(a.privateKeyOpenssh, /^-----BEGIN OPENSSH PRIVATE KEY-----\n/);
                assert.ok(a.publicKeyOpenssh.endsWith("\n") && a.publicKeyOpenssh.split(" ").length === 2, "no comment, trailing newline");
                const keyFile = file(a.privateKeyOpenssh);
                assert.equal(run("ssh-keygen", ["-y", "-f", keyFile]).trim(), a.publicKeyOpenssh.trim());
                const pubFile = file(a.publicKeyOpenssh);
                assert.match(run("ssh-keygen", ["-l", "-E", "sha256", "-f", pubFile]), new RegExp(a.publicKeyFingerprintSha256.replace(/[+/]/g, "\\$&")));
                assert.match(run("ssh-keygen", ["-l", "-E", "md5", "-f", pubFile]), new RegExp(`MD5:${a.publicKeyFingerprintMd5}`));
                // ssh-keygen can also read the traditional PEM of RSA / ECDSA keys.
                if (alg !== "ED25519") {
                    assert.equal(run("ssh-keygen", ["-y", "-f", file(a.privateKeyPem)]).trim(), a.publicKeyOpenssh.trim());
                }
            });
        }
    });

    describe("plugin over gRPC", () => {
        let plugin: PluginUnderTest;
        before(async () => {
            plugin = await PluginUnderTest.start("tls");
        });
        after(async () => plugin?.stop());

        async function create(type: string, name: string, inputs: Record<string, unknown>) {
            const urn = urnOf(type, name);
            const checked = await plugin.check(urn, {}, inputs);
            assert.deepEqual(checked.failures, []);
            return { urn, ...(await plugin.create(urn, checked.inputs)), inputs: checked.inputs };
        }

        it("reports the version the SDK asks for", async () => {
            assert.equal(await plugin.pluginVersion(), "5.6.1");
        });

        it("also runs straight from the TypeScript sources (tsx fallback of the launcher)", async () => {
            const viaTsx = await PluginUnderTest.start("tls", { ...process.env, OFFLINE_PROVIDERS_USE_TSX: "1" });
            try {
                assert.equal(await viaTsx.pluginVersion(), "5.6.1");
                const r = await viaTsx.create(urnOf(PK, "tsx-key"), { algorithm: "ED25519" });
                assert.match(r.outs.publicKeyOpenssh as string, /^ssh-ed25519 /);
            } finally {
                await viaTsx.stop();
            }
        });

        it("builds a CA, a CSR and a locally signed server certificate that openssl verifies", async () => {
            const caKey = await create(PK, "ca-key", { algorithm: "ECDSA", ecdsaCurve: "P256" });
            assert.deepEqual(Object.keys(caKey.outs).sort(), [
                "algorithm",
                "ecdsaCurve",
                "privateKeyOpenssh",
                "privateKeyPem",
                "privateKeyPemPkcs8",
                "publicKeyFingerprintMd5",
                "publicKeyFingerprintSha256",
                "publicKeyOpenssh",
                "publicKeyPem",
                "rsaBits",
            ]);
            assert.equal(caKey.outs.rsaBits, 2048);
            for (const k of ["privateKeyPem", "privateKeyPemPkcs8", "privateKeyOpenssh"]) {
                assert.ok(isSecret(caKey.outs[k]), `${k} is secret`);
            }
            assert.ok(!isSecret(caKey.outs.publicKeyPem));

            const before = Date.now();
            const ca = await create(SSC, "ca", {
                privateKeyPem: caKey.outs.privateKeyPem,
                isCaCertificate: true,
                validityPeriodHours: 87600,
                earlyRenewalHours: 720,
                allowedUses: ["cert_signing", "crl_signing", "digital_signature"],
                subject: { commonName: "devpi test CA", organization: "Example & Co" },
            });
            assert.match(ca.id, /^\d+$/);
            assert.equal(ca.outs.keyAlgorithm, "ECDSA");
            assert.equal(ca.outs.readyForRenewal, false);
            assert.ok(isSecret(ca.outs.privateKeyPem));
            const start = Date.parse(ca.outs.validityStartTime as string);
            assert.ok(start >= before - 1000 && start <= Date.now() + 1000);
            assert.equal(Date.parse(ca.outs.validityEndTime as string) - start, 87600 * 3600_000);
            const caText = x509Text(ca.outs.certPem as string);
            assert.match(caText, /Subject: O = Example & Co, CN = devpi test CA/);
            assert.match(caText, /X509v3 Basic Constraints: critical\n\s+CA:TRUE\n/);
            assert.match(caText, /X509v3 Key Usage: critical\n\s+Digital Signature, Certificate Sign, CRL Sign\n/);
            assert.match(caText, /X509v3 Subject Key Identifier/);
            assert.match(caText, /Signature Algorithm: ecdsa-with-SHA256/);
            assert.equal(
                BigInt(
                    "0x" +
                        run("openssl", ["x509", "-noout", "-serial", "-in", file(ca.outs.certPem as string)])
                            .trim()
                            .split("=")[1],
                ).toString(),
                ca.id,
            );

            const serverKey = await create(PK, "server-key", { algorithm: "RSA", rsaBits: 2048 });
            const csr = await create(CR, "server-csr", {
                privateKeyPem: serverKey.outs.privateKeyPem,
                subject: { commonName: "devpi.example.test", organization: "Example", emailAddress: "ops@example.test" },
                dnsNames: ["devpi.example.test", "localhost"],
                ipAddresses: ["127.0.0.1", "::1"],
            });
            assert.equal(csr.outs.keyAlgorithm, "RSA");
            const csrText = run("openssl", ["req", "-noout", "-text", "-verify", "-in", file(csr.outs.certRequestPem as string)]);
            assert.match(csrText, /verify OK|Certificate request self-signature verify OK/);
            assert.match(csrText, /DNS:devpi\.example\.test, DNS:localhost, IP Address:127\.0\.0\.1, IP Address:0:0:0:0:0:0:0:1/);
            assert.match(csrText, /emailAddress = ops@example\.test/);

            const server = await create(LSC, "server", {
                certRequestPem: csr.outs.certRequestPem,
                caPrivateKeyPem: caKey.outs.privateKeyPem,
                caCertPem: ca.outs.certPem,
                validityPeriodHours: 2160,
                earlyRenewalHours: 360,
                allowedUses: ["key_encipherment", "digital_signature", "server_auth"],
            });
            assert.equal(server.outs.caKeyAlgorithm, "ECDSA");
            assert.ok(isSecret(server.outs.caPrivateKeyPem));
            const caFile = file(ca.outs.certPem as string);
            const serverFile = file(server.outs.certPem as string);
            assert.match(run("openssl", ["verify", "-CAfile", caFile, serverFile]), /: OK/);
            assert.match(run("openssl", ["verify", "-CAfile", caFile, "-purpose", "sslserver", serverFile]), /: OK/);
            const text = x509Text(server.outs.certPem as string);
            assert.match(text, /Issuer: O = Example & Co, CN = devpi test CA/);
            // Go re-encodes the CSR subject from the attributes it knows: the e-mail address is dropped.
            assert.match(text, /Subject: O = Example, CN = devpi\.example\.test\n/);
            assert.match(text, /X509v3 Subject Alternative Name: \n\s+DNS:devpi\.example\.test, DNS:localhost, IP Address:127\.0\.0\.1, IP Address:0:0:0:0:0:0:0:1/);
            assert.match(text, /X509v3 Key Usage: critical\n\s+Digital Signature, Key Encipherment\n/);
            assert.match(text, /X509v3 Extended Key Usage: \n\s+TLS Web Server Authentication\n/);
            assert.match(text, /X509v3 Basic Constraints: critical\n\s+CA:FALSE\n/);
            assert.match(text, /X509v3 Authority Key Identifier/);
            assert.doesNotMatch(text, /X509v3 Subject Key Identifier/);

            // The served certificate and key really work together for TLS.
            const tls = await import("node:tls");
            const srv = tls.createServer({ key: plain(serverKey.outs.privateKeyPem), cert: server.outs.certPem as string }, (s) => s.end("hi"));
            await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
            const port = (srv.address() as { port: number }).port;
            const got = await new Promise<string>((resolve, reject) => {
                const c = tls.connect({ host: "127.0.0.1", port, servername: "devpi.example.test", ca: ca.outs.certPem as string }, () => {
                    let data = "";
                    c.on("data", (d) => (data += d));
                    c.on("end", () => resolve(data));
                });
                c.on("error", reject);
            });
            srv.close();
            assert.equal(got, "hi");

            // A diff against the same inputs is empty; the renewal window is handled in read and diff.
            const same = await plugin.diff(server.id, server.urn, server.outs, server.inputs);
            assert.equal(same.changes, "none");
            const nearEnd = { ...server.outs, validityEndTime: new Date(Date.now() + 3600_000).toISOString() };
            const refreshed = await plugin.read(server.id, server.urn, nearEnd);
            assert.equal(refreshed.props.readyForRenewal, true);
            const renew = await plugin.diff(server.id, server.urn, refreshed.props, server.inputs);
            assert.deepEqual(renew, { changes: "some", replaces: ["readyForRenewal"], deleteBeforeReplace: false });
            const early = await plugin.diff(server.id, server.urn, server.outs, { ...server.inputs, earlyRenewalHours: 24 });
            assert.deepEqual(early, { changes: "some", replaces: [], deleteBeforeReplace: false });
            const updated = await plugin.update(server.id, server.urn, server.outs, { ...server.inputs, earlyRenewalHours: 24 });
            assert.equal(updated.earlyRenewalHours, 24);
            assert.equal(updated.certPem, server.outs.certPem);
        });

        it("self-signed ED25519, RSA and ECDSA (default curve P224) certificates with SANs, SKI/AKI and EKUs", async () => {
            for (const alg of ["ED25519", "RSA", "ECDSA"]) {
                const key = await create(PK, `k-${alg}`, { algorithm: alg });
                const cert = await create(SSC, `c-${alg}`, {
                    privateKeyPem: key.outs.privateKeyPem,
                    validityPeriodHours: 24,
                    allowedUses: ["digital_signature", "server_auth", "client_auth"],
                    dnsNames: ["a.example"],
                    uris: ["spiffe://example/a"],
                    setSubjectKeyId: true,
                    setAuthorityKeyId: true,
                    subject: { commonName: "a.example", country: "DE", streetAddresses: ["Street 1"] },
                });
                const f = file(cert.outs.certPem as string);
                assert.match(run("openssl", ["verify", "-CAfile", f, f]), /: OK/, alg);
                const text = x509Text(cert.outs.certPem as string);
                assert.match(text, /Subject: C = DE, street = Street 1, CN = a\.example/);
                assert.match(text, /DNS:a\.example, URI:spiffe:\/\/example\/a/);
                assert.match(text, /TLS Web Server Authentication, TLS Web Client Authentication/);
                assert.match(text, /X509v3 Subject Key Identifier/);
                assert.match(text, /X509v3 Authority Key Identifier/);
                const sigAlg = { ED25519: /Signature Algorithm: ED25519/, RSA: /Signature Algorithm: sha256WithRSAEncryption/, ECDSA: /ecdsa-with-SHA256/ }[alg]!;
                assert.match(text, sigAlg);
                // The subject key id is SHA-1 over Go's marshalling of the key (terraform-provider-tls generateSubjectKeyID).
                const pub = crypto.createPublicKey(plain(key.outs.publicKeyPem));
                const spkiBits = (() => {
                    const der = pub.export({ type: "spki", format: "der" });
                    const ecLen = { secp224r1: 57, prime256v1: 65 }[pub.asymmetricKeyDetails?.namedCurve ?? ""] ?? 0;
                    return der.subarray(der.length - (alg === "ED25519" ? 32 : alg === "RSA" ? 270 : ecLen));
                })();
                const goBytes = alg === "ED25519" ? Buffer.concat([Buffer.from([4, 32]), spkiBits]) : alg === "RSA" ? pub.export({ type: "pkcs1", format: "der" }) : spkiBits;
                const ski = crypto.createHash("sha1").update(goBytes).digest("hex").toUpperCase().match(/../g)!.join(":");
                assert.match(text, new RegExp(`Subject Key Identifier: \\n\\s+${ski}`), alg);
            }
        });

        it("a self-signed certificate with an empty subject marks the SAN critical", async () => {
            const key = await create(PK, "k-empty", { algorithm: "ED25519" });
            const cert = await create(SSC, "c-empty", { privateKeyPem: key.outs.privateKeyPem, validityPeriodHours: 1, allowedUses: [], ipAddresses: ["10.1.2.3"] });
            const text = x509Text(cert.outs.certPem as string);
            assert.match(text, /X509v3 Subject Alternative Name: critical\n\s+IP Address:10\.1\.2\.3/);
            assert.doesNotMatch(text, /Key Usage/);
        });

        it("a CA needs a subject; a wrong CA key is refused", async () => {
            const key = await create(PK, "k-ca", { algorithm: "ED25519" });
            await assert.rejects(
                create(SSC, "ca-nosubject", { privateKeyPem: key.outs.privateKeyPem, validityPeriodHours: 1, allowedUses: [], isCaCertificate: true }),
                /Must contain at least one Distinguished Name when creating Certificate Authority/,
            );
            const ca = await create(SSC, "ca-ok", {
                privateKeyPem: key.outs.privateKeyPem,
                validityPeriodHours: 1,
                allowedUses: ["cert_signing"],
                isCaCertificate: true,
                subject: { commonName: "x" },
            });
            const other = await create(PK, "k-other", { algorithm: "ED25519" });
            const csr = await create(CR, "csr-x", { privateKeyPem: other.outs.privateKeyPem, subject: { commonName: "y" } });
            await assert.rejects(
                create(LSC, "bad-ca-key", { certRequestPem: csr.outs.certRequestPem, caPrivateKeyPem: other.outs.privateKeyPem, caCertPem: ca.outs.certPem, validityPeriodHours: 1, allowedUses: [] }),
                /provided PrivateKey doesn't match parent's PublicKey/,
            );
        });

        it("a validity of 0 hours is ready for renewal at once and replaced on the next diff", async () => {
            const key = await create(PK, "k-zero", { algorithm: "ED25519" });
            const cert = await create(SSC, "c-zero", { privateKeyPem: key.outs.privateKeyPem, validityPeriodHours: 0, allowedUses: [], subject: { commonName: "z" } });
            assert.equal(cert.outs.readyForRenewal, true);
            const d = await plugin.diff(cert.id, cert.urn, cert.outs, cert.inputs);
            assert.deepEqual(d.replaces, ["readyForRenewal"]);
        });

        it("check reports Terraform-style validation failures", async () => {
            const r = await plugin.check(urnOf(PK, "bad"), {}, { algorithm: "DSA" });
            assert.equal(r.failures[0].property, "algorithm");
            assert.match(r.failures[0].reason, /must be one of/);
        });
    });
});
