// Private key generation and encodings for the tls stand-in, matching
// terraform-provider-tls (internal/provider/resource_private_key.go and
// common_key.go), which the official pulumi-tls provider bridges.

import * as crypto from "node:crypto";
import { KeyAlgorithm, authorizedKey, encodePem, fingerprintMd5, fingerprintSha256, keyAlgorithm, opensshPrivateKey, publicOf } from "../common/sshkeys";

export const ALGORITHMS = ["RSA", "ECDSA", "ED25519"] as const;
export const ECDSA_CURVES = ["P224", "P256", "P384", "P521"] as const;

const nodeCurve: Record<string, string> = { P224: "secp224r1", P256: "prime256v1", P384: "secp384r1", P521: "secp521r1" };

export function generateKey(algorithm: string, rsaBits: number, ecdsaCurve: string): crypto.KeyObject {
    switch (algorithm) {
        case "RSA":
            return crypto.generateKeyPairSync("rsa", { modulusLength: rsaBits, publicExponent: 65537 }).privateKey;
        case "ECDSA": {
            const c = nodeCurve[ecdsaCurve];
            if (!c) {
                throw new Error(`invalid ECDSA curve; supported values are: [${ECDSA_CURVES.join(" ")}]`);
            }
            return crypto.generateKeyPairSync("ec", { namedCurve: c }).privateKey;
        }
        case "ED25519":
            return crypto.generateKeyPairSync("ed25519").privateKey;
        default:
            throw new Error(`Key Algorithm ${JSON.stringify(algorithm)} is not supported`);
    }
}

/** strings.TrimSpace on a byte string (ASCII and the two-byte Unicode spaces U+0085 / U+00A0). */
function goTrimSpace(b: Buffer): Buffer {
    const isSpace = (c: number) => c === 0x20 || (c >= 0x09 && c <= 0x0d);
    let s = 0;
    let e = b.length;
    for (;;) {
        if (s < e && isSpace(b[s])) {
            s++;
        } else if (s + 1 < e && b[s] === 0xc2 && (b[s + 1] === 0x85 || b[s + 1] === 0xa0)) {
            s += 2;
        } else {
            break;
        }
    }
    for (;;) {
        if (e > s && isSpace(b[e - 1])) {
            e--;
        } else if (e - 1 > s && b[e - 2] === 0xc2 && (b[e - 1] === 0x85 || b[e - 1] === 0xa0)) {
            e -= 2;
        } else {
            break;
        }
    }
    return b.subarray(s, e);
}

/** Terraform's hashForState: hex SHA-1 of the trimmed value (used for resource ids). */
export function hashForState(value: Buffer): string {
    if (value.length === 0) {
        return "";
    }
    return crypto.createHash("sha1").update(goTrimSpace(value)).digest("hex");
}

/** The "traditional" PEM Terraform writes to private_key_pem: PKCS#1 for RSA, SEC 1 for ECDSA, PKCS#8 for Ed25519. */
export function traditionalPrivateKeyPem(key: crypto.KeyObject): string {
    switch (keyAlgorithm(key)) {
        case "RSA":
            return encodePem("RSA PRIVATE KEY", key.export({ type: "pkcs1", format: "der" }));
        case "ECDSA":
            return encodePem("EC PRIVATE KEY", key.export({ type: "sec1", format: "der" }));
        case "ED25519":
            return encodePem("PRIVATE KEY", key.export({ type: "pkcs8", format: "der" }));
    }
}

export interface PublicKeyAttributes {
    id: string;
    publicKeyPem: string;
    publicKeyOpenssh: string;
    publicKeyFingerprintMd5: string;
    publicKeyFingerprintSha256: string;
}

/** setPublicKeyAttributes: the public key outputs (OpenSSH ones are "" for ECDSA P-224). */
export function publicKeyAttributes(key: crypto.KeyObject): PublicKeyAttributes {
    const pub = publicOf(key);
    const der = pub.export({ type: "spki", format: "der" });
    return {
        id: hashForState(der),
        publicKeyPem: encodePem("PUBLIC KEY", der),
        publicKeyOpenssh: authorizedKey(pub),
        publicKeyFingerprintMd5: fingerprintMd5(pub),
        publicKeyFingerprintSha256: fingerprintSha256(pub),
    };
}

export interface PrivateKeyAttributes extends PublicKeyAttributes {
    privateKeyPem: string;
    privateKeyPemPkcs8: string;
    privateKeyOpenssh: string;
}

export function privateKeyAttributes(key: crypto.KeyObject): PrivateKeyAttributes {
    return {
        ...publicKeyAttributes(key),
        privateKeyPem: traditionalPrivateKeyPem(key),
        privateKeyPemPkcs8: encodePem("PRIVATE KEY", key.export({ type: "pkcs8", format: "der" })),
        privateKeyOpenssh: opensshPrivateKey(key) ?? "",
    };
}

const PEM_RE = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END \1-----/;

/** pem.Decode of the first block: type and DER bytes. */
export function decodeFirstPem(text: string): { type: string; der: Buffer } | undefined {
    const m = PEM_RE.exec(text);
    if (!m) {
        return undefined;
    }
    const body = m[2]
        .split(/\r?\n/)
        .filter((l) => !l.includes(":"))
        .join("");
    return { type: m[1], der: Buffer.from(body, "base64") };
}

/** parsePrivateKeyPEM: RSA PRIVATE KEY, EC PRIVATE KEY or (PKCS#8) PRIVATE KEY. */
export function parsePrivateKeyPem(text: string): { key: crypto.KeyObject; algorithm: KeyAlgorithm } {
    const block = decodeFirstPem(text);
    if (!block) {
        throw new Error(`failed to decode PEM block: decoded bytes 0, undecoded ${Buffer.byteLength(text)}`);
    }
    let key: crypto.KeyObject;
    switch (block.type) {
        case "RSA PRIVATE KEY":
            key = crypto.createPrivateKey({ key: block.der, format: "der", type: "pkcs1" });
            break;
        case "EC PRIVATE KEY":
            key = crypto.createPrivateKey({ key: block.der, format: "der", type: "sec1" });
            break;
        case "PRIVATE KEY":
            key = crypto.createPrivateKey({ key: block.der, format: "der", type: "pkcs8" });
            break;
        case "PUBLIC KEY":
        case "CERTIFICATE":
        case "CERTIFICATE REQUEST":
            throw new Error(`unable to determine parser for PEM preamble: ${block.type}`);
        default:
            throw new Error(`unsupported PEM preamble/type: ${block.type}`);
    }
    return { key, algorithm: keyAlgorithm(key) };
}
