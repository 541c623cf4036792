/**
 * Renders the nginx site in front of devpi and the script that installs it safely. Its page caches
 * are rendered in nginxPageCache.ts (re-exported here).
 */
import { shellQuote, writeFileLines } from "../common/shell";
import { AuthCacheSettings, authCacheDirectives, authCacheHttp, authCacheOn, renderAuthCacheSecretLines } from "./nginxAuthCache";
import { PageCacheSettings, renderPageCaches } from "./nginxPageCache";

export { mirrorPageCacheSeconds, PAGE_GENERATION_MODULE_PATH, PAGE_GENERATION_SETTLE_MS, renderPageGenerationModule } from "./nginxPageCache";
export type { PageCacheSettings } from "./nginxPageCache";
export { AUTH_CACHE_MODULE_PATH, AUTH_CACHE_SECRET_PATH, authCacheOn, renderAuthCacheModule, renderAuthCacheSecretLines } from "./nginxAuthCache";
export type { AuthCacheSettings } from "./nginxAuthCache";

export interface NginxSiteSettings extends PageCacheSettings, AuthCacheSettings {
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
    /** nginx's stub_status on this unix socket (for devpi-metrics); absent: none. */
    statusSocket?: string;
    /** node-exporter's /metrics (at `upstream`, loopback) over HTTPS on `address`, to the `allow` networks only; absent: none. */
    metricsScrape?: { address: string; allow: string[]; upstream: string };
    /** When false, /+changelog (the replication feed, which carries password hashes) is refused. */
    replication: boolean;

    /**
     * sslMode acme: certbot's webroot. The HTTP server then answers
     * `/.well-known/acme-challenge/` from it instead of redirecting (HTTP-01 is plain HTTP).
     */
    acmeWebroot?: string;
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

function listen(port: number, ipv6: boolean, extra = ""): string {
    const lines = [`    listen ${port}${extra};`];
    if (ipv6) lines.push(`    listen [::]:${port}${extra};`);
    return lines.join("\n");
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

/** The HTTPS server's certificate and TLS settings: Mozilla's profile without DHE, see {@link TLS12_CIPHERS}. */
function tlsDirectives(s: Pick<NginxSiteSettings, "certPath" | "keyPath">): string {
    return `    ssl_certificate ${s.certPath};
    ssl_certificate_key ${s.keyPath};
    # Mozilla's "intermediate" profile (5.7) without DHE: see TLS12_CIPHERS in nginxConfig.ts.
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers ${TLS12_CIPHERS};
    ssl_ecdh_curve ${TLS_ECDH_CURVES};
    ssl_prefer_server_ciphers off;
    ssl_session_cache shared:devpi_tls:10m;
    ssl_session_timeout 1d;
    ssl_session_tickets off;`;
}

/** Refuses the replication feed, which exposes password hashes, on a server no replica follows. */
function refuseChangelog(): string {
    return `    # The replication feed exposes password hashes; no replica uses this server.
    location ^~ /+changelog {
        return 403;
    }

`;
}

/** Sorts requests into browsers (sent to devpi's login page) and everything else (a 401 with a Basic challenge). */
function browserMap(): string {
    return `# Browsers (they ask for HTML first) are sent to the login page when devpi refuses a read;
# installers (pip, uv), twine and devpi-client get a 401 with a Basic challenge instead.
map $http_accept $devpi_browser {
    "~*^text/html" 1;
    default 0;
}

`;
}

/**
 * devpi decides every read (`devpi:reads authenticated`): nginx's auth_request asks devpi's
 * /+authcheck (devpi-lockdown) with the request's own headers, in the access phase, so before a
 * file is served from disk or a page from nginx's caches. devpi answers 200 for a user or a token
 * that may read what was asked (and always for /+api, /+login and static files), 403 for a
 * token used outside its indexes, 401 for anyone else.
 */
function authRequest(upstream: string, cache: string): string {
    return `    # Reads need a devpi user or token (devpi:reads authenticated): nginx asks devpi first,
    # for every location, release files from disk and cached pages included.
    auth_request /+authcheck;
    recursive_error_pages on;
    error_page 401 = @devpi_unauthorized;
    location = /+authcheck {
        internal;
        auth_request off;
        proxy_pass http://${upstream};
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
        proxy_set_header X-Original-URI $request_uri;
        proxy_set_header Host $http_host;
        proxy_set_header X-outside-url $scheme://$http_host;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header X-Real-IP $remote_addr;
${cache}    }
    location @devpi_unauthorized {
        if ($devpi_browser) {
            return 302 /+login?goto_url=$request_uri;
        }
        add_header WWW-Authenticate 'Basic realm="devpi"' always;
        default_type application/json;
        return 401 '{"type": "error", "status": 401, "message": "devpi on this server needs a user or token to read: give credentials (netrc, keyring or in the URL)"}';
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
    const caches = renderPageCaches(s, proxyDirectives(s.upstream), { generation: authCacheOn(s) });
    return `# Managed by Pulumi (devpi). Local edits are overwritten.
${s.authenticatedReads ? browserMap() : ""}${caches.http}${authCacheHttp(s)}server {
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

${tlsDirectives(s)}
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

${s.authenticatedReads ? authRequest(s.upstream, authCacheDirectives(s)) : ""}${s.replication ? "" : refuseChangelog()}    # Release files straight from disk; anything not there (or not GET/HEAD) goes to devpi.
    location ~ /\\+f/ {
        error_page 418 = @proxy_to_app;${s.authenticatedReads ? "\n        # A location's error_page replaces the server's: repeat the refusal's.\n        error_page 401 = @devpi_unauthorized;" : ""}
        if ($request_method !~ ^(GET|HEAD)$) {
            return 418;
        }
        expires max;
        try_files /+files$uri @proxy_to_app;
    }

${caches.locations}    location / {
${proxyDirectives(s.upstream)}
    }

    location @proxy_to_app {
${proxyDirectives(s.upstream)}
    }
}
${s.statusSocket ? statusServer(s.statusSocket) : ""}${s.metricsScrape ? metricsServer(s, s.metricsScrape) : ""}`;
}

/** /metrics for a Prometheus elsewhere: HTTPS with the site's certificate, the allowed networks only (403 to the rest); `*:PORT` covers IPv6 too with listenIpv6. */
function metricsServer(s: NginxSiteSettings, m: NonNullable<NginxSiteSettings["metricsScrape"]>): string {
    return `
# devpi:metricsScrape: node-exporter's metrics for a Prometheus on another machine, allowed networks only.
server {
    listen ${m.address} ssl;${m.address.startsWith("*:") && s.listenIpv6 ? `\n    listen [::]:${m.address.slice(2)} ssl;` : ""}
    server_name ${[s.domain, ...s.extraNames].join(" ")};
${tlsDirectives(s)}
    access_log off;
${m.allow.map((n) => `    allow ${n};`).join("\n")}
    deny all;
    location = /metrics {
        proxy_pass http://${m.upstream}/metrics;
        proxy_set_header Host $host;
    }
    location / {
        return 404;
    }
}
`;
}

/** nginx's counters (stub_status) for devpi-metrics, on a unix socket: local processes only. */
function statusServer(socket: string): string {
    return `
# nginx's counters for devpi-metrics: a unix socket, so only local processes reach them.
server {
    listen unix:${socket};
    access_log off;
    location = /stub_status {
        stub_status;
    }
    location / {
        return 404;
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
    /** The auth cache's secret file, made when missing (see {@link renderAuthCacheSecretLines}). */
    authCacheSecretPath?: string;
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
${s.authCacheSecretPath ? renderAuthCacheSecretLines(s.authCacheSecretPath) : ""}${(s.extraFiles ?? [])
        .map(
            (f) => `extra_state=$(${writeFileLines(f.path, "0644", "root:root", f.content)})
note "${f.path} $extra_state"
`,
        )
        .join("")}state=$(${writeFileLines(s.sitePath, "0644", "root:root", s.site)})
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
