// SSH wire-format encodings of keys held as Node KeyObjects, written to match
// golang.org/x/crypto/ssh (which the official providers use):
// ssh.MarshalAuthorizedKey, ssh.FingerprintLegacyMD5, ssh.FingerprintSHA256
// and ssh.MarshalPrivateKey(key, "") (unencrypted "openssh-key-v1").

import * as crypto from "node:crypto";
import { children, content, readTlv } from "./der";

export type KeyAlgorithm = "RSA" | "ECDSA" | "ED25519";

export interface EcInfo {
    /** OpenSSH curve name (nistp256 ...) or undefined for curves SSH does not support (P-224). */
    sshCurve: string | undefined;
    /** Go / Terraform curve name: P224, P256, P384, P521. */
    curve: "P224" | "P256" | "P384" | "P521";
    /** Byte length of a field element. */
    size: number;
    /** Uncompressed public point 0x04 || X || Y. */
    point: Buffer;
}

const curves: Record<string, { curve: EcInfo["curve"]; ssh: string | undefined; size: number }> = {
    secp224r1: { curve: "P224", ssh: undefined, size: 28 },
    prime256v1: { curve: "P256", ssh: "nistp256", size: 32 },
    secp384r1: { curve: "P384", ssh: "nistp384", size: 48 },
    secp521r1: { curve: "P521", ssh: "nistp521", size: 66 },
};

export function keyAlgorithm(key: crypto.KeyObject): KeyAlgorithm {
    switch (key.asymmetricKeyType) {
        case "rsa":
            return "RSA";
        case "ec":
            return "ECDSA";
        case "ed25519":
            return "ED25519";
        default:
            throw new Error(`unsupported key type: ${key.asymmetricKeyType}`);
    }
}

export function publicOf(key: crypto.KeyObject): crypto.KeyObject {
    return key.type === "private" ? crypto.createPublicKey(key) : key;
}

/** The raw subjectPublicKey BIT STRING contents (without the unused-bits byte) of a public key. */
export function spkiKeyBits(pub: crypto.KeyObject): Buffer {
    const der = publicOf(pub).export({ type: "spki", format: "der" });
    const outer = readTlv(der, 0);
    const [, bits] = children(der, outer);
    const c = content(der, bits);
    return c.subarray(1);
}

export function ecInfo(key: crypto.KeyObject): EcInfo {
    const name = key.asymmetricKeyDetails?.namedCurve ?? "";
    const c = curves[name];
    if (!c) {
        throw new Error(`unsupported elliptic curve ${name}`);
    }
    return { sshCurve: c.ssh, curve: c.curve, size: c.size, point: spkiKeyBits(key) };
}

/** The private scalar of an EC private key, from its SEC1 encoding. */
export function ecPrivateScalar(key: crypto.KeyObject): Buffer {
    const der = key.export({ type: "sec1", format: "der" });
    const outer = readTlv(der, 0);
    const parts = children(der, outer);
    return content(der, parts[1]);
}

function sshString(b: Buffer | string): Buffer {
    const data = typeof b === "string" ? Buffer.from(b, "utf8") : b;
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    return Buffer.concat([len, data]);
}

function sshUint32(n: number): Buffer {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n >>> 0);
    return b;
}

/** SSH mpint from an unsigned big-endian magnitude. */
export function sshMpint(magnitude: Buffer): Buffer {
    let i = 0;
    while (i < magnitude.length && magnitude[i] === 0) {
        i++;
    }
    let m = magnitude.subarray(i);
    if (m.length > 0 && m[0] & 0x80) {
        m = Buffer.concat([Buffer.from([0]), m]);
    }
    return sshString(m);
}

function b64url(s: string | undefined): Buffer {
    if (s === undefined) {
        throw new Error("missing JWK component");
    }
    return Buffer.from(s, "base64url");
}

/** The SSH key type name (ssh-rsa, ecdsa-sha2-nistp256, ssh-ed25519), or undefined if SSH cannot express the key. */
export function sshKeyType(key: crypto.KeyObject): string | undefined {
    switch (keyAlgorithm(key)) {
        case "RSA":
            return "ssh-rsa";
        case "ED25519":
            return "ssh-ed25519";
        case "ECDSA": {
            const info = ecInfo(publicOf(key));
            return info.sshCurve ? `ecdsa-sha2-${info.sshCurve}` : undefined;
        }
    }
}

/** SSH public key blob (RFC 4253 / 5656 / 8709), or undefined for keys SSH does not support (ECDSA P-224). */
export function sshPublicKeyBlob(key: crypto.KeyObject): Buffer | undefined {
    const pub = publicOf(key);
    switch (keyAlgorithm(pub)) {
        case "RSA": {
            const jwk = pub.export({ format: "jwk" });
            return Buffer.concat([sshString("ssh-rsa"), sshMpint(b64url(jwk.e)), sshMpint(b64url(jwk.n))]);
        }
        case "ED25519":
            return Buffer.concat([sshString("ssh-ed25519"), sshString(spkiKeyBits(pub))]);
        case "ECDSA": {
            const info = ecInfo(pub);
            if (!info.sshCurve) {
                return undefined;
            }
            return Buffer.concat([sshString(`ecdsa-sha2-${info.sshCurve}`), sshString(info.sshCurve), sshString(info.point)]);
        }
    }
}

/** ssh.MarshalAuthorizedKey: "<type> <base64>\n" (no comment). */
export function authorizedKey(key: crypto.KeyObject): string {
    const blob = sshPublicKeyBlob(key);
    if (!blob) {
        return "";
    }
    return `${sshKeyType(key)} ${blob.toString("base64")}\n`;
}

/** ssh.FingerprintLegacyMD5: colon-separated lowercase hex. */
export function fingerprintMd5(key: crypto.KeyObject): string {
    const blob = sshPublicKeyBlob(key);
    if (!blob) {
        return "";
    }
    const hex = crypto.createHash("md5").update(blob).digest("hex");
    return hex.match(/../g)!.join(":");
}

/** ssh.FingerprintSHA256: "SHA256:" + unpadded standard base64. */
export function fingerprintSha256(key: crypto.KeyObject): string {
    const blob = sshPublicKeyBlob(key);
    if (!blob) {
        return "";
    }
    return "SHA256:" + crypto.createHash("sha256").update(blob).digest("base64").replace(/=+$/, "");
}

function pem(type: string, der: Buffer): string {
    const b64 = der.toString("base64");
    const lines = b64.match(/.{1,64}/g) ?? [];
    return `-----BEGIN ${type}-----\n${lines.join("\n")}\n-----END ${type}-----\n`;
}

/** Go's encoding/pem.EncodeToMemory. */
export function encodePem(type: string, der: Buffer): string {
    return pem(type, der);
}

/**
 * ssh.MarshalPrivateKey(key, "") encoded with pem.EncodeToMemory: an
 * unencrypted "openssh-key-v1" container with an empty comment. Returns
 * undefined for ECDSA P-224, which SSH cannot express (the official provider
 * then reports an empty string).
 */
export function opensshPrivateKey(key: crypto.KeyObject, random: (n: number) => Buffer = crypto.randomBytes): string | undefined {
    if (key.type !== "private") {
        throw new Error("opensshPrivateKey needs a private key");
    }
    const pubBlob = sshPublicKeyBlob(key);
    if (!pubBlob) {
        return undefined;
    }
    let keyType: string;
    let rest: Buffer;
    switch (keyAlgorithm(key)) {
        case "RSA": {
            const jwk = key.export({ format: "jwk" });
            keyType = "ssh-rsa";
            rest = Buffer.concat([sshMpint(b64url(jwk.n)), sshMpint(b64url(jwk.e)), sshMpint(b64url(jwk.d)), sshMpint(b64url(jwk.qi)), sshMpint(b64url(jwk.p)), sshMpint(b64url(jwk.q))]);
            break;
        }
        case "ED25519": {
            const jwk = key.export({ format: "jwk" });
            const pub = b64url(jwk.x);
            const seed = b64url(jwk.d);
            keyType = "ssh-ed25519";
            rest = Buffer.concat([sshString(pub), sshString(Buffer.concat([seed, pub]))]);
            break;
        }
        case "ECDSA": {
            const info = ecInfo(publicOf(key));
            keyType = `ecdsa-sha2-${info.sshCurve}`;
            rest = Buffer.concat([sshString(info.sshCurve as string), sshString(info.point), sshMpint(ecPrivateScalar(key))]);
            break;
        }
    }
    const check = random(4);
    let block = Buffer.concat([check, check, sshString(keyType), rest, sshString("")]);
    const padding: number[] = [];
    for (let i = 0; (block.length + i) % 8 !== 0; i++) {
        padding.push(i + 1);
    }
    block = Buffer.concat([block, Buffer.from(padding)]);
    const body = Buffer.concat([Buffer.from("openssh-key-v1\0", "latin1"), sshString("none"), sshString("none"), sshString(""), sshUint32(1), sshString(pubBlob), sshString(block)]);
    return pem("OPENSSH PRIVATE KEY", body);
}

/** Parses an authorized_keys style line ("<type> <base64> [comment]") into its type and blob. */
export function parseAuthorizedKey(line: string): { type: string; blob: Buffer } {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 2) {
        throw new Error("ssh: no key found");
    }
    const [type, b64] = fields;
    const blob = Buffer.from(b64, "base64");
    if (blob.length < 4) {
        throw new Error("ssh: no key found");
    }
    const n = blob.readUInt32BE(0);
    const inner = blob.subarray(4, 4 + n).toString("latin1");
    if (inner !== type) {
        throw new Error(`ssh: key type ${JSON.stringify(type)} does not match the encoded key type ${JSON.stringify(inner)}`);
    }
    return { type, blob };
}
