/**
 * The Devpi component under Pulumi's mocks, as another program uses it: in a preview, its server
 * comes from a VM resource whose address and host key are not known yet. Checked: the exact
 * tree (children, their parents, the aliases that keep old stacks' URNs), dependencies, the
 * steps' inputs once the VM's outputs resolve, the TLS variants, and the argument checks.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { Devpi } from "../../components/deployment/devpi";
import { DevpiArgs, TlsArgs } from "../../components/deployment/devpiArgs";
import { resolveDevpiArgs } from "../../components/deployment/resolveArgs";
import { validateTarget } from "../../components/deployment/serverSite";
import { ConfigError } from "../../config/errors";
import { ProgramUnderMocks, runUnderMocks, TEST_CERT, TEST_HOST_KEY, TEST_SSH_KEY, UNKNOWN, value } from "./programUnderMocks";

/** A VM made by the same program; its address and host key are known only after it exists. */
class Vm extends pulumi.CustomResource {
    declare public readonly address: pulumi.Output<string>;
    declare public readonly hostKey: pulumi.Output<string>;
    constructor(name: string) {
        super("test:index:Vm", name, { address: undefined, hostKey: undefined });
    }
}

function argsFor(vm: Vm, tls?: TlsArgs): DevpiArgs {
    return {
        server: { ssh: { host: vm.address, privateKey: TEST_SSH_KEY, hostKey: vm.hostKey }, domain: "devpi.example.com" },
        tls,
        access: { rootPassword: pulumi.secret("root-Pw-1234"), users: [{ name: "alice", password: pulumi.secret("alice-Pw-1") }], indexes: [{ name: "alice/dev" }] },
    };
}

async function deploy(preview: boolean, tls?: TlsArgs, name = "devpi"): Promise<ProgramUnderMocks & { devpi: Devpi }> {
    let devpi: Devpi | undefined;
    const run = await runUnderMocks(
        () => {
            const vm = new Vm("vm");
            devpi = new Devpi(name, argsFor(vm, tls));
            return Promise.resolve({ url: devpi.url });
        },
        { preview, outputsOf: (type) => (type === "test:index:Vm" ? (preview ? { address: UNKNOWN, hostKey: UNKNOWN } : { address: "203.0.113.7", hostKey: TEST_HOST_KEY }) : undefined) },
    );
    return { ...run, devpi: devpi! };
}

describe("the Devpi component in another program", () => {
    it("builds the exact tree: Devpi > DevpiHost > the per-server components, every old root child aliased", async () => {
        const { registered } = await deploy(true);
        const components = [...registered.values()].filter((r) => r.type.startsWith("devpi:index:"));
        const tree = components.map((r) => `${r.parent ?? "-"} > ${r.type.replace("devpi:index:", "")} ${r.name}`).sort();
        // (The registry is keyed by name: the Devpi component "devpi" shares its name with the DevpiServer below.)
        assert.deepEqual(tree, [
            "devpi > BackupSchedule backups",
            "devpi > DevpiHost primary",
            "primary > DevpiIndex index-alice/dev",
            "primary > DevpiIndex index-root/pypi",
            "primary > DevpiRootPassword root-password",
            "primary > DevpiServer devpi",
            "primary > DevpiUser user-alice",
            "primary > HealthCheck health",
            "primary > HostMetrics metrics",
            "primary > HostPreparation host",
            "primary > NginxSite nginx",
            "primary > SslCertificate ssl",
            "primary > SupervisorProgram supervisor",
        ]);
        // HostMetrics came after the component: it never was a root child.
        for (const c of components.filter((r) => !["Devpi", "DevpiHost", "HostMetrics"].includes(r.type.replace("devpi:index:", "")))) {
            assert.equal(c.aliases, 1, `${c.name}: aliased to its place at the stack's root`);
        }
        const steps = [...registered.values()].filter((r) => r.type === "command:remote:Command");
        assert.ok(steps.length > 10 && steps.every((s) => s.parent && registered.get(s.parent)?.type.startsWith("devpi:index:")), "every step belongs to a component");
    });

    it("orders by dependencies: devpi after the host's python, the site after TLS and supervisor, health last", async () => {
        const { registered } = await deploy(true);
        assert.deepEqual(registered.get("devpi")!.dependsOn.sort(), ["host-packages", "host-service-user"]);
        assert.deepEqual(registered.get("nginx")!.dependsOn.sort(), ["ssl", "supervisor"]);
        assert.deepEqual(registered.get("health")!.dependsOn.sort(), ["index-alice/dev", "index-root/pypi", "nginx"]);
        assert.deepEqual(registered.get("root-password")!.dependsOn, ["supervisor"]);
        assert.deepEqual(registered.get("backups")!.dependsOn.sort(), ["devpi", "host"]);
        assert.deepEqual(registered.get("metrics-packages")!.dependsOn, ["host"], "node-exporter's package beside pip, after the host's apt runs");
        assert.deepEqual(registered.get("metrics-exporter")!.dependsOn.sort(), ["metrics-packages", "nginx", "supervisor"], "metrics once supervisord runs and nginx serves its counters");
    });

    it("in a preview, the VM's unknown address and host key leave the connection unknown, and the rest rendered", async () => {
        const { registered } = await deploy(true);
        const apt = registered.get("host-packages")!.inputs as { connection: unknown; create: unknown };
        const isKnown = (o: unknown) => (pulumi.output(o) as unknown as { isKnown: Promise<boolean> }).isKnown;
        assert.equal(await isKnown(apt.connection), false);
        assert.equal(await isKnown((registered.get("nginx-site")!.inputs as { create: unknown }).create), true, "nginx's site does not depend on the SSH target");
    });

    it("once the VM exists, its address and host key reach every step's connection, the key a secret", async () => {
        const { registered, secretInputs } = await deploy(false);
        const connection = await value<{ host: string; hostKey: string; port: number; user: string }>((registered.get("host-packages")!.inputs as { connection: unknown }).connection);
        assert.equal(connection.host, "203.0.113.7");
        assert.equal(connection.hostKey, TEST_HOST_KEY);
        assert.equal(connection.port, 22);
        assert.equal(connection.user, "root");
        assert.equal((await secretInputs.get("host-packages"))!.connection, true);
    });

    it("exports the URL and client settings from the domain", async () => {
        const { devpi } = await deploy(false);
        assert.equal(await value(devpi.url), "https://devpi.example.com");
        assert.equal(await value(devpi.pipIndexUrl), "https://devpi.example.com/alice/dev/+simple/");
        assert.equal(await pulumi.isSecret(devpi.pypircWithPassword), true);
    });

    it("TLS self-signed: a private CA and a certificate signed by it; provided: no CA made, the given chain; acme: certbot, no Pulumi certificate", async () => {
        const selfSigned = await deploy(false, { mode: "self-signed" });
        assert.ok(["ssl-ca", "ssl-ca-key", "ssl-server", "ssl-csr"].every((n) => selfSigned.registered.has(n)));
        const provided = await deploy(false, { mode: "provided", chainPem: pulumi.output(TEST_CERT), keyPem: pulumi.secret("KEY") });
        assert.ok(!provided.registered.has("ssl-ca") && provided.registered.has("ssl-files"));
        const acme = await deploy(false, { mode: "acme", email: "ops@example.com" });
        const types = [...acme.registered.values()].map((r) => `${r.type} ${r.name}`);
        assert.ok(types.includes("devpi:index:AcmeClient acme-client") && types.includes("devpi:index:AcmeCertificate acme"), types.join("\n"));
        assert.ok(!acme.registered.has("ssl"));
    });

    it("another name prefixes every child, so two deployments fit in one program", async () => {
        const { registered } = await deploy(true, undefined, "team-a");
        const names = [...registered.values()].filter((r) => r.type !== "test:index:Vm" && r.name !== "team-a").map((r) => r.name);
        assert.ok(names.length > 20 && names.every((n) => n.startsWith("team-a-")), names.filter((n) => !n.startsWith("team-a-")).join(", "));
    });
});

describe("the Devpi component's argument checks (the stack config's rules, naming the argument)", () => {
    const base = (): DevpiArgs => ({ server: { ssh: { host: "h", privateKey: TEST_SSH_KEY, hostKey: TEST_HOST_KEY }, domain: "devpi.example.com" }, access: { rootPassword: "root-Pw-1234" } });
    const refuses = (change: (a: DevpiArgs) => void, message: RegExp) => {
        const args = base();
        change(args);
        assert.throws(
            () => resolveDevpiArgs("devpi", args),
            (e: unknown) => e instanceof ConfigError && message.test(e.message),
        );
    };

    it("refuses a system directory, a short root password, a bad version, an unknown base, a bad replica name", () => {
        refuses((a) => (a.options = { serverDir: "/var/lib" }), /^Devpi devpi: options\.serverDir: invalid value "\/var\/lib": must not be a system directory/);
        refuses((a) => (a.options = { backupDir: "/srv/devpi/data/backups" }), /^Devpi devpi: options\.backupDir: .*must be outside serverDir/);
        refuses((a) => (a.access.rootPassword = "short"), /^Devpi devpi: access\.rootPassword: .*at least 8 characters/);
        refuses((a) => (a.options = { serverVersion: "latest" }), /^Devpi devpi: options\.serverVersion: invalid value "latest": must be an exact version/);
        refuses((a) => (a.access.indexes = [{ name: "root/dev", bases: ["root/nope"] }]), /^Devpi devpi: access\.indexes\.root\/dev\.bases: invalid value "root\/nope"/);
        refuses((a) => (a.tls = { mode: "self-signed", certValidityDays: 30, certRenewBeforeDays: 30 }), /^Devpi devpi: tls\.certRenewBeforeDays: .*less than certValidityDays/);
        refuses((a) => (a.replicas = [{ name: "Bad_Name", ssh: { host: "r", privateKey: "k", hostKey: TEST_HOST_KEY }, domain: "r.example.com" }]), /replicas\[\]\.name: invalid value "Bad_Name"/);
    });

    it("accepts the defaults and fills them in as the stack config documents them", () => {
        const r = resolveDevpiArgs("devpi", base());
        assert.equal(r.devpi.serverDir, "/srv/devpi/data");
        assert.equal(r.devpi.venvVersionsDir, "/opt/devpi/venv.versions");
        assert.equal(r.ssl.mode, "self-signed");
        assert.equal(r.hosts[0].role, "standalone");
        assert.equal(r.hosts[0].httpsPort, 443);
    });

    it("refuses a missing host key unless insecureSkipHostKeyCheck", () => {
        const args = base();
        delete args.server.ssh.hostKey;
        assert.throws(() => new Devpi("no-host-key", args), /Devpi no-host-key: server\.ssh\.hostKey is not set: pin the server's SSH host key/);
        assert.doesNotThrow(() => new Devpi("insecure", { ...args, insecureSkipHostKeyCheck: true }));
    });

    it("checks targets once they resolve: a domain, ports that clash", () => {
        const t = { domain: "devpi.example.com", extraDnsNames: [], extraIpAddresses: ["203.0.113.7"], httpPort: 80, httpsPort: 443 };
        assert.deepEqual(validateTarget("primary", t, 4040), t);
        assert.throws(() => validateTarget("primary", { ...t, domain: "not a name" }, 4040), /Devpi primary: domain: invalid value "not a name"/);
        assert.throws(() => validateTarget("primary", { ...t, httpsPort: 80 }, 4040), /httpsPort: invalid value 80: must differ from httpPort/);
        assert.throws(() => validateTarget("primary", { ...t, extraIpAddresses: ["300.1.1.1"] }, 4040), /extraIpAddresses/);
    });
});
