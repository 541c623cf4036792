/**
 * Pure: the servers of a deployment as the per-host tree needs them. The primary keeps the
 * resource names a single-server stack has always had; each replica's resources are named
 * `replica-NAME-...`.
 */
import { DevpiConfig, ReplicaConfig } from "../../config";

/**
 * One server of the deployment: a replica's own settings (the primary's read from the top-level
 * keys), plus where it stands in the deployment. In provided mode a replica without its own
 * chain and key uses the primary's.
 */
export interface HostSpec extends Omit<ReplicaConfig, "name"> {
    /** `primary`, or the replica's name. */
    label: string;
    /** Prefix of every resource name of this server: "" for the primary, `replica-NAME-` for a replica. */
    prefix: string;
    /** `standalone` (no replicas), `primary` (replicas follow it) or `replica`. */
    role: "standalone" | "primary" | "replica";
}

/** `https://DOMAIN[:PORT]`. */
export function publicUrl(domain: string, httpsPort: number): string {
    return `https://${domain}${httpsPort === 443 ? "" : `:${httpsPort}`}`;
}

/** The primary first, then every replica, in config order. */
export function hostSpecs(cfg: DevpiConfig): HostSpec[] {
    const primary: HostSpec = {
        label: "primary",
        prefix: "",
        role: cfg.replicas.length > 0 ? "primary" : "standalone",
        ssh: cfg.ssh,
        domain: cfg.domain,
        extraDnsNames: cfg.ssl.extraDnsNames,
        extraIpAddresses: cfg.ssl.extraIpAddresses,
        httpPort: cfg.httpPort,
        httpsPort: cfg.httpsPort,
        devpiPort: cfg.devpi.port,
        providedChainPem: cfg.ssl.providedChainPem,
        providedKeyPem: cfg.ssl.providedKeyPem,
    };
    return [
        primary,
        ...cfg.replicas.map(
            (r): HostSpec => ({
                label: r.name,
                prefix: `replica-${r.name}-`,
                role: "replica",
                ssh: r.ssh,
                domain: r.domain,
                extraDnsNames: r.extraDnsNames,
                extraIpAddresses: r.extraIpAddresses,
                httpPort: r.httpPort,
                httpsPort: r.httpsPort,
                devpiPort: r.devpiPort,
                providedChainPem: r.providedChainPem ?? cfg.ssl.providedChainPem,
                providedKeyPem: r.providedKeyPem ?? cfg.ssl.providedKeyPem,
            }),
        ),
    ];
}
