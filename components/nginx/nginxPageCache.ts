/**
 * nginx's caches of devpi's simple pages, rendered into the site by `renderNginxSite`
 * (nginxConfig.ts): the PyPI mirror's pages (root/pypi), kept a few seconds, and optionally every
 * other index's, keyed on the generation of devpi's data that the njs module rendered here reports.
 */

/** The site's page cache settings (part of `NginxSiteSettings`). */
export interface PageCacheSettings {
    /**
     * Reads only for devpi users and tokens (`devpi:reads authenticated`): every request, release
     * files from disk and cached pages included, is first checked by devpi (devpi-lockdown's
     * `/+authcheck`, through nginx's auth_request). The index page cache then serves requests with
     * credentials too: each was allowed to read the page before the cache is asked, and devpi's
     * page is the same for every reader. Default false: anyone may read.
     */
    authenticatedReads?: boolean;
    /**
     * Seconds nginx may keep a simple page of the PyPI mirror (root/pypi) in its own cache; 0 (the
     * default) turns the cache off. Keep it far below devpi's mirrorCacheExpiry: devpi itself serves
     * a mirror page up to that old, so the cache adds at most this much. User indexes are never
     * cached here (see `indexPageCache`).
     */
    mirrorPageCacheSeconds?: number;
    /** Directory of that cache (default /var/lib/nginx/devpi-mirror-pages); its parent must exist. */
    mirrorPageCacheDir?: string;
    /**
     * Also cache every other index's simple pages (`/USER/INDEX/+simple/...`), as long as mirror
     * pages (`mirrorPageCacheSeconds`), under a key that holds the generation of devpi's data
     * (see {@link renderPageGenerationModule}): any write devpi commits, through nginx or not,
     * changes the key, so nginx never answers from a page older than devpi's data. Needs nginx's
     * njs module (Debian's libnginx-mod-http-js) and `pageGenerationModulePath`. Default false.
     */
    indexPageCache?: boolean;
    /** Where the njs module rendered by {@link renderPageGenerationModule} is installed. */
    pageGenerationModulePath?: string;
    /** Directory of the index page cache (default /var/lib/nginx/devpi-index-pages); its parent must exist. */
    indexPageCacheDir?: string;
}

/** Where {@link NginxSite} installs the page generation module by default. */
export const PAGE_GENERATION_MODULE_PATH = "/etc/nginx/devpi-page-generation.js";

/**
 * Milliseconds devpi's data must have been left alone before a page answered from it may be
 * stored. A file's modification time moves in clock ticks (a few ms on kernels without
 * fine-grained timestamps): two commits within one tick can leave the same time behind, so a page
 * fetched between them would carry the generation of the second. Far more than a tick, and short
 * enough that a steady trickle of uploads only costs the cache for that long.
 */
export const PAGE_GENERATION_SETTLE_MS = 2000;

/** nginx's cache of mirror simple pages: seconds it may keep one, from devpi's mirrorCacheExpiry. */
export function mirrorPageCacheSeconds(mirrorCacheExpiry: number): number {
    return Math.min(30, Math.floor(mirrorCacheExpiry / 10));
}

/**
 * What the page caches add to the site: `http` (maps, njs, cache zones) goes before its servers,
 * `locations` into its HTTPS server ahead of `location /`. Both are empty when no cache is on.
 */
export interface RenderedPageCaches {
    http: string;
    locations: string;
}

/**
 * The page caches of `s`; `proxy` is the site's directives that send a request to devpi, repeated
 * in each cached location.
 */
export function renderPageCaches(s: PageCacheSettings, proxy: string, opts: { generation?: boolean } = {}): RenderedPageCaches {
    const mirror = mirrorPageCache(s, proxy);
    const index = indexPageCache(s, proxy);
    // The index cache's zone defines the generation's variables; without it, opts.generation does.
    const generation = index.zone === "" && opts.generation === true ? `# The generation of devpi's data (empty: nothing is looked up or stored under it).\n${generationVariables(s)}\n` : "";
    return { http: `${installerClassMap(s)}${mirror.zone}${generation}${index.zone}`, locations: `${mirror.location}${index.location}` };
}

/**
 * `$devpi_generation` (the generation of devpi's data, from the njs module) and
 * `$devpi_page_uncached` (1 when it is empty): keys of the index page cache and of the auth cache.
 */
function generationVariables(s: PageCacheSettings): string {
    return `js_import devpi_pages from ${s.pageGenerationModulePath ?? PAGE_GENERATION_MODULE_PATH};
js_set $devpi_generation devpi_pages.generation;
map $devpi_generation $devpi_page_uncached {
    "" 1;
    default "";
}`;
}

/**
 * `$devpi_installer`, part of both page caches' keys: devpi sends installers another page than
 * browsers and says "Vary: User-Agent". Rendered whenever either cache is on.
 */
function installerClassMap(s: PageCacheSettings): string {
    const anyCache = (s.mirrorPageCacheSeconds ?? 0) > 0;
    if (!anyCache) return "";
    return `# devpi sends installers (its own User-Agent pattern: pip, uv, setuptools, ...) another page than
# browsers and says "Vary: User-Agent"; keying on that class instead of on every client's own
# User-Agent string lets all pip clients share one cached page.
map $http_user_agent $devpi_installer {
    "~^([^ ]* )*(distribute|setuptools|pip|pex|uv)/" installer;
    default browser;
}
`;
}

function mirrorPageCache(s: PageCacheSettings, proxy: string): { zone: string; location: string } {
    const seconds = s.mirrorPageCacheSeconds ?? 0;
    if (seconds <= 0) return { zone: "", location: "" };
    const dir = s.mirrorPageCacheDir ?? "/var/lib/nginx/devpi-mirror-pages";
    return {
        zone: `# Simple pages of the PyPI mirror, kept ${seconds}s (devpi refreshes them every mirrorCacheExpiry anyway).
proxy_cache_path ${dir} levels=1:2 keys_zone=devpi_mirror_pages:10m max_size=256m inactive=10m use_temp_path=off;

`,
        location: cachedPagesLocation({
            comment: "# What pip fetches for every requirement, from the mirror only: user indexes (uploads) always go to devpi.",
            match: "^~ /root/pypi/+simple/",
            zone: "devpi_mirror_pages",
            key: "$scheme$http_host$request_uri$http_accept$devpi_installer",
            seconds,
            proxy,
        }),
    };
}

/**
 * The njs module nginx asks for the generation of devpi's data before it looks a page up.
 *
 * devpi-server (sqlite storage, the default and the only one this program sets up) commits every
 * change into SERVERDIR/.sqlite, in sqlite's rollback-journal mode: each commit rewrites the file
 * (at least its change counter), so its inode, size and modification time change, while a reader
 * that opens its transaction after that sees the commit (sqlite makes it wait while the file is
 * being written). nginx reads the stamp before it forwards a request, so the page devpi sends is at
 * least as new as the data the stamp names. SERVERDIR/.nodeinfo is rewritten (a new file) on every
 * start of devpi, so a restart (new version, new settings) starts a new generation too.
 *
 * The generation is empty, and nothing is looked up or stored, when: the files cannot be read,
 * sqlite keeps a write-ahead log beside the file (then the file's time says nothing about commits),
 * or the newest of those times (modification or status change) is less than `settleMs` old.
 */
export function renderPageGenerationModule(serverDir: string, settleMs = PAGE_GENERATION_SETTLE_MS): string {
    const dir = serverDir.replace(/\/+$/, "");
    return `// Managed by Pulumi (devpi). Local edits are overwritten.
// The generation of devpi-server's data, for the key of nginx's page cache (see the site).
import fs from 'fs';

const DB = ${JSON.stringify(`${dir}/.sqlite`)};
const NODEINFO = ${JSON.stringify(`${dir}/.nodeinfo`)};
const SETTLE_MS = ${settleMs};

function exists(path) {
    try {
        fs.statSync(path);
        return true;
    } catch (e) {
        return false;
    }
}

function generation(r) {
    try {
        const db = fs.statSync(DB);
        const node = fs.statSync(NODEINFO);
        if (exists(DB + '-wal')) return '';
        const newest = Math.max(db.mtimeMs, db.ctimeMs, node.mtimeMs, node.ctimeMs);
        if (Date.now() - newest < SETTLE_MS) return '';
        return [db.ino, db.size, db.mtimeMs, db.ctimeMs, node.ino, node.mtimeMs].join('.');
    } catch (e) {
        return '';
    }
}

export default { generation };
`;
}

function indexPageCache(s: PageCacheSettings, proxy: string): { zone: string; location: string } {
    const seconds = s.mirrorPageCacheSeconds ?? 0;
    if (!s.indexPageCache || seconds <= 0) return { zone: "", location: "" };
    const dir = s.indexPageCacheDir ?? "/var/lib/nginx/devpi-index-pages";
    return {
        zone: `# Simple pages of the other indexes, under the generation of devpi's data (empty: not cached).
${generationVariables(s)}
proxy_cache_path ${dir} levels=1:2 keys_zone=devpi_index_pages:10m max_size=256m inactive=2m use_temp_path=off;

`,
        location: cachedPagesLocation({
            comment: `# Pages of indexes users upload to: cached under the generation of devpi's data, which every
    # commit changes (uploads, removals, index changes, replication, imports, restarts), so an upload
    # is installable the moment it succeeds. ${
        s.authenticatedReads
            ? "Every request here has credentials, checked by devpi (auth_request)\n    # before the cache is asked; the page is the same for every reader, so they share it."
            : "Requests with credentials always go to devpi."
    }`,
            match: "~ ^/[^/]+/[^/]+/\\+simple/",
            zone: "devpi_index_pages",
            key: "$scheme$http_host$request_uri$http_accept$devpi_installer$devpi_generation",
            skipWhen: s.authenticatedReads ? "$devpi_page_uncached" : "$devpi_page_uncached $http_authorization $http_x_devpi_auth",
            seconds,
            lockTimeout: "5s",
            proxy,
        }),
    };
}

/**
 * A location whose pages nginx keeps `seconds` in cache `zone` under `key` (200 answers only, one
 * request to devpi per missing page, devpi's Vary/expiry headers ignored: the key decides).
 * `skipWhen`: variables of which any non-empty one sends the request to devpi and stores nothing.
 * `proxy`: the site's directives that send the request to devpi.
 */
function cachedPagesLocation(c: { comment: string; match: string; zone: string; key: string; seconds: number; proxy: string; skipWhen?: string; lockTimeout?: string }): string {
    const skip = c.skipWhen ? `        proxy_cache_bypass ${c.skipWhen};\n        proxy_no_cache ${c.skipWhen};\n` : "";
    return `    ${c.comment}
    location ${c.match} {
        proxy_cache ${c.zone};
        proxy_cache_key ${c.key};
${skip}        proxy_cache_valid 200 ${c.seconds}s;
        proxy_cache_lock on;
${c.lockTimeout ? `        proxy_cache_lock_timeout ${c.lockTimeout};\n` : ""}        proxy_ignore_headers Cache-Control Expires Vary;
        # A location's add_header replaces the server's: repeat HSTS.
        add_header Strict-Transport-Security "max-age=31536000" always;
        add_header X-Cache-Status $upstream_cache_status;
${c.proxy}
    }

`;
}
