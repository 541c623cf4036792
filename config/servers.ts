/** Where each server is: SSH access, public name and ports, for the primary and each of `devpi:replicas`. */
import * as crypto from "node:crypto";
import { ConfigError, fail } from "./errors";
import { REPLICA_KEYS } from "./keys";
import { MetricsScrape, parseMetricsScrape } from "./metricsScrape";
import { Reader, readLocalFile } from "./reader";
import { HOSTNAME_RE, isIpAddress, isPublicName, PUBLIC_NAME_RULE, REPLICA_NAME_RE, REPLICA_NAME_RULE, UNIX_USER_RE } from "./rules";
import { checkAcmeNames, checkIssuedBy, checkProvidedCertificate, pemBlocks } from "./tls";
import { ReplicaConfig, SecretKeyCheck, SshConfig, SslConfig } from "./types";

/** How a server's missing hostKey is handled (the top-level `devpi:insecureSkipHostKeyCheck`). */
export interface HostKeyPolicy {
    /** Accept any host key where hostKey is unset (with a warning) instead of refusing the config. */
    insecureSkipHostKeyCheck: boolean;
    /** Where that warning goes. */
    warnings: string[];
}

/**
 * SSH access under `P` + host, sshPort, sshUser, sshPrivateKey(File), hostKey (P: "" or
 * "replicas[i]."). hostKey is required unless `policy.insecureSkipHostKeyCheck`: without it
 * whoever answers on the SSH port gets the login and the secrets sent on stdin.
 */
export function parseSsh(r: Reader, p: string, defaults: { user: string }, policy: HostKeyPolicy): SshConfig {
    const host = r.str(`${p}host`);
    if (!HOSTNAME_RE.test(host) && !isIpAddress(host)) fail(`${p}host`, host, "must be a host name or an IP address");
    const port = r.int(`${p}sshPort`, 22, 1, 65535);
    const user = r.str(`${p}sshUser`, defaults.user);
    if (!UNIX_USER_RE.test(user)) fail(`${p}sshUser`, user, "must be a Unix user name ([a-z_][a-z0-9_-]{0,31})");
    let privateKey = r.optStr(`${p}sshPrivateKey`);
    const keyFile = r.optStr(`${p}sshPrivateKeyFile`);
    if (privateKey && keyFile) fail(`${p}sshPrivateKeyFile`, keyFile, "set either sshPrivateKey or sshPrivateKeyFile, not both");
    if (!privateKey && keyFile) privateKey = readLocalFile(`${p}sshPrivateKeyFile`, keyFile);
    if (!privateKey) {
        throw new ConfigError(
            p === ""
                ? "devpi:sshPrivateKey is required: `pulumi config set --secret sshPrivateKey < ~/.ssh/id_ed25519` or set devpi:sshPrivateKeyFile to a local path"
                : `devpi:${p}sshPrivateKey is required: \`pulumi config set --secret --path '${p}sshPrivateKey' < ~/.ssh/id_ed25519\` or set devpi:${p}sshPrivateKeyFile to a local path`,
        );
    }
    if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(privateKey)) {
        fail(keyFile ? `${p}sshPrivateKeyFile` : `${p}sshPrivateKey`, keyFile ?? "(secret)", "must be a PEM or OpenSSH private key");
    }
    const hostKey = r.optStr(`${p}hostKey`);
    if (hostKey !== undefined && !/^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/=]+( .*)?$/.test(hostKey)) {
        fail(`${p}hostKey`, hostKey, 'must be the server\'s public host key, e.g. "ssh-ed25519 AAAA..." (from /etc/ssh/ssh_host_ed25519_key.pub)');
    }
    if (hostKey === undefined) {
        const keyscan = `"$(ssh-keyscan -p ${port} -t ed25519 ${host} 2>/dev/null | cut -d' ' -f2-)"`;
        const setCommand = p === "" ? `pulumi config set hostKey ${keyscan}` : `pulumi config set --path '${p}hostKey' ${keyscan}`;
        if (!policy.insecureSkipHostKeyCheck) {
            throw new ConfigError(
                `devpi:${p}hostKey is required: pin the server's SSH host key with \`${setCommand}\` (or set devpi:insecureSkipHostKeyCheck true to trust whatever answers, which sends secrets to it)`,
            );
        }
        policy.warnings.push(
            `devpi:${p}hostKey is not set and devpi:insecureSkipHostKeyCheck is true: the SSH host key of ${host}:${port} is not checked, so whoever answers there gets the login and the secrets sent to the server; pin it with \`${setCommand}\``,
        );
    }
    return { host, port, user, privateKey, hostKey };
}

/** node-exporter's address unless set: loopback only (scrape through an SSH tunnel or a local Prometheus). */
export const DEFAULT_METRICS_ADDRESS = "127.0.0.1:9100";

/**
 * What is wrong with a metrics address (undefined: nothing): it must be `127.X.Y.Z:PORT`. Metrics
 * say what the server holds and does; exposing them beyond loopback needs an allow-list, which the
 * program does not make yet, so it refuses rather than open them to the world.
 */
export function metricsAddressProblem(address: string, otherPorts: number[]): string | undefined {
    const m = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3}):(\d{1,5})$/.exec(address);
    if (!m || m.slice(1, 4).some((x) => Number(x) > 255) || Number(m[4]) < 1 || Number(m[4]) > 65535) {
        return "must be a loopback address and port, 127.X.Y.Z:PORT (e.g. 127.0.0.1:9100): metrics are served on loopback only; scrape them through an SSH tunnel or a Prometheus on the server";
    }
    if (otherPorts.includes(Number(m[4]))) return `its port must differ from httpPort, httpsPort and devpiPort (${otherPorts.join(", ")})`;
    return undefined;
}

/** One server's public name and ports under `P` (P: "" or "replicas[i]."). */
export function parseSite(
    r: Reader,
    p: string,
    defaults: { domain?: string; httpPort: number; httpsPort: number; devpiPort: number; metricsAddress: string },
): { domain: string; httpPort: number; httpsPort: number; devpiPort: number; metricsAddress: string; metricsScrape?: MetricsScrape } {
    const domain = r.str(`${p}domain`, defaults.domain);
    if (!isPublicName(domain)) fail(`${p}domain`, domain, PUBLIC_NAME_RULE);
    const httpPort = r.int(`${p}httpPort`, defaults.httpPort, 1, 65535);
    const httpsPort = r.int(`${p}httpsPort`, defaults.httpsPort, 1, 65535);
    const devpiPort = r.int(`${p}devpiPort`, defaults.devpiPort, 1, 65535);
    if (httpPort === httpsPort) fail(`${p}httpsPort`, httpsPort, "must differ from httpPort");
    if (devpiPort === httpPort || devpiPort === httpsPort) fail(`${p}devpiPort`, devpiPort, "must differ from httpPort and httpsPort");
    const metricsAddress = r.str(`${p}metricsAddress`, defaults.metricsAddress);
    const problem = metricsAddressProblem(metricsAddress, [httpPort, httpsPort, devpiPort]);
    if (problem) fail(`${p}metricsAddress`, metricsAddress, problem);
    const metricsScrape = parseMetricsScrape(`${p}metricsScrape`, r.json(`${p}metricsScrape`), [httpPort, httpsPort, devpiPort], metricsAddress);
    return { domain, httpPort, httpsPort, devpiPort, metricsAddress, ...(metricsScrape ? { metricsScrape } : {}) };
}

export interface PrimaryForReplicas {
    ssh: SshConfig;
    domain: string;
    httpPort: number;
    httpsPort: number;
    devpiPort: number;
    metricsAddress: string;
    ssl: SslConfig;
    now: Date;
    /** Warnings found while reading the replicas are added here. */
    warnings: string[];
    isSecret?: SecretKeyCheck;
    insecureSkipHostKeyCheck: boolean;
}

/**
 * `devpi:replicas`: a list of servers that follow the primary. Each entry is read with the same
 * rules as the primary's keys (errors name `replicas[i].KEY`); SSH user and ports default to the
 * primary's. Two entries (or an entry and the primary) on the same SSH target, with the same
 * name or the same public URL are refused.
 */
export function parseReplicas(r: Reader, primary: PrimaryForReplicas): ReplicaConfig[] {
    const v = r.json("replicas");
    if (v === undefined) return [];
    if (!Array.isArray(v)) fail("replicas", v, "must be a list of {host, domain, sshPrivateKey or sshPrivateKeyFile, ...} entries");
    const list = v as unknown[];
    if (primary.isSecret && list.some((e) => typeof e === "object" && e !== null && "sshPrivateKey" in e) && !primary.isSecret("replicas")) {
        throw new ConfigError("devpi:replicas holds an SSH private key in plain text: set it with `pulumi config set --secret --path 'replicas[i].sshPrivateKey' < KEYFILE`");
    }
    const replicas: ReplicaConfig[] = [];
    const sshTargets = new Map<string, string>([[`${primary.ssh.host}:${primary.ssh.port}`, "the primary"]]);
    const urls = new Map<string, string>([[`${primary.domain}:${primary.httpsPort}`, "the primary"]]);
    const names = new Map<string, string>();
    list.forEach((entry, i) => {
        const p = `replicas[${i}].`;
        if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
            fail(`replicas[${i}]`, entry, "must be an object such as {host: ..., domain: ..., sshPrivateKeyFile: ...}");
        }
        const e = entry as Record<string, unknown>;
        for (const k of Object.keys(e)) {
            if (!(REPLICA_KEYS as readonly string[]).includes(k)) fail(`${p}${k}`, k.includes("Key") ? "(secret)" : e[k], `unknown key; allowed: ${REPLICA_KEYS.join(", ")}`);
        }
        // The same reader rules as top-level keys: values as the CLI would pass them (strings, JSON for lists).
        const rr = new Reader((key) => {
            if (!key.startsWith(p)) return undefined;
            const x = e[key.slice(p.length)];
            if (x === undefined || x === null) return undefined;
            return typeof x === "string" ? x : typeof x === "number" || typeof x === "boolean" ? String(x) : JSON.stringify(x);
        });
        const ssh = parseSsh(rr, p, { user: primary.ssh.user }, primary);
        const site = parseSite(rr, p, { httpPort: primary.httpPort, httpsPort: primary.httpsPort, devpiPort: primary.devpiPort, metricsAddress: primary.metricsAddress });
        const name = rr.str(`${p}name`, site.domain.split(".")[0]);
        if (!REPLICA_NAME_RE.test(name)) fail(`${p}name`, name, REPLICA_NAME_RULE);
        const extraDnsNames = rr.stringList(`${p}extraDnsNames`, (s) => HOSTNAME_RE.test(s), "must be DNS names");
        const extraIpAddresses = rr.stringList(`${p}extraIpAddresses`, isIpAddress, "must be IPv4 or IPv6 addresses");
        const target = `${ssh.host}:${ssh.port}`;
        if (sshTargets.has(target)) fail(`${p}host`, target, `must be a different server: ${sshTargets.get(target)} is already reached at ${target}`);
        sshTargets.set(target, `replicas[${i}]`);
        const url = `${site.domain}:${site.httpsPort}`;
        if (urls.has(url)) fail(`${p}domain`, url, `must differ (with httpsPort) from every other server's: ${urls.get(url)} already serves https://${url}`);
        urls.set(url, `replicas[${i}]`);
        if (names.has(name)) fail(`${p}name`, name, `must be unique: ${names.get(name)} has the same name`);
        names.set(name, `replicas[${i}]`);

        const replica: ReplicaConfig = { name, ssh, ...site, extraDnsNames, extraIpAddresses };
        replicaCertificate(rr, p, primary, replica);
        replicas.push(replica);
    });
    return replicas;
}

/**
 * A replica's TLS keys: in provided mode its own chain and key (checked like the primary's) or the
 * primary's, which must name it; with acme, names a public CA can validate; otherwise none.
 */
function replicaCertificate(rr: Reader, p: string, primary: PrimaryForReplicas, replica: ReplicaConfig): void {
    const sslKeys = ["sslCertificate", "sslCertificateFile", "sslPrivateKey", "sslPrivateKeyFile"];
    if (primary.ssl.mode === "provided") {
        const chain = rr.optStr(`${p}sslCertificate`) ?? (rr.optStr(`${p}sslCertificateFile`) ? readLocalFile(`${p}sslCertificateFile`, rr.str(`${p}sslCertificateFile`)) : undefined);
        const key = rr.optStr(`${p}sslPrivateKey`) ?? (rr.optStr(`${p}sslPrivateKeyFile`) ? readLocalFile(`${p}sslPrivateKeyFile`, rr.str(`${p}sslPrivateKeyFile`)) : undefined);
        if ((chain === undefined) !== (key === undefined)) {
            fail(`${p}${chain ? "sslPrivateKey" : "sslCertificate"}`, "(missing)", "a replica's own certificate needs both its chain and its key; leave both out to use the primary's certificate");
        }
        if (chain !== undefined && key !== undefined) {
            // Same checks as the primary's certificate; errors and warnings name this entry's key.
            const ofEntry = (message: string) => message.replace(/^devpi:(ssl[A-Za-z]+)/, `devpi:${p}$1`);
            try {
                const warning = checkProvidedCertificate(chain, key, primary.now, primary.ssl.certRenewBeforeDays);
                if (warning) primary.warnings.push(ofEntry(warning));
                if (primary.ssl.providedCaPem) checkIssuedBy(chain, primary.ssl.providedCaPem);
            } catch (err) {
                throw err instanceof ConfigError ? new ConfigError(ofEntry(err.message)) : err;
            }
            replica.providedChainPem = chain.trim() + "\n";
            replica.providedKeyPem = key.trim() + "\n";
        }
        const leaf = new crypto.X509Certificate(pemBlocks(replica.providedChainPem ?? primary.ssl.providedChainPem ?? "", /^CERTIFICATE$/)[0]);
        for (const n of [replica.domain, ...replica.extraDnsNames]) {
            if (leaf.checkHost(n) === undefined) {
                fail(
                    `${p}domain`,
                    n,
                    `is not a name of ${replica.providedChainPem ? "the replica's" : "the primary's (shared)"} certificate (${leaf.subjectAltName ?? leaf.subject}): give the replica its own sslCertificate and sslPrivateKey`,
                );
            }
        }
    } else {
        // acme: each replica gets its own certificate for its own names, on its own host.
        if (primary.ssl.mode === "acme") checkAcmeNames(p, replica.domain, replica.extraDnsNames, replica.extraIpAddresses);
        for (const k of sslKeys) {
            if (rr.optStr(`${p}${k}`) !== undefined) fail(`${p}${k}`, k.includes("Key") ? "(secret)" : rr.optStr(`${p}${k}`), "only allowed when devpi:sslMode is provided");
        }
    }
}
