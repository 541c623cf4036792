/**
 * Credentialed upstreams of mirror indexes. devpi shows an index's `mirror_url` to everyone who can
 * read the index (its JSON, `/`, `/USER`), so credentials never go there. Instead nginx listens on
 * the server's loopback, one port per such mirror, and forwards to the upstream with the
 * credentials added; devpi's `mirror_url` is that loopback address. The credentials live in
 * root-only files that nginx's master process reads (`/etc/nginx/devpi-mirror-auth/`), written from
 * the step's stdin.
 */
import * as pulumi from "@pulumi/pulumi";
import { RemoteHost, remoteStep } from "../common/remoteStep";
import { shellQuote, writeFileLines } from "../common/shell";

/** The nginx site of the loopback proxies (enabled by a link in sites-enabled). */
export const MIRROR_PROXY_SITE = "/etc/nginx/sites-available/devpi-mirrors";
const MIRROR_PROXY_ENABLED = "/etc/nginx/sites-enabled/devpi-mirrors";
/** Root-only directory of the `proxy_set_header Authorization` files, one per mirror. */
export const MIRROR_AUTH_DIR = "/etc/nginx/devpi-mirror-auth";
/** The first loopback port is devpi's port plus this; each further credentialed mirror (by name) the next one. */
export const MIRROR_PROXY_PORT_OFFSET = 100;

/** One credentialed mirror: its index, its real upstream, and the loopback port nginx serves it on. */
export interface MirrorProxyUpstream {
    index: string;
    /** The upstream's simple API as configured, e.g. https://pkgs.example.com/pypi/simple/. */
    url: string;
    port: number;
}

/** The credentialed mirrors in name order, each with its loopback port (devpi's port + 100, + 101, ...). */
export function mirrorProxyUpstreams(mirrors: { index: string; url: string }[], devpiPort: number): MirrorProxyUpstream[] {
    return [...mirrors].sort((a, b) => a.index.localeCompare(b.index)).map((m, i) => ({ ...m, port: devpiPort + MIRROR_PROXY_PORT_OFFSET + i }));
}

/** What devpi is given as `mirror_url`: the same path and query on the loopback proxy. */
export function loopbackMirrorUrl(u: MirrorProxyUpstream): string {
    const url = new URL(u.url);
    return `http://127.0.0.1:${u.port}${url.pathname}${url.search}`;
}

/** The root-only file holding a mirror's Authorization header (index names hold no `+`). */
export function mirrorAuthFile(index: string): string {
    return `${MIRROR_AUTH_DIR}/${index.replace("/", "+")}.conf`;
}

/** The `Authorization` value for HTTP basic credentials. */
export function basicAuthorization(username: string, password: string): string {
    return `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`;
}

/**
 * The proxies' nginx site. Each answers on 127.0.0.1 only and forwards everything to the upstream's
 * origin with the credentials of its file. Absolute links to the upstream's own origin in the
 * pages (some registries write them) become loopback-relative, so files come through the proxy
 * too; links elsewhere (a public CDN) are left alone. The upstream's certificate is checked
 * against `caBundle`.
 */
export function renderMirrorProxySite(upstreams: MirrorProxyUpstream[], caBundle: string): string {
    const blocks = upstreams.map((u) => {
        const origin = new URL(u.url).origin;
        const tls = origin.startsWith("https:")
            ? `        proxy_ssl_server_name on;
        proxy_ssl_verify on;
        proxy_ssl_verify_depth 5;
        proxy_ssl_trusted_certificate ${caBundle};
`
            : "";
        return `# ${u.index} -> ${u.url}
server {
    listen 127.0.0.1:${u.port};
    server_name localhost;
    location / {
        proxy_pass ${origin};
        include ${mirrorAuthFile(u.index)};
        # Uncompressed, so that sub_filter can rewrite links.
        proxy_set_header Accept-Encoding "";
        proxy_http_version 1.1;
${tls}        proxy_redirect ${origin}/ /;
        sub_filter "${origin}/" "/";
        sub_filter_once off;
        sub_filter_types application/vnd.pypi.simple.v1+json application/vnd.pypi.simple.v1+html application/json;
    }
}
`;
    });
    return `# Managed by devpi-pulumi: loopback proxies that add credentials for devpi's mirror indexes.\n${blocks.join("\n")}`;
}

/**
 * Installs the auth files (stdin: one `FILE<TAB>HEADER` line per mirror), removes the ones no
 * longer configured, then the site; a site nginx rejects is rolled back. nginx reloads only when
 * something changed.
 */
export function renderMirrorProxyScript(site: string): string {
    const dir = shellQuote(MIRROR_AUTH_DIR);
    const sitePath = shellQuote(MIRROR_PROXY_SITE);
    return `root_path /etc/nginx || fail "/etc/nginx is not root's alone; refusing to write credentials there"
[ -d ${dir} ] || mkdir -m 0700 -- ${dir}
chmod 0700 -- ${dir}
changed=0
keep=" "
while IFS=$'\\t' read -r file header; do
  [ -n "$file" ] || continue
  st=$(printf 'proxy_set_header Authorization "%s";\\n' "$header" | write_if_changed ${dir}/"$file" 0600 root:root)
  [ "$st" = unchanged ] || changed=1
  keep="$keep$file "
done
for f in ${dir}/*.conf; do
  [ -e "$f" ] || continue
  case "$keep" in *" \${f##*/} "*) ;; *) rm -f -- "$f"; changed=1 ;; esac
done
backup=""
if [ -f ${sitePath} ]; then backup=$(mktemp); cp -p ${sitePath} "$backup"; fi
state=$(${writeFileLines(MIRROR_PROXY_SITE, "0644", "root:root", site)})
ln -sfn ${sitePath} ${shellQuote(MIRROR_PROXY_ENABLED)}
if ! out=$(nginx -t 2>&1); then
  if [ -n "$backup" ]; then mv -f "$backup" ${sitePath}; else rm -f ${sitePath} ${shellQuote(MIRROR_PROXY_ENABLED)}; fi
  echo "nginx rejected the mirror proxies; the previous configuration stays in place:" >&2
  echo "$out" >&2
  exit 1
fi
[ -z "$backup" ] || rm -f "$backup"
[ "$state" = unchanged ] || changed=1
if [ "$changed" = 1 ] && svc_running nginx; then nginx -s reload; fi
echo "mirror proxies: site $state, credentials $([ "$changed" = 1 ] && echo updated || echo unchanged)"
`;
}

/** Removes the proxies and their credentials, and reloads nginx. */
export function renderMirrorProxyRemoveScript(): string {
    return `rm -f ${shellQuote(MIRROR_PROXY_ENABLED)} ${shellQuote(MIRROR_PROXY_SITE)}
rm -rf -- ${shellQuote(MIRROR_AUTH_DIR)}
if svc_running nginx && nginx -t >/dev/null 2>&1; then nginx -s reload; fi
echo "mirror proxies removed"
`;
}

export interface MirrorProxyArgs {
    host: RemoteHost;
    upstreams: MirrorProxyUpstream[];
    /** Per index: the upstream's user name and password (a secret). */
    credentials: Map<string, { username: string; password: pulumi.Input<string> }>;
    /** CA bundle on the server that upstream certificates are checked against. */
    caBundle: string;
}

/** The loopback proxies of credentialed mirrors and their root-only credential files (see the file's comment). */
export class MirrorProxy extends pulumi.ComponentResource {
    /** Resolves once nginx serves the proxies. */
    public readonly serving: pulumi.Output<string>;

    constructor(name: string, args: MirrorProxyArgs, opts?: pulumi.ComponentResourceOptions) {
        super("devpi:index:MirrorProxy", name, {}, opts);
        const lines = args.upstreams.map((u) => {
            const c = args.credentials.get(u.index);
            if (!c) throw new Error(`MirrorProxy ${name}: no credentials for ${u.index}`);
            return pulumi.output(c.password).apply((p) => `${mirrorAuthFile(u.index).slice(MIRROR_AUTH_DIR.length + 1)}\t${basicAuthorization(c.username, p)}\n`);
        });
        const step = remoteStep(
            `${name}-proxy`,
            args.host,
            {
                create: renderMirrorProxyScript(renderMirrorProxySite(args.upstreams, args.caBundle)),
                delete: renderMirrorProxyRemoveScript(),
                stdin: pulumi.secret(pulumi.all(lines).apply((l) => l.join(""))),
                secret: true,
            },
            { parent: this },
        );
        this.serving = step.stdout;
        this.registerOutputs({ serving: this.serving });
    }
}
