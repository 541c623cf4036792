/**
 * Prometheus alert rules for the metrics HostMetrics serves: a rules file (Prometheus's
 * `rule_files`), rendered from the deployment's own schedule and certificate windows so the
 * thresholds match what the program does. The repository keeps the default rendering in
 * monitoring/devpi-alerts.yml (a unit test keeps it equal to this renderer's output).
 */
import { stringify } from "yaml";

export interface AlertRuleSettings {
    /** Hours between two scheduled backups (24 for the default daily schedule). */
    backupIntervalHours: number;
    /** Days before expiry the program renews the certificate (a `pulumi up` must run in that window). */
    certRenewBeforeDays: number;
    /** Days added to the renewal window before the certificate alert fires. Default 5. */
    certMarginDays?: number;
    /** Minutes a replica may be out of sync before the alert fires. Default 15. */
    replicaLagMinutes?: number;
    /** Percent of free space under which the disk alerts fire. Default 10. */
    diskFreePercent?: number;
}

interface Rule {
    alert: string;
    expr: string;
    for?: string;
    labels: { severity: "critical" | "warning" };
    annotations: { summary: string; action: string };
}

/** The rules, by name: what each watches, and what to do (the README's table is made from the same text). */
export function alertRules(s: AlertRuleSettings): Rule[] {
    return [...serviceRules(s), ...storageRules(s)];
}

/** The rules on devpi itself, the collector and replication. */
function serviceRules(s: AlertRuleSettings): Rule[] {
    const lag = s.replicaLagMinutes ?? 15;
    return [
        {
            alert: "DevpiDown",
            expr: "devpi_up == 0",
            for: "2m",
            labels: { severity: "critical" },
            annotations: {
                summary: "devpi-server on {{ $labels.instance }} does not answer",
                action: "supervisorctl status devpi; tail /var/log/supervisor/devpi.log; supervisorctl start devpi (or pulumi up)",
            },
        },
        {
            alert: "DevpiMetricsStale",
            expr: "time() - devpi_metrics_last_run_timestamp_seconds > 300 or absent_over_time(devpi_metrics_last_run_timestamp_seconds[10m])",
            labels: { severity: "warning" },
            annotations: {
                summary: "devpi-metrics on {{ $labels.instance }} stopped reporting",
                action: "supervisorctl status devpi-metrics devpi-node-exporter; tail /var/log/supervisor/devpi-metrics.log",
            },
        },
        {
            alert: "DevpiReplicaBehind",
            expr: `devpi_replica == 1 and (devpi_replica_seconds_since_in_sync > ${lag * 60} or devpi_replica_serial_lag > 0)`,
            for: `${lag}m`,
            labels: { severity: "warning" },
            annotations: {
                summary: "replica {{ $labels.instance }} has not been in sync with its primary for over " + `${lag} minutes`,
                action: "check the replica's devpi log and its reach to the primary; pulumi up re-syncs a replica whose primary was rebuilt",
            },
        },
        {
            alert: "DevpiEventsBehind",
            expr: "devpi_event_lag > 100",
            for: "30m",
            labels: { severity: "warning" },
            annotations: {
                summary: "devpi on {{ $labels.instance }} is {{ $value }} commits behind in its event processing (search indexing)",
                action: "tail devpi's log for hook errors; a new server indexes PyPI's project list for a while (see the README's mirror section)",
            },
        },
    ];
}

/** The rules on backups, the certificate and disk space. */
function storageRules(s: AlertRuleSettings): Rule[] {
    const free = s.diskFreePercent ?? 10;
    const certDays = s.certRenewBeforeDays + (s.certMarginDays ?? 5);
    // A missed run is noticed one interval plus two hours late (an export takes time; cron is not exact).
    const backupMaxAge = (s.backupIntervalHours + 2) * 3600;
    return [
        {
            alert: "DevpiBackupFailed",
            expr: "devpi_backup_last_run_success == 0",
            labels: { severity: "critical" },
            annotations: {
                summary: "the last scheduled backup on {{ $labels.instance }} failed",
                action: "journalctl -t devpi-backup (or the system log) says why; free space in the backup directory and run the backup command",
            },
        },
        {
            alert: "DevpiOffsiteFailed",
            expr: "devpi_offsite_last_run_success == 0",
            labels: { severity: "critical" },
            annotations: {
                summary: "the last off-host copy of the backups on {{ $labels.instance }} failed",
                action: "journalctl -t devpi-offsite; devpi-offsite --restic snapshots (as the service user) shows whether the target answers",
            },
        },
        {
            alert: "DevpiBackupTooOld",
            expr: `time() - devpi_backup_last_success_timestamp_seconds > ${backupMaxAge}`,
            labels: { severity: "critical" },
            annotations: { summary: `no complete backup on {{ $labels.instance }} for over ${s.backupIntervalHours + 2} hours`, action: "check cron on the primary and the backup command's output" },
        },
        {
            alert: "DevpiCertificateExpiring",
            expr: `devpi_certificate_expiry_timestamp_seconds - time() < ${certDays * 86400}`,
            labels: { severity: "warning" },
            annotations: {
                summary: `the certificate {{ $labels.instance }} serves expires within ${certDays} days`,
                action: "run pulumi up (self-signed and provided certificates are renewed by it); with ACME check certbot's renewal",
            },
        },
        {
            alert: "DevpiDiskFull",
            expr: `devpi_dir_avail_bytes / devpi_dir_size_bytes * 100 < ${free}`,
            for: "5m",
            labels: { severity: "critical" },
            annotations: {
                summary: `under ${free}% free on the file system of devpi's {{ $labels.dir }} directory on {{ $labels.instance }}`,
                action: "free space or grow the volume; old backups are removed by backupKeep",
            },
        },
    ];
}

/**
 * The longest gap, in hours, a 5-field cron schedule leaves between two runs (for the backup
 * age alert), from its hour and day fields: every N hours (`*` or `*\/N`), a list of hours a
 * day, or a day-of-week or day-of-month restriction (a week, a month).
 */
export function cronIntervalHours(schedule: string): number {
    const [, hour = "*", dom = "*", , dow = "*"] = schedule.trim().split(/\s+/);
    if (dom !== "*") return 31 * 24;
    if (dow !== "*") return 7 * 24;
    if (hour === "*") return 1;
    const step = /^\*\/(\d+)$/.exec(hour);
    if (step) return Number(step[1]);
    const hours = hour.split(",").flatMap((h) => {
        const range = /^(\d+)-(\d+)$/.exec(h);
        return range ? Array.from({ length: Number(range[2]) - Number(range[1]) + 1 }, (_, i) => Number(range[1]) + i) : [Number(h)];
    });
    const sorted = [...new Set(hours)].filter((h) => Number.isInteger(h)).sort((a, b) => a - b);
    if (sorted.length <= 1) return 24;
    const gaps = sorted.map((h, i) => (i === 0 ? h + 24 - sorted[sorted.length - 1] : h - sorted[i - 1]));
    return Math.max(...gaps);
}

/** The rules file (YAML). */
export function renderAlertRules(s: AlertRuleSettings): string {
    return `# Managed by Pulumi (devpi): Prometheus alert rules for devpi's metrics (see the README's "Operating it").\n${stringify({ groups: [{ name: "devpi", rules: alertRules(s) }] }, { lineWidth: 0 })}`;
}
