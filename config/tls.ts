/** The TLS keys: a provided certificate's checks and the ACME settings. */
import * as crypto from "node:crypto";
import { ConfigError, fail } from "./errors";
import { Reader, readLocalFile } from "./reader";
import { LETSENCRYPT_DIRECTORY, SslConfig } from "./types";

export function pemBlocks(pem: string, label: RegExp): string[] {
    return [...pem.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g)].filter((m) => label.test(m[1])).map((m) => m[0]);
}

/**
 * Checks a provided key and chain: parseable, matching, and not expired at `now`. Returns a
 * warning when the certificate expires within `warnDays` days of `now` (it still works; the run
 * goes on), else undefined.
 */
export function checkProvidedCertificate(chainPem: string, keyPem: string, now: Date, warnDays = 30): string | undefined {
    const certs = pemBlocks(chainPem, /^CERTIFICATE$/);
    if (certs.length === 0) {
        throw new ConfigError("devpi:sslCertificate: no PEM certificate found: must be a PEM chain, server certificate first");
    }
    let leaf: crypto.X509Certificate;
    try {
        leaf = new crypto.X509Certificate(certs[0]);
    } catch (e) {
        throw new ConfigError(`devpi:sslCertificate: the first certificate cannot be parsed (${(e as Error).message})`);
    }
    let key: crypto.KeyObject;
    try {
        key = crypto.createPrivateKey(keyPem);
    } catch (e) {
        throw new ConfigError(`devpi:sslPrivateKey: not a readable unencrypted PEM private key (${(e as Error).message})`);
    }
    if (!leaf.checkPrivateKey(key)) {
        throw new ConfigError(
            `devpi:sslPrivateKey: does not match the certificate for ${leaf.subject.replace(/\n/g, ", ")} (serial ${leaf.serialNumber}): provide the key the certificate was issued for`,
        );
    }
    const notAfter = new Date(leaf.validTo);
    if (notAfter.getTime() <= now.getTime()) {
        throw new ConfigError(`devpi:sslCertificate: the certificate expired on ${notAfter.toISOString()}: provide a current certificate`);
    }
    const daysLeft = (notAfter.getTime() - now.getTime()) / 86_400_000;
    if (daysLeft < warnDays) {
        return `devpi:sslCertificate: the certificate for ${leaf.subject.replace(/\n/g, ", ")} expires on ${notAfter.toISOString()} (in ${daysLeft.toFixed(1)} days, less than devpi:certRenewBeforeDays = ${warnDays}): nginx serves it until then; set a renewed certificate and run pulumi up before that date`;
    }
    return undefined;
}

/** Checks that the chain's last certificate was issued by (or is) the given CA certificate. */
export function checkIssuedBy(chainPem: string, caPem: string): void {
    let ca: crypto.X509Certificate;
    try {
        ca = new crypto.X509Certificate(caPem);
    } catch (e) {
        throw new ConfigError(`devpi:sslCaCertificate: not a PEM certificate (${(e as Error).message})`);
    }
    const certs = pemBlocks(chainPem, /^CERTIFICATE$/).map((c) => new crypto.X509Certificate(c));
    const top = certs[certs.length - 1];
    if (!(top.fingerprint256 === ca.fingerprint256 || (top.checkIssued(ca) && top.verify(ca.publicKey)))) {
        throw new ConfigError(`devpi:sslCaCertificate: ${ca.subject.replace(/\n/g, ", ")} did not issue the chain's last certificate (issuer ${top.issuer.replace(/\n/g, ", ")})`);
    }
}

/**
 * The names one server asks an ACME CA for (`prefix` is "" for the primary, `replicas[i].` for a
 * replica): DNS names a public CA can validate over HTTP-01, so no IP addresses and no localhost.
 */
export function checkAcmeNames(prefix: string, domain: string, extraDnsNames: string[], extraIpAddresses: string[]): void {
    if (domain === "localhost" || domain.endsWith(".localhost")) {
        fail(`${prefix}domain`, domain, "must be a public DNS name that resolves to this server when devpi:sslMode is acme (no CA validates localhost)");
    }
    if (extraIpAddresses.length > 0) {
        fail(`${prefix}extraIpAddresses`, extraIpAddresses, "must be empty when devpi:sslMode is acme (certbot requests DNS names only)");
    }
    for (const n of extraDnsNames) {
        if (!n.includes(".") || n === "localhost" || n.endsWith(".localhost")) fail(`${prefix}extraDnsNames`, n, "must be public DNS names when devpi:sslMode is acme");
    }
}

/**
 * The ACME keys: a contact e-mail, an https directory, names a public CA can validate over
 * HTTP-01 (no IP addresses, no `localhost`), and optionally the PEM bundle of a private CA.
 */
export function parseAcme(r: Reader, domain: string, ssl: SslConfig): Pick<SslConfig, "acmeEmail" | "acmeDirectoryUrl" | "acmeCaBundlePem"> {
    const email = r.optStr("acmeEmail");
    if (email === undefined) {
        throw new ConfigError("devpi:acmeEmail is required when devpi:sslMode is acme: `pulumi config set acmeEmail you@example.com` (the CA's expiry notices go there)");
    }
    if (!/^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$/.test(email)) fail("acmeEmail", email, "must be an e-mail address like ops@example.com");
    const directory = r.str("acmeDirectoryUrl", LETSENCRYPT_DIRECTORY);
    let url: URL | undefined;
    try {
        url = new URL(directory);
    } catch {
        url = undefined;
    }
    if (!url || url.protocol !== "https:" || !/^[A-Za-z0-9:/._~%?=&-]+$/.test(directory)) {
        fail("acmeDirectoryUrl", directory, `must be the https URL of an RFC 8555 directory, e.g. ${LETSENCRYPT_DIRECTORY} or https://acme-staging-v02.api.letsencrypt.org/directory`);
    }
    checkAcmeNames("", domain, ssl.extraDnsNames, ssl.extraIpAddresses);
    let bundle = r.optStr("acmeCaBundle");
    const bundleFile = r.optStr("acmeCaBundleFile");
    if (bundle !== undefined && bundleFile !== undefined) fail("acmeCaBundleFile", bundleFile, "set either acmeCaBundle or acmeCaBundleFile, not both");
    if (bundle === undefined && bundleFile !== undefined) bundle = readLocalFile("acmeCaBundleFile", bundleFile);
    let acmeCaBundlePem: string | undefined;
    if (bundle !== undefined) {
        const key = bundleFile !== undefined ? "acmeCaBundleFile" : "acmeCaBundle";
        const certs = pemBlocks(bundle, /^CERTIFICATE$/);
        if (certs.length === 0) fail(key, bundleFile ?? bundle.slice(0, 40), "must be PEM certificates (-----BEGIN CERTIFICATE-----)");
        for (const c of certs) {
            try {
                new crypto.X509Certificate(c);
            } catch (e) {
                fail(key, c.slice(0, 60), `holds a certificate that cannot be parsed (${(e as Error).message})`);
            }
        }
        acmeCaBundlePem = certs.join("\n") + "\n";
    }
    return { acmeEmail: email, acmeDirectoryUrl: directory, acmeCaBundlePem };
}
