/**
 * The real nginx for unit tests of rendered sites: a throwaway prefix directory with its own
 * nginx.conf that includes the site, checked with `nginx -t`, started, and waited for on `port`.
 */
import assert from "node:assert/strict";
import { ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";

/** Starts nginx in `dir` serving `site` (njs loaded with `js`); resolves once `port` listens. `stop()` ends it. */
export async function startNginx(dir: string, site: string, port: number, opts: { js?: boolean; settleMs?: number } = {}): Promise<{ process: ChildProcess; stop: () => Promise<void> }> {
    fs.writeFileSync(`${dir}/site.conf`, site);
    const js = opts.js ? "load_module /usr/lib/nginx/modules/ngx_http_js_module.so;\n" : "";
    fs.writeFileSync(`${dir}/nginx.conf`, `${js}daemon off;\npid ${dir}/nginx.pid;\nerror_log ${dir}/error.log;\nevents {}\nhttp {\n  access_log off;\n  include ${dir}/site.conf;\n}\n`);
    const t = spawnSync("nginx", ["-t", "-p", dir, "-c", `${dir}/nginx.conf`], { encoding: "utf8" });
    assert.equal(t.status, 0, t.stderr);
    const p = spawn("nginx", ["-p", dir, "-c", `${dir}/nginx.conf`], { stdio: "ignore" });
    if (opts.settleMs) await new Promise((r) => setTimeout(r, opts.settleMs));
    for (let i = 0; i < 50; i++) {
        if (spawnSync("ss", ["-ltn", `sport = :${port}`], { encoding: "utf8" }).stdout.includes(`:${port}`)) break;
        await new Promise((r) => setTimeout(r, 100));
    }
    return {
        process: p,
        stop: async () => {
            p.kill();
            await new Promise((r) => p.once("exit", r));
        },
    };
}

/** A throwaway self-signed P-256 certificate for `cn` (valid 2 days) as DIR/cert.pem and DIR/key.pem; `san` adds subjectAltName. */
export function makeTestCert(dir: string, cn = "localhost", san?: string): void {
    const ext = san ? ["-addext", `subjectAltName=${san}`] : [];
    execFileSync(
        "openssl",
        ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", `${dir}/key.pem`, "-out", `${dir}/cert.pem`, "-days", "2", "-subj", `/CN=${cn}`, ...ext],
        { stdio: "pipe" },
    );
}
