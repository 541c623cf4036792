// X.509 certificates and PKCS#10 requests for the tls stand-in. ASN.1
// structures come from @peculiar/asn1-x509 / asn1-csr, keys and signatures
// from Node's crypto (which, unlike WebCrypto, also does ECDSA P-224). The
// layout follows what Go's crypto/x509 CreateCertificate /
// CreateCertificateRequest produce for terraform-provider-tls: extension
// order and criticality, string types in names, signature algorithms.

import * as crypto from "node:crypto";
import * as net from "node:net";
import { AsnConvert, OctetString } from "@peculiar/asn1-schema";
import * as x509 from "@peculiar/asn1-x509";
import * as csr from "@peculiar/asn1-csr";
import { children, content, raw, readTlv } from "../common/der";
import { ecInfo, encodePem, keyAlgorithm, publicOf, spkiKeyBits } from "../common/sshkeys";
import { decodeFirstPem } from "./keys";

// ---------------------------------------------------------------------------
// Tiny DER writer for the outer structures (so raw names can be spliced in as-is).

function derLength(n: number): Buffer {
    if (n < 0x80) {
        return Buffer.from([n]);
    }
    const bytes: number[] = [];
    while (n > 0) {
        bytes.unshift(n & 0xff);
        n = Math.floor(n / 256);
    }
    return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, body: Buffer): Buffer {
    return Buffer.concat([Buffer.from([tag]), derLength(body.length), body]);
}

const seq = (...parts: Buffer[]) => tlv(0x30, Buffer.concat(parts));

function derUnsignedInteger(magnitude: Buffer): Buffer {
    let i = 0;
    while (i < magnitude.length - 1 && magnitude[i] === 0) {
        i++;
    }
    let m = magnitude.subarray(i);
    if (m.length === 0) {
        m = Buffer.from([0]);
    }
    if (m[0] & 0x80) {
        m = Buffer.concat([Buffer.from([0]), m]);
    }
    return tlv(0x02, m);
}

const ser = (v: unknown) => Buffer.from(AsnConvert.serialize(v));

// ---------------------------------------------------------------------------
// Names

export interface SubjectInput {
    commonName?: string;
    organization?: string;
    organizationalUnit?: string;
    streetAddresses?: string[];
    locality?: string;
    province?: string;
    country?: string;
    postalCode?: string;
    serialNumber?: string;
    emailAddress?: string;
}

/** Go's pkix.Name fields (multi-valued where Go has []string). */
export interface GoName {
    country: string[];
    province: string[];
    locality: string[];
    streetAddress: string[];
    postalCode: string[];
    organization: string[];
    organizationalUnit: string[];
    commonName: string;
    serialNumber: string;
    /** ExtraNames: only the e-mail attribute is ever produced here. */
    emailAddress?: string;
}

const OID = {
    country: "2.5.4.6",
    province: "2.5.4.8",
    locality: "2.5.4.7",
    streetAddress: "2.5.4.9",
    postalCode: "2.5.4.17",
    organization: "2.5.4.10",
    organizationalUnit: "2.5.4.11",
    commonName: "2.5.4.3",
    serialNumber: "2.5.4.5",
    emailAddress: "1.2.840.113549.1.9.1",
};

/** createSubjectDistinguishedNames. */
export function goNameFromSubject(s: SubjectInput | undefined): GoName {
    const one = (v: string | undefined) => (v === undefined ? [] : [v]);
    return {
        country: one(s?.country),
        province: one(s?.province),
        locality: one(s?.locality),
        streetAddress: s?.streetAddresses ?? [],
        postalCode: one(s?.postalCode),
        organization: one(s?.organization),
        organizationalUnit: one(s?.organizationalUnit),
        commonName: s?.commonName ?? "",
        serialNumber: s?.serialNumber ?? "",
        emailAddress: s?.emailAddress,
    };
}

/** encoding/asn1 picks PrintableString when it can, else UTF8String. */
function directoryValue(v: string): x509.AttributeValue {
    return /^[A-Za-z0-9 '()+,\-./:=?]*$/.test(v) ? new x509.AttributeValue({ printableString: v }) : new x509.AttributeValue({ utf8String: v });
}

/** pkix.Name.ToRDNSequence, DER encoded. */
export function encodeName(n: GoName): Buffer {
    const rdns: x509.RelativeDistinguishedName[] = [];
    const add = (values: string[], oid: string) => {
        if (values.length === 0) {
            return;
        }
        const atvs = values.map((v) => new x509.AttributeTypeAndValue({ type: oid, value: directoryValue(v) }));
        // DER orders the members of a SET OF by their encodings.
        atvs.sort((a, b) => Buffer.compare(ser(a), ser(b)));
        rdns.push(new x509.RelativeDistinguishedName(atvs));
    };
    add(n.country, OID.country);
    add(n.province, OID.province);
    add(n.locality, OID.locality);
    add(n.streetAddress, OID.streetAddress);
    add(n.postalCode, OID.postalCode);
    add(n.organization, OID.organization);
    add(n.organizationalUnit, OID.organizationalUnit);
    if (n.commonName.length > 0) {
        add([n.commonName], OID.commonName);
    }
    if (n.serialNumber.length > 0) {
        add([n.serialNumber], OID.serialNumber);
    }
    if (n.emailAddress !== undefined) {
        rdns.push(new x509.RelativeDistinguishedName([new x509.AttributeTypeAndValue({ type: OID.emailAddress, value: new x509.AttributeValue({ ia5String: n.emailAddress }) })]));
    }
    return ser(new x509.Name(rdns));
}

/** pkix.Name.FillFromRDNSequence (the fields Go keeps; other attributes, like e-mail, are dropped). */
export function goNameFromDer(der: Buffer): GoName {
    const name = AsnConvert.parse(der, x509.Name);
    const n: GoName = {
        country: [],
        province: [],
        locality: [],
        streetAddress: [],
        postalCode: [],
        organization: [],
        organizationalUnit: [],
        commonName: "",
        serialNumber: "",
    };
    for (const rdn of name) {
        for (const atv of rdn) {
            const v = atv.value;
            const s = v.printableString ?? v.utf8String ?? v.ia5String ?? v.teletexString ?? v.bmpString ?? v.universalString;
            if (s === undefined) {
                continue;
            }
            switch (atv.type) {
                case OID.commonName:
                    n.commonName = s;
                    break;
                case OID.serialNumber:
                    n.serialNumber = s;
                    break;
                case OID.country:
                    n.country.push(s);
                    break;
                case OID.locality:
                    n.locality.push(s);
                    break;
                case OID.province:
                    n.province.push(s);
                    break;
                case OID.streetAddress:
                    n.streetAddress.push(s);
                    break;
                case OID.organization:
                    n.organization.push(s);
                    break;
                case OID.organizationalUnit:
                    n.organizationalUnit.push(s);
                    break;
                case OID.postalCode:
                    n.postalCode.push(s);
                    break;
            }
        }
    }
    return n;
}

// ---------------------------------------------------------------------------
// Subject alternative names

export interface Sans {
    dnsNames: string[];
    ipAddresses: string[];
    uris: string[];
}

/** net.ParseIP; IPv4 (also IPv4-mapped IPv6) is encoded in 4 bytes like Go's ip.To4(). */
export function normalizeIp(s: string): string | undefined {
    const kind = net.isIP(s);
    if (kind === 4) {
        return s;
    }
    if (kind === 6) {
        const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(s);
        return m ? m[1] : s;
    }
    return undefined;
}

function checkIa5(v: string): void {
    if (!/^[\x00-\x7f]*$/.test(v)) {
        throw new Error(`x509: ${JSON.stringify(v)} cannot be encoded as an IA5String`);
    }
}

/** marshalSANs: DNS names, then IP addresses, then URIs. */
function sanExtensionValue(s: Sans): Buffer | undefined {
    const names: x509.GeneralName[] = [];
    for (const d of s.dnsNames) {
        checkIa5(d);
        names.push(new x509.GeneralName({ dNSName: d }));
    }
    for (const ip of s.ipAddresses) {
        const n = normalizeIp(ip);
        if (n === undefined) {
            throw new Error(`Invalid IP address: Failed to parse ${JSON.stringify(ip)}`);
        }
        names.push(new x509.GeneralName({ iPAddress: n }));
    }
    for (const u of s.uris) {
        checkIa5(u);
        names.push(new x509.GeneralName({ uniformResourceIdentifier: u }));
    }
    if (names.length === 0) {
        return undefined;
    }
    return ser(new x509.SubjectAlternativeName(names));
}

// ---------------------------------------------------------------------------
// Key usages (terraform-provider-tls keyUsages / extendedKeyUsages)

export const KEY_USAGES: Record<string, number> = {
    digital_signature: 1 << 0,
    content_commitment: 1 << 1,
    key_encipherment: 1 << 2,
    data_encipherment: 1 << 3,
    key_agreement: 1 << 4,
    cert_signing: 1 << 5,
    crl_signing: 1 << 6,
    encipher_only: 1 << 7,
    decipher_only: 1 << 8,
};

export const EXTENDED_KEY_USAGES: Record<string, string> = {
    any_extended: "2.5.29.37.0",
    server_auth: "1.3.6.1.5.5.7.3.1",
    client_auth: "1.3.6.1.5.5.7.3.2",
    code_signing: "1.3.6.1.5.5.7.3.3",
    email_protection: "1.3.6.1.5.5.7.3.4",
    ipsec_end_system: "1.3.6.1.5.5.7.3.5",
    ipsec_tunnel: "1.3.6.1.5.5.7.3.6",
    ipsec_user: "1.3.6.1.5.5.7.3.7",
    timestamping: "1.3.6.1.5.5.7.3.8",
    ocsp_signing: "1.3.6.1.5.5.7.3.9",
    microsoft_server_gated_crypto: "1.3.6.1.4.1.311.10.3.3",
    netscape_server_gated_crypto: "2.16.840.1.113730.4.1",
    microsoft_commercial_code_signing: "1.3.6.1.4.1.311.2.1.22",
    microsoft_kernel_code_signing: "1.3.6.1.4.1.311.61.1.1",
};

export const SUPPORTED_USES = [...Object.keys(KEY_USAGES), ...Object.keys(EXTENDED_KEY_USAGES)].sort();

// ---------------------------------------------------------------------------
// Signing

/** signingParamsForKey: the signature algorithm Go picks for a signer key. */
function signatureAlgorithm(signer: crypto.KeyObject): { alg: Buffer; hash: string | null } {
    switch (keyAlgorithm(signer)) {
        case "RSA":
            return { alg: ser(new x509.AlgorithmIdentifier({ algorithm: "1.2.840.113549.1.1.11", parameters: null })), hash: "sha256" };
        case "ED25519":
            return { alg: ser(new x509.AlgorithmIdentifier({ algorithm: "1.3.101.112" })), hash: null };
        case "ECDSA": {
            const curve = ecInfo(publicOf(signer)).curve;
            const [oid, hash] = curve === "P384" ? ["1.2.840.10045.4.3.3", "sha384"] : curve === "P521" ? ["1.2.840.10045.4.3.4", "sha512"] : ["1.2.840.10045.4.3.2", "sha256"];
            return { alg: ser(new x509.AlgorithmIdentifier({ algorithm: oid })), hash };
        }
    }
}

function signed(tbs: Buffer, signer: crypto.KeyObject): Buffer {
    const { alg, hash } = signatureAlgorithm(signer);
    const sig = crypto.sign(hash, tbs, signer);
    return seq(tbs, alg, tlv(0x03, Buffer.concat([Buffer.from([0]), sig])));
}

function ext(oid: string, critical: boolean, value: Buffer): x509.Extension {
    return new x509.Extension({ extnID: oid, critical, extnValue: new OctetString(value) });
}

/** generateSubjectKeyID: SHA-1 over Go's own marshalling of the public key. */
export function subjectKeyId(pub: crypto.KeyObject): Buffer {
    const p = publicOf(pub);
    let bytes: Buffer;
    switch (keyAlgorithm(p)) {
        case "RSA":
            bytes = p.export({ type: "pkcs1", format: "der" }); // asn1.Marshal(rsa.PublicKey{N, E})
            break;
        case "ECDSA":
            bytes = ecInfo(p).point; // elliptic.Marshal
            break;
        case "ED25519": {
            const k = spkiKeyBits(p);
            bytes = Buffer.concat([Buffer.from([0x04, k.length]), k]); // asn1.Marshal([]byte) = OCTET STRING
            break;
        }
    }
    return crypto.createHash("sha1").update(bytes).digest();
}

export interface CertificateTemplate {
    subject: Buffer;
    subjectIsEmpty: boolean;
    issuer: Buffer;
    /** DER SubjectPublicKeyInfo of the certified key. */
    spki: Buffer;
    sans: Sans;
    validityPeriodHours: number;
    allowedUses: string[];
    isCaCertificate: boolean;
    maxPathLength?: number;
    setSubjectKeyId: boolean;
    /** Self-signed only (the locally signed resource has no such input). */
    setAuthorityKeyId?: boolean;
    /** The issuing CA's subject key id (locally signed), or undefined. */
    parentSubjectKeyId?: Buffer;
    selfSigned: boolean;
    signer: crypto.KeyObject;
    now: Date;
}

export interface CreatedCertificate {
    certPem: string;
    serial: string;
    notBefore: Date;
    notAfter: Date;
}

/** createCertificate + x509.CreateCertificate. */
export function createCertificate(t: CertificateTemplate, random: (n: number) => Buffer = crypto.randomBytes): CreatedCertificate {
    const notBefore = t.now;
    const notAfter = new Date(notBefore.getTime() + t.validityPeriodHours * 3600_000);
    const serialBytes = random(16); // rand.Int(rand.Reader, 2^128)
    const serial = BigInt("0x" + (serialBytes.toString("hex") || "0")).toString(10);

    let keyUsage = 0;
    const extKeyUsages: string[] = [];
    for (const use of t.allowedUses) {
        if (KEY_USAGES[use] !== undefined) {
            keyUsage |= KEY_USAGES[use];
        }
        if (EXTENDED_KEY_USAGES[use] !== undefined) {
            extKeyUsages.push(EXTENDED_KEY_USAGES[use]);
        }
    }
    const certKey = crypto.createPublicKey({ key: t.spki, format: "der", type: "spki" });
    let ski: Buffer | undefined;
    if (t.isCaCertificate) {
        if (t.subjectIsEmpty) {
            throw new Error("Invalid Certificate Subject: Must contain at least one Distinguished Name when creating Certificate Authority (CA)");
        }
        ski = subjectKeyId(certKey);
    }
    if (t.setSubjectKeyId) {
        ski = subjectKeyId(certKey);
    }
    let aki: Buffer | undefined;
    if (t.setAuthorityKeyId) {
        // For a self-signed certificate the parent is the template itself.
        if (!ski) {
            throw new Error("Invalid Certificate Authority: Could not determine Authority Key Identifier");
        }
        aki = ski;
    }
    if (!t.selfSigned && !t.issuer.equals(t.subject) && t.parentSubjectKeyId && t.parentSubjectKeyId.length > 0) {
        aki = t.parentSubjectKeyId; // Go copies the parent's SubjectKeyId when issuer != subject
    }
    if (t.selfSigned && !t.issuer.equals(t.subject)) {
        throw new Error("internal error: self-signed issuer differs from subject");
    }

    const exts: x509.Extension[] = [];
    if (keyUsage !== 0) {
        exts.push(ext("2.5.29.15", true, ser(new x509.KeyUsage(keyUsage))));
    }
    if (extKeyUsages.length > 0) {
        exts.push(ext("2.5.29.37", false, ser(new x509.ExtendedKeyUsage(extKeyUsages))));
    }
    // BasicConstraintsValid is always true; MaxPathLen 0 means "no limit" (MaxPathLenZero is never set).
    const bc = new x509.BasicConstraints({ cA: t.isCaCertificate });
    if (t.maxPathLength !== undefined && t.maxPathLength > 0) {
        bc.pathLenConstraint = t.maxPathLength;
    }
    exts.push(ext("2.5.29.19", true, ser(bc)));
    if (ski) {
        exts.push(ext("2.5.29.14", false, ser(new x509.SubjectKeyIdentifier(ski))));
    }
    if (aki) {
        exts.push(ext("2.5.29.35", false, ser(new x509.AuthorityKeyIdentifier({ keyIdentifier: new x509.KeyIdentifier(aki) }))));
    }
    const san = sanExtensionValue(t.sans);
    if (san) {
        exts.push(ext("2.5.29.17", t.subjectIsEmpty, san));
    }

    const { alg } = signatureAlgorithm(t.signer);
    const tbs = seq(
        tlv(0xa0, derUnsignedInteger(Buffer.from([2]))), // v3
        derUnsignedInteger(serialBytes),
        alg,
        t.issuer,
        ser(new x509.Validity({ notBefore, notAfter })),
        t.subject,
        t.spki,
        tlv(0xa3, ser(new x509.Extensions(exts))),
    );
    const der = signed(tbs, t.signer);
    return { certPem: encodePem("CERTIFICATE", der), serial, notBefore, notAfter };
}

/** x509.CreateCertificateRequest with Subject, DNSNames, IPAddresses, URIs. */
export function createCertificateRequest(subject: Buffer, sans: Sans, key: crypto.KeyObject): Buffer {
    const spki = publicOf(key).export({ type: "spki", format: "der" });
    const san = sanExtensionValue(sans);
    let attrs = Buffer.alloc(0);
    if (san) {
        const extensions = ser(new x509.Extensions([ext("2.5.29.17", false, san)]));
        attrs = ser(new x509.Attribute({ type: "1.2.840.113549.1.9.14", values: [new Uint8Array(extensions).buffer] }));
    }
    const info = seq(derUnsignedInteger(Buffer.from([0])), subject, spki, tlv(0xa0, attrs));
    return signed(info, key);
}

// ---------------------------------------------------------------------------
// Parsing

export interface ParsedRequest {
    subject: GoName;
    spki: Buffer;
    sans: Sans;
}

function decodeTyped(text: string, type: string): Buffer {
    const block = decodeFirstPem(text);
    if (!block) {
        throw new Error(`failed to decode PEM of expected type ${JSON.stringify(type)} from bytes`);
    }
    if (block.type !== type) {
        throw new Error(`invalid PEM type - expected ${JSON.stringify(type)}, got ${JSON.stringify(block.type)}`);
    }
    return block.der;
}

function sansFromExtensions(exts: x509.Extension[]): Sans {
    const out: Sans = { dnsNames: [], ipAddresses: [], uris: [] };
    for (const e of exts) {
        if (e.extnID !== "2.5.29.17") {
            continue;
        }
        const names = AsnConvert.parse(e.extnValue.buffer, x509.SubjectAlternativeName);
        for (const n of names) {
            if (n.dNSName !== undefined) {
                out.dnsNames.push(n.dNSName);
            } else if (n.iPAddress !== undefined) {
                out.ipAddresses.push(n.iPAddress);
            } else if (n.uniformResourceIdentifier !== undefined) {
                out.uris.push(n.uniformResourceIdentifier);
            }
        }
    }
    return out;
}

/** parseCertificateRequest (the signature is not checked, as in Go's ParseCertificateRequest). */
export function parseCertificateRequest(text: string): ParsedRequest {
    const der = decodeTyped(text, "CERTIFICATE REQUEST");
    let parsed: csr.CertificationRequest;
    let subjectDer: Buffer;
    let spki: Buffer;
    try {
        parsed = AsnConvert.parse(der, csr.CertificationRequest);
        const outer = readTlv(der, 0);
        const [info] = children(der, outer);
        const [, subj, pk] = children(der, info);
        subjectDer = raw(der, subj);
        spki = raw(der, pk);
    } catch (e) {
        throw new Error(`failed to parse certificate request: ${(e as Error).message}`);
    }
    const exts: x509.Extension[] = [];
    for (const a of parsed.certificationRequestInfo.attributes) {
        if (a.type === "1.2.840.113549.1.9.14" && a.values.length > 0) {
            exts.push(...AsnConvert.parse(a.values[0], x509.Extensions));
        }
    }
    crypto.createPublicKey({ key: spki, format: "der", type: "spki" }); // rejects unsupported keys
    return { subject: goNameFromDer(subjectDer), spki, sans: sansFromExtensions(exts) };
}

export interface ParsedCertificate {
    subjectDer: Buffer;
    spki: Buffer;
    isCa: boolean;
    subjectKeyId?: Buffer;
    notBefore: Date;
    notAfter: Date;
}

export function parseCertificate(text: string): ParsedCertificate {
    const der = decodeTyped(text, "CERTIFICATE");
    try {
        const cert = AsnConvert.parse(der, x509.Certificate);
        const outer = readTlv(der, 0);
        const [tbs] = children(der, outer);
        const fields = children(der, tbs);
        const off = fields[0].tag === 0xa0 ? 1 : 0; // optional [0] version
        const subjectDer = raw(der, fields[off + 4]);
        const spki = raw(der, fields[off + 5]);
        let isCa = false;
        let ski: Buffer | undefined;
        for (const e of cert.tbsCertificate.extensions ?? []) {
            if (e.extnID === "2.5.29.19") {
                isCa = AsnConvert.parse(e.extnValue.buffer, x509.BasicConstraints).cA;
            } else if (e.extnID === "2.5.29.14") {
                const v = Buffer.from(e.extnValue.buffer);
                ski = content(v, readTlv(v, 0));
            }
        }
        return {
            subjectDer,
            spki,
            isCa,
            subjectKeyId: ski,
            notBefore: cert.tbsCertificate.validity.notBefore.getTime(),
            notAfter: cert.tbsCertificate.validity.notAfter.getTime(),
        };
    } catch (e) {
        throw new Error(`failed to parse certificate: ${(e as Error).message}`);
    }
}
