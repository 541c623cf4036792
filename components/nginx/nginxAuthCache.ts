/**
 * nginx's cache of devpi's answers to `/+authcheck` (reads for users only): devpi checks a
 * password hash on every read, about a tenth of a second of CPU each, so without it a server
 * answers about ten authenticated reads a second (bench B5). Rendered into the site by
 * `renderNginxSite` (nginxConfig.ts) when `authenticatedReads` and `authCacheSeconds` are set.
 */

import { shellQuote } from "../common/shell";

/** The auth cache's settings (part of `NginxSiteSettings`). */
export interface AuthCacheSettings {
    /**
     * Seconds nginx may reuse devpi's yes (200) to one credential for one URL, with reads for users
     * only; 0 turns the cache off and devpi is asked every time. The entry's key holds the
     * generation of devpi's data, so any change devpi commits (a password, a user, a token, an
     * index's readers) is effective at once; only what passes with time (a token's or a login's
     * expiry) may be honoured up to this much later. Needs nginx's njs module.
     */
    authCacheSeconds?: number;
    /** Directory of the cache (default /var/lib/nginx/devpi-authcheck); its parent must exist. */
    authCacheDir?: string;
    /** Where the njs module rendered by {@link renderAuthCacheModule} is installed. */
    authCacheModulePath?: string;
    /** The file that defines `$devpi_authcheck_secret` (made on the server by the site's script, root's only). */
    authCacheSecretPath?: string;
}

/** Where {@link NginxSite} installs the module by default. */
export const AUTH_CACHE_MODULE_PATH = "/etc/nginx/devpi-authcheck.js";
/** Where the site's script makes the secret the cache keys are derived with (mode 0600, root). */
export const AUTH_CACHE_SECRET_PATH = "/etc/nginx/devpi-authcheck-secret.conf";

/** Whether the site caches devpi's answers (reads for users only and a positive lifetime). */
export function authCacheOn(s: AuthCacheSettings & { authenticatedReads?: boolean }): boolean {
    return s.authenticatedReads === true && (s.authCacheSeconds ?? 0) > 0;
}

/**
 * The njs module that names a request's credential in the cache's key: an HMAC-SHA256, under a
 * secret only root can read on disk, of everything devpi takes a credential from (Authorization,
 * X-Devpi-Auth, and the cookies, where devpi-lockdown keeps a browser's login). nginx writes its
 * cache keys into the cache's files in clear; this way they hold no password or token, nor
 * anything a password could be guessed from without the secret. Empty (nothing cached) for a
 * request without any of them or when the secret is missing.
 */
export function renderAuthCacheModule(): string {
    return `// Managed by Pulumi (devpi). Local edits are overwritten.
// The credential part of the key of nginx's cache of devpi's /+authcheck answers (see the site).
import crypto from 'crypto';

function credential(r) {
    const v = r.variables;
    const parts = [v.http_authorization || '', v.http_x_devpi_auth || '', v.http_cookie || ''];
    const secret = v.devpi_authcheck_secret || '';
    if (secret.length < 32 || parts.join('') === '') return '';
    return crypto.createHmac('sha256', secret).update(parts.join('\\n')).digest('hex');
}

export default { credential };
`;
}

/**
 * Shell lines that make the secret file when it is missing: 32 random bytes as hex, in a map nginx
 * reads as root when it loads its configuration. Never in Pulumi's state, argv or logs; kept across
 * runs (a new secret would only empty the cache).
 */
export function renderAuthCacheSecretLines(secretPath: string): string {
    const file = shellQuote(secretPath);
    const tmp = shellQuote(`${secretPath}.tmp`);
    return `if [ ! -s ${file} ]; then
  ( umask 077; key=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n')
    # shellcheck disable=SC2016 # nginx's variable, written as it is
    printf 'map "" $devpi_authcheck_secret {\\n    default "%s";\\n}\\n' "$key" > ${tmp} && mv -f ${tmp} ${file} )
fi
chown root:root ${file} && chmod 0600 ${file}
`;
}

/** The http-level part: the secret, the module, the map of requests without credentials, the zone. */
export function authCacheHttp(s: AuthCacheSettings & { authenticatedReads?: boolean }): string {
    if (!authCacheOn(s)) return "";
    const dir = s.authCacheDir ?? "/var/lib/nginx/devpi-authcheck";
    return `# devpi's yes to a credential for a URL, kept ${s.authCacheSeconds}s (devpi:authCacheSeconds): devpi checks a
# password hash on every read. Keyed on an HMAC of the credential, never the credential itself.
include ${s.authCacheSecretPath ?? AUTH_CACHE_SECRET_PATH};
js_import devpi_authcheck from ${s.authCacheModulePath ?? AUTH_CACHE_MODULE_PATH};
js_set $devpi_credential devpi_authcheck.credential;
map $devpi_credential $devpi_no_credential {
    "" 1;
    default "";
}
proxy_cache_path ${dir} levels=1:2 keys_zone=devpi_authcheck:10m max_size=64m inactive=5m use_temp_path=off;

`;
}

/**
 * The directives of the `/+authcheck` location that cache devpi's yes: 200 answers only (a refusal
 * and any request without credentials always ask devpi), under the credential's HMAC, the URL,
 * the Accept header (devpi picks routes by it) and the generation of devpi's data (empty while it
 * settles: nothing cached then).
 */
export function authCacheDirectives(s: AuthCacheSettings & { authenticatedReads?: boolean }): string {
    if (!authCacheOn(s)) return "";
    return `        # devpi's yes (200) is reused for ${s.authCacheSeconds}s by the same credential on the same URL, while
        # devpi's data stays as it was: any change devpi commits (passwords, users, tokens, readers)
        # asks devpi again. Refusals and requests without credentials are never cached.
        proxy_cache devpi_authcheck;
        proxy_cache_key $devpi_credential$request_uri$http_accept$devpi_generation;
        proxy_cache_bypass $devpi_no_credential $devpi_page_uncached;
        proxy_no_cache $devpi_no_credential $devpi_page_uncached;
        proxy_cache_valid 200 ${s.authCacheSeconds}s;
        proxy_ignore_headers Cache-Control Expires Vary;
`;
}
