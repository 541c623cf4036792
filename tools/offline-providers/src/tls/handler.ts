// Resource handlers of the tls stand-in provider: tls:index/privateKey,
// selfSignedCert, certRequest and locallySignedCert.

import * as crypto from "node:crypto";
import type * as provider from "@pulumi/pulumi/provider";
import type { Logger } from "../common/engine";
import { RawMap, UNKNOWN, containsUnknown, deepUnwrap, isUnset, secret, typeFromUrn, unwrap } from "../common/props";
import type { ResourceHandler } from "../common/serve";
import { encodePem, publicOf } from "../common/sshkeys";
import { generateKey, hashForState, parsePrivateKeyPem, privateKeyAttributes } from "./keys";
import { CERT_REQUEST, LOCALLY_SIGNED_CERT, PRIVATE_KEY, SELF_SIGNED_CERT, SPECS, checkTls, diffTls, plannedReadyForRenewal, refreshTls, rfc3339, stringList, withDefaults } from "./logic";
import { Sans, SubjectInput, createCertificate, createCertificateRequest, encodeName, goNameFromSubject, parseCertificate, parseCertificateRequest } from "./x509";

const EMPTY_NAME = Buffer.from([0x30, 0x00]);

function str(v: unknown, what: string): string {
    const u = unwrap(v);
    if (typeof u !== "string") {
        throw new Error(`${what} must be a string`);
    }
    return u;
}

function num(v: unknown, what: string): number {
    const u = unwrap(v);
    if (typeof u !== "number") {
        throw new Error(`${what} must be a number`);
    }
    return u;
}

function bool(v: unknown): boolean {
    return unwrap(v) === true;
}

function sansOf(inputs: RawMap): Sans {
    return { dnsNames: stringList(inputs.dnsNames), ipAddresses: stringList(inputs.ipAddresses), uris: stringList(inputs.uris) };
}

function subjectOf(inputs: RawMap): SubjectInput | undefined {
    const s = deepUnwrap(inputs.subject);
    if (s === undefined || s === null) {
        return undefined;
    }
    const o = s as Record<string, unknown>;
    const opt = (k: string) => {
        const v = o[k];
        return typeof v === "string" ? v : undefined;
    };
    return {
        commonName: opt("commonName"),
        organization: opt("organization"),
        organizationalUnit: opt("organizationalUnit"),
        streetAddresses: Array.isArray(o.streetAddresses) ? o.streetAddresses.map(String) : undefined,
        locality: opt("locality"),
        province: opt("province"),
        country: opt("country"),
        postalCode: opt("postalCode"),
        serialNumber: opt("serialNumber"),
        emailAddress: opt("emailAddress"),
    };
}

function withPrefix<T>(prefix: string, f: () => T): T {
    try {
        return f();
    } catch (e) {
        throw new Error(`${prefix}: ${(e as Error).message}`);
    }
}

export class TlsHandler implements ResourceHandler {
    constructor(
        private readonly logger: Logger,
        private readonly now: () => Date = () => new Date(),
    ) {}

    check(urn: string, _olds: RawMap, news: RawMap): provider.CheckResult {
        return checkTls(typeFromUrn(urn), news);
    }

    diff(_id: string, urn: string, olds: RawMap, news: RawMap): provider.DiffResult {
        const d = diffTls(typeFromUrn(urn), olds, news, this.now());
        return { changes: d.changes, replaces: d.replaces, deleteBeforeReplace: d.deleteBeforeReplace };
    }

    read(id: string, urn: string, props: RawMap): provider.ReadResult {
        return { id, props: refreshTls(typeFromUrn(urn), props, this.now()) };
    }

    update(_id: string, urn: string, olds: RawMap, news: RawMap): provider.UpdateResult {
        // Only earlyRenewalHours (and the derived readyForRenewal) change in place:
        // the state becomes the plan, every computed value is kept.
        const type = typeFromUrn(urn);
        const spec = SPECS[type];
        const planned = withDefaults(spec, news);
        const outs: RawMap = { ...olds };
        for (const k of spec.inputs) {
            if (spec.keepStateWhenUnset.includes(k) && isUnset(news[k])) {
                continue;
            }
            if (k in planned) {
                outs[k] = planned[k];
            } else {
                delete outs[k];
            }
        }
        if (spec.isCert) {
            outs.readyForRenewal = plannedReadyForRenewal(planned);
        }
        return { outs: this.secretOutputs(type, outs) };
    }

    delete(): void {
        // Terraform's tls resources only live in the state.
    }

    async create(urn: string, inputs: RawMap): Promise<provider.CreateResult> {
        const type = typeFromUrn(urn);
        const spec = SPECS[type];
        const planned = withDefaults(spec, inputs);
        if (containsUnknown(planned)) {
            throw new Error(`cannot create ${type} from unknown inputs (this only happens in a preview)`);
        }
        let id: string;
        let computed: RawMap;
        switch (type) {
            case PRIVATE_KEY:
                ({ id, computed } = this.createPrivateKey(planned));
                break;
            case SELF_SIGNED_CERT:
                ({ id, computed } = this.createSelfSigned(planned));
                break;
            case CERT_REQUEST:
                ({ id, computed } = this.createRequest(planned));
                break;
            case LOCALLY_SIGNED_CERT:
                ({ id, computed } = await this.createLocallySigned(urn, planned));
                break;
            default:
                throw new Error(`unsupported resource type ${type}`);
        }
        return { id, outs: this.secretOutputs(type, { ...planned, ...computed }) };
    }

    private secretOutputs(type: string, outs: RawMap): RawMap {
        const o = { ...outs };
        for (const k of SPECS[type].sensitive) {
            if (!isUnset(o[k]) && o[k] !== UNKNOWN) {
                o[k] = secret(o[k]);
            }
        }
        return o;
    }

    private createPrivateKey(planned: RawMap): { id: string; computed: RawMap } {
        const algorithm = str(planned.algorithm, "algorithm");
        const key = withPrefix("Unable to generate Key from configuration", () => generateKey(algorithm, num(planned.rsaBits, "rsaBits"), str(planned.ecdsaCurve, "ecdsaCurve")));
        const a = privateKeyAttributes(key);
        return {
            id: a.id,
            computed: {
                privateKeyPem: a.privateKeyPem,
                privateKeyPemPkcs8: a.privateKeyPemPkcs8,
                privateKeyOpenssh: a.privateKeyOpenssh,
                publicKeyPem: a.publicKeyPem,
                publicKeyOpenssh: a.publicKeyOpenssh,
                publicKeyFingerprintMd5: a.publicKeyFingerprintMd5,
                publicKeyFingerprintSha256: a.publicKeyFingerprintSha256,
            },
        };
    }

    private certOutputs(planned: RawMap, cert: { certPem: string; serial: string; notBefore: Date; notAfter: Date }): RawMap {
        return {
            certPem: cert.certPem,
            validityStartTime: rfc3339(cert.notBefore),
            validityEndTime: rfc3339(cert.notAfter),
            readyForRenewal: plannedReadyForRenewal(planned),
        };
    }

    private createSelfSigned(planned: RawMap): { id: string; computed: RawMap } {
        const { key, algorithm } = withPrefix("Failed to parse private key PEM", () => parsePrivateKeyPem(str(planned.privateKeyPem, "privateKeyPem")));
        const subject = encodeName(goNameFromSubject(subjectOf(planned)));
        const cert = withPrefix("Failed to create certificate", () =>
            createCertificate({
                subject,
                subjectIsEmpty: subject.equals(EMPTY_NAME),
                issuer: subject,
                spki: publicOf(key).export({ type: "spki", format: "der" }),
                sans: sansOf(planned),
                validityPeriodHours: num(planned.validityPeriodHours, "validityPeriodHours"),
                allowedUses: stringList(planned.allowedUses),
                isCaCertificate: bool(planned.isCaCertificate),
                maxPathLength: isUnset(planned.maxPathLength) ? undefined : num(planned.maxPathLength, "maxPathLength"),
                setSubjectKeyId: bool(planned.setSubjectKeyId),
                setAuthorityKeyId: bool(planned.setAuthorityKeyId),
                selfSigned: true,
                signer: key,
                now: this.now(),
            }),
        );
        return { id: cert.serial, computed: { keyAlgorithm: algorithm, ...this.certOutputs(planned, cert) } };
    }

    private createRequest(planned: RawMap): { id: string; computed: RawMap } {
        const { key, algorithm } = withPrefix("Failed to parse private key PEM", () => parsePrivateKeyPem(str(planned.privateKeyPem, "privateKeyPem")));
        const der = withPrefix("Error creating certificate request", () => createCertificateRequest(encodeName(goNameFromSubject(subjectOf(planned))), sansOf(planned), key));
        return { id: hashForState(der), computed: { keyAlgorithm: algorithm, certRequestPem: encodePem("CERTIFICATE REQUEST", der) } };
    }

    private async createLocallySigned(urn: string, planned: RawMap): Promise<{ id: string; computed: RawMap }> {
        const req = withPrefix("Failed to parse certificate request PEM", () => parseCertificateRequest(str(planned.certRequestPem, "certRequestPem")));
        const ca = withPrefix("Failed to parse CA private key PEM", () => parsePrivateKeyPem(str(planned.caPrivateKeyPem, "caPrivateKeyPem")));
        const caCert = withPrefix("Failed to parse CA certificate PEM", () => parseCertificate(str(planned.caCertPem, "caCertPem")));
        if (!caCert.isCa) {
            await this.logger.log(
                "warning",
                "Potentially Invalid Certificate Authority: Certificate provided as Authority does not appear to be a valid " +
                    "Certificate Authority. The resulting certificate might fail certificate validation.",
                urn,
            );
        }
        const caPub = publicOf(ca.key).export({ type: "spki", format: "der" });
        const certPub = crypto.createPublicKey({ key: caCert.spki, format: "der", type: "spki" }).export({ type: "spki", format: "der" });
        if (!caPub.equals(certPub)) {
            throw new Error("Failed to create certificate: x509: provided PrivateKey doesn't match parent's PublicKey");
        }
        const subject = encodeName(req.subject);
        const cert = withPrefix("Failed to create certificate", () =>
            createCertificate({
                subject,
                subjectIsEmpty: subject.equals(EMPTY_NAME),
                issuer: caCert.subjectDer,
                spki: req.spki,
                sans: req.sans,
                validityPeriodHours: num(planned.validityPeriodHours, "validityPeriodHours"),
                allowedUses: stringList(planned.allowedUses),
                isCaCertificate: bool(planned.isCaCertificate),
                maxPathLength: isUnset(planned.maxPathLength) ? undefined : num(planned.maxPathLength, "maxPathLength"),
                setSubjectKeyId: bool(planned.setSubjectKeyId),
                parentSubjectKeyId: caCert.subjectKeyId,
                selfSigned: false,
                signer: ca.key,
                now: this.now(),
            }),
        );
        return { id: cert.serial, computed: { caKeyAlgorithm: ca.algorithm, ...this.certOutputs(planned, cert) } };
    }
}
