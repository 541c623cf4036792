/** Mirror indexes in `devpi:indexes`: root/pypi's upstream and `type: mirror` indexes, with devpi's `mirror_*` keys. */
import { MIRROR_INDEX } from "../components/constants";
import { fail } from "./errors";
import { IndexConfig, MirrorConfig } from "./types";

/** PyPI's simple API and project page: root/pypi's upstream when none is configured (devpi-init's own). */
export const PYPI_SIMPLE_URL = "https://pypi.org/simple/";
export const PYPI_WEB_URL_FMT = "https://pypi.org/project/{name}/";
/**
 * Whether root/pypi downloads PyPI's project list unless configured. Off: a new server does not spend
 * its first half hour downloading and indexing ~600k names (see the README's mirror section for the
 * figures and what is asked upstream instead).
 */
export const DEFAULT_PROJECT_LIST = false;

export const MIRROR_KEYS = [
    "type",
    "mirror_url",
    "mirror_web_url_fmt",
    "mirror_no_project_list",
    "mirror_use_external_urls",
    "mirror_ignore_serial_header",
    "mirror_cache_expiry",
    "mirror_allow_http",
    "mirror_username",
    "mirror_password",
];

/** The first devpi-server versions that know a mirror key (older ones refuse it as unknown). */
const MIRROR_KEY_SINCE: Record<string, string> = { mirror_no_project_list: "6.9.0", mirror_ignore_serial_header: "6.17.0" };

/** Whether dotted version `v` is at least `min` (numeric parts). */
function atLeast(v: string, min: string): boolean {
    const a = v.split(".").map(Number);
    const b = min.split(".").map(Number);
    for (let i = 0; i < Math.max(a.length, b.length); i++) if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
    return true;
}

/**
 * Mirror settings the server version cannot take: a key set explicitly to what only newer servers
 * can do is refused, naming it (set to what older servers do anyway, e.g. `false` for
 * `mirror_ignore_serial_header`, it is accepted: the component's own args carry every key); the
 * project-list default falls back to devpi's own (a list) where devpi has no switch for it.
 */
export function fitMirrorToServer(ix: IndexConfig, raw: Record<string, unknown>, serverVersion: string | undefined): IndexConfig {
    if (!ix.mirror || serverVersion === undefined) return ix;
    const needsNewer: Record<string, boolean> = { mirror_no_project_list: !ix.mirror.projectList, mirror_ignore_serial_header: ix.mirror.ignoreSerialHeader };
    for (const [k, since] of Object.entries(MIRROR_KEY_SINCE)) {
        if (raw[k] !== undefined && needsNewer[k] && !atLeast(serverVersion, since)) {
            fail(`indexes.${ix.name}.${k}`, raw[k], `needs devpi-server ${since} or newer (devpiServerVersion is ${serverVersion})`);
        }
    }
    return atLeast(serverVersion, MIRROR_KEY_SINCE.mirror_no_project_list) ? ix : { ...ix, mirror: { ...ix.mirror, projectList: true } };
}

/** root/pypi as devpi-init makes it, with the project-list default: what a stack that does not declare it gets. */
export function defaultPypiMirror(): IndexConfig {
    return {
        name: MIRROR_INDEX,
        owner: "root",
        index: "pypi",
        type: "mirror",
        bases: [],
        volatile: true,
        aclUpload: [],
        mirrorWhitelist: [],
        mirror: { url: PYPI_SIMPLE_URL, webUrlFmt: PYPI_WEB_URL_FMT, projectList: DEFAULT_PROJECT_LIST, useExternalUrls: false, ignoreSerialHeader: false },
    };
}

/** The `mirror_*` settings of a mirror index (root/pypi: PyPI unless `mirror_url` says otherwise). */
export function parseMirror(name: string, s: Record<string, unknown>): MirrorConfig {
    const key = (k: string): string => `indexes.${name}.${k}`;
    const bool = (k: string, def: boolean): boolean => {
        const v = s[k];
        if (v === undefined) return def;
        if (typeof v !== "boolean") fail(key(k), v, "must be true or false");
        return v;
    };
    const isPypi = name === MIRROR_INDEX;
    if (s.mirror_url === undefined && !isPypi) fail(key("mirror_url"), undefined, "is required for a mirror index: the upstream's simple API, e.g. https://pypi.example.com/simple/");
    const url = s.mirror_url ?? PYPI_SIMPLE_URL;
    if (typeof url !== "string") fail(key("mirror_url"), url, "must be a URL");
    let parsed: URL;
    try {
        parsed = new URL(url);
    } catch {
        fail(key("mirror_url"), url, "must be an absolute http(s) URL such as https://pypi.example.com/simple/");
    }
    const allowHttp = bool("mirror_allow_http", false);
    if (parsed.protocol !== "https:" && !(parsed.protocol === "http:" && allowHttp)) {
        fail(key("mirror_url"), url, `must be https:// (plain http:// only with ${key("mirror_allow_http")} set to true: whatever it serves goes to your users unchecked)`);
    }
    if (parsed.username || parsed.password) {
        fail(key("mirror_url"), url.replace(/\/\/[^@/]*@/, "//***@"), "must not carry credentials: devpi shows its mirror_url to anyone who can read the index");
    }
    if (parsed.search || parsed.hash) fail(key("mirror_url"), url, "must have no query or fragment");
    const webUrlFmt = s.mirror_web_url_fmt ?? (isPypi && url === PYPI_SIMPLE_URL ? PYPI_WEB_URL_FMT : undefined);
    if (webUrlFmt !== undefined && (typeof webUrlFmt !== "string" || !/^https?:\/\/\S+$/.test(webUrlFmt) || !webUrlFmt.includes("{name}"))) {
        fail(key("mirror_web_url_fmt"), webUrlFmt, "must be an http(s) URL containing {name}, e.g. https://pypi.org/project/{name}/");
    }
    const cacheExpiry = s.mirror_cache_expiry;
    if (cacheExpiry !== undefined && (typeof cacheExpiry !== "number" || !Number.isInteger(cacheExpiry) || cacheExpiry < 0 || cacheExpiry > 31536000)) {
        fail(key("mirror_cache_expiry"), cacheExpiry, "must be a whole number of seconds from 0 to 31536000");
    }
    const useExternalUrls = bool("mirror_use_external_urls", false);
    const { mirror_username: username, mirror_password: password } = s;
    if (username !== undefined && (typeof username !== "string" || !/^[^:\s]+$/.test(username))) fail(key("mirror_username"), username, "must be a user name without ':' or spaces");
    if (password !== undefined && (typeof password !== "string" || password.length === 0 || /[\r\n]/.test(password))) {
        fail(key("mirror_password"), "(secret)", "must be a non-empty string on one line");
    }
    if ((username === undefined) !== (password === undefined)) {
        fail(key(username === undefined ? "mirror_username" : "mirror_password"), undefined, "mirror_username and mirror_password go together");
    }
    if (username !== undefined && useExternalUrls) {
        fail(key("mirror_use_external_urls"), true, "cannot be used with mirror_username: clients sent to the upstream's files would need its credentials");
    }
    return {
        url: parsed.href,
        webUrlFmt,
        projectList: !bool("mirror_no_project_list", !DEFAULT_PROJECT_LIST),
        useExternalUrls,
        ignoreSerialHeader: bool("mirror_ignore_serial_header", false),
        cacheExpiry,
        ...(username === undefined ? {} : { username, password }),
    };
}
