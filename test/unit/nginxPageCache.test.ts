/**
 * nginx's page caches on their own (components/nginx/nginxPageCache.ts): what each setting adds
 * before the site's servers and into its HTTPS server. The site as a whole, with the real nginx,
 * is tested in renderers.test.ts.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { PAGE_GENERATION_MODULE_PATH, renderPageCaches } from "../../components/nginx/nginxPageCache";

/** Stands for the site's proxy directives, which each cached location must carry verbatim. */
const PROXY = "        proxy_pass http://upstream.test;\n        expires -1;";
const count = (text: string, part: string) => text.split(part).length - 1;
const locations = (text: string) => [...text.matchAll(/^ {4}location (\S+ \S+) \{$/gm)].map((m) => m[1]);

describe("nginx page caches", () => {
    it("add nothing without a cache lifetime, even with the index cache asked for", () => {
        for (const s of [{}, { mirrorPageCacheSeconds: 0 }, { mirrorPageCacheSeconds: -1, indexPageCache: true }, { mirrorPageCacheSeconds: 0, indexPageCache: true }]) {
            assert.deepEqual(renderPageCaches(s, PROXY), { http: "", locations: "" }, JSON.stringify(s));
        }
    });

    it("mirror only: the installer map and the mirror's zone, one location that proxies with the site's directives", () => {
        const c = renderPageCaches({ mirrorPageCacheSeconds: 12 }, PROXY);
        assert.match(c.http, /^# devpi sends installers[^]*map \$http_user_agent \$devpi_installer \{/);
        assert.match(c.http, /kept 12s[^]*\nproxy_cache_path \/var\/lib\/nginx\/devpi-mirror-pages levels=1:2 keys_zone=devpi_mirror_pages:10m /);
        assert.doesNotMatch(c.http, /js_|devpi_index_pages/);
        assert.deepEqual(locations(c.locations), ["^~ /root/pypi/+simple/"]);
        assert.equal(count(c.locations, PROXY), 1);
        assert.match(c.locations, /proxy_cache_valid 200 12s;/);
        assert.doesNotMatch(c.locations, /proxy_cache_bypass|proxy_no_cache|proxy_cache_lock_timeout/);
    });

    it("index pages too: njs, the generation map and a second zone; its location skips requests with credentials", () => {
        const c = renderPageCaches({ mirrorPageCacheSeconds: 30, indexPageCache: true, mirrorPageCacheDir: "/c/mirror", indexPageCacheDir: "/c/index", pageGenerationModulePath: "/m/gen.js" }, PROXY);
        assert.match(c.http, /\nproxy_cache_path \/c\/mirror levels=[^\n]*keys_zone=devpi_mirror_pages:/);
        assert.match(c.http, /\njs_import devpi_pages from \/m\/gen\.js;\njs_set \$devpi_generation devpi_pages\.generation;\n/);
        assert.match(c.http, /\nproxy_cache_path \/c\/index levels=[^\n]*keys_zone=devpi_index_pages:[^\n]*inactive=2m /);
        assert.deepEqual(locations(c.locations), ["^~ /root/pypi/+simple/", "~ ^/[^/]+/[^/]+/\\+simple/"]);
        assert.equal(count(c.locations, PROXY), 2);
        const index = c.locations.slice(c.locations.indexOf("location ~ "));
        assert.match(index, /proxy_cache_bypass \$devpi_page_uncached \$http_authorization \$http_x_devpi_auth;/);
        assert.match(index, /proxy_cache_lock_timeout 5s;/);
        assert.match(index, /proxy_cache_key [^;]*\$devpi_generation;/);
    });

    it("the index cache's module defaults to where NginxSite installs it", () => {
        const c = renderPageCaches({ mirrorPageCacheSeconds: 30, indexPageCache: true }, PROXY);
        assert.ok(c.http.includes(`js_import devpi_pages from ${PAGE_GENERATION_MODULE_PATH};`));
        assert.match(c.http, /proxy_cache_path \/var\/lib\/nginx\/devpi-index-pages /);
    });
});
