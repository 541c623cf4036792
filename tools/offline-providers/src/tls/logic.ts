// Pure (no I/O) plan logic for the tls stand-in: defaults, validation, diff
// and the certificate renewal window, following terraform-provider-tls (the
// schema plan modifiers and ModifyPlan / Read of the certificate resources).

import type * as provider from "@pulumi/pulumi/provider";
import { RawMap, UNKNOWN, containsUnknown, deepEqual, deepUnwrap, isUnset, unwrap } from "../common/props";
import { ALGORITHMS, ECDSA_CURVES } from "./keys";
import { SUPPORTED_USES } from "./x509";

export const PRIVATE_KEY = "tls:index/privateKey:PrivateKey";
export const SELF_SIGNED_CERT = "tls:index/selfSignedCert:SelfSignedCert";
export const CERT_REQUEST = "tls:index/certRequest:CertRequest";
export const LOCALLY_SIGNED_CERT = "tls:index/locallySignedCert:LocallySignedCert";

export interface ResourceSpec {
    /** Input properties (Pulumi names). */
    inputs: string[];
    required: string[];
    /** Terraform schema defaults of optional+computed inputs. */
    defaults: Record<string, unknown>;
    /** Inputs whose change is an in-place update (everything else requires replacement). */
    updatable: string[];
    /** Inputs Terraform plans with UseStateForUnknown (unset in config keeps the state value). */
    keepStateWhenUnset: string[];
    /** Sensitive inputs / outputs (returned as secrets). */
    sensitive: string[];
    /** Write-only inputs of pulumi-tls 5.6.1 this stand-in does not implement. */
    unsupported: string[];
    isCert: boolean;
}

const certCommon = {
    defaults: { earlyRenewalHours: 0, isCaCertificate: false, setSubjectKeyId: false },
    updatable: ["earlyRenewalHours"],
    keepStateWhenUnset: ["maxPathLength"],
    isCert: true,
};

export const SPECS: Record<string, ResourceSpec> = {
    [PRIVATE_KEY]: {
        inputs: ["algorithm", "rsaBits", "ecdsaCurve"],
        required: ["algorithm"],
        defaults: { rsaBits: 2048, ecdsaCurve: "P224" },
        updatable: [],
        keepStateWhenUnset: [],
        sensitive: ["privateKeyPem", "privateKeyPemPkcs8", "privateKeyOpenssh"],
        unsupported: [],
        isCert: false,
    },
    [SELF_SIGNED_CERT]: {
        ...certCommon,
        inputs: [
            "privateKeyPem",
            "validityPeriodHours",
            "allowedUses",
            "dnsNames",
            "ipAddresses",
            "uris",
            "earlyRenewalHours",
            "isCaCertificate",
            "maxPathLength",
            "setSubjectKeyId",
            "setAuthorityKeyId",
            "subject",
        ],
        required: ["privateKeyPem", "validityPeriodHours", "allowedUses"],
        defaults: { ...certCommon.defaults, setAuthorityKeyId: false },
        sensitive: ["privateKeyPem"],
        unsupported: ["privateKeyPemWo", "privateKeyPemWoVersion"],
    },
    [LOCALLY_SIGNED_CERT]: {
        ...certCommon,
        inputs: ["certRequestPem", "caPrivateKeyPem", "caCertPem", "validityPeriodHours", "allowedUses", "earlyRenewalHours", "isCaCertificate", "maxPathLength", "setSubjectKeyId"],
        required: ["certRequestPem", "caPrivateKeyPem", "caCertPem", "validityPeriodHours", "allowedUses"],
        sensitive: ["caPrivateKeyPem"],
        unsupported: ["caPrivateKeyPemWo", "caPrivateKeyPemWoVersion"],
    },
    [CERT_REQUEST]: {
        inputs: ["privateKeyPem", "dnsNames", "ipAddresses", "uris", "subject"],
        required: ["privateKeyPem"],
        defaults: {},
        updatable: [],
        keepStateWhenUnset: [],
        sensitive: ["privateKeyPem"],
        unsupported: ["privateKeyPemWo", "privateKeyPemWoVersion"],
        isCert: false,
    },
};

/** The planned value of each input: the configured value, else the schema default. */
export function withDefaults(spec: ResourceSpec, news: RawMap): RawMap {
    const out: RawMap = {};
    for (const k of spec.inputs) {
        if (!isUnset(news[k])) {
            out[k] = news[k];
        } else if (k in spec.defaults) {
            out[k] = spec.defaults[k];
        }
    }
    return out;
}

function isEmptyList(v: unknown): boolean {
    const u = unwrap(v);
    return u === undefined || u === null || (Array.isArray(u) && u.length === 0);
}

function inputEqual(a: unknown, b: unknown): boolean {
    if (isEmptyList(a) && isEmptyList(b)) {
        return true; // an empty list and an unset list are the same plan
    }
    return deepEqual(a, b);
}

const SUBJECT_KEYS = ["commonName", "country", "emailAddress", "locality", "organization", "organizationalUnit", "postalCode", "province", "serialNumber", "streetAddresses"];

function validateInt(failures: provider.CheckFailure[], news: RawMap, k: string, min: number): void {
    const v = unwrap(news[k]);
    if (isUnset(v) || v === UNKNOWN) {
        return;
    }
    if (typeof v !== "number" || !Number.isInteger(v)) {
        failures.push({ property: k, reason: `${k} must be an integer` });
    } else if (v < min) {
        failures.push({ property: k, reason: `Attribute ${k} value must be at least ${min}, got: ${v}` });
    }
}

function validateOneOf(failures: provider.CheckFailure[], property: string, v: unknown, allowed: readonly string[]): void {
    if (v === UNKNOWN || isUnset(v)) {
        return;
    }
    if (typeof v !== "string" || !allowed.includes(v)) {
        failures.push({
            property,
            reason: `Attribute ${property} value must be one of: [${allowed.map((a) => JSON.stringify(a)).join(" ")}], got: ${JSON.stringify(v)}`,
        });
    }
}

/** Check: schema validators of the Terraform resources. Inputs are returned unchanged. */
export function checkTls(type: string, news: RawMap): provider.CheckResult {
    const spec = SPECS[type];
    const failures: provider.CheckFailure[] = [];
    for (const k of spec.required) {
        if (isUnset(news[k])) {
            failures.push({ property: k, reason: `Missing required property '${k}'` });
        }
    }
    for (const k of spec.unsupported) {
        if (!isUnset(news[k])) {
            failures.push({
                property: k,
                reason: `${k} (write-only) is not supported by the offline stand-in tls provider; see docs/offline-providers.md`,
            });
        }
    }
    if (type === PRIVATE_KEY) {
        validateOneOf(failures, "algorithm", unwrap(news.algorithm), ALGORITHMS);
        validateOneOf(failures, "ecdsaCurve", unwrap(news.ecdsaCurve), ECDSA_CURVES);
        validateInt(failures, news, "rsaBits", Number.MIN_SAFE_INTEGER);
    }
    if (spec.isCert) {
        validateInt(failures, news, "validityPeriodHours", 0);
        validateInt(failures, news, "earlyRenewalHours", 0);
        validateInt(failures, news, "maxPathLength", -1);
        const uses = unwrap(news.allowedUses);
        if (Array.isArray(uses)) {
            uses.forEach((u, i) => validateOneOf(failures, `allowedUses[${i}]`, unwrap(u), SUPPORTED_USES));
        }
    }
    for (const k of ["ipAddresses", "uris"]) {
        const l = unwrap(news[k]);
        if (Array.isArray(l)) {
            l.forEach((e, i) => {
                if (unwrap(e) === "") {
                    failures.push({ property: `${k}[${i}]`, reason: `Attribute ${k}[${i}] string length must be at least 1, got: 0` });
                }
            });
        }
    }
    const subject = unwrap(news.subject);
    if (subject !== undefined && subject !== null && subject !== UNKNOWN) {
        if (typeof subject !== "object" || Array.isArray(subject)) {
            failures.push({ property: "subject", reason: "subject must be an object" });
        } else {
            for (const k of Object.keys(subject)) {
                if (!SUBJECT_KEYS.includes(k)) {
                    failures.push({ property: `subject.${k}`, reason: `unknown subject field ${k}` });
                }
            }
        }
    }
    return failures.length > 0 ? { inputs: news, failures } : { inputs: news };
}

/** RFC 3339 as Go's time.MarshalText writes it (fraction without trailing zeros), always in UTC. */
export function rfc3339(d: Date): string {
    const iso = d.toISOString(); // 2024-01-02T03:04:05.678Z
    return iso.replace(/\.(\d+)Z$/, (_m, frac: string) => {
        const f = frac.replace(/0+$/, "");
        return f ? `.${f}Z` : "Z";
    });
}

/** modifyPlanIfCertificateReadyForRenewal / modifyStateIfCertificateReadyForRenewal: now >= end - earlyRenewalHours. */
export function inRenewalWindow(validityEndTime: unknown, earlyRenewalHours: unknown, now: Date): boolean {
    const end = unwrap(validityEndTime);
    if (typeof end !== "string") {
        return false;
    }
    const t = Date.parse(end);
    if (Number.isNaN(t)) {
        throw new Error(`Failed to parse data from string: ${end}`);
    }
    const early = unwrap(earlyRenewalHours);
    const hours = typeof early === "number" ? early : 0;
    return now.getTime() >= t - hours * 3600_000;
}

/** The ReadyForRenewal attribute plan modifier: true when validity is 0 or early renewal covers all of it. */
export function plannedReadyForRenewal(planned: RawMap): boolean {
    const validity = unwrap(planned.validityPeriodHours);
    const early = unwrap(planned.earlyRenewalHours);
    if (validity === 0) {
        return true;
    }
    if (typeof validity === "number" && typeof early === "number" && early >= validity) {
        return true;
    }
    return false;
}

export interface TlsDiff extends provider.DiffResult {
    /** Changed inputs that are updated in place. */
    updates: string[];
}

/**
 * Diff: any change of a replace-on-change input replaces; earlyRenewalHours is
 * updated in place; a certificate whose renewal window has been reached
 * (now >= validityEndTime - earlyRenewalHours) is replaced via readyForRenewal.
 */
export function diffTls(type: string, olds: RawMap, news: RawMap, now: Date): TlsDiff {
    const spec = SPECS[type];
    const planned = withDefaults(spec, news);
    const replaces: string[] = [];
    const updates: string[] = [];
    for (const k of spec.inputs) {
        if (spec.keepStateWhenUnset.includes(k) && isUnset(news[k])) {
            continue;
        }
        if (inputEqual(olds[k], planned[k])) {
            continue;
        }
        (spec.updatable.includes(k) ? updates : replaces).push(k);
    }
    if (spec.isCert) {
        const early = containsUnknown(planned.earlyRenewalHours) ? olds.earlyRenewalHours : planned.earlyRenewalHours;
        if (inRenewalWindow(olds.validityEndTime, early, now)) {
            replaces.push("readyForRenewal");
        } else if (unwrap(olds.readyForRenewal) === true && !plannedReadyForRenewal(planned)) {
            updates.push("readyForRenewal");
        }
    }
    return { changes: replaces.length + updates.length > 0, replaces, updates, deleteBeforeReplace: false };
}

/** Read / refresh: flag a certificate whose renewal window has been reached. */
export function refreshTls(type: string, props: RawMap, now: Date): RawMap {
    if (!SPECS[type].isCert) {
        return props;
    }
    if (inRenewalWindow(props.validityEndTime, props.earlyRenewalHours, now)) {
        return { ...props, readyForRenewal: true };
    }
    return props;
}

/** Plain (unwrapped) string list of an input. */
export function stringList(v: unknown): string[] {
    const u = deepUnwrap(v);
    return Array.isArray(u) ? u.map((e) => String(e)) : [];
}
