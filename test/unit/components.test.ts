/**
 * The whole program under Pulumi's mocks: which resources it creates, under which parents, in
 * which order (dependsOn, captured with a stack transformation since mocks do not report it),
 * and which inputs are secret.
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { Registered, runProgramUnderMocks, TEST_HOST_KEY as HOST_KEY, TEST_SSH_KEY as KEY, value } from "./programUnderMocks";

let registered = new Map<string, Registered>();
let secretInputs = new Map<string, Promise<Record<string, boolean>>>();
let exports: Record<string, unknown>;

before(async () => {
    ({ registered, secretInputs, exports } = await runProgramUnderMocks(
        {
            "devpi:host": "203.0.113.10",
            "devpi:sshUser": "deploy",
            "devpi:sshPrivateKey": KEY,
            "devpi:hostKey": HOST_KEY,
            "devpi:domain": "devpi.example.com",
            "devpi:rootPassword": "root-secret-1",
            "devpi:users": JSON.stringify({ bz: { password: "bz-secret-1" }, pk: { password: "pk-secret-1", email: "pk@example.com" } }),
            "devpi:indexes": JSON.stringify({ "bz/dev": { bases: ["bz/prod"] }, "bz/prod": {}, "pk/dev": { volatile: true } }),
            "devpi:clientIncludePassword": "true",
        },
        ["devpi:sshPrivateKey", "devpi:rootPassword", "devpi:users"],
    ));
});

describe("the program's resources", () => {
    it("creates exactly the expected components and steps", () => {
        const byType = (t: string) =>
            [...registered.values()]
                .filter((r) => r.type === t)
                .map((r) => r.name)
                .sort();
        assert.deepEqual(byType("devpi:index:HostPreparation"), ["host"]);
        assert.deepEqual(byType("devpi:index:DevpiUser"), ["user-bz", "user-pk"]);
        assert.deepEqual(byType("devpi:index:DevpiIndex"), ["index-bz/dev", "index-bz/prod", "index-pk/dev", "index-root/pypi"]);
        assert.deepEqual(byType("command:remote:Command"), [
            "backups-cron",
            "devpi-config",
            "devpi-init",
            "devpi-upgrade",
            "devpi-venv",
            "health-https",
            "host-packages",
            "host-service-packages",
            "host-service-user",
            "index-bz/dev-index",
            "index-bz/prod-index",
            "index-pk/dev-index",
            "index-root/pypi-index",
            "metrics-exporter",
            "metrics-packages",
            "nginx-site",
            "root-password-set",
            "ssl-files",
            "supervisor-program",
            "user-bz-user",
            "user-pk-user",
        ]);
        assert.deepEqual(byType("tls:index/privateKey:PrivateKey"), ["ssl-ca-key", "ssl-server-key"]);
        assert.deepEqual(byType("tls:index/selfSignedCert:SelfSignedCert"), ["ssl-ca"]);
        assert.deepEqual(byType("tls:index/locallySignedCert:LocallySignedCert"), ["ssl-server"]);
    });

    it("renews the server certificate and the CA each in its own window (certRenewBeforeDays, caRenewBeforeDays)", () => {
        const inputs = (name: string) => [...registered.values()].find((r) => r.name === name)!.inputs;
        assert.equal(inputs("ssl-server").validityPeriodHours, 90 * 24);
        assert.equal(inputs("ssl-server").earlyRenewalHours, 30 * 24);
        assert.equal(inputs("ssl-ca").validityPeriodHours, 3650 * 24);
        assert.equal(inputs("ssl-ca").earlyRenewalHours, 30 * 24);
    });

    it("parents every step to its component", () => {
        const expectParent: Record<string, string> = {
            "host-packages": "host",
            "host-service-packages": "host",
            "ssl-files": "ssl",
            "ssl-ca": "ssl",
            "devpi-venv": "devpi",
            "devpi-init": "devpi",
            "supervisor-program": "supervisor",
            "nginx-site": "nginx",
            "root-password-set": "root-password",
            "user-bz-user": "user-bz",
            "index-bz/dev-index": "index-bz/dev",
            "health-https": "health",
            "backups-cron": "backups",
            "metrics-exporter": "metrics",
            "metrics-packages": "metrics",
        };
        for (const [child, parent] of Object.entries(expectParent)) {
            assert.equal(registered.get(child)?.parent, parent, `${child}'s parent`);
        }
    });

    it("orders steps by dependencies, never by luck", () => {
        const deps = (n: string) => [...(registered.get(n)?.dependsOn ?? [])].sort();
        assert.deepEqual(deps("devpi"), ["host-packages", "host-service-user"], "pip installs devpi while apt installs nginx, supervisor, ...");
        assert.deepEqual(deps("ssl"), [], "SSL files run in parallel with the install");
        assert.deepEqual(deps("supervisor"), ["devpi", "host"]);
        assert.deepEqual(deps("nginx"), ["ssl", "supervisor"]);
        assert.deepEqual(deps("root-password"), ["supervisor"]);
        assert.deepEqual(deps("user-bz"), ["root-password"]);
        assert.deepEqual(deps("index-root/pypi"), ["root-password"], "root/pypi's settings: root's password first");
        assert.deepEqual(deps("index-bz/prod"), ["index-root/pypi", "user-bz"], "root/pypi's settings before the indexes on it");
        assert.deepEqual(deps("index-bz/dev"), ["index-bz/prod", "user-bz"], "an index waits for its owner and its bases");
        assert.deepEqual(deps("health"), ["index-bz/dev", "index-bz/prod", "index-pk/dev", "index-root/pypi", "nginx"]);
        assert.deepEqual(deps("metrics"), [], "the metrics component's steps have their own dependencies");
        assert.deepEqual(deps("metrics-packages"), ["host"], "node-exporter's package after the host's apt runs and users (its postinst adds one), beside pip");
        assert.deepEqual(deps("metrics-exporter"), ["metrics-packages", "nginx", "supervisor"], "the programs once supervisord runs and nginx serves its counters");
        assert.deepEqual(deps("devpi-config"), ["devpi-venv"]);
        assert.deepEqual(deps("devpi-init"), ["devpi-config"]);
        assert.deepEqual(deps("devpi-upgrade"), ["devpi-init"]);
        assert.deepEqual(deps("host-service-user"), ["host-packages"]);
        assert.deepEqual(deps("host-service-packages"), ["host-service-user"]);
        assert.deepEqual(deps("backups"), ["devpi", "host"], "the backup schedule needs cron, from the host's second apt run");
    });

    it("keeps secrets on stdin, secret, and out of command strings", async () => {
        const s = Object.fromEntries(await Promise.all([...secretInputs].map(async ([k, v]) => [k, await v] as const)));
        for (const step of ["ssl-files", "root-password-set", "user-bz-user", "user-pk-user"]) {
            assert.equal(s[step].stdin, true, `${step} stdin is secret`);
        }
        for (const step of ["index-bz/dev-index", "health-https", "nginx-site"]) {
            assert.equal(s[step].stdin, false, `${step} stdin carries nothing secret`);
        }
        for (const [name, flags] of Object.entries(s)) {
            assert.equal(flags.connection, true, `${name} connection (private key) is secret`);
            assert.equal(flags.create, false, `${name} create is plain text for review`);
        }
        for (const r of registered.values()) {
            if (r.type !== "command:remote:Command") continue;
            const create = await new Promise<string>((res) => pulumi.output(r.inputs.create as string).apply(res));
            for (const secret of ["root-secret-1", "bz-secret-1", "pk-secret-1", "OPENSSH PRIVATE"]) {
                assert.ok(!create.includes(secret), `${r.name} create must not contain ${secret}`);
            }
        }
    });

    it("exports client configuration, the password only as a secret", async () => {
        assert.equal(await value(exports.url), "https://devpi.example.com");
        assert.equal(await value(exports.pipIndexUrl), "https://devpi.example.com/bz/dev/+simple/");
        assert.doesNotMatch(await value<string>(exports.pypirc), /password/);
        const withPassword = exports.pypircWithPassword as pulumi.Output<string>;
        assert.equal(await pulumi.isSecret(withPassword), true);
        assert.equal(await value(exports.devpiUse), "devpi use https://devpi.example.com/bz/dev/ --set-cfg");
    });

    it("exports every output with a value, so the engine warns of none (replicaClients is empty without replicas)", () => {
        for (const [name, value] of Object.entries(exports)) {
            assert.notEqual(value, undefined, `output ${name} is undefined`);
        }
        assert.deepEqual(exports.replicaClients, {});
    });
});
