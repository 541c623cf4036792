/**
 * Renders the nginx site in front of devpi and the script that installs it safely.
 */
import { shellQuote, writeFileLines } from "../common/shell";

export interface NginxSiteSettings {
    domain: string;
    /** Extra names the certificate carries; nginx answers to them too. */
    extraNames: string[];
    httpPort: number;
    httpsPort: number;
    listenIpv6: boolean;
    certPath: string;
    keyPath: string;
    /** devpi-server's loopback address, e.g. 127.0.0.1:4040. */
    upstream: string;
    /** Root of devpi's data: release files live under SERVERDIR/+files. */
    serverDir: string;
    /** Same limit as devpi-server's max-request-body-size. */
    maxUploadMb: number;
    /** When false, /+changelog (the replication feed, which carries password hashes) is refused. */
    replication: boolean;
    /**
     * sslMode acme: certbot's webroot. The HTTP server then answers
     * `/.well-known/acme-challenge/` from it instead of redirecting (HTTP-01 is plain HTTP).
     */
    acmeWebroot?: string;
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

/**
 * TLS 1.2 cipher suites of nginx's HTTPS server (`ssl_ciphers`): Mozilla's "intermediate" server
 * side TLS profile, version 5.7 (https://ssl-config.mozilla.org/guidelines/5.7.json,
 * https://wiki.mozilla.org/Security/Server_Side_TLS), minus its three DHE-RSA suites: only
 * ECDHE key exchange with AEAD ciphers (AES-GCM, ChaCha20-Poly1305), so no CBC, SHA-1, CCM,
 * ARIA, CAMELLIA or static-RSA key exchange. The DHE suites are left out because DHE needs a
 * dhparam file (`ssl_dhparam`) that we would have to generate and manage on every server, and
 * every TLS 1.2 client we support (pip/Python's ssl, curl, devpi-client, browsers) does ECDHE;
 * without such a file nginx would not offer DHE anyway. TLS 1.3's suites are OpenSSL's defaults
 * (all AEAD) and are not set here. Key exchange groups: {@link TLS_ECDH_CURVES}.
 */
export const TLS12_CIPHERS = [
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
].join(":");

/** Key exchange groups (`ssl_ecdh_curve`), as in Mozilla's "intermediate" profile 5.7. */
export const TLS_ECDH_CURVES = "X25519:prime256v1:secp384r1";

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

function listen(port: number, ipv6: boolean, extra = ""): string {
    const lines = [`    listen ${port}${extra};`];
    if (ipv6) lines.push(`    listen [::]:${port}${extra};`);
    return lines.join("\n");
}

/**
 * `$devpi_installer`, part of both page caches' keys: devpi sends installers another page than
 * browsers and says "Vary: User-Agent". Rendered whenever either cache is on.
 */
function installerClassMap(s: NginxSiteSettings): string {
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

function mirrorPageCache(s: NginxSiteSettings): { zone: string; location: string } {
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
            upstream: s.upstream,
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

function indexPageCache(s: NginxSiteSettings): { zone: string; location: string } {
    const seconds = s.mirrorPageCacheSeconds ?? 0;
    if (!s.indexPageCache || seconds <= 0) return { zone: "", location: "" };
    const dir = s.indexPageCacheDir ?? "/var/lib/nginx/devpi-index-pages";
    return {
        zone: `# Simple pages of the other indexes, under the generation of devpi's data (empty: not cached).
js_import devpi_pages from ${s.pageGenerationModulePath ?? PAGE_GENERATION_MODULE_PATH};
js_set $devpi_generation devpi_pages.generation;
map $devpi_generation $devpi_page_uncached {
    "" 1;
    default "";
}
proxy_cache_path ${dir} levels=1:2 keys_zone=devpi_index_pages:10m max_size=256m inactive=2m use_temp_path=off;

`,
        location: cachedPagesLocation({
            comment: `# Pages of indexes users upload to: cached under the generation of devpi's data, which every
    # commit changes (uploads, removals, index changes, replication, imports, restarts), so an upload
    # is installable the moment it succeeds. Requests with credentials always go to devpi.`,
            match: "~ ^/[^/]+/[^/]+/\\+simple/",
            zone: "devpi_index_pages",
            key: "$scheme$http_host$request_uri$http_accept$devpi_installer$devpi_generation",
            skipWhen: "$devpi_page_uncached $http_authorization $http_x_devpi_auth",
            seconds,
            lockTimeout: "5s",
            upstream: s.upstream,
        }),
    };
}

/**
 * A location whose pages nginx keeps `seconds` in cache `zone` under `key` (200 answers only, one
 * request to devpi per missing page, devpi's Vary/expiry headers ignored: the key decides).
 * `skipWhen`: variables of which any non-empty one sends the request to devpi and stores nothing.
 */
function cachedPagesLocation(c: { comment: string; match: string; zone: string; key: string; seconds: number; upstream: string; skipWhen?: string; lockTimeout?: string }): string {
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
${proxyDirectives(c.upstream)}
    }

`;
}

function proxyDirectives(upstream: string): string {
    return `        proxy_pass http://${upstream};
        proxy_set_header Host $http_host;
        proxy_set_header X-outside-url $scheme://$http_host;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_read_timeout 300s;
        proxy_request_buffering off;
        expires -1;`;
}

function acmeChallenge(webroot: string): string {
    return `    # ACME HTTP-01 challenges (certbot --webroot) are answered over plain HTTP; all else redirects.
    location ^~ /.well-known/acme-challenge/ {
        root ${webroot};
        default_type text/plain;
        try_files $uri =404;
    }
`;
}

/** The reply to an upload over the limit: devpi's JSON form, naming the limit and the key that sets it. */
export function uploadTooLargeBody(maxUploadMb: number): string {
    const line = `upload refused: the request is larger than the upload limit of ${maxUploadMb} MiB (devpi:maxUploadMb = ${maxUploadMb}); raise devpi:maxUploadMb and run pulumi up`;
    return JSON.stringify({ type: "actionlog", status: 413, result: [line], message: line });
}

/**
 * The site: HTTP redirects to HTTPS; HTTPS (TLS 1.2 with {@link TLS12_CIPHERS}, or TLS 1.3)
 * proxies to devpi with the outside URL header and serves release files from disk
 * (devpi-gen-config's try_files pattern).
 */
export function renderNginxSite(s: NginxSiteSettings): string {
    const names = [s.domain, ...s.extraNames].join(" ");
    const httpsSuffix = s.httpsPort === 443 ? "" : `:${s.httpsPort}`;
    const changelog = s.replication
        ? ""
        : `    # The replication feed exposes password hashes; no replica uses this server.
    location ^~ /+changelog {
        return 403;
    }

`;
    const cache = mirrorPageCache(s);
    const indexCache = indexPageCache(s);
    return `# Managed by Pulumi (devpi). Local edits are overwritten.
${installerClassMap(s)}${cache.zone}${indexCache.zone}server {
${listen(s.httpPort, s.listenIpv6)}
    server_name ${names};
    server_tokens off;
${s.acmeWebroot ? acmeChallenge(s.acmeWebroot) : ""}    location / {
        return 301 https://$host${httpsSuffix}$request_uri;
    }
}

server {
${listen(s.httpsPort, s.listenIpv6, " ssl http2")}
    server_name ${names};
    server_tokens off;

    ssl_certificate ${s.certPath};
    ssl_certificate_key ${s.keyPath};
    # Mozilla's "intermediate" profile (5.7) without DHE: see TLS12_CIPHERS in nginxConfig.ts.
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers ${TLS12_CIPHERS};
    ssl_ecdh_curve ${TLS_ECDH_CURVES};
    ssl_prefer_server_ciphers off;
    ssl_session_cache shared:devpi_tls:10m;
    ssl_session_timeout 1d;
    ssl_session_tickets off;
    add_header Strict-Transport-Security "max-age=31536000" always;
    # nginx closes a kept-alive connection after 1000 requests by default; a busy client (a CI
    # runner, a resolver fetching many pages) then pays a new connection and TLS handshake, which
    # under load made the slowest 1% of cached pages hundreds of ms slow (bench B5).
    keepalive_requests 10000;

    # Must allow what devpi-server allows (max-request-body-size), or uploads fail with 413.
    client_max_body_size ${s.maxUploadMb}m;
    # Say why, in devpi's reply format: devpi-client prints an "actionlog" reply's lines, twine
    # --verbose and curl print the body (nginx's default is an HTML page nobody shows).
    error_page 413 @upload_too_large;
    location @upload_too_large {
        default_type application/json;
        return 413 '${uploadTooLargeBody(s.maxUploadMb)}';
    }

    gzip on;
    gzip_min_length 2000;
    gzip_proxied any;
    gzip_types application/json application/vnd.pypi.simple.v1+json application/vnd.pypi.simple.v1+html text/css application/javascript text/plain;

    root ${s.serverDir};

${changelog}    # Release files straight from disk; anything not there (or not GET/HEAD) goes to devpi.
    location ~ /\\+f/ {
        error_page 418 = @proxy_to_app;
        if ($request_method !~ ^(GET|HEAD)$) {
            return 418;
        }
        expires max;
        try_files /+files$uri @proxy_to_app;
    }

${cache.location}${indexCache.location}    location / {
${proxyDirectives(s.upstream)}
    }

    location @proxy_to_app {
${proxyDirectives(s.upstream)}
    }
}
`;
}

export interface NginxScriptSettings {
    sitePath: string;
    enabledPath: string;
    site: string;
    /** Files the site refers to (e.g. the page generation module), installed before it is tested. */
    extraFiles?: { path: string; content: string }[];
    /** Changes when the certificate changes, so the step re-runs and nginx reloads. */
    certFingerprint: string;
}

/**
 * Installs the site only if `nginx -t` accepts it (otherwise the previous file is put back and
 * the step fails with nginx's message), then starts nginx when it is not running or reloads it
 * when it is — `service nginx reload` reports success even when nginx is down.
 */
export function renderNginxScript(s: NginxScriptSettings): string {
    const site = shellQuote(s.sitePath);
    return `# certificate sha256 ${s.certFingerprint}
backup=""
if [ -f ${site} ]; then backup=$(mktemp); cp -p ${site} "$backup"; fi
${(s.extraFiles ?? []).map((f) => `extra_state=$(${writeFileLines(f.path, "0644", "root:root", f.content)})
note "${f.path} $extra_state"
`).join("")}state=$(${writeFileLines(s.sitePath, "0644", "root:root", s.site)})
ln -sfn ${site} ${shellQuote(s.enabledPath)}
if ! out=$(nginx -t 2>&1); then
  if [ -n "$backup" ]; then mv -f "$backup" ${site}; else rm -f ${site} ${shellQuote(s.enabledPath)}; fi
  echo "nginx rejected the new site; the previous configuration stays in place:" >&2
  echo "$out" >&2
  exit 1
fi
[ -z "$backup" ] || rm -f "$backup"
svc_enable nginx
if svc_running nginx; then
  nginx -s reload
  action=reloaded
else
  svc start nginx >&2 || nginx
  action=started
fi
for _ in $(seq 1 20); do svc_running nginx && break; sleep 0.5; done
if ! svc_running nginx; then
  echo "nginx is not running after $action; tail of /var/log/nginx/error.log:" >&2
  tail -n 30 /var/log/nginx/error.log >&2 || true
  exit 1
fi
echo "site $state, nginx $action"
`;
}

/** Removes the site (and the files it referred to) and reloads nginx (if the remaining config is valid). */
export function renderNginxRemoveScript(s: { sitePath: string; enabledPath: string; extraPaths?: string[] }): string {
    return `rm -f ${[s.enabledPath, s.sitePath, ...(s.extraPaths ?? [])].map(shellQuote).join(" ")}
if svc_running nginx && nginx -t >/dev/null 2>&1; then nginx -s reload; fi
echo "site removed"
`;
}
