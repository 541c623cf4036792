/**
 * A real Prometheus (Debian's package) on this machine, scraping test hosts' node-exporters on
 * loopback every 2 s, and its HTTP query API.
 */
import { ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";

export interface Prometheus {
    /** One instant vector: `labels.instance` -> value. */
    query(expr: string): Promise<Map<string, number>>;
    /** Polls `expr` until `ok` holds for its result (or throws after `seconds`, saying what it last saw). */
    waitFor(expr: string, ok: (r: Map<string, number>) => boolean, seconds: number): Promise<Map<string, number>>;
    stop(): Promise<void>;
}

/**
 * Starts Prometheus on 127.0.0.1:`port` with `targets` (HOST:PORT) as job `devpi`, rules from
 * `rulesFile` if given; with `https`, scraped over HTTPS trusting `caFile` for `serverName`.
 */
export async function startPrometheus(dir: string, port: number, targets: string[], rulesFile?: string, https?: { caFile: string; serverName: string }): Promise<Prometheus> {
    fs.mkdirSync(dir, { recursive: true });
    const config = path.join(dir, "prometheus.yml");
    fs.writeFileSync(
        config,
        JSON.stringify({
            global: { scrape_interval: "2s", evaluation_interval: "2s" },
            ...(rulesFile ? { rule_files: [rulesFile] } : {}),
            scrape_configs: [{ job_name: "devpi", static_configs: [{ targets }], ...(https ? { scheme: "https", tls_config: { ca_file: https.caFile, server_name: https.serverName } } : {}) }],
        }),
    );
    const log = fs.openSync(path.join(dir, "prometheus.log"), "w");
    const p: ChildProcess = spawn("prometheus", [`--config.file=${config}`, `--storage.tsdb.path=${path.join(dir, "data")}`, `--web.listen-address=127.0.0.1:${port}`], {
        stdio: ["ignore", log, log],
    });
    const base = `http://127.0.0.1:${port}`;
    const query = async (expr: string): Promise<Map<string, number>> => {
        const r = await fetch(`${base}/api/v1/query?query=${encodeURIComponent(expr)}`);
        const body = (await r.json()) as { status: string; data: { result: { metric: Record<string, string>; value: [number, string] }[] } };
        if (body.status !== "success") throw new Error(`${expr}: ${JSON.stringify(body)}`);
        return new Map(body.data.result.map((x) => [x.metric.instance ?? "", Number(x.value[1])]));
    };
    const waitFor = async (expr: string, ok: (r: Map<string, number>) => boolean, seconds: number) => {
        const until = Date.now() + seconds * 1000;
        let last = new Map<string, number>();
        for (;;) {
            try {
                last = await query(expr);
                if (ok(last)) return last;
            } catch {
                // not up yet
            }
            if (Date.now() > until) throw new Error(`${expr} after ${seconds} s: ${JSON.stringify([...last])}`);
            await new Promise((r) => setTimeout(r, 1000));
        }
    };
    await waitFor("up", (r) => r.size === targets.length, 60);
    return {
        query,
        waitFor,
        stop: async () => {
            p.kill();
            await new Promise((r) => p.once("exit", r));
        },
    };
}
