import * as pulumi from "@pulumi/pulumi";
import { RemoteHost, remoteStep } from "../common/remoteStep";
import {
    ACME_PATHS,
    parseIssued,
    renderAcmeClientRemoveScript,
    renderAcmeClientScript,
    renderAcmeIssueRemoveScript,
    renderAcmeIssueScript,
    renderRenewCronRemoveScript,
    renderRenewCronScript,
} from "./acmeScripts";

export interface AcmeClientArgs {
    host: RemoteHost;
    /** The certificate's first name (subject of the temporary certificate). */
    domain: pulumi.Input<string>;
    /** Directory of the files nginx loads (sslDir); root's alone, like in the other modes. */
    dir: string;
    /** PEM bundle of a private ACME CA (acmeCaBundle); omit for a public CA. */
    caBundlePem?: string;
}

/**
 * Everything the first issuance needs before nginx's site exists: Debian's certbot package, the
 * webroot nginx serves challenges from, the CA bundle, the renewal script and deploy hook, and
 * `SSLDIR/acme.crt` + `acme.key` for nginx to load: links to certbot's live certificate once it
 * exists, a temporary self-signed certificate made on the server until then.
 */
export class AcmeClient extends pulumi.ComponentResource {
    /** What nginx's site loads. */
    public readonly certPath: string;
    public readonly keyPath: string;
    /** certbot's webroot, to serve under /.well-known/acme-challenge/. */
    public readonly webroot: string = ACME_PATHS.webroot;
    /** Whether certbot trusts a private CA's bundle. */
    public readonly hasCaBundle: boolean;

    constructor(name: string, args: AcmeClientArgs, opts?: pulumi.ComponentResourceOptions) {
        super("devpi:index:AcmeClient", name, {}, opts);
        this.certPath = `${args.dir}/acme.crt`;
        this.keyPath = `${args.dir}/acme.key`;
        this.hasCaBundle = (args.caBundlePem ?? "").trim() !== "";
        remoteStep(
            `${name}-certbot`,
            args.host,
            {
                create: pulumi.output(args.domain).apply((domain) => renderAcmeClientScript({ sslDir: args.dir, domain, caBundlePem: args.caBundlePem ?? "" })),
                delete: renderAcmeClientRemoveScript({ sslDir: args.dir }),
            },
            { parent: this },
        );
        this.registerOutputs({});
    }
}

export interface AcmeCertificateArgs {
    host: RemoteHost;
    /** The certificate's names, the domain first. */
    names: pulumi.Input<string[]>;
    email: string;
    directoryUrl: string;
    /** Directory holding nginx's links (sslDir). */
    dir: string;
    /** Whether {@link AcmeClient} installed a private CA bundle for certbot. */
    caBundle: boolean;
    /** A `pulumi up` requests a new certificate when the current one expires within this many days. */
    renewBeforeDays: number;
    /** nginx's HTTPS port. */
    httpsPort: pulumi.Input<number>;
}

/**
 * The certificate itself, issued on the server by certbot over HTTP-01 through nginx's site on
 * `httpPort` (so it must run after the site is served), and renewed there by cron
 * (`/etc/cron.d/devpi-acme`, twice a day) with a deploy hook that checks `nginx -t` and reloads.
 * Key and account key are made by certbot on the server and never leave it. A `pulumi up`
 * requests a certificate only when the names or the directory change (or it is due); destroy
 * (or switching to another sslMode) deletes it from certbot and removes the renewal job.
 */
export class AcmeCertificate extends pulumi.ComponentResource {
    /** sha256 (hex) of the certificate as of the last `pulumi up` that issued or checked it. */
    public readonly certSha256: pulumi.Output<string>;
    /** Its notAfter, ISO 8601. */
    public readonly notAfter: pulumi.Output<string>;
    /** Its issuer (RFC 2253). */
    public readonly issuer: pulumi.Output<string>;

    constructor(name: string, args: AcmeCertificateArgs, opts?: pulumi.ComponentResourceOptions) {
        super("devpi:index:AcmeCertificate", name, {}, opts);
        const issue = remoteStep(
            `${name}-issue`,
            args.host,
            {
                create: pulumi.all([args.names, args.httpsPort]).apply(([names, httpsPort]) =>
                    renderAcmeIssueScript({
                        sslDir: args.dir,
                        names,
                        email: args.email,
                        directoryUrl: args.directoryUrl,
                        caBundle: args.caBundle,
                        renewBeforeDays: args.renewBeforeDays,
                        httpsPort,
                    }),
                ),
                delete: renderAcmeIssueRemoveScript({ sslDir: args.dir }),
            },
            { parent: this },
        );
        remoteStep(`${name}-renewal`, args.host, { create: renderRenewCronScript(), delete: renderRenewCronRemoveScript() }, { parent: this, dependsOn: [issue] });
        const issued = issue.stdout.apply(parseIssued);
        this.certSha256 = issued.sha256;
        this.notAfter = issued.notAfter;
        this.issuer = issued.issuer;
        this.registerOutputs({ certSha256: this.certSha256, notAfter: this.notAfter, issuer: this.issuer });
    }
}
