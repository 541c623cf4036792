import * as pulumi from "@pulumi/pulumi";
import {
    AUTH_CACHE_MODULE_PATH,
    AUTH_CACHE_SECRET_PATH,
    authCacheOn,
    NginxSiteSettings,
    PAGE_GENERATION_MODULE_PATH,
    renderAuthCacheModule,
    renderNginxRemoveScript,
    renderNginxScript,
    renderNginxSite,
    renderPageGenerationModule,
} from "./nginxConfig";
import { RemoteHost, remoteStep } from "../common/remoteStep";

export interface NginxSiteArgs {
    host: RemoteHost;
    /** What the site is made of; may be an Output (a VM's name and ports). */
    site: pulumi.Input<NginxSiteSettings>;
    /** sha256 of the certificate; a new certificate reloads nginx. */
    certSha256: pulumi.Input<string>;
    /** File name under sites-available / sites-enabled. Default `devpi`. */
    siteName?: string;
}

/**
 * `/etc/nginx/sites-available/devpi` (enabled by symlink): HTTPS in front of devpi, HTTP
 * redirecting to it, release files from disk; with `site.indexPageCache`, also the njs module
 * (`/etc/nginx/devpi-page-generation.js`) its index page cache keys on; with reads for users only and
 * `site.authCacheSeconds`, the auth cache's njs module (`/etc/nginx/devpi-authcheck.js`) and its
 * secret (`/etc/nginx/devpi-authcheck-secret.conf`, made on the server, root's only). A config that fails
 * `nginx -t` never replaces the running one; nginx is started when down and reloaded when up.
 * Destroy removes the site and the module.
 */
export class NginxSite extends pulumi.ComponentResource {
    public readonly configPath: string;
    /** The rendered site, as installed. */
    public readonly siteConfig: pulumi.Output<string>;
    /** Resolves once nginx serves the site. */
    public readonly serving: pulumi.Output<string>;

    constructor(name: string, args: NginxSiteArgs, opts?: pulumi.ComponentResourceOptions) {
        super("devpi:index:NginxSite", name, {}, opts);
        const siteName = args.siteName ?? "devpi";
        this.configPath = `/etc/nginx/sites-available/${siteName}`;
        const enabledPath = `/etc/nginx/sites-enabled/${siteName}`;
        const site = pulumi.output(args.site);
        const resolved = site.apply((s) => ({
            ...s,
            pageGenerationModulePath: s.pageGenerationModulePath ?? PAGE_GENERATION_MODULE_PATH,
            authCacheModulePath: s.authCacheModulePath ?? AUTH_CACHE_MODULE_PATH,
            authCacheSecretPath: s.authCacheSecretPath ?? AUTH_CACHE_SECRET_PATH,
        }));
        this.siteConfig = resolved.apply(renderNginxSite);
        const extraFiles = resolved.apply((s) => [
            ...(s.indexPageCache || authCacheOn(s) ? [{ path: s.pageGenerationModulePath, content: renderPageGenerationModule(s.serverDir) }] : []),
            ...(authCacheOn(s) ? [{ path: s.authCacheModulePath, content: renderAuthCacheModule() }] : []),
        ]);
        const secretPath = resolved.apply((s) => (authCacheOn(s) ? s.authCacheSecretPath : undefined));
        const step = remoteStep(
            `${name}-site`,
            args.host,
            {
                create: pulumi
                    .all([args.certSha256, this.siteConfig, extraFiles, secretPath])
                    .apply(([certFingerprint, siteConfig, files, authCacheSecretPath]) =>
                        renderNginxScript({ sitePath: this.configPath, enabledPath, site: siteConfig, extraFiles: files, certFingerprint, authCacheSecretPath }),
                    ),
                // The auth cache's secret goes with the site.
                delete: pulumi
                    .all([extraFiles, secretPath])
                    .apply(([files, secret]) => renderNginxRemoveScript({ sitePath: this.configPath, enabledPath, extraPaths: [...files.map((f) => f.path), ...(secret ? [secret] : [])] })),
            },
            { parent: this },
        );
        this.serving = step.stdout;
        this.registerOutputs({ serving: this.serving });
    }
}
