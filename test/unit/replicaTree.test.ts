/**
 * The program with a primary and two replicas under Pulumi's mocks: one tree per server built
 * by the same code, the exact children of each replica, what each waits for (its own server,
 * and the primary's health check before its first sync, never the other replica), and where
 * the shared secret travels.
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { Registered, runProgramUnderMocks, TEST_HOST_KEY as HOST_KEY, TEST_SSH_KEY as KEY, value } from "./programUnderMocks";

let registered = new Map<string, Registered>();
let exports: Record<string, unknown>;
const text = (v: unknown) => value<unknown>(v).then(String);

before(async () => {
    const replica = (name: string, port: number) => ({ name, host: `203.0.113.${port}`, sshPrivateKey: KEY, domain: `${name}.example.com`, hostKey: HOST_KEY });
    ({ registered, exports } = await runProgramUnderMocks(
        {
            "devpi:host": "203.0.113.10",
            "devpi:sshUser": "deploy",
            "devpi:sshPrivateKey": KEY,
            "devpi:hostKey": HOST_KEY,
            "devpi:domain": "devpi.example.com",
            "devpi:rootPassword": "root-secret-1",
            "devpi:users": JSON.stringify({ bz: { password: "bz-secret-1" } }),
            "devpi:indexes": JSON.stringify({ "bz/dev": {} }),
            "devpi:replicas": JSON.stringify([replica("r1", 11), replica("r2", 12)]),
        },
        ["devpi:sshPrivateKey", "devpi:rootPassword", "devpi:users", "devpi:replicas"],
    ));
});

const named = (prefix: string) => [...registered.values()].filter((r) => r.name.startsWith(prefix));

describe("one tree per server", () => {
    it("gives each replica exactly the per-host components and steps, nothing of the primary's access or backups", () => {
        for (const r of ["r1", "r2"]) {
            const p = `replica-${r}-`;
            assert.deepEqual(
                named(p)
                    .filter((x) => x.type.startsWith("devpi:"))
                    .map((x) => `${x.type}/${x.name}`)
                    .sort(),
                [
                    "DevpiServer/devpi",
                    "HealthCheck/health",
                    "HostMetrics/metrics",
                    "HostPreparation/host",
                    "NginxSite/nginx",
                    "ReplicaResync/resync",
                    "SslCertificate/ssl",
                    "SupervisorProgram/supervisor",
                ]
                    .map((t) => {
                        const [type, n] = t.split("/");
                        return `devpi:index:${type}/${p}${n}`;
                    })
                    .sort(),
            );
            assert.deepEqual(
                named(p)
                    .filter((x) => x.type === "command:remote:Command")
                    .map((x) => x.name.slice(p.length))
                    .sort(),
                [
                    "devpi-config",
                    "devpi-init",
                    "devpi-primary-ca",
                    "devpi-upgrade",
                    "devpi-venv",
                    "health-https",
                    "host-packages",
                    "host-service-packages",
                    "host-service-user",
                    "metrics-exporter",
                    "metrics-packages",
                    "nginx-site",
                    "resync-identity",
                    "ssl-files",
                    "supervisor-program",
                ],
            );
            assert.deepEqual(
                named(p)
                    .filter((x) => x.type.startsWith("tls:"))
                    .map((x) => x.name.slice(p.length))
                    .sort(),
                ["ssl-csr", "ssl-server", "ssl-server-key"],
                "no CA of its own",
            );
        }
        const types = (t: string) =>
            [...registered.values()]
                .filter((r) => r.type === t)
                .map((r) => r.name)
                .sort();
        assert.deepEqual(types("devpi:index:DevpiUser"), ["user-bz"]);
        assert.deepEqual(types("devpi:index:DevpiIndex"), ["index-bz/dev", "index-root/pypi"]);
        assert.deepEqual(types("devpi:index:DevpiRootPassword"), ["root-password"]);
        assert.deepEqual(types("devpi:index:BackupSchedule"), ["backups"]);
        assert.deepEqual(types("tls:index/selfSignedCert:SelfSignedCert"), ["ssl-ca"], "one private CA for all servers");
    });

    it("keeps the primary's names and adds only the secret export (and, like every server, the metrics step) to it", () => {
        const primarySteps = [...registered.values()]
            .filter((r) => r.type === "command:remote:Command" && !r.name.startsWith("replica-"))
            .map((r) => r.name)
            .sort();
        assert.deepEqual(primarySteps, [
            "backups-cron",
            "devpi-config",
            "devpi-init",
            "devpi-secret-export",
            "devpi-upgrade",
            "devpi-venv",
            "health-https",
            "host-packages",
            "host-service-packages",
            "host-service-user",
            "index-bz/dev-index",
            "index-root/pypi-index",
            "metrics-exporter",
            "metrics-packages",
            "nginx-site",
            "root-password-set",
            "ssl-files",
            "supervisor-program",
            "user-bz-user",
        ]);
        assert.equal(registered.get("replica-r1-devpi-venv")?.parent, "replica-r1-devpi");
        assert.equal(registered.get("replica-r1-health-https")?.parent, "replica-r1-health");
    });

    it("a replica waits for its own server and, before its first sync, for the primary's health check only", () => {
        const deps = (n: string) => [...(registered.get(n)?.dependsOn ?? [])].sort();
        for (const r of ["r1", "r2"]) {
            const p = `replica-${r}-`;
            assert.deepEqual(deps(`${p}host`), []);
            assert.deepEqual(deps(`${p}ssl`), []);
            assert.deepEqual(deps(`${p}devpi`), [`${p}host-packages`, `${p}host-service-user`]);
            assert.deepEqual(deps(`${p}supervisor`), ["health", `${p}devpi`, `${p}host`].sort());
            assert.deepEqual(deps(`${p}nginx`), [`${p}ssl`, `${p}supervisor`]);
            // After the primary is healthy (so after its upgrade), the replica checks it still follows it.
            assert.deepEqual(deps(`${p}resync`), ["health", `${p}supervisor`].sort());
            assert.deepEqual(deps(`${p}health`), [`${p}nginx`, `${p}resync`].sort());
            assert.deepEqual(deps(`${p}devpi-upgrade`), [`${p}devpi-init`, `${p}devpi-primary-ca`]);
        }
        for (const r of registered.values()) {
            if (r.name.startsWith("replica-r1-")) assert.ok(!r.dependsOn.some((d) => d.startsWith("replica-r2-")), `${r.name} does not wait for r2`);
            if (!r.name.startsWith("replica-")) assert.ok(!r.dependsOn.some((d) => d.startsWith("replica-")), `${r.name} (primary) does not wait for a replica`);
        }
    });

    it("moves the primary's secret as a Pulumi secret on stdin, never in a command", async () => {
        assert.ok(registered.get("devpi-secret-export")?.secretOutputs.includes("stdout"), "the exported secret is a secret output");
        assert.equal(registered.get("devpi-secret-export")?.inputs.logging, "none");
        for (const r of ["r1", "r2"]) {
            const config = registered.get(`replica-${r}-devpi-config`)!;
            assert.ok(config.secretOutputs.includes("stdin"));
            assert.equal(await pulumi.isSecret(pulumi.output(config.inputs.stdin as string)), true);
            assert.equal(config.inputs.logging, "none");
        }
    });

    it("renders the replica's devpi, supervisor, nginx and health check for replication", async () => {
        assert.match(await text(registered.get("devpi-config")!.inputs.stdin), /role: primary/);
        const replicaConfig = await text(registered.get("replica-r1-devpi-config")!.inputs.stdin);
        assert.match(replicaConfig, /role: replica/);
        assert.match(replicaConfig, /primary-url: https:\/\/devpi\.example\.com/);
        assert.match(await text(registered.get("replica-r1-supervisor-program")!.inputs.stdin), /REPLICA_CA_BUNDLE|REQUESTS_CA_BUNDLE="\/etc\/devpi\/ca-bundle\.pem"/);
        assert.doesNotMatch(await text(registered.get("nginx-site")!.inputs.stdin), /changelog/, "the primary passes /+changelog to devpi");
        assert.match(await text(registered.get("replica-r1-nginx-site")!.inputs.stdin), /location \^~ \/\+changelog \{\n\s+return 403;/);
        const health = await text(registered.get("replica-r1-health-https")!.inputs.stdin);
        assert.match(health, /replication-errors: %s/, "the replica's check waits for the primary's serial");
        assert.match(health, /'https:\/\/devpi\.example\.com' 'r1\.example\.com' '443' '120'/);
        assert.match(health, /mine\["serial"\] >= want and mine.get\("primary-uuid"\) == primary.get\("uuid"\)/, "in sync means the same identity too");
        const resync = await text(registered.get("replica-r1-resync-identity")!.inputs.stdin);
        assert.match(resync, /^# revision primary devpi-server-[^,]+, replica devpi-server-/m, "re-runs when either version changes");
        assert.match(resync, /identity 'https:\/\/devpi\.example\.com' 'http:\/\/127\.0\.0\.1:4040' 600/);
        const csr = registered.get("replica-r2-ssl-csr")!.inputs as { dnsNames: unknown };
        assert.deepEqual(await value(csr.dnsNames), ["r2.example.com"], "each server's certificate names that server");
    });

    it("exports client settings per replica", async () => {
        const clients = exports.replicaClients as Record<string, { url: unknown; pipIndexUrl: unknown; pipConf: unknown }>;
        assert.deepEqual(Object.keys(clients), ["r1", "r2"]);
        assert.equal(await value(clients.r1.url), "https://r1.example.com");
        assert.equal(await value(clients.r2.pipIndexUrl), "https://r2.example.com/bz/dev/+simple/");
        assert.match(await value<string>(clients.r2.pipConf), /index-url = https:\/\/r2\.example\.com\/bz\/dev\/\+simple\//);
        assert.equal(await value(exports.url), "https://devpi.example.com", "uploads and admin go to the primary");
    });
});
