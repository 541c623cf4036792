/**
 * Issue 20's metrics on real hosts, with a real Prometheus scraping a primary and its replicas:
 * every server's metrics present with sane values; devpi stopped on a replica shows within a
 * scrape, its time since in sync grows and the DevpiDown rule goes pending; a full backup file
 * system fails the scheduled backup and the metric says so. Used by replicas.test.ts (its hosts).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { Stack } from "@pulumi/pulumi/automation";
import { onHost, TestHost } from "./harness";
import { startPrometheus } from "./prometheus";

/** Seconds between two collections on the servers (COLLECTOR_INTERVAL_SECONDS). */
const COLLECTION_S = 15;

/**
 * The metrics for a Prometheus elsewhere (devpi:metricsScrape on `address`, allowed from
 * 127.0.0.1 only): a second Prometheus scrapes them over HTTPS trusting the stack's CA; a request
 * from another source address gets 403.
 */
export async function checkMetricsScrape(work: string, address: string, caFile: string, serverName: string, prometheusPort: number): Promise<string> {
    const prom = await startPrometheus(path.join(work, "prometheus-https"), prometheusPort, [address], undefined, { caFile, serverName });
    try {
        await prom.waitFor("up", (x) => x.get(address) === 1, 30);
        await prom.waitFor("devpi_up", (x) => x.get(address) === 1, 30);
        const port = address.split(":").pop();
        const other = spawnSync(
            "curl",
            ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", caFile, "--resolve", `${serverName}:${port}:127.0.0.1`, "--interface", "127.0.0.2", `https://${serverName}:${port}/metrics`],
            {
                encoding: "utf8",
            },
        ).stdout;
        assert.equal(other, "403", "a source outside the allow-list is refused");
        return `Prometheus scraped devpi_up 1 over HTTPS from ${address} (allowed: 127.0.0.1/32); from 127.0.0.2: ${other}`;
    } finally {
        await prom.stop();
    }
}

export async function checkMetrics(stack: Stack, work: string, primary: TestHost, replica: { label: string; host: TestHost }, prometheusPort: number): Promise<string[]> {
    const outputs = await stack.outputs();
    const endpoints = outputs.metricsEndpoints.value as Record<string, string>;
    const instance = (label: string) => new URL(endpoints[label]).host;
    const rules = path.join(work, "devpi-alerts.yml");
    fs.writeFileSync(rules, String(outputs.alertRules.value));
    const prom = await startPrometheus(
        path.join(work, "prometheus"),
        prometheusPort,
        Object.values(endpoints).map((e) => new URL(e).host),
        rules,
    );
    const figures: string[] = [];
    const p = instance("primary");
    const r = instance(replica.label);
    let mounted = false;
    try {
        const all = Object.keys(endpoints).length;
        await prom.waitFor("devpi_up", (x) => x.size === all && [...x.values()].every((v) => v === 1), 60);
        const role = await prom.query("devpi_replica");
        assert.equal(role.get(p), 0);
        assert.equal(role.get(r), 1);
        assert.ok((await prom.query("devpi_serial")).get(p)! > 5, "the primary's serial");
        assert.ok((await prom.query("devpi_replica_serial_lag")).has(r), "the replica's lag");
        for (const [i, days] of await prom.query("(devpi_certificate_expiry_timestamp_seconds - time()) / 86400")) assert.ok(days > 30, `${i}: the served certificate expires in ${days} days`);
        const free = await prom.query('devpi_dir_avail_bytes{dir="server"}');
        assert.equal(free.size, all);
        assert.ok([...free.values()].every((v) => v > 0));
        assert.ok((await prom.query("nginx_http_requests_total")).get(p)! > 0, "nginx's counters");
        assert.ok((await prom.query("count by (instance) (node_filesystem_avail_bytes)")).size === all, "node-exporter's own metrics too");
        assert.ok((await prom.query("devpi_backups")).has(p), "the primary's backups");
        assert.ok(!(await prom.query("devpi_backups")).has(r), "no backup metrics where none are taken");

        // devpi stopped on the replica.
        onHost(replica.host, "supervisorctl stop devpi >/dev/null");
        try {
            const t0 = Date.now();
            await prom.waitFor(`devpi_up{instance="${r}"}`, (x) => x.get(r) === 0, COLLECTION_S + 10);
            figures.push(`devpi_up 0 on ${replica.label} ${((Date.now() - t0) / 1000).toFixed(1)} s after devpi stopped`);
            const since = `devpi_replica_seconds_since_in_sync{instance="${r}"}`;
            const s1 = (await prom.waitFor(since, (x) => (x.get(r) ?? 0) > 0, COLLECTION_S + 10)).get(r)!;
            const s2 = (await prom.waitFor(since, (x) => (x.get(r) ?? 0) > s1, 2 * COLLECTION_S + 10)).get(r)!;
            figures.push(`seconds since in sync on ${replica.label}: ${s1.toFixed(0)}, then ${s2.toFixed(0)}`);
            await prom.waitFor('ALERTS{alertname="DevpiDown"}', (x) => x.has(r), 20);
        } finally {
            onHost(replica.host, "supervisorctl start devpi >/dev/null");
        }
        await prom.waitFor(`devpi_up{instance="${r}"}`, (x) => x.get(r) === 1, 90);

        // The backup file system full: a 1 MiB tmpfs over the backup directory, filled.
        onHost(primary, "mount -t tmpfs -o size=1m,mode=0700,uid=$(id -u devpi),gid=$(id -g devpi) devpi-full /srv/devpi/backups");
        mounted = true;
        onHost(primary, "runuser -u devpi -- sh -c 'head -c 2M /dev/zero > /srv/devpi/backups/filler' 2>/dev/null || true");
        const failed = onHost(primary, "runuser -u devpi -- /usr/local/sbin/devpi-backup 2>&1; echo rc=$?");
        assert.match(failed, /devpi-backup failed: .*rc=1\n?$/s, failed);
        await prom.waitFor(`devpi_backup_last_run_success{instance="${p}"}`, (x) => x.get(p) === 0, COLLECTION_S + 10);
        assert.equal((await prom.query(`devpi_dir_avail_bytes{instance="${p}",dir="backup"}`)).get(p), 0, "no space left there");
        onHost(primary, "umount /srv/devpi/backups");
        mounted = false;
        onHost(primary, "runuser -u devpi -- /usr/local/sbin/devpi-backup >/dev/null");
        await prom.waitFor(`devpi_backup_last_run_success{instance="${p}"}`, (x) => x.get(p) === 1, COLLECTION_S + 10);
        figures.push("a backup into a full file system failed and devpi_backup_last_run_success said 0; the next one 1");
        return figures;
    } finally {
        if (mounted) onHost(primary, "umount /srv/devpi/backups || true");
        await prom.stop();
    }
}
