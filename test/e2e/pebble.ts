/**
 * A real ACME server on loopback for the acme e2e test: Debian's `pebble` (Let's Encrypt's test
 * CA) and `pebble-challtestsrv` as its DNS server, which answers every A query with 127.0.0.1,
 * so pebble's HTTP-01 validation reaches the test host's nginx on `httpPort`. Pebble's own HTTPS
 * uses a certificate from a throwaway CA made here (Debian's package ships no test certs);
 * its issuing roots come from its management API and change on every start.
 */
import { ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import * as path from "node:path";

export interface PebblePorts {
    /** ACME API (https://127.0.0.1:PORT/dir). */
    acme: number;
    /** Management API (/roots/0, /intermediates/0). */
    management: number;
    /** challtestsrv's DNS server and its management API. */
    dns: number;
    dnsManagement: number;
    /** Where pebble's VA connects for HTTP-01: the test host's httpPort. */
    http: number;
    /** TLS-ALPN-01 port (unused by certbot's webroot plugin, but pebble needs one). */
    tls: number;
}

function pemGet(url: string, ca: Buffer): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
        https
            .get(url, { ca, timeout: 5000 }, (res) => {
                let body = "";
                res.on("data", (c: Buffer) => (body += c.toString()));
                res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
            })
            .on("error", reject);
    });
}

export class Pebble {
    readonly dir: string;
    /** The CA of pebble's own HTTPS certificate: what certbot must trust to talk to it. */
    readonly tlsCaFile: string;
    readonly logFile: string;
    readonly directoryUrl: string;
    private pebble?: ChildProcess;
    private dns?: ChildProcess;

    constructor(
        dir: string,
        readonly ports: PebblePorts,
    ) {
        this.dir = dir;
        fs.mkdirSync(dir, { recursive: true });
        this.tlsCaFile = path.join(dir, "tls-ca.pem");
        this.logFile = path.join(dir, "pebble.log");
        this.directoryUrl = `https://127.0.0.1:${ports.acme}/dir`;
        const run = (args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
        run(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=pebble test TLS CA", "-keyout", "tls-ca.key", "-out", "tls-ca.pem"]);
        run(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "tls.key", "-out", "tls.csr"]);
        fs.writeFileSync(path.join(dir, "tls.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
        run(["x509", "-req", "-in", "tls.csr", "-CA", "tls-ca.pem", "-CAkey", "tls-ca.key", "-CAcreateserial", "-days", "2", "-extfile", "tls.ext", "-out", "tls.pem"]);
        fs.writeFileSync(
            path.join(dir, "pebble.json"),
            JSON.stringify({
                pebble: {
                    listenAddress: `127.0.0.1:${ports.acme}`,
                    managementListenAddress: `127.0.0.1:${ports.management}`,
                    certificate: path.join(dir, "tls.pem"),
                    privateKey: path.join(dir, "tls.key"),
                    httpPort: ports.http,
                    tlsPort: ports.tls,
                    ocspResponderURL: "",
                    externalAccountBindingRequired: false,
                },
            }),
        );
    }

    /** Starts challtestsrv and pebble and waits until pebble's directory answers. */
    async start(): Promise<void> {
        for (const bin of ["pebble", "pebble-challtestsrv"]) {
            if (spawnSync("sh", ["-c", `command -v ${bin}`]).status !== 0) {
                throw new Error(`${bin} is not installed: apt-get install pebble (Debian's package; .ci/run installs it)`);
            }
        }
        const dnsLog = fs.openSync(path.join(this.dir, "challtestsrv.log"), "a");
        this.dns = spawn(
            "pebble-challtestsrv",
            [
                "-defaultIPv4",
                "127.0.0.1",
                "-defaultIPv6",
                "",
                "-dns01",
                `127.0.0.1:${this.ports.dns}`,
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
                "-management",
                `127.0.0.1:${this.ports.dnsManagement}`,
            ],
            { stdio: ["ignore", dnsLog, dnsLog] },
        );
        const log = fs.openSync(this.logFile, "a");
        this.pebble = spawn("pebble", ["-config", path.join(this.dir, "pebble.json"), "-dnsserver", `127.0.0.1:${this.ports.dns}`], {
            stdio: ["ignore", log, log],
            // No random validation delays or refused nonces: the test is about the program, not certbot's retries.
            env: { ...process.env, PEBBLE_VA_NOSLEEP: "1", PEBBLE_WFE_NONCEREJECT: "0" },
        });
        const ca = fs.readFileSync(this.tlsCaFile);
        const deadline = Date.now() + 30_000;
        for (;;) {
            try {
                const r = await pemGet(this.directoryUrl, ca);
                if (r.status === 200 && r.body.includes("newOrder")) return;
            } catch {
                // not listening yet
            }
            if (this.pebble.exitCode !== null) throw new Error(`pebble exited: ${fs.readFileSync(this.logFile, "utf8")}`);
            if (Date.now() > deadline) throw new Error(`pebble did not answer at ${this.directoryUrl}: ${fs.readFileSync(this.logFile, "utf8")}`);
            await new Promise((r) => setTimeout(r, 200));
        }
    }

    /** Stops both processes (by their own pids). */
    async stop(): Promise<void> {
        for (const p of [this.pebble, this.dns]) {
            if (p && p.exitCode === null && p.signalCode === null) {
                const gone = new Promise((r) => p.once("exit", r));
                p.kill("SIGTERM");
                await gone;
            }
        }
        this.pebble = undefined;
        this.dns = undefined;
    }

    /** Pebble's root certificate (PEM), from its management API. */
    async root(): Promise<string> {
        const r = await pemGet(`https://127.0.0.1:${this.ports.management}/roots/0`, fs.readFileSync(this.tlsCaFile));
        if (r.status !== 200 || !r.body.includes("BEGIN CERTIFICATE")) throw new Error(`pebble /roots/0 answered ${r.status}`);
        return r.body;
    }

    /** Pebble's intermediate certificate (PEM), from its management API. */
    async intermediate(): Promise<string> {
        const r = await pemGet(`https://127.0.0.1:${this.ports.management}/intermediates/0`, fs.readFileSync(this.tlsCaFile));
        if (r.status !== 200 || !r.body.includes("BEGIN CERTIFICATE")) throw new Error(`pebble /intermediates/0 answered ${r.status}`);
        return r.body;
    }

    /** How many certificates pebble has issued since it started (from its log). */
    issued(): number {
        return (fs.readFileSync(this.logFile, "utf8").match(/Issued certificate serial/g) ?? []).length;
    }
}

/**
 * Stands in for "each name resolves to its own server, on port 80" when several test hosts
 * share this machine's loopback: pebble's HTTP-01 validation connects to `port` (its httpPort);
 * this forwards each request, unchanged, to the httpPort of the host whose name is in its Host
 * header, and answers 421 for any other name. Returns the server (close it when done).
 */
export async function routeByHostName(port: number, routes: Record<string, number>): Promise<http.Server> {
    const server = http.createServer((req, res) => {
        const name = (req.headers.host ?? "").replace(/:\d+$/, "").toLowerCase();
        const target = routes[name];
        if (target === undefined) {
            res.writeHead(421).end(`no test host is named ${name}\n`);
            return;
        }
        const fwd = http.request({ host: "127.0.0.1", port: target, method: req.method, path: req.url, headers: req.headers }, (r) => {
            res.writeHead(r.statusCode ?? 502, r.headers);
            r.pipe(res);
        });
        fwd.on("error", (e) => res.writeHead(502).end(`${e.message}\n`));
        req.pipe(fwd);
    });
    await new Promise<void>((resolve, reject) => server.once("error", reject).listen(port, "127.0.0.1", resolve));
    return server;
}
