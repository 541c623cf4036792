/**
 * A server's public name and ports, resolved: the values may come from another resource (a VM's
 * address), so they are checked by the stack config's rules once they are known, before any
 * step that uses them runs.
 */
import * as pulumi from "@pulumi/pulumi";
import { ConfigError } from "../../config/errors";
import { HOSTNAME_RE, isIpAddress, isPublicName, PUBLIC_NAME_RULE } from "../../config/rules";
import { HostSpec } from "./resolveArgs";

/** One server's public name, extra names and ports, as plain values. */
export interface SiteTarget {
    domain: string;
    extraDnsNames: string[];
    extraIpAddresses: string[];
    httpPort: number;
    httpsPort: number;
}

/** The resolved target and what is derived from it. */
export interface ServerSite {
    resolved: pulumi.Output<SiteTarget>;
    domain: pulumi.Output<string>;
    extraDnsNames: pulumi.Output<string[]>;
    extraIpAddresses: pulumi.Output<string[]>;
    /** `https://DOMAIN[:PORT]`. */
    url: pulumi.Output<string>;
}

/** `https://DOMAIN[:PORT]`. */
export function publicUrl(domain: string, httpsPort: number): string {
    return `https://${domain}${httpsPort === 443 ? "" : `:${httpsPort}`}`;
}

/** Throws a ConfigError naming the server and the field when a resolved target breaks the stack config's rules. */
export function validateTarget(label: string, t: SiteTarget, devpiPort: number): SiteTarget {
    const bad = (field: string, value: unknown, allowed: string): never => {
        throw new ConfigError(`Devpi ${label}: ${field}: invalid value ${JSON.stringify(value)}: ${allowed}`);
    };
    if (!isPublicName(t.domain)) bad("domain", t.domain, PUBLIC_NAME_RULE);
    for (const n of t.extraDnsNames) if (!HOSTNAME_RE.test(n)) bad("extraDnsNames", n, "must be DNS names");
    for (const a of t.extraIpAddresses) if (!isIpAddress(a)) bad("extraIpAddresses", a, "must be IPv4 or IPv6 addresses");
    for (const [field, port] of [
        ["httpPort", t.httpPort],
        ["httpsPort", t.httpsPort],
    ] as const) {
        if (!Number.isInteger(port) || port < 1 || port > 65535) bad(field, port, "must be an integer from 1 to 65535");
    }
    if (t.httpPort === t.httpsPort) bad("httpsPort", t.httpsPort, "must differ from httpPort");
    if (devpiPort === t.httpPort || devpiPort === t.httpsPort) bad("devpiPort", devpiPort, "must differ from httpPort and httpsPort");
    return t;
}

/** The server's site, checked once known. */
export function checkTarget(spec: HostSpec): ServerSite {
    const resolved = pulumi
        .all([spec.domain, spec.extraDnsNames, spec.extraIpAddresses, spec.httpPort, spec.httpsPort])
        .apply(([domain, extraDnsNames, extraIpAddresses, httpPort, httpsPort]) =>
            validateTarget(spec.label, { domain, extraDnsNames: [...extraDnsNames], extraIpAddresses: [...extraIpAddresses], httpPort, httpsPort }, spec.devpiPort),
        );
    return {
        resolved,
        domain: resolved.apply((t) => t.domain),
        extraDnsNames: resolved.apply((t) => t.extraDnsNames),
        extraIpAddresses: resolved.apply((t) => t.extraIpAddresses),
        url: resolved.apply((t) => publicUrl(t.domain, t.httpsPort)),
    };
}
