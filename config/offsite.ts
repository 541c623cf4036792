/** `devpi:offsite`: the off-host copy of the scheduled backups (restic), checked before any SSH. */
import { fail } from "./errors";
import { HOSTNAME_RE, isIpAddress } from "./rules";

/** The validated off-host settings (secrets as given: strings in the stack config). */
export interface OffsiteConfig {
    repository: string;
    password: string;
    sftp?: { privateKey: string; hostKey: string; port: number };
    s3?: { accessKeyId: string; secretAccessKey: string };
    keep: { daily: number; weekly: number; monthly: number };
}

const KEYS = ["repository", "password", "sshPrivateKey", "sshHostKey", "sshPort", "keep", "s3AccessKeyId", "s3SecretAccessKey"];
const SFTP_RE = /^sftp:([a-z_][a-z0-9_.-]{0,31})@([^:/\s]+):(\/[^\s'"\\]*)$/;
const S3_RE = /^s3:https?:\/\/[A-Za-z0-9.-]+(:\d+)?\/[A-Za-z0-9._/-]+$/;

/**
 * Reads `devpi:offsite` (a map): `repository` (`sftp:USER@HOST:/ABSOLUTE/PATH` or
 * `s3:https://HOST/BUCKET[/PREFIX]`), `password` (secret, 12+ characters), for SFTP
 * `sshPrivateKey` (secret) and `sshHostKey` (the target's `TYPE BASE64` line) and `sshPort`, for S3
 * `s3AccessKeyId` and `s3SecretAccessKey` (secret), and `keep: {daily, weekly, monthly}`.
 * Undefined when not set.
 */
export function parseOffsite(v: unknown): OffsiteConfig | undefined {
    if (v === undefined || (typeof v === "object" && v !== null && !Array.isArray(v) && Object.keys(v).length === 0)) return undefined;
    if (typeof v !== "object" || v === null || Array.isArray(v))
        fail("offsite", v, "must be a map: {repository, password, sshPrivateKey, sshHostKey, sshPort, keep, s3AccessKeyId, s3SecretAccessKey}");
    const o = v as Record<string, unknown>;
    for (const k of Object.keys(o)) if (!KEYS.includes(k)) fail(`offsite.${k}`, o[k], `unknown key; allowed: ${KEYS.join(", ")}`);
    const repository = o.repository;
    if (typeof repository !== "string" || !(SFTP_RE.test(repository) || S3_RE.test(repository))) {
        fail("offsite.repository", repository, "must be sftp:USER@HOST:/ABSOLUTE/PATH (another server, over SSH) or s3:https://HOST/BUCKET[/PREFIX] (an S3-compatible store)");
    }
    if (typeof o.password !== "string" || o.password.length < 12) fail("offsite.password", "(secret)", "must be at least 12 characters: it encrypts the off-host copy; keep a copy of it elsewhere");
    const keep = parseKeep(o.keep);
    if (repository.startsWith("sftp:")) {
        const host = SFTP_RE.exec(repository)![2];
        if (!HOSTNAME_RE.test(host) && !isIpAddress(host)) fail("offsite.repository", repository, "the SFTP host must be a host name or an IP address");
        if (typeof o.sshPrivateKey !== "string" || !o.sshPrivateKey.includes("PRIVATE KEY"))
            fail("offsite.sshPrivateKey", "(secret)", "must be the private key (PEM/OpenSSH) that logs in to the SFTP target, set with --secret");
        if (typeof o.sshHostKey !== "string" || !/^(ssh-ed25519|ecdsa-sha2-nistp\d+|ssh-rsa) [A-Za-z0-9+/=]+$/.test(o.sshHostKey.trim())) {
            fail("offsite.sshHostKey", o.sshHostKey, "must be the SFTP target's host key, TYPE BASE64 (ssh-keyscan -t ed25519 HOST, checked out of band)");
        }
        const port = o.sshPort === undefined ? 22 : Number(o.sshPort);
        if (!Number.isInteger(port) || port < 1 || port > 65535) fail("offsite.sshPort", o.sshPort, "must be an integer from 1 to 65535");
        if (o.s3AccessKeyId !== undefined || o.s3SecretAccessKey !== undefined) fail("offsite.s3AccessKeyId", "(set)", "belongs to an s3: repository, not sftp:");
        return { repository, password: o.password, sftp: { privateKey: o.sshPrivateKey, hostKey: o.sshHostKey.trim(), port }, keep };
    }
    for (const k of ["s3AccessKeyId", "s3SecretAccessKey"]) if (typeof o[k] !== "string" || o[k] === "") fail(`offsite.${k}`, "(missing)", "is required for an s3: repository");
    if (o.sshPrivateKey !== undefined) fail("offsite.sshPrivateKey", "(set)", "belongs to an sftp: repository, not s3:");
    return { repository, password: o.password, s3: { accessKeyId: o.s3AccessKeyId as string, secretAccessKey: o.s3SecretAccessKey as string }, keep };
}

/** `keep`: counts of daily, weekly and monthly snapshots (0 to 1000); at least one must keep something. */
function parseKeep(v: unknown): OffsiteConfig["keep"] {
    const keep = { daily: 7, weekly: 4, monthly: 12 };
    if (v === undefined) return keep;
    if (typeof v !== "object" || v === null || Array.isArray(v)) fail("offsite.keep", v, "must be a map {daily, weekly, monthly} of snapshot counts");
    for (const [k, n] of Object.entries(v as Record<string, unknown>)) {
        if (!(k in keep)) fail(`offsite.keep.${k}`, n, "unknown key; allowed: daily, weekly, monthly");
        if (!Number.isInteger(Number(n)) || Number(n) < 0 || Number(n) > 1000) fail(`offsite.keep.${k}`, n, "must be an integer from 0 to 1000");
        keep[k as keyof typeof keep] = Number(n);
    }
    if (keep.daily + keep.weekly + keep.monthly === 0) fail("offsite.keep", v, "keeps nothing: restic would remove every snapshot; keep at least one daily, weekly or monthly snapshot");
    return keep;
}
