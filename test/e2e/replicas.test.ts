/**
 * End to end, replication: one `pulumi up` provisions a primary and two replicas on three local
 * Debian hosts, the replicas in parallel; uploads to the primary reach the replicas within
 * seconds; replicas keep serving while the primary's devpi is down and catch up afterwards; a
 * second run changes nothing; removing a replica touches only that server; no secret leaks.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as https from "node:https";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe } from "node:test";
import { EngineEvent, Stack } from "@pulumi/pulumi/automation";
import { PAGE_GENERATION_SETTLE_MS } from "../../components/nginx/nginxConfig";
import {
    buildPackage,
    cleanUp,
    client,
    clientVenv,
    createStack,
    EventLog,
    fetchWithCa,
    filesContaining,
    hostConfig,
    onHost,
    ProcessSampler,
    projectCopy,
    setReplicaConfig,
    startHost,
    steps,
    stopHost,
    TestHost,
} from "./harness";
import { checkMetrics, checkMetricsScrape } from "./metricsChecks";

const PRIMARY = { name: "rep-p", ports: { ssh: 25101, http: 25180, https: 25543, devpi: 25140 } };
const REPLICAS = [
    { name: "rep-r1", label: "r1", ports: { ssh: 25102, http: 25181, https: 25544, devpi: 25141 } },
    { name: "rep-r2", label: "r2", ports: { ssh: 25103, http: 25182, https: 25545, devpi: 25142 } },
];
const ROOT_PASSWORD = "root-Pw-rep-5521";
const ALICE_PASSWORD = "alice-Pw-rep-8830";
const BOB_PASSWORD = "bob-Pw-rep-1177";
const PRIMARY_URL = `https://localhost:${PRIMARY.ports.https}`;
const SCRAPE_ADDRESS = "127.0.0.1:25198";
const replicaUrl = (i: number) => `https://localhost:${REPLICAS[i].ports.https}`;
const PKG = "e2e-rep";

let primary: TestHost;
const replicaHosts: TestHost[] = [];
let stack: Stack;
let venv: string;
const log = new EventLog();
const sampler = new ProcessSampler(clientVenv(), () => [primary, ...replicaHosts].filter(Boolean).map((h) => h.root));
const work = fs.mkdtempSync(path.join(os.tmpdir(), "devpi-e2e-rep-"));
const backend = path.join(work, "state");
const caFile = path.join(work, "ca.pem");
const dist = path.join(work, "dist");
const clientEnv = () => ({ REQUESTS_CA_BUNDLE: caFile, DEVPI_CLIENTDIR: path.join(work, "devpi-client"), PIP_CERT: caFile, PIP_DISABLE_PIP_VERSION_CHECK: "1" });

async function up() {
    log.clear();
    return stack.up({ onEvent: log.onEvent, onOutput: log.onOutput, color: "never" });
}
const get = (url: string, opts: https.RequestOptions = {}) => fetchWithCa(url, caFile, opts);

/** [start, finish] event indices of the resource named `name`. */
function span(events: EngineEvent[], name: string): [number, number] {
    const start = events.findIndex((e) => e.resourcePreEvent?.metadata.urn.endsWith(`::${name}`));
    const end = events.findIndex((e) => e.resOutputsEvent?.metadata.urn.endsWith(`::${name}`));
    return [start, end];
}

/** pip-installs `pkg==version` from `indexUrl` into a fresh directory; resolves with pip's exit code and output. */
async function pipInstall(indexUrl: string, version: string) {
    const target = fs.mkdtempSync(path.join(work, "site-"));
    return client(venv, "pip", ["install", "--no-cache-dir", "--no-deps", "--target", target, "--index-url", indexUrl, `${PKG}==${version}`], clientEnv());
}

/** Seconds from now until `version` installs with pip from `indexUrl` (polling its simple page first); throws after `limit` s. */
async function secondsUntilInstallable(indexUrl: string, version: string, since: number, limit: number): Promise<number> {
    const page = `${indexUrl}${PKG}/`;
    for (;;) {
        const r = await get(page, { headers: { Accept: "text/html" } });
        if (r.status === 200 && r.body.includes(`${PKG.replace(/-/g, "_")}-${version}`)) break;
        if ((Date.now() - since) / 1000 > limit) throw new Error(`${version} not on ${page} after ${limit}s (HTTP ${r.status})`);
        await new Promise((res) => setTimeout(res, 200));
    }
    const pip = await pipInstall(indexUrl, version);
    assert.equal(pip.code, 0, pip.out);
    return (Date.now() - since) / 1000;
}

/** devpi-server processes running inside `host` (test hosts share this machine's process table, so pgrep inside one sees all). */
function devpiServerPids(host: TestHost): string[] {
    return fs.readdirSync("/proc").filter((pid) => {
        try {
            return /^\d+$/.test(pid) && fs.readlinkSync(`/proc/${pid}/root`) === host.root && fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("devpi-server");
        } catch {
            return false;
        }
    });
}

async function replicaIndexUrls(): Promise<string[]> {
    const outputs = await stack.outputs();
    const clients = outputs.replicaClients.value as Record<string, { pipIndexUrl: string }>;
    return REPLICAS.filter((r) => clients[r.label]).map((r) => clients[r.label].pipIndexUrl);
}

describe("a primary and two replicas", { timeout: 60 * 60 * 1000 }, () => {
    const it = steps();
    before(async () => {
        venv = clientVenv();
        primary = startHost(PRIMARY.name, PRIMARY.ports.ssh);
        for (const r of REPLICAS) replicaHosts.push(startHost(r.name, r.ports.ssh));
        fs.mkdirSync(backend);
        stack = await createStack("replicas", projectCopy(), backend);
        await stack.setAllConfig({
            ...hostConfig(primary, PRIMARY.ports, "secret"),
            "devpi:rootPassword": { value: ROOT_PASSWORD, secret: true },
            "devpi:clientIncludePassword": { value: "true" },
        });
        await stack.setConfig("users.alice.password", { value: ALICE_PASSWORD, secret: true }, true);
        await stack.setConfig("users.alice.email", { value: "alice@example.com" }, true);
        await stack.setConfig('indexes["alice/dev"].volatile', { value: "false" }, true);
        // The primary's metrics for a Prometheus elsewhere: from 127.0.0.1 only (checkMetricsScrape).
        await stack.setAllConfig({ "metricsScrape.address": { value: SCRAPE_ADDRESS }, "metricsScrape.allow[0]": { value: "127.0.0.1/32" } }, true);
        for (const [i, r] of REPLICAS.entries()) await setReplicaConfig(stack, i, replicaHosts[i], { name: r.label, domain: "localhost", ports: r.ports });
        sampler.start();
    });
    after(async () => {
        sampler.stop();
        for (const h of replicaHosts) if (process.env.DEVPI_E2E_KEEP !== "1") stopHost(h.name);
        await cleanUp(stack, PRIMARY.name, work);
    });

    it("one pulumi up provisions the primary and both replicas, the replicas concurrently", async () => {
        const result = await up();
        assert.equal(result.summary.result, "succeeded");
        const outputs = await stack.outputs();
        fs.writeFileSync(caFile, String(outputs.caCertificate.value));
        // Concurrent: each replica's long steps start before the other replica's same step finished.
        for (const step of ["host-packages", "devpi-venv", "supervisor-program", "health-https"]) {
            const [s1, e1] = span(log.events, `replica-r1-${step}`);
            const [s2, e2] = span(log.events, `replica-r2-${step}`);
            assert.ok(s1 >= 0 && e1 > s1 && s2 >= 0 && e2 > s2, `both replicas ran ${step}`);
            if (step === "host-packages" || step === "devpi-venv") {
                assert.ok(s1 < e2 && s2 < e1, `replica-r1-${step} [${s1}, ${e1}] and replica-r2-${step} [${s2}, ${e2}] overlap`);
            }
        }
        // The replicas' host steps do not wait for the primary; their first sync waits for its health check.
        const primaryHealthy = span(log.events, "health-https")[1];
        for (const r of REPLICAS) {
            assert.ok(span(log.events, `replica-${r.label}-host-packages`)[0] < primaryHealthy, `${r.label} prepares its host while the primary is still being set up`);
            assert.ok(span(log.events, `replica-${r.label}-supervisor-program`)[0] > primaryHealthy, `${r.label} starts devpi after the primary is healthy`);
        }
        const clients = outputs.replicaClients.value as Record<string, { url: string; healthCheck: string; pipIndexUrl: string; pipConf: string; uvToml: string }>;
        assert.deepEqual(Object.keys(clients).sort(), ["r1", "r2"]);
        for (const [i, r] of REPLICAS.entries()) {
            assert.equal(clients[r.label].url, replicaUrl(i));
            assert.equal(clients[r.label].pipIndexUrl, `${replicaUrl(i)}/alice/dev/+simple/`);
            assert.match(clients[r.label].pipConf, new RegExp(`index-url = ${replicaUrl(i)}/alice/dev/\\+simple/`));
            assert.match(clients[r.label].uvToml, new RegExp(`url = "${replicaUrl(i)}/alice/dev/\\+simple/"`));
            assert.match(clients[r.label].healthCheck, /in sync: replica serial \d+, primary serial \d+/);
            const status = JSON.parse((await get(`${replicaUrl(i)}/+status`)).body) as { result: Record<string, unknown> };
            assert.equal(status.result.role, "REPLICA");
            assert.equal(status.result["primary-url"], PRIMARY_URL);
            assert.equal((await get(`${replicaUrl(i)}/alice/dev`)).status, 200, "the user index reached the replica");
        }
        const primaryStatus = JSON.parse((await get(`${PRIMARY_URL}/+status`)).body) as { result: { polling_replicas: Record<string, unknown> } };
        assert.equal(Object.keys(primaryStatus.result.polling_replicas).length, 2, "both replicas poll the primary");
    });

    it("an upload to the primary (devpi-client and twine) installs with pip from each replica within 10 s", async () => {
        const env = clientEnv();
        assert.equal((await client(venv, "devpi", ["use", `${PRIMARY_URL}/alice/dev`], env)).code, 0);
        const login = await client(venv, "devpi", ["login", "alice", "--password", ALICE_PASSWORD], env);
        assert.equal(login.code, 0, login.out);
        const indexUrls = await replicaIndexUrls();
        const v1 = buildPackage(venv, PKG, "0.1.0", dist);
        const upload = await client(venv, "devpi", ["upload", v1], env);
        assert.equal(upload.code, 0, upload.out);
        let since = Date.now();
        const devpiTimes = await Promise.all(indexUrls.map((u) => secondsUntilInstallable(u, "0.1.0", since, 10)));
        const outputs = await stack.outputs();
        const pypirc = path.join(work, "pypirc");
        fs.writeFileSync(pypirc, String(outputs.pypircWithPassword.value));
        const v2 = buildPackage(venv, PKG, "0.2.0", dist);
        const twine = await client(venv, "twine", ["upload", "--config-file", pypirc, "-r", "devpi", "--cert", caFile, v2], env);
        assert.equal(twine.code, 0, twine.out);
        since = Date.now();
        const twineTimes = await Promise.all(indexUrls.map((u) => secondsUntilInstallable(u, "0.2.0", since, 10)));
        console.log(
            `# upload -> pip install from replicas r1, r2: devpi upload ${devpiTimes.map((t) => t.toFixed(1)).join(" s, ")} s; twine upload ${twineTimes.map((t) => t.toFixed(1)).join(" s, ")} s (limit 10 s)`,
        );
        for (const t of [...devpiTimes, ...twineTimes]) assert.ok(t <= 10, `${t} s`);
    });

    it("a user and an index created by a later pulumi up appear on the replicas", async () => {
        await sampler.unsampled(() => stack.setConfig("users.bob.password", { value: BOB_PASSWORD, secret: true }, true));
        await stack.setConfig('indexes["bob/dev"].volatile', { value: "true" }, true);
        await up();
        assert.deepEqual(log.changed(), ["create:index-bob/dev-index", "create:user-bob-user", "update:health-https", "update:replica-r1-health-https", "update:replica-r2-health-https"]);
        for (const i of REPLICAS.keys()) {
            assert.equal((await get(`${replicaUrl(i)}/bob`)).status, 200);
            assert.equal((await get(`${replicaUrl(i)}/bob/dev`)).status, 200);
        }
    });

    it("with the primary's devpi stopped the replicas still install synced packages; uploads before and after the outage arrive", async () => {
        const env = clientEnv();
        const indexUrls = await replicaIndexUrls();
        // Uploaded just before the outage: it may or may not have reached the replicas when the primary stops.
        const before_ = await client(venv, "devpi", ["upload", buildPackage(venv, PKG, "0.3.0", dist)], env);
        assert.equal(before_.code, 0, before_.out);
        onHost(primary, "supervisorctl stop devpi");
        try {
            assert.notEqual((await get(`${PRIMARY_URL}/+api`)).status, 200, "the primary's devpi is down");
            for (const u of indexUrls) {
                const pip = await pipInstall(u, "0.2.0");
                assert.equal(pip.code, 0, `install from ${u} during the outage: ${pip.out}`);
            }
        } finally {
            onHost(primary, "supervisorctl start devpi");
        }
        for (let i = 0; i < 60 && (await get(`${PRIMARY_URL}/+api`)).status !== 200; i++) await new Promise((r) => setTimeout(r, 1000));
        const after_ = await client(venv, "devpi", ["upload", buildPackage(venv, PKG, "0.4.0", dist)], env);
        assert.equal(after_.code, 0, after_.out);
        // After a failed poll a replica waits 50 s before it asks again (devpi-server's ERROR_SLEEP).
        const since = Date.now();
        const times: string[] = [];
        for (const u of indexUrls) {
            times.push((await secondsUntilInstallable(u, "0.3.0", since, 180)).toFixed(1));
            times.push((await secondsUntilInstallable(u, "0.4.0", since, 180)).toFixed(1));
        }
        console.log(`# after the outage: 0.3.0 (uploaded before) and 0.4.0 (after) installable from r1 after ${times[0]} s / ${times[1]} s, from r2 after ${times[2]} s / ${times[3]} s`);
    });

    it("metrics: a real Prometheus scrapes every server; a replica's devpi stopped shows within a scrape; a full backup disk fails the backup and says so; another Prometheus scrapes the primary over HTTPS through its allow-list", async () => {
        const figures = await checkMetrics(stack, work, primary, { label: REPLICAS[1].label, host: replicaHosts[1] }, 25199);
        figures.push(await checkMetricsScrape(work, SCRAPE_ADDRESS, caFile, "localhost", 25197));
        for (const f of figures) console.log(`# metrics: ${f}`);
    });

    it("/+changelog is not readable anonymously on the primary and blocked on replicas", async () => {
        for (const headers of [{ Accept: "application/json" }, { Accept: "application/json", "X-DEVPI-EXPECTED-PRIMARY-ID": "" }]) {
            const r = await get(`${PRIMARY_URL}/+changelog/0`, { headers });
            assert.ok(r.status === 400 || r.status === 403, `anonymous /+changelog answered ${r.status}`);
            assert.doesNotMatch(r.body, /pwhash|pwsalt/);
        }
        for (const i of REPLICAS.keys()) assert.equal((await get(`${replicaUrl(i)}/+changelog/0`)).status, 403);
        assert.doesNotMatch(onHost(primary, "cat /etc/nginx/sites-available/devpi"), /changelog/, "the primary's nginx passes the feed to devpi");
        assert.match(onHost(primary, "cat /etc/devpi/devpi-server.yml"), /role: primary/);
        assert.match(onHost(replicaHosts[0], "cat /etc/devpi/devpi-server.yml"), new RegExp(`primary-url: ${PRIMARY_URL}`));
    });

    it("a second pulumi up changes nothing on any host; preview --expect-no-changes passes", async () => {
        const result = await up();
        assert.deepEqual(Object.keys(result.summary.resourceChanges ?? {}), ["same"]);
        assert.deepEqual(log.changed(), []);
        const preview = await stack.preview({ expectNoChanges: true, color: "never" });
        assert.deepEqual(Object.keys(preview.changeSummary), ["same"]);
    });

    it("benchmark: simple page requests/s through nginx, one server vs primary + 2 replicas", async () => {
        const ca = fs.readFileSync(caFile);
        const agents = [PRIMARY_URL, replicaUrl(0), replicaUrl(1)].map(() => new https.Agent({ keepAlive: true, maxSockets: 8, ca }));
        const bases = [PRIMARY_URL, replicaUrl(0), replicaUrl(1)];
        const run = async (servers: number, seconds: number): Promise<number> => {
            let done = 0;
            const end = Date.now() + seconds * 1000;
            const worker = async (w: number) => {
                for (let i = w; Date.now() < end; i++) {
                    const s = i % servers;
                    const r = await get(`${bases[s]}/alice/dev/+simple/${PKG}/`, { agent: agents[s], headers: { Accept: "text/html" } });
                    assert.equal(r.status, 200);
                    done++;
                }
            };
            await Promise.all(Array.from({ length: 8 }, (_, w) => worker(w)));
            return done / seconds;
        };
        await run(3, 1); // warm-up
        const one = await run(1, 5);
        const three = await run(3, 5);
        agents.forEach((a) => a.destroy());
        console.log(
            `# benchmark: ${PKG} simple page through nginx, 8 concurrent keep-alive clients on this 2-core machine: 1 server ${one.toFixed(0)} req/s, primary + 2 replicas (round robin) ${three.toFixed(0)} req/s`,
        );
        assert.ok(one > 0 && three > 0);
    });

    it("removing a replica from the config tears down only that server", async () => {
        await stack.removeConfig("replicas[1]", true);
        await up();
        const changed = log.changed();
        assert.ok(changed.length > 5, changed.join(", "));
        for (const c of changed) assert.match(c, /^delete:replica-r2-/, `only r2's resources change: ${changed.join(", ")}`);
        const r2 = replicaHosts[1];
        const listing = onHost(
            r2,
            "for f in /etc/supervisor/conf.d/devpi.conf /etc/nginx/sites-enabled/devpi /etc/devpi/devpi-server.yml /opt/devpi/venv /srv/devpi/data/.nodeinfo /etc/devpi/secret; do if [ -e $f ]; then echo present $f; else echo absent $f; fi; done",
        );
        for (const gone of ["/etc/supervisor/conf.d/devpi.conf", "/etc/nginx/sites-enabled/devpi", "/etc/devpi/devpi-server.yml", "/opt/devpi/venv"])
            assert.match(listing, new RegExp(`absent ${gone}$`, "m"));
        assert.match(listing, /present \/srv\/devpi\/data\/.nodeinfo/, "the replica's data stays");
        // Test hosts share this machine's process table: look for devpi-server processes rooted in r2's filesystem.
        assert.deepEqual(devpiServerPids(r2), [], "devpi-server no longer runs on r2");
        const r1Devpi = devpiServerPids(replicaHosts[0]);
        assert.ok(r1Devpi.length > 0, "devpi-server still runs on r1 (the check can see it)");
        const outputs = await stack.outputs();
        assert.deepEqual(Object.keys(outputs.replicaClients.value as object), ["r1"]);
        assert.equal((await get(`${replicaUrl(0)}/alice/dev`)).status, 200, "r1 still serves");
        assert.equal((await get(`${PRIMARY_URL}/alice/dev`)).status, 200, "the primary still serves");
    });

    it("no password, private key or devpi secret in state, CLI output or any process's argv on any host", () => {
        sampler.stop();
        const cli = log.text();
        const argv = [...sampler.seen].join("\n").replace(/\s/g, "");
        const body = (pem: string) =>
            pem
                .split("\n")
                .filter((l) => l && !l.startsWith("-----"))
                .join("");
        const secrets: [string, string][] = [
            ["root password", ROOT_PASSWORD],
            ["alice's password", ALICE_PASSWORD],
            ["bob's password", BOB_PASSWORD],
            ["devpi's shared secret", onHost(primary, "cat /etc/devpi/secret").trim()],
            ["devpi's shared secret (base64)", onHost(primary, "base64 -w0 /etc/devpi/secret").trim()],
        ];
        for (const [i, h] of [primary, ...replicaHosts].entries()) {
            // Past the header every OpenSSH ed25519 key shares ("openssh-key-v1", "none", ...): another suite's key would match it; this part is the private key's own.
            secrets.push([`ssh key ${i}`, body(fs.readFileSync(h.sshKey, "utf8")).slice(240, 300)]);
            if (i < 2) secrets.push([`tls key ${i}`, body(onHost(h, "cat /srv/ssl/devpi/server.key")).slice(0, 40)]);
        }
        assert.equal(onHost(replicaHosts[0], "cat /etc/devpi/secret").trim(), secrets[3][1], "the replica has the primary's secret");
        for (const h of [primary, ...replicaHosts]) {
            const seen = sampler.byRoot.get(h.root) ?? new Set<string>();
            assert.ok(
                [...seen].some((c) => c.includes("devpi-server")),
                `the sampler saw devpi-server on ${h.name}`,
            );
            assert.ok(
                [...seen].some((c) => c.includes("python3 -c")),
                `the sampler saw steps run on ${h.name}`,
            );
        }
        for (const [what, secret] of secrets) {
            assert.ok(secret.length >= 8, `${what} was read`);
            assert.deepEqual(filesContaining(backend, secret), [], `${what} not in state`);
            assert.ok(!cli.includes(secret), `${what} not in CLI output`);
            assert.ok(!argv.includes(secret.replace(/\s/g, "")), `${what} not in argv`);
        }
    });

    it("last: an upload to a replica (r1) is forwarded to the primary", async () => {
        const env = clientEnv();
        assert.equal((await client(venv, "devpi", ["use", `${replicaUrl(0)}/alice/dev`], env)).code, 0);
        const login = await client(venv, "devpi", ["login", "alice", "--password", ALICE_PASSWORD], env);
        assert.equal(login.code, 0, login.out);
        // r1's nginx holds the page (cached under r1's own data), as a client polling it would leave it.
        const r1Page = `${replicaUrl(0)}/alice/dev/+simple/${PKG}/`;
        await new Promise((r) => setTimeout(r, PAGE_GENERATION_SETTLE_MS + 500));
        await get(r1Page, { headers: { Accept: "text/html" } });
        const r1Before = await get(r1Page, { headers: { Accept: "text/html" } });
        assert.equal(r1Before.headers["x-cache-status"], "HIT", "a replica's nginx caches user index pages");
        assert.doesNotMatch(r1Before.body, /e2e_rep-0\.2\.1/);
        const upload = await client(venv, "devpi", ["upload", buildPackage(venv, PKG, "0.2.1", dist)], env);
        assert.equal(upload.code, 0, upload.out);
        const page = await get(`${PRIMARY_URL}/alice/dev/+simple/${PKG}/`, { headers: { Accept: "text/html" } });
        assert.match(page.body, /e2e_rep-0\.2\.1/);
        // devpi answers a write forwarded by a replica once the replica has it: r1 lists it at once.
        const onR1 = await get(r1Page, { headers: { Accept: "text/html" } });
        assert.match(onR1.body, /e2e_rep-0\.2\.1/, "the upload is on the replica's page the moment it succeeded");
        const pip = await pipInstall(`${replicaUrl(0)}/alice/dev/+simple/`, "0.2.1");
        assert.equal(pip.code, 0, pip.out);
        assert.equal((await client(venv, "devpi", ["use", `${PRIMARY_URL}/alice/dev`], env)).code, 0);
    });
});
