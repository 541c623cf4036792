/**
 * `devpi:metricsScrape` (and `replicas[i].metricsScrape`): the metrics for a Prometheus on another
 * machine, served by nginx over HTTPS to the listed networks only. Checked before any SSH; the
 * component's argument is checked by the same rules.
 */
import { fail } from "./errors";
import { isIpAddress } from "./rules";

/** Where nginx serves /metrics to other machines, and who may ask. */
export interface MetricsScrape {
    /** `IPV4:PORT`, `[IPV6]:PORT` or `*:PORT` (every address of the server; IPv6 too with listenIpv6). */
    address: string;
    /** Addresses or networks (CIDR) allowed to scrape; everyone else gets 403. */
    allow: string[];
}

const ADDRESS_RE = /^(\*|\d{1,3}(?:\.\d{1,3}){3}|\[[0-9A-Fa-f:.]+\]):(\d{1,5})$/;

/** Whether `s` is an IPv4 or IPv6 address, or a network in CIDR form that is not the whole Internet. */
function isNetwork(s: string): boolean {
    const [ip, bits, ...rest] = s.split("/");
    if (rest.length > 0 || !isIpAddress(ip)) return false;
    if (bits === undefined) return true;
    const max = ip.includes(":") ? 128 : 32;
    return /^\d{1,3}$/.test(bits) && Number(bits) >= 1 && Number(bits) <= max;
}

/**
 * What is wrong with `m` (undefined: nothing), as `[field, value, rule]`: the address's form and
 * port (distinct from the site's ports and node-exporter's own), and an allow-list that names at
 * least one network and never the whole Internet.
 */
export function metricsScrapeProblem(m: MetricsScrape, otherPorts: number[], metricsAddress: string): [string, unknown, string] | undefined {
    const a = ADDRESS_RE.exec(m.address);
    const port = a ? Number(a[2]) : 0;
    const ipOk = !a || a[1] === "*" || isIpAddress(a[1].replace(/^\[|\]$/g, ""));
    if (!a || !ipOk || port < 1 || port > 65535) {
        return ["address", m.address, "must be IPV4:PORT, [IPV6]:PORT or *:PORT (every address), e.g. 10.0.0.5:9443: where nginx serves /metrics over HTTPS to the allowed networks"];
    }
    const exporterPort = Number(metricsAddress.split(":").pop());
    if ([...otherPorts, exporterPort].includes(port))
        return ["address", m.address, `its port must differ from httpPort, httpsPort, devpiPort and metricsAddress's (${[...otherPorts, exporterPort].join(", ")})`];
    if (!Array.isArray(m.allow) || m.allow.length === 0 || m.allow.length > 100) {
        return ["allow", m.allow, "must list 1 to 100 addresses or networks (CIDR) allowed to scrape, e.g. [10.0.0.0/24]: metrics are never served to everyone"];
    }
    for (const n of m.allow) {
        if (typeof n !== "string" || !isNetwork(n)) {
            return ["allow", n, "must be an IPv4 or IPv6 address or a network in CIDR form (prefix length 1 or more: /0 would be the whole Internet), e.g. 10.0.0.0/24"];
        }
    }
    return undefined;
}

/** Reads `KEY` (a map `{address, allow}`; unset or `{}`: none), naming `KEY.address` or `KEY.allow` in errors. */
export function parseMetricsScrape(key: string, v: unknown, otherPorts: number[], metricsAddress: string): MetricsScrape | undefined {
    if (v === undefined || (typeof v === "object" && v !== null && !Array.isArray(v) && Object.keys(v).length === 0)) return undefined;
    if (typeof v !== "object" || v === null || Array.isArray(v)) fail(key, v, "must be a map {address: IP:PORT, allow: [NETWORK, ...]}");
    const o = v as Record<string, unknown>;
    for (const k of Object.keys(o)) if (k !== "address" && k !== "allow") fail(`${key}.${k}`, o[k], "unknown key; allowed: address, allow");
    if (typeof o.address !== "string") fail(`${key}.address`, o.address, "is required: IPV4:PORT, [IPV6]:PORT or *:PORT");
    const m = { address: o.address, allow: o.allow as string[] };
    const problem = metricsScrapeProblem(m, otherPorts, metricsAddress);
    if (problem) fail(`${key}.${problem[0]}`, problem[1], problem[2]);
    return { address: m.address, allow: [...m.allow] };
}
