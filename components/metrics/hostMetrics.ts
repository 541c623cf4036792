import * as pulumi from "@pulumi/pulumi";
import { RemoteHost, remoteStep } from "../common/remoteStep";
import type { DevpiHost } from "../deployment/devpiHost";
import type { HostSpec, ResolvedDevpi } from "../deployment/resolveArgs";
import type { NginxSiteSettings } from "../nginx/nginxConfig";
import { MetricsCollectorSettings, renderMetricsCollector } from "./metricsCollector";
import { BACKUP_RESULT_FILE, NGINX_STATUS_SOCKET, TEXTFILE_DIR } from "../constants";
import { renderMetricsRemoveScript, renderMetricsScript, renderNodeExporterPackageScript } from "./metricsScript";
import { OFFSITE_RESULT_FILE } from "../backup/offsiteScript";

/** Seconds between two collections: Prometheus's usual scrape interval, so a scrape sees devpi go down. */
export const COLLECTOR_INTERVAL_SECONDS = 15;

export interface HostMetricsArgs {
    host: RemoteHost;
    /** node-exporter's listen address, HOST:PORT on loopback (e.g. 127.0.0.1:9100). */
    listen: pulumi.Input<string>;
    serviceUser: string;
    /** The package step waits for these (other apt runs, and writers of /etc/group: the package adds a user). */
    packagesAfter?: pulumi.Input<pulumi.Resource>[];
    /** The exporter step waits for these (supervisor runs the programs; nginx serves its counters). */
    startAfter?: pulumi.Input<pulumi.Resource>[];
    /** What the collector reads; the socket and output file are fixed (see metricsScript.ts). */
    collector: pulumi.Input<Omit<MetricsCollectorSettings, "nginxStatusSocket" | "outFile" | "intervalSeconds" | "backupResultFile" | "offsiteResultFile">>;
}

/**
 * Prometheus metrics of one server: Debian's prometheus-node-exporter on `listen` (run by
 * supervisor as `prometheus`; Debian's own unit is masked on systemd hosts) with its textfile
 * collector fed every 15 s by devpi-metrics (`/usr/local/lib/devpi-pulumi/devpi-metrics.py`,
 * root's, run as the service user): devpi's /+status, replication, backups, the served
 * certificate, free space, nginx's stub_status. Destroy stops both and removes our files.
 */
export class HostMetrics extends pulumi.ComponentResource {
    /** Where node-exporter serves /metrics. */
    public readonly endpoint: pulumi.Output<string>;

    constructor(name: string, args: HostMetricsArgs, opts?: pulumi.ComponentResourceOptions) {
        super("devpi:index:HostMetrics", name, {}, opts);
        const packages = remoteStep(`${name}-packages`, args.host, { create: renderNodeExporterPackageScript() }, { parent: this, dependsOn: args.packagesAfter });
        const step = remoteStep(
            `${name}-exporter`,
            args.host,
            {
                create: pulumi.all([args.listen, args.collector]).apply(([listen, c]) =>
                    renderMetricsScript({
                        listen,
                        serviceUser: args.serviceUser,
                        collector: renderMetricsCollector({
                            ...c,
                            nginxStatusSocket: NGINX_STATUS_SOCKET,
                            outFile: `${TEXTFILE_DIR}/devpi.prom`,
                            backupResultFile: BACKUP_RESULT_FILE,
                            offsiteResultFile: OFFSITE_RESULT_FILE,
                            intervalSeconds: COLLECTOR_INTERVAL_SECONDS,
                        }),
                    }),
                ),
                delete: renderMetricsRemoveScript(),
            },
            { parent: this, dependsOn: [packages, ...(args.startAfter ?? [])] },
        );
        this.endpoint = pulumi.all([args.listen, step.stdout]).apply(([listen]) => `http://${listen}/metrics`);
        this.registerOutputs({ endpoint: this.endpoint });
    }
}

/**
 * What nginx serves for the metrics (none when they are off): its counters on a unix socket for
 * devpi-metrics, and with `metricsScrape` node-exporter's /metrics over HTTPS to the allowed networks.
 */
export function nginxMetricsSettings(on: boolean, spec: Pick<HostSpec, "metricsAddress" | "metricsScrape">): Pick<NginxSiteSettings, "statusSocket" | "metricsScrape"> {
    if (!on) return {};
    return {
        statusSocket: NGINX_STATUS_SOCKET,
        ...(spec.metricsScrape ? { metricsScrape: { ...spec.metricsScrape, upstream: spec.metricsAddress } } : {}),
    };
}

/**
 * The metrics of one of the deployment's servers, named `NAMEPREFIX + host prefix + metrics`
 * (`backups`: the primary, where backups are taken).
 */
export function hostMetrics(h: DevpiHost, s: ResolvedDevpi, namePrefix: string, backups: boolean): HostMetrics {
    return new HostMetrics(
        `${namePrefix}${h.spec.prefix}metrics`,
        {
            host: h.remote,
            listen: h.spec.metricsAddress,
            serviceUser: s.devpi.serviceUser,
            collector: pulumi.all([h.spec.domain, h.spec.httpsPort]).apply(([domain, httpsPort]) => ({
                devpiUrl: h.api.devpiUrl,
                httpsPort,
                domain,
                serverDir: s.devpi.serverDir,
                backupDir: backups ? s.devpi.backupDir : undefined,
            })),
            // apt runs while pip installs devpi; supervisord runs (the host's program step), nginx serves its counters.
            packagesAfter: [h.prepared],
            startAfter: [h.supervisor, h.nginx],
        },
        { parent: h },
    );
}
