import * as pulumi from "@pulumi/pulumi";
import { NginxSiteSettings, PAGE_GENERATION_MODULE_PATH, renderNginxRemoveScript, renderNginxScript, renderNginxSite, renderPageGenerationModule } from "./nginxConfig";
import { RemoteHost, remoteStep } from "../common/remoteStep";

export interface NginxSiteArgs {
    host: RemoteHost;
    site: NginxSiteSettings;
    /** sha256 of the certificate; a new certificate reloads nginx. */
    certSha256: pulumi.Input<string>;
    /** File name under sites-available / sites-enabled. Default `devpi`. */
    siteName?: string;
}

/**
 * `/etc/nginx/sites-available/devpi` (enabled by symlink): HTTPS in front of devpi, HTTP
 * redirecting to it, release files from disk; with `site.indexPageCache`, also the njs module
 * (`/etc/nginx/devpi-page-generation.js`) its index page cache keys on. A config that fails
 * `nginx -t` never replaces the running one; nginx is started when down and reloaded when up.
 * Destroy removes the site and the module.
 */
export class NginxSite extends pulumi.ComponentResource {
    public readonly configPath: string;
    /** The rendered site, as installed. */
    public readonly siteConfig: string;
    /** Resolves once nginx serves the site. */
    public readonly serving: pulumi.Output<string>;

    constructor(name: string, args: NginxSiteArgs, opts?: pulumi.ComponentResourceOptions) {
        super("devpi:index:NginxSite", name, {}, opts);
        const siteName = args.siteName ?? "devpi";
        this.configPath = `/etc/nginx/sites-available/${siteName}`;
        const enabledPath = `/etc/nginx/sites-enabled/${siteName}`;
        const modulePath = args.site.pageGenerationModulePath ?? PAGE_GENERATION_MODULE_PATH;
        this.siteConfig = renderNginxSite({ ...args.site, pageGenerationModulePath: modulePath });
        const extraFiles = args.site.indexPageCache ? [{ path: modulePath, content: renderPageGenerationModule(args.site.serverDir) }] : [];
        const step = remoteStep(
            `${name}-site`,
            args.host,
            {
                create: pulumi.output(args.certSha256).apply((certFingerprint) =>
                    renderNginxScript({ sitePath: this.configPath, enabledPath, site: this.siteConfig, extraFiles, certFingerprint }),
                ),
                delete: renderNginxRemoveScript({ sitePath: this.configPath, enabledPath, extraPaths: extraFiles.map((f) => f.path) }),
            },
            { parent: this },
        );
        this.serving = step.stdout;
        this.registerOutputs({ serving: this.serving });
    }
}
