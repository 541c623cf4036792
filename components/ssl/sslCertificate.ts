import * as crypto from "node:crypto";
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import { RemoteHost, remoteStep } from "../common/remoteStep";
import { renderSslFilesScript, renderSslRemoveScript } from "./sslFilesScript";

export interface SslCertificateArgs {
    host: RemoteHost;
    /** `self-signed`: a private CA and a server certificate made here. `provided`: bring your own. */
    mode: "self-signed" | "provided";
    /** The certificate's subject and first DNS name. */
    domain: pulumi.Input<string>;
    extraDnsNames?: pulumi.Input<string[]>;
    extraIpAddresses?: pulumi.Input<string[]>;
    /** Server directory for the files (seed: /srv/ssl/devpi); root's alone (see renderRootOnlyDirLines). */
    dir: string;
    /** Self-signed: server certificate lifetime and how long before expiry `pulumi up` renews it. */
    certValidityDays?: number;
    certRenewBeforeDays?: number;
    caValidityDays?: number;
    /**
     * Self-signed: a `pulumi up` within this many days of the CA's expiry re-issues the CA
     * certificate with the same key (so clients holding the old CA still verify the re-signed
     * server certificate until the old CA expires) and re-signs the server certificate. Default
     * 30; must be less than `caValidityDays`, or every run would re-issue the CA.
     */
    caRenewBeforeDays?: number;
    /** Provided: PEM chain, server certificate first. */
    providedChainPem?: pulumi.Input<string>;
    /** Provided: PEM private key (secret). */
    providedKeyPem?: pulumi.Input<string>;
    /** Provided by a private CA: its certificate, trusted by the health check and exported. */
    providedCaPem?: string;
    /**
     * Self-signed: the private CA that signs this server's certificate, made by another host's
     * SslCertificate (a replica's certificate is signed by the primary's CA). Absent: make one.
     */
    ca?: SigningCa;
}

/** A private CA able to sign server certificates. */
export interface SigningCa {
    /** The CA's private key (secret). */
    keyPem: pulumi.Output<string>;
    certPem: pulumi.Output<string>;
}

/** sha256 (lower-case hex) of the first certificate in a PEM chain. */
export function certificateSha256(chainPem: string): string {
    return new crypto.X509Certificate(chainPem).fingerprint256.replace(/:/g, "").toLowerCase();
}

/**
 * The TLS certificate files on the server: `server.key` and `ssl-unified.crt` (certificate plus
 * chain) in the SSL directory, root:root 0400 files in a root:root 0700 directory (nginx's master
 * reads them as root before it drops privileges; its workers never need them). In
 * self-signed mode a private CA (a stack output for clients to trust) signs a server certificate
 * that `pulumi up` renews once it is within `certRenewBeforeDays` of expiry.
 */
export class SslCertificate extends pulumi.ComponentResource {
    public readonly certPath: string;
    public readonly keyPath: string;
    /** PEM chain installed on the server. */
    public readonly chainPem: pulumi.Output<string>;
    /** sha256 of the server certificate: changes exactly when nginx must reload. */
    public readonly certSha256: pulumi.Output<string>;
    /** The private CA's certificate (self-signed, or provided with sslCaCertificate), for clients; else empty. */
    public readonly caCertPem: pulumi.Output<string>;
    /** The server certificate's notAfter (ISO 8601) and issuer (RFC 2253-like, one line). */
    public readonly notAfter: pulumi.Output<string>;
    public readonly issuer: pulumi.Output<string>;
    /** Resolves once the files are on the server. */
    public readonly installed: pulumi.Output<string>;
    /** Self-signed mode: the CA that signed this certificate, for other hosts' certificates. */
    public readonly signingCa?: SigningCa;

    constructor(name: string, args: SslCertificateArgs, opts?: pulumi.ComponentResourceOptions) {
        super("devpi:index:SslCertificate", name, {}, opts);
        const files = { dir: args.dir, keyFile: "server.key", chainFile: "ssl-unified.crt" };
        this.certPath = `${args.dir}/${files.chainFile}`;
        this.keyPath = `${args.dir}/${files.keyFile}`;

        let keyPem: pulumi.Output<string>;
        if (args.mode === "self-signed") {
            const signing = args.ca ?? this.makeCa(name, args);
            this.signingCa = signing;
            const serverKey = new tls.PrivateKey(`${name}-server-key`, { algorithm: "ECDSA", ecdsaCurve: "P256" }, { parent: this });
            const csr = new tls.CertRequest(
                `${name}-csr`,
                {
                    privateKeyPem: serverKey.privateKeyPem,
                    subject: { commonName: args.domain },
                    dnsNames: pulumi.all([args.domain, args.extraDnsNames ?? []]).apply(([domain, extra]) => [domain, ...extra]),
                    ipAddresses: args.extraIpAddresses ?? [],
                },
                { parent: this },
            );
            const cert = new tls.LocallySignedCert(
                `${name}-server`,
                {
                    certRequestPem: csr.certRequestPem,
                    caPrivateKeyPem: signing.keyPem,
                    caCertPem: signing.certPem,
                    validityPeriodHours: (args.certValidityDays ?? 90) * 24,
                    earlyRenewalHours: (args.certRenewBeforeDays ?? 30) * 24,
                    allowedUses: ["digital_signature", "key_encipherment", "server_auth"],
                },
                { parent: this },
            );
            keyPem = serverKey.privateKeyPem;
            this.chainPem = pulumi.all([cert.certPem, signing.certPem]).apply(([c, a]) => `${c.trim()}\n${a.trim()}\n`);
            this.caCertPem = signing.certPem;
        } else {
            if (!args.providedChainPem || !args.providedKeyPem) {
                throw new Error(`${name}: provided mode needs providedChainPem and providedKeyPem`);
            }
            keyPem = pulumi.secret(args.providedKeyPem);
            this.chainPem = pulumi.output(args.providedChainPem);
            this.caCertPem = pulumi.output(args.providedCaPem ?? "");
        }
        this.certSha256 = this.chainPem.apply(certificateSha256);
        this.notAfter = this.chainPem.apply((c) => new Date(new crypto.X509Certificate(c).validTo).toISOString());
        this.issuer = this.chainPem.apply((c) => new crypto.X509Certificate(c).issuer.split("\n").reverse().join(","));

        const step = remoteStep(
            `${name}-files`,
            args.host,
            {
                create: renderSslFilesScript(files),
                delete: renderSslRemoveScript(files),
                stdin: pulumi.secret(pulumi.all([keyPem, this.chainPem]).apply(([k, c]) => `${k.trim()}\n${c}`)),
                secret: true,
            },
            { parent: this },
        );
        this.installed = step.stdout;
        this.registerOutputs({ certSha256: this.certSha256, caCertPem: this.caCertPem, installed: this.installed });
    }

    /** The private CA (`NAME-ca-key`, `NAME-ca`): one per stack, made by the primary's certificate. */
    private makeCa(name: string, args: SslCertificateArgs): SigningCa {
        const caKey = new tls.PrivateKey(`${name}-ca-key`, { algorithm: "ECDSA", ecdsaCurve: "P256" }, { parent: this });
        const ca = new tls.SelfSignedCert(
            `${name}-ca`,
            {
                privateKeyPem: caKey.privateKeyPem,
                subject: { commonName: pulumi.interpolate`devpi CA for ${args.domain}`, organization: "devpi" },
                isCaCertificate: true,
                validityPeriodHours: (args.caValidityDays ?? 3650) * 24,
                earlyRenewalHours: (args.caRenewBeforeDays ?? 30) * 24,
                allowedUses: ["cert_signing", "crl_signing", "digital_signature"],
            },
            { parent: this },
        );
        return { keyPem: caKey.privateKeyPem, certPem: ca.certPem };
    }
}
