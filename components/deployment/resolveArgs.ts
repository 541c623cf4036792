/**
 * Pure: {@link DevpiArgs} with every default filled in and every plain value checked by the same
 * rules (and messages) as the stack config, naming the argument (`options.serverDir`) instead of
 * the stack key. Inputs not known yet (a VM's address) are checked once they resolve.
 */
import * as pulumi from "@pulumi/pulumi";
import { ReadCredential } from "../common/readCredential";
import { InstallSettings } from "../devpi/devpiServerConfig";
import { LocalPlugin, readAclPlugin } from "../devpi/readAclPlugin";
import { checkReadAcls, defaultClientIndex, parseIndexes, parseTokens, parseUsers } from "../../config/access";
import { ConfigError } from "../../config/errors";
import { parseServer, parseSslBase } from "../../config/load";
import { Reader } from "../../config/reader";
import { parseOffsite } from "../../config/offsite";
import { DEFAULT_METRICS_ADDRESS, metricsAddressProblem } from "../../config/servers";
import { MetricsScrape, metricsScrapeProblem } from "../../config/metricsScrape";
import { checkLayout, REPLICA_NAME_RE, REPLICA_NAME_RULE } from "../../config/rules";
import { LETSENCRYPT_DIRECTORY, DevpiConfig, IndexConfig, SslConfig, TokenConfig } from "../../config/types";
import { DevpiArgs, IndexArgs, ServerTarget, SshTarget } from "./devpiArgs";
import type { OffsiteArgs } from "../backup/offsiteBackup";

/** devpi-server's settings, validated (as in the stack config). */
export type DevpiSettings = DevpiConfig["devpi"];

/** TLS with defaults; provided PEMs may be Inputs. */
export interface TlsSettings extends Omit<SslConfig, "extraDnsNames" | "extraIpAddresses" | "providedChainPem" | "providedKeyPem"> {
    providedChainPem?: pulumi.Input<string>;
    providedKeyPem?: pulumi.Input<string>;
}

/** One server of the deployment, with defaults, and where it stands in it. */
export interface HostSpec {
    /** `primary`, or the replica's name. */
    label: string;
    /** Prefix of the resource names of this server inside its tree: "" for the primary, `replica-NAME-` for a replica. */
    prefix: string;
    /** `standalone` (no replicas), `primary` (replicas follow it) or `replica`. */
    role: "standalone" | "primary" | "replica";
    ssh: Required<Omit<SshTarget, "hostKey">> & Pick<SshTarget, "hostKey">;
    domain: pulumi.Input<string>;
    extraDnsNames: pulumi.Input<pulumi.Input<string>[]>;
    extraIpAddresses: pulumi.Input<pulumi.Input<string>[]>;
    httpPort: pulumi.Input<number>;
    httpsPort: pulumi.Input<number>;
    devpiPort: number;
    /** node-exporter's loopback address (HOST:PORT). */
    metricsAddress: string;
    /** nginx serves the metrics there to the allowed networks; absent: loopback only. */
    metricsScrape?: MetricsScrape;
    /** Provided TLS: this server's chain and key. */
    providedChainPem?: pulumi.Input<string>;
    providedKeyPem?: pulumi.Input<string>;
}

/** A user with its password as given (an Input). */
export interface UserSettings {
    name: string;
    password: pulumi.Input<string>;
    email?: string;
}

/** Everything the component builds from, defaults filled in. */
export interface ResolvedDevpi {
    devpi: DevpiSettings;
    listenIpv6: boolean;
    ssl: TlsSettings;
    rootPassword: pulumi.Input<string>;
    users: UserSettings[];
    /** Mirror passwords are not in here: see {@link ResolvedDevpi.mirrorPasswords}. */
    indexes: IndexConfig[];
    /** Each credentialed mirror index's upstream password (a secret), by index name. */
    mirrorPasswords: Map<string, pulumi.Input<string>>;
    tokens: TokenConfig[];
    clientIndex?: string;
    clientIncludePassword: boolean;
    /** The off-host copy of the backups (checked; secrets as given). */
    offsite?: OffsiteArgs;
    /** The primary first, then each replica. */
    hosts: HostSpec[];
}

/** Stack key -> argument path, for messages (the rules are the stack config's). */
const ARG_OF_KEY: Record<string, string> = {
    devpiHost: "options.bindAddress",
    devpiServerVersion: "options.serverVersion",
    devpiWebVersion: "options.webVersion",
    devpiLockdownVersion: "options.lockdownVersion",
    devpiTokensVersion: "options.tokensVersion",
    reads: "access.reads",
    authCacheSeconds: "access.authCacheSeconds",
    tokens: "access.tokens",
    backupSchedule: "backups.schedule",
    backupKeep: "backups.keep",
    offsite: "backups.offsite",
    sslMode: "tls.mode",
    sslDir: "tls.dir",
    certValidityDays: "tls.certValidityDays",
    certRenewBeforeDays: "tls.certRenewBeforeDays",
    caValidityDays: "tls.caValidityDays",
    caRenewBeforeDays: "tls.caRenewBeforeDays",
    rootPassword: "access.rootPassword",
    clientIndex: "client.index",
    users: "access.users",
    indexes: "access.indexes",
};

/** The off-host settings as the stack config would hold them (secrets given as Outputs stand in as placeholders). */
function offsiteRaw(args: DevpiArgs): Record<string, unknown> | undefined {
    const o = args.backups?.offsite;
    if (!o) return undefined;
    const given = (v: unknown, placeholder: string) => (typeof v === "string" ? v : placeholder);
    return {
        repository: o.repository,
        password: given(o.password, "(a Pulumi input)"),
        ...(o.sftp ? { sshPrivateKey: given(o.sftp.privateKey, "PRIVATE KEY (a Pulumi input)"), sshHostKey: o.sftp.hostKey, sshPort: o.sftp.port } : {}),
        ...(o.s3 ? { s3AccessKeyId: given(o.s3.accessKeyId, "(input)"), s3SecretAccessKey: given(o.s3.secretAccessKey, "(input)") } : {}),
        ...(o.keep ? { keep: o.keep } : {}),
    };
}

/** Rewrites a stack-config message (`devpi:KEY...`) to name the component's argument. */
function asArgError(name: string, e: unknown): unknown {
    if (!(e instanceof ConfigError)) return e;
    const message = e.message.replace(/^devpi:([A-Za-z]+)/, (_m, key: string) => `Devpi ${name}: ${ARG_OF_KEY[key] ?? `options.${key}`}`);
    return new ConfigError(message);
}

/** An index as the stack reader sees it in `devpi:indexes` (devpi's key names). */
function rawIndex(i: IndexArgs): Record<string, unknown> {
    const m = i.mirror;
    if (i.type !== "mirror" && m === undefined) return { bases: i.bases, volatile: i.volatile, acl_upload: i.aclUpload, acl_read: i.aclRead, mirror_whitelist: i.mirrorWhitelist };
    return {
        type: i.type,
        bases: i.bases,
        volatile: i.volatile,
        acl_upload: i.aclUpload,
        acl_read: i.aclRead,
        mirror_whitelist: i.mirrorWhitelist,
        mirror_url: m?.url,
        mirror_allow_http: m?.allowHttp,
        mirror_web_url_fmt: m?.webUrlFmt,
        mirror_no_project_list: m?.projectList === undefined ? undefined : !m.projectList,
        mirror_use_external_urls: m?.useExternalUrls,
        mirror_ignore_serial_header: m?.ignoreSerialHeader,
        mirror_cache_expiry: m?.cacheExpiry,
        mirror_username: m?.username,
        mirror_password: m?.password === undefined ? undefined : typeof m.password === "string" ? m.password : "(input)",
    };
}

/** The plain values of the args as the stack reader sees raw config (strings; JSON for structures). */
function rawOf(args: DevpiArgs): (key: string) => string | undefined {
    const o = args.options ?? {};
    const tls = args.tls ?? { mode: "self-signed" as const };
    const windows = tls.mode === "self-signed" ? tls : { certRenewBeforeDays: tls.certRenewBeforeDays };
    const users = Object.fromEntries(
        (args.access.users ?? []).map((u) => [u.name, { password: typeof u.password === "string" ? u.password : "(input)", ...(u.email === undefined ? {} : { email: u.email }) }]),
    );
    const indexes = Object.fromEntries((args.access.indexes ?? []).map((i) => [i.name, rawIndex(i)]));
    const tokens = Object.fromEntries(
        (args.access.tokens ?? []).map((t) => [t.name, { user: t.user, scope: t.scope, indexes: t.indexes, validDays: t.validDays, renewBeforeDays: t.renewBeforeDays }]),
    );
    const values: Record<string, unknown> = {
        ...o,
        devpiHost: o.bindAddress,
        devpiServerVersion: o.serverVersion,
        devpiWebVersion: o.webVersion,
        devpiLockdownVersion: o.lockdownVersion,
        devpiTokensVersion: o.tokensVersion,
        reads: args.access.reads,
        authCacheSeconds: args.access.authCacheSeconds,
        backupSchedule: args.backups?.schedule,
        backupKeep: args.backups?.keep,
        offsite: offsiteRaw(args),
        sslMode: tls.mode,
        sslDir: tls.dir,
        ...windows,
        users: args.access.users?.length ? users : undefined,
        indexes: args.access.indexes?.length ? indexes : undefined,
        tokens: args.access.tokens?.length ? tokens : undefined,
    };
    return (key) => {
        const v = values[key];
        if (v === undefined || v === null) return undefined;
        return typeof v === "string" ? v : JSON.stringify(v);
    };
}

function resolveTls(args: DevpiArgs, r: Reader): TlsSettings {
    const base = parseSslBase(r, []);
    const tls = args.tls ?? { mode: "self-signed" as const };
    const common: TlsSettings = { ...base };
    delete (common as Partial<SslConfig>).extraDnsNames;
    delete (common as Partial<SslConfig>).extraIpAddresses;
    if (tls.mode === "provided") return { ...common, providedChainPem: tls.chainPem, providedKeyPem: pulumi.secret(tls.keyPem), providedCaPem: tls.caPem };
    if (tls.mode === "acme") return { ...common, acmeEmail: tls.email, acmeDirectoryUrl: tls.directoryUrl ?? LETSENCRYPT_DIRECTORY, acmeCaBundlePem: tls.caBundlePem };
    return common;
}

function hostSpec(target: ServerTarget, defaults: { httpPort: pulumi.Input<number>; httpsPort: pulumi.Input<number>; devpiPort: number; metricsAddress: string; user: pulumi.Input<string> }) {
    return {
        ssh: { host: target.ssh.host, port: target.ssh.port ?? 22, user: target.ssh.user ?? defaults.user, privateKey: target.ssh.privateKey, hostKey: target.ssh.hostKey },
        domain: target.domain,
        extraDnsNames: target.extraDnsNames ?? [],
        extraIpAddresses: target.extraIpAddresses ?? [],
        httpPort: target.httpPort ?? defaults.httpPort,
        httpsPort: target.httpsPort ?? defaults.httpsPort,
        devpiPort: target.devpiPort ?? defaults.devpiPort,
        metricsAddress: target.metricsAddress ?? defaults.metricsAddress,
        metricsScrape: target.metricsScrape,
    };
}

/** The primary first, then every replica; replicas default to the primary's ports, SSH user and (provided) certificate. */
function hostSpecs(args: DevpiArgs, ssl: TlsSettings): HostSpec[] {
    const primary = hostSpec(args.server, { httpPort: 80, httpsPort: 443, devpiPort: 4040, metricsAddress: DEFAULT_METRICS_ADDRESS, user: "root" });
    const replicas = args.replicas ?? [];
    const names = new Set<string>();
    for (const r of replicas) {
        if (!REPLICA_NAME_RE.test(r.name)) throw new ConfigError(`Devpi: replicas[].name: invalid value ${JSON.stringify(r.name)}: ${REPLICA_NAME_RULE}`);
        if (names.has(r.name)) throw new ConfigError(`Devpi: replicas[].name: invalid value ${JSON.stringify(r.name)}: must be unique`);
        names.add(r.name);
    }
    for (const [where, spec] of [["server", primary] as const, ...replicas.map((r) => [`replicas[${r.name}]`, hostSpec(r, { ...primary, user: primary.ssh.user })] as const)]) {
        const problem = metricsAddressProblem(spec.metricsAddress, [spec.devpiPort]);
        if (problem) throw new ConfigError(`Devpi: ${where}.metricsAddress: invalid value ${JSON.stringify(spec.metricsAddress)}: ${problem}`);
        const scrape = spec.metricsScrape && metricsScrapeProblem(spec.metricsScrape, [spec.devpiPort], spec.metricsAddress);
        if (scrape) throw new ConfigError(`Devpi: ${where}.metricsScrape.${scrape[0]}: invalid value ${JSON.stringify(scrape[1])}: ${scrape[2]}`);
    }
    return [
        { label: "primary", prefix: "", role: replicas.length > 0 ? "primary" : "standalone", ...primary, providedChainPem: ssl.providedChainPem, providedKeyPem: ssl.providedKeyPem },
        ...replicas.map((r): HostSpec => ({
            label: r.name,
            prefix: `replica-${r.name}-`,
            role: "replica",
            ...hostSpec(r, { httpPort: primary.httpPort, httpsPort: primary.httpsPort, devpiPort: primary.devpiPort, metricsAddress: primary.metricsAddress, user: primary.ssh.user }),
            providedChainPem: r.certificate?.chainPem ?? ssl.providedChainPem,
            providedKeyPem: r.certificate ? pulumi.secret(r.certificate.keyPem) : ssl.providedKeyPem,
        })),
    ];
}

/** Fills in defaults and checks every plain value; throws a ConfigError naming the argument. */
export function resolveDevpiArgs(name: string, args: DevpiArgs): ResolvedDevpi {
    try {
        const r = new Reader(rawOf(args));
        const server = parseServer(r);
        const ssl = resolveTls(args, r);
        const devpi: DevpiSettings = { ...server, port: args.server.devpiPort ?? 4040, venvVersionsDir: checkLayout({ ...server, sslDir: ssl.dir }) };
        if (typeof args.access.rootPassword === "string" && args.access.rootPassword.length < 8) {
            throw new ConfigError(`devpi:rootPassword: invalid value "(secret)": must be at least 8 characters`);
        }
        parseUsers(r);
        const declaredUsers = (args.access.users ?? []).map((u) => ({ name: u.name, password: "" }));
        const indexes = parseIndexes(r, declaredUsers, server.serverVersion);
        const tokens = parseTokens(r, declaredUsers, indexes);
        checkReadAcls(indexes, tokens, server.reads);
        parseOffsite(r.json("offsite"));
        const clientIndex = args.client?.index;
        if (clientIndex !== undefined && !indexes.some((i) => i.name === clientIndex)) {
            throw new ConfigError(`devpi:clientIndex: invalid value ${JSON.stringify(clientIndex)}: must be one of the declared indexes`);
        }
        return {
            devpi,
            listenIpv6: args.options?.listenIpv6 ?? true,
            ssl,
            rootPassword: args.access.rootPassword,
            users: (args.access.users ?? []).map((u) => ({ name: u.name, password: u.password, email: u.email })),
            // The parsed copy of a mirror password may be a placeholder: the real one (maybe an Output) is kept apart.
            indexes: indexes.map((i) => (i.mirror?.password === undefined ? i : { ...i, mirror: { ...i.mirror, password: undefined } })),
            mirrorPasswords: new Map((args.access.indexes ?? []).flatMap((i) => (i.mirror?.password === undefined ? [] : [[i.name, i.mirror.password] as const]))),
            tokens,
            clientIndex: clientIndex ?? defaultClientIndex(indexes),
            clientIncludePassword: args.client?.includePassword ?? false,
            offsite: args.backups?.offsite,
            hosts: hostSpecs(args, ssl),
        };
    } catch (e) {
        throw asArgError(name, e);
    }
}

/**
 * The devpi-server plugins a deployment needs: devpi-lockdown when reads are `authenticated` (it
 * answers nginx's auth_request), devpi-tokens when tokens are declared. None by default, so a stack
 * that uses neither keeps its version set.
 */
/** What goes into the server's virtualenv: the pinned versions and the plugins the settings need. */
export function installSettings(s: ResolvedDevpi): Omit<InstallSettings, "venvDir"> {
    const d = s.devpi;
    return {
        serverVersion: d.serverVersion,
        webVersion: d.webVersion,
        web: d.web,
        plugins: serverPlugins(s),
        localPlugins: localPlugins(s),
        packageIndex: d.pythonPackageIndex,
        caBundle: d.upstreamCaBundle,
    };
}

/** This program's own plugins a deployment needs: the read plugin while any index declares readers. */
export function localPlugins(s: Pick<ResolvedDevpi, "indexes">): LocalPlugin[] {
    return s.indexes.some((i) => i.aclRead !== undefined) ? [readAclPlugin()] : [];
}

export function serverPlugins(s: Pick<ResolvedDevpi, "devpi" | "tokens">): { name: string; version: string }[] {
    return [
        ...(s.devpi.reads === "authenticated" ? [{ name: "devpi-lockdown", version: s.devpi.lockdownVersion }] : []),
        ...(s.tokens.length > 0 ? [{ name: "devpi-tokens", version: s.devpi.tokensVersion }] : []),
    ];
}

/** Whom the steps that read through nginx read as where reads need a user: root (the primary's and every replica's). */
export function readCredential(s: ResolvedDevpi): ReadCredential | undefined {
    return s.devpi.reads === "authenticated" ? { user: "root", password: s.rootPassword } : undefined;
}
