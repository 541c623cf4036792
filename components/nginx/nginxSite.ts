import * as pulumi from "@pulumi/pulumi";
import { NginxSiteSettings, PAGE_GENERATION_MODULE_PATH, renderNginxRemoveScript, renderNginxScript, renderNginxSite, renderPageGenerationModule } from "./nginxConfig";
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
 * (`/etc/nginx/devpi-page-generation.js`) its index page cache keys on. A config that fails
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
        const modulePath = site.apply((s) => s.pageGenerationModulePath ?? PAGE_GENERATION_MODULE_PATH);
        this.siteConfig = pulumi.all([site, modulePath]).apply(([s, m]) => renderNginxSite({ ...s, pageGenerationModulePath: m }));
        const extraFiles = pulumi.all([site, modulePath]).apply(([s, m]) => (s.indexPageCache ? [{ path: m, content: renderPageGenerationModule(s.serverDir) }] : []));
        const step = remoteStep(
            `${name}-site`,
            args.host,
            {
                create: pulumi
                    .all([args.certSha256, this.siteConfig, extraFiles])
                    .apply(([certFingerprint, siteConfig, files]) => renderNginxScript({ sitePath: this.configPath, enabledPath, site: siteConfig, extraFiles: files, certFingerprint })),
                delete: extraFiles.apply((files) => renderNginxRemoveScript({ sitePath: this.configPath, enabledPath, extraPaths: files.map((f) => f.path) })),
            },
            { parent: this },
        );
        this.serving = step.stdout;
        this.registerOutputs({ serving: this.serving });
    }
}
