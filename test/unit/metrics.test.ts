/**
 * Metrics and alerts in our own code: devpi-metrics (the collector) run by python3 against
 * stand-ins for devpi's /+status, nginx's stub_status socket and the served certificate, its
 * output checked by Prometheus's promtool; the alert rules checked and tested with `promtool test
 * rules`, each firing when it should and not when it should not; the scripts with shellcheck.
 */
import assert from "node:assert/strict";
import { execFile, execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { stringify } from "yaml";
import { alertRules, cronIntervalHours, renderAlertRules } from "../../components/metrics/alertRules";
import { COLLECTOR_METRICS, renderMetricsCollector } from "../../components/metrics/metricsCollector";
import { renderMetricsPrograms, renderMetricsRemoveScript, renderMetricsScript } from "../../components/metrics/metricsScript";
import { PRELUDE } from "../../components/common/shell";

const ROOT = path.join(__dirname, "../..");

/** Parses Prometheus's text format into "name{labels}" -> value. */
function samples(text: string): Map<string, number> {
    const m = new Map<string, number>();
    for (const line of text.split("\n")) {
        if (!line || line.startsWith("#")) continue;
        const i = line.lastIndexOf(" ");
        m.set(line.slice(0, i), Number(line.slice(i + 1)));
    }
    return m;
}

describe("devpi-metrics, run by python3 against stand-ins", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "devpi-metrics-"));
    let status: Record<string, unknown> = {};
    let devpi: http.Server;
    let tls: https.Server;
    let stub: net.Server;
    let devpiPort = 0;
    let tlsPort = 0;
    const notAfter = new Date(Date.now() + 40 * 86_400_000);

    before(async () => {
        devpi = http.createServer((req, res) => {
            if (req.url !== "/+status") return void res.writeHead(404).end();
            res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify({ type: "status", result: status }));
        });
        await new Promise<void>((r) => devpi.listen(0, "127.0.0.1", r));
        devpiPort = (devpi.address() as net.AddressInfo).port;
        const days = Math.round((notAfter.getTime() - Date.now()) / 86_400_000);
        execFileSync(
            "openssl",
            [
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                `${dir}/key.pem`,
                "-out",
                `${dir}/cert.pem`,
                "-days",
                String(days),
                "-subj",
                "/CN=devpi.test",
            ],
            { stdio: "pipe" },
        );
        tls = https.createServer({ key: fs.readFileSync(`${dir}/key.pem`), cert: fs.readFileSync(`${dir}/cert.pem`) }, (_q, res) => res.end());
        await new Promise<void>((r) => tls.listen(0, "127.0.0.1", r));
        tlsPort = (tls.address() as net.AddressInfo).port;
        stub = net.createServer((c) => {
            c.once("data", () => c.end("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nActive connections: 3 \nserver accepts handled requests\n 16 16 31 \nReading: 0 Writing: 1 Waiting: 2 \n"));
        });
        await new Promise<void>((r) => stub.listen(`${dir}/stub.sock`, r));
        fs.mkdirSync(`${dir}/data`);
        fs.mkdirSync(`${dir}/backups/devpi-export-20261201T031700Z`, { recursive: true });
        fs.mkdirSync(`${dir}/backups/devpi-export-20261202T031700Z/root`, { recursive: true });
        fs.writeFileSync(`${dir}/backups/devpi-export-20261202T031700Z/root/data.json`, "x".repeat(1000));
        fs.writeFileSync(`${dir}/backups/devpi-export-20261202T031700Z/dataindex.json`, "y".repeat(24));
        fs.mkdirSync(`${dir}/backups/.partial-20261203T031700Z`);
        fs.writeFileSync(`${dir}/backup-result`, "failed 1796000000\n");
        fs.writeFileSync(`${dir}/offsite-result`, "ok 1796000100\n");
        fs.mkdirSync(`${dir}/out`);
    });

    after(() => {
        devpi?.close();
        tls?.close();
        stub?.close();
        fs.rmSync(dir, { recursive: true, force: true });
    });

    const collect = async (backups = true): Promise<string> => {
        const py = `${dir}/devpi-metrics.py`;
        fs.writeFileSync(
            py,
            renderMetricsCollector({
                devpiUrl: `http://127.0.0.1:${devpiPort}`,
                httpsPort: tlsPort,
                domain: "devpi.test",
                serverDir: `${dir}/data`,
                backupDir: backups ? `${dir}/backups` : undefined,
                nginxStatusSocket: `${dir}/stub.sock`,
                outFile: `${dir}/out/devpi.prom`,
                backupResultFile: `${dir}/backup-result`,
                offsiteResultFile: `${dir}/offsite-result`,
                intervalSeconds: 60,
            }),
        );
        // Asynchronously: the stand-ins answer from this process's event loop.
        await new Promise<void>((resolve, reject) => execFile("python3", [py, "--once"], { timeout: 60_000 }, (e, _o, err) => (e ? reject(new Error(`${e.message}\n${err}`)) : resolve())));
        const text = fs.readFileSync(`${dir}/out/devpi.prom`, "utf8");
        const check = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
        assert.equal(check.status, 0, `promtool check metrics: ${check.stdout}${check.stderr}\n${text}`);
        return text;
    };

    it("a primary: devpi's serials and own metrics, backups, free space, the served certificate, nginx's counters", async () => {
        status = {
            role: "MASTER",
            serial: 120,
            "event-serial": 100,
            "last-commit-timestamp": 1796000000.5,
            metrics: [
                ["devpi_web_whoosh_index_queue_size", "gauge", 7],
                ["devpi_server_storage_cache_hits", "counter", 12],
            ],
            polling_replicas: { "a-uuid": { serial: 119 } },
        };
        const m = samples(await collect());
        assert.equal(m.get("devpi_up"), 1);
        assert.equal(m.get("devpi_serial"), 120);
        assert.equal(m.get("devpi_event_lag"), 20);
        assert.equal(m.get("devpi_web_whoosh_index_queue_size"), 7);
        assert.equal(m.get("devpi_server_storage_cache_hits_total"), 12, "devpi's counters get Prometheus's _total");
        assert.equal(m.get("devpi_replica"), 0);
        assert.equal(m.get("devpi_polling_replicas"), 1);
        assert.equal(m.get("devpi_backups"), 2, "complete exports only (not .partial-*)");
        assert.equal(m.get("devpi_backup_last_success_timestamp_seconds"), Date.UTC(2026, 11, 2, 3, 17) / 1000);
        assert.equal(m.get("devpi_backup_last_size_bytes"), 1024);
        assert.equal(m.get("devpi_backup_last_run_success"), 0, "the last run's result, from devpi-backup's file");
        assert.equal(m.get("devpi_backup_last_run_timestamp_seconds"), 1796000000);
        assert.equal(m.get("devpi_offsite_last_run_success"), 1, "the last off-host copy's result");
        const expiry = m.get("devpi_certificate_expiry_timestamp_seconds")!;
        assert.ok(Math.abs(expiry - notAfter.getTime() / 1000) < 2 * 86_400, `certificate expiry ${expiry}`);
        const free = [...m.entries()].filter(([k]) => k.startsWith("devpi_dir_avail_bytes"));
        assert.deepEqual(
            free.map(([k]) => /dir="(\w+)"/.exec(k)![1]),
            ["server", "backup"],
        );
        assert.ok(free.every(([, v]) => v > 0));
        assert.equal(m.get("nginx_connections_active"), 3);
        assert.equal(m.get("nginx_http_requests_total"), 31);
        assert.ok(Math.abs(m.get("devpi_metrics_last_run_timestamp_seconds")! - Date.now() / 1000) < 60);
    });

    it("a replica: its lag and time since in sync; no backup metrics where none are taken", async () => {
        const now = Date.now() / 1000;
        status = { role: "REPLICA", serial: 90, "event-serial": 90, "primary-serial": 120, "replica-in-sync-at": now - 600, "replication-errors": {}, metrics: [] };
        const m = samples(await collect(false));
        assert.equal(m.get("devpi_replica"), 1);
        assert.equal(m.get("devpi_replica_serial_lag"), 30);
        assert.ok(Math.abs(m.get("devpi_replica_seconds_since_in_sync")! - 600) < 30);
        assert.equal(m.get("devpi_replication_errors"), 0);
        assert.equal([...m.keys()].filter((k) => k.startsWith("devpi_backup")).length, 0);
    });

    it("devpi down: devpi_up 0, and the rest is still reported", async () => {
        devpi.close();
        await new Promise((r) => setTimeout(r, 100));
        const m = samples(await collect());
        assert.equal(m.get("devpi_up"), 0);
        assert.equal(m.has("devpi_serial"), false);
        assert.equal(m.get("devpi_backups"), 2);
        assert.equal(m.get("nginx_connections_active"), 3);
    });
});

describe("alert rules", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "devpi-alerts-"));
    after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const defaults = { backupIntervalHours: 24, certRenewBeforeDays: 30 };

    it("the repository's monitoring/devpi-alerts.yml is the default rendering, and promtool accepts it", () => {
        const file = path.join(ROOT, "monitoring/devpi-alerts.yml");
        assert.equal(fs.readFileSync(file, "utf8"), renderAlertRules(defaults), "regenerate it: npm run -s alert-rules > monitoring/devpi-alerts.yml");
        const r = spawnSync("promtool", ["check", "rules", file], { encoding: "utf8" });
        assert.equal(r.status, 0, r.stdout + r.stderr);
        assert.match(r.stdout, new RegExp(`SUCCESS: ${alertRules(defaults).length} rules found`));
    });

    it("backup age follows the schedule: daily, hourly, every 6 h, a list of hours, weekly", () => {
        assert.equal(cronIntervalHours("17 3 * * *"), 24);
        assert.equal(cronIntervalHours("0 * * * *"), 1);
        assert.equal(cronIntervalHours("0 */6 * * *"), 6);
        assert.equal(cronIntervalHours("0 3,15 * * *"), 12);
        assert.equal(cronIntervalHours("0 1,2,20 * * *"), 18);
        assert.equal(cronIntervalHours("0 3 * * 0"), 168);
    });

    it("each alert fires when it should and not when it should not (promtool test rules)", () => {
        fs.writeFileSync(`${dir}/rules.yml`, renderAlertRules(defaults));
        const h = 3600;
        const day = 86_400;
        // Series start at time 0; values are given per minute (interval 1m).
        const series = (name: string, values: string) => ({ series: name, values });
        const tests = [
            {
                interval: "1m",
                input_series: [series('devpi_up{instance="down"}', "1 0x10"), series('devpi_up{instance="up"}', "1x10"), series('devpi_up{instance="blip"}', "1 0 1x9")],
                alert_rule_test: [
                    { eval_time: "5m", alertname: "DevpiDown", exp_alerts: [{ exp_labels: { severity: "critical", instance: "down" }, exp_annotations: expectedAnnotations("DevpiDown", "down") }] },
                    { eval_time: "1m", alertname: "DevpiDown", exp_alerts: [] },
                ],
            },
            {
                interval: "1m",
                input_series: [
                    series('devpi_backup_last_run_success{instance="p"}', "1 1 0 0"),
                    series('devpi_backup_last_success_timestamp_seconds{instance="p"}', `${-27 * h}x3`),
                    series('devpi_backup_last_success_timestamp_seconds{instance="fresh"}', `${-1 * h}x3`),
                    series('devpi_offsite_last_run_success{instance="p"}', "1 0 0 0"),
                ],
                alert_rule_test: [
                    { eval_time: "1m", alertname: "DevpiBackupFailed", exp_alerts: [] },
                    { eval_time: "0m", alertname: "DevpiOffsiteFailed", exp_alerts: [] },
                    {
                        eval_time: "2m",
                        alertname: "DevpiOffsiteFailed",
                        exp_alerts: [{ exp_labels: { severity: "critical", instance: "p" }, exp_annotations: expectedAnnotations("DevpiOffsiteFailed", "p") }],
                    },
                    {
                        eval_time: "3m",
                        alertname: "DevpiBackupFailed",
                        exp_alerts: [{ exp_labels: { severity: "critical", instance: "p" }, exp_annotations: expectedAnnotations("DevpiBackupFailed", "p") }],
                    },
                    {
                        eval_time: "1m",
                        alertname: "DevpiBackupTooOld",
                        exp_alerts: [{ exp_labels: { severity: "critical", instance: "p" }, exp_annotations: expectedAnnotations("DevpiBackupTooOld", "p") }],
                    },
                ],
            },
            {
                interval: "1m",
                input_series: [
                    series('devpi_certificate_expiry_timestamp_seconds{instance="soon"}', `${34 * day}x3`),
                    series('devpi_certificate_expiry_timestamp_seconds{instance="later"}', `${36 * day}x3`),
                    series('devpi_dir_avail_bytes{instance="p",dir="backup"}', "5x10"),
                    series('devpi_dir_size_bytes{instance="p",dir="backup"}', "100x10"),
                    series('devpi_dir_avail_bytes{instance="p",dir="server"}', "50x10"),
                    series('devpi_dir_size_bytes{instance="p",dir="server"}', "100x10"),
                ],
                alert_rule_test: [
                    {
                        eval_time: "1m",
                        alertname: "DevpiCertificateExpiring",
                        exp_alerts: [{ exp_labels: { severity: "warning", instance: "soon" }, exp_annotations: expectedAnnotations("DevpiCertificateExpiring", "soon") }],
                    },
                    { eval_time: "3m", alertname: "DevpiDiskFull", exp_alerts: [] },
                    {
                        eval_time: "8m",
                        alertname: "DevpiDiskFull",
                        exp_alerts: [{ exp_labels: { severity: "critical", instance: "p", dir: "backup" }, exp_annotations: expectedAnnotations("DevpiDiskFull", "p", { dir: "backup" }) }],
                    },
                ],
            },
            {
                interval: "1m",
                input_series: [series('devpi_event_lag{instance="busy"}', "200x40"), series('devpi_event_lag{instance="fine"}', "50x40")],
                alert_rule_test: [
                    { eval_time: "20m", alertname: "DevpiEventsBehind", exp_alerts: [] },
                    {
                        eval_time: "35m",
                        alertname: "DevpiEventsBehind",
                        exp_alerts: [{ exp_labels: { severity: "warning", instance: "busy" }, exp_annotations: expectedAnnotations("DevpiEventsBehind", "busy", { value: "200" }) }],
                    },
                ],
            },
            {
                interval: "1m",
                input_series: [
                    series('devpi_replica{instance="r1"}', "1x40"),
                    series('devpi_replica_seconds_since_in_sync{instance="r1"}', "0+60x40"),
                    series('devpi_replica_serial_lag{instance="r1"}', "0x40"),
                    series('devpi_replica{instance="r2"}', "1x40"),
                    series('devpi_replica_seconds_since_in_sync{instance="r2"}', "5x40"),
                    series('devpi_replica_serial_lag{instance="r2"}', "0x40"),
                    series('devpi_metrics_last_run_timestamp_seconds{instance="r1"}', "0+60x40"),
                    series('devpi_metrics_last_run_timestamp_seconds{instance="r2"}', "0x40"),
                ],
                alert_rule_test: [
                    { eval_time: "20m", alertname: "DevpiReplicaBehind", exp_alerts: [] },
                    {
                        eval_time: "35m",
                        alertname: "DevpiReplicaBehind",
                        exp_alerts: [{ exp_labels: { severity: "warning", instance: "r1" }, exp_annotations: expectedAnnotations("DevpiReplicaBehind", "r1") }],
                    },
                    {
                        eval_time: "10m",
                        alertname: "DevpiMetricsStale",
                        exp_alerts: [{ exp_labels: { severity: "warning", instance: "r2" }, exp_annotations: expectedAnnotations("DevpiMetricsStale", "r2") }],
                    },
                ],
            },
        ];
        fs.writeFileSync(`${dir}/tests.yml`, stringify({ rule_files: [`${dir}/rules.yml`], evaluation_interval: "1m", tests }));
        const r = spawnSync("promtool", ["test", "rules", `${dir}/tests.yml`], { encoding: "utf8" });
        assert.equal(r.status, 0, r.stdout + r.stderr);
        assert.match(r.stdout, /SUCCESS/);
        // Every rule is exercised above, firing at least once.
        const fired = new Set(tests.flatMap((t) => t.alert_rule_test.filter((a) => a.exp_alerts.length > 0).map((a) => a.alertname)));
        assert.deepEqual(
            [...fired].sort(),
            alertRules(defaults)
                .map((a) => a.alert)
                .sort(),
        );
    });

    /** The annotations a rule renders for `instance` (and extra labels), as promtool expects them. */
    function expectedAnnotations(alert: string, instance: string, labels: Record<string, string> = {}): Record<string, string> {
        const rule = alertRules(defaults).find((a) => a.alert === alert)!;
        const fill = (t: string) =>
            t
                .replace(/\{\{ \$labels\.instance \}\}/g, instance)
                .replace(/\{\{ \$labels\.(\w+) \}\}/g, (_m, k: string) => labels[k] ?? "")
                .replace(/\{\{ \$value \}\}/g, labels.value ?? "");
        return { summary: fill(rule.annotations.summary), action: fill(rule.annotations.action) };
    }
});

describe("the README's Operating it section", () => {
    it("names every metric devpi-metrics writes and every alert rule", () => {
        const readme = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
        const section = readme.split(/^## Operating it: metrics, alerts and the restore drill$/m)[1]?.split(/^## /m)[0] ?? "";
        for (const m of Object.keys(COLLECTOR_METRICS)) assert.ok(section.includes(`| \`${m}\` |`), `${m} in the metrics table`);
        for (const a of alertRules({ backupIntervalHours: 24, certRenewBeforeDays: 30 })) assert.ok(section.includes(`| \`${a.alert}\` (`), `${a.alert} in the alerts table`);
    });
});

describe("the metrics step's scripts", () => {
    it("pass shellcheck, with the step's prelude", () => {
        const collector = "print('x')\n";
        for (const [name, script] of [
            ["install", renderMetricsScript({ listen: "127.0.0.1:9100", serviceUser: "devpi", collector })],
            ["remove", renderMetricsRemoveScript()],
        ]) {
            const r = spawnSync("shellcheck", ["-s", "bash", "-"], { input: `#!/bin/bash\n${PRELUDE}\n${script}`, encoding: "utf8" });
            assert.equal(r.status, 0, `${name}: ${r.stdout}`);
        }
    });

    it("run node-exporter as prometheus on the given address and the collector as the service user", () => {
        const conf = renderMetricsPrograms({ listen: "127.3.4.1:9100", serviceUser: "devpi" });
        assert.match(
            conf,
            /\[program:devpi-node-exporter\]\ncommand = \/usr\/bin\/prometheus-node-exporter --web\.listen-address=127\.3\.4\.1:9100 --collector\.textfile\.directory=\/var\/lib\/devpi-metrics\nuser = prometheus\n/,
        );
        assert.match(conf, /\[program:devpi-metrics\]\ncommand = \/usr\/bin\/python3 \/usr\/local\/lib\/devpi-pulumi\/devpi-metrics\.py\nuser = devpi\n/);
    });
});
