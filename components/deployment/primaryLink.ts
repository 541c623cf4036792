/** What a replica's tree takes from its primary's. */
import * as pulumi from "@pulumi/pulumi";
import { SigningCa } from "../ssl/sslCertificate";
import type { DevpiHost } from "./devpiHost";

/** What a replica needs from its primary. */
export interface PrimaryLink {
    /** The primary's public HTTPS URL (devpi's `primary-url`). */
    url: pulumi.Output<string>;
    /** The CA that issued the primary's certificate (PEM; empty when publicly trusted). */
    caCertPem: pulumi.Output<string>;
    /** Self-signed mode: the private CA that signs the replica's certificate too. */
    signingCa?: SigningCa;
    /** The primary's secret file, base64 (secret). */
    sharedSecret: pulumi.Output<string>;
    /** The primary's health check: a replica starts syncing only from a healthy primary. */
    healthy: pulumi.Resource;
    /** The primary's devpi version set: when it changes, each replica checks it still follows the primary. */
    serverVersionKey: string;
}

/** What a replica of `host` needs (the primary must have been built with role `primary`). */
export function primaryLink(host: DevpiHost): PrimaryLink {
    if (!host.server.sharedSecret) throw new Error("the primary was built without replicas");
    return {
        url: host.url,
        caCertPem: host.caCertPem,
        // With ACME, each replica gets its own certificate from the same ACME CA instead.
        signingCa: host.ssl?.signingCa,
        sharedSecret: host.server.sharedSecret,
        healthy: host.health,
        serverVersionKey: host.server.versionKey,
    };
}
