/**
 * The whole program under Pulumi's mocks: which resources it creates, under which parents, in
 * which order (dependsOn, captured with a stack transformation since mocks do not report it),
 * and which inputs are secret.
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import * as pulumi from "@pulumi/pulumi";

interface Registered {
    type: string;
    name: string;
    parent?: string;
    dependsOn: string[];
    inputs: Record<string, unknown>;
}

const registered = new Map<string, Registered>();
const secretInputs = new Map<string, Promise<Record<string, boolean>>>();
const KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n";

function resourceName(r: pulumi.Resource | undefined): Promise<string | undefined> {
    if (!r) return Promise.resolve(undefined);
    return new Promise((resolve) => r.urn.apply((u) => resolve(u.split("::").pop())));
}

let exports: Record<string, unknown>;

before(async () => {
    pulumi.runtime.setMocks(
        {
            newResource: (args) => {
                const outputs: Record<string, unknown> = { ...(args.inputs as Record<string, unknown>) };
                if (args.type === "command:remote:Command") Object.assign(outputs, { stdout: "ok", stderr: "" });
                if (args.type.startsWith("tls:")) {
                    Object.assign(outputs, { privateKeyPem: "KEY", certPem: CERT, certRequestPem: "CSR" });
                }
                return { id: `${args.name}-id`, state: outputs };
            },
            call: () => ({}),
        },
        "devpi",
        "test",
        false,
    );
    const config: Record<string, string> = {
        "devpi:host": "203.0.113.10",
        "devpi:sshUser": "deploy",
        "devpi:sshPrivateKey": KEY,
        "devpi:domain": "devpi.example.com",
        "devpi:rootPassword": "root-secret-1",
        "devpi:users": JSON.stringify({ bz: { password: "bz-secret-1" }, pk: { password: "pk-secret-1", email: "pk@example.com" } }),
        "devpi:indexes": JSON.stringify({ "bz/dev": { bases: ["bz/prod"] }, "bz/prod": {}, "pk/dev": { volatile: true } }),
        "devpi:clientIncludePassword": "true",
    };
    pulumi.runtime.setAllConfig(config, ["devpi:sshPrivateKey", "devpi:rootPassword", "devpi:users"]);
    const transformation: pulumi.ResourceTransformation = (args) => {
        const entry: Registered = { type: args.type, name: args.name, dependsOn: [], inputs: args.props };
        registered.set(args.name, entry);
        const deps = args.opts.dependsOn;
        const list = (Array.isArray(deps) ? deps : deps ? [deps] : []) as pulumi.Resource[];
        void resourceName(args.opts.parent).then((p) => (entry.parent = p));
        void Promise.all(list.map(resourceName)).then((names) => (entry.dependsOn = names.filter((n): n is string => !!n)));
        if (args.type === "command:remote:Command") {
            const props = args.props as Record<string, unknown>;
            secretInputs.set(
                args.name,
                Promise.all(
                    ["stdin", "create", "connection"].map(async (k) => [k, props[k] === undefined ? false : await pulumi.isSecret(pulumi.output(props[k]))] as const),
                ).then((pairs) => Object.fromEntries(pairs) as Record<string, boolean>),
            );
        }
        return undefined;
    };
    // Transformations need the root stack resource, which mocks only create inside runInPulumiStack.
    await pulumi.runtime.runInPulumiStack(async () => {
        pulumi.runtime.registerStackTransformation(transformation);
        exports = await import("../../index");
        return exports;
    });
    await new Promise((r) => setTimeout(r, 500));
});

const CERT = `-----BEGIN CERTIFICATE-----
MIIBfTCCASOgAwIBAgIUUZ2M8Tp9tM3bF1fO/2bqYKQH8gUwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MB4XDTI2MTEyNTAwMDAwMFoXDTM2MTEyMzAw
MDAwMFowFDESMBAGA1UEAwwJbG9jYWxob3N0MFkwEwYHKoZIzj0CAQYIKoZIzj0D
AQcDQgAEZ1xXHnKfz6QF3oZ2mXmzJX0RuNV6hQ0S3n2tGZcl4Ry4F1bkbqWmFvZb
gF7QxUq0qBeJx3t8cO2qAOOlO8vcUaNTMFEwHQYDVR0OBBYEFJ8qNnF6M3Qn0Ktf
cBqz5N0Yh3x9MB8GA1UdIwQYMBaAFJ8qNnF6M3Qn0KtfcBqz5N0Yh3x9MA8GA1Ud
EwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIhAJ9YcF3wJ6vQ3xWQ8k8m8n0b
t7sGq2h8Qe7m8Yb3zY1nAiB2q8b0hXhTn4v6sQ3Qv3H8m9q6V0h9m8kq4qZQ2m3Q2w==
-----END CERTIFICATE-----`;

describe("the program's resources", () => {
    it("creates exactly the expected components and steps", () => {
        const byType = (t: string) => [...registered.values()].filter((r) => r.type === t).map((r) => r.name).sort();
        assert.deepEqual(byType("devpi:index:HostPreparation"), ["host"]);
        assert.deepEqual(byType("devpi:index:DevpiUser"), ["user-bz", "user-pk"]);
        assert.deepEqual(byType("devpi:index:DevpiIndex"), ["index-bz/dev", "index-bz/prod", "index-pk/dev"]);
        assert.deepEqual(byType("command:remote:Command"), [
            "backups-cron",
            "devpi-config",
            "devpi-init",
            "devpi-upgrade",
            "devpi-venv",
            "health-https",
            "host-packages",
            "host-service-user",
            "index-bz/dev-index",
            "index-bz/prod-index",
            "index-pk/dev-index",
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

    it("parents every step to its component", () => {
        const expectParent: Record<string, string> = {
            "host-packages": "host",
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
        };
        for (const [child, parent] of Object.entries(expectParent)) {
            assert.equal(registered.get(child)?.parent, parent, `${child}'s parent`);
        }
    });

    it("orders steps by dependencies, never by luck", () => {
        const deps = (n: string) => [...(registered.get(n)?.dependsOn ?? [])].sort();
        assert.deepEqual(deps("devpi"), ["host"]);
        assert.deepEqual(deps("ssl"), [], "SSL files run in parallel with the install");
        assert.deepEqual(deps("supervisor"), ["devpi"]);
        assert.deepEqual(deps("nginx"), ["ssl", "supervisor"]);
        assert.deepEqual(deps("root-password"), ["supervisor"]);
        assert.deepEqual(deps("user-bz"), ["root-password"]);
        assert.deepEqual(deps("index-bz/prod"), ["user-bz"]);
        assert.deepEqual(deps("index-bz/dev"), ["index-bz/prod", "user-bz"], "an index waits for its owner and its bases");
        assert.deepEqual(deps("health"), ["index-bz/dev", "index-bz/prod", "index-pk/dev", "nginx"]);
        assert.deepEqual(deps("devpi-config"), ["devpi-venv"]);
        assert.deepEqual(deps("devpi-init"), ["devpi-config"]);
        assert.deepEqual(deps("devpi-upgrade"), ["devpi-init"]);
        assert.deepEqual(deps("host-service-user"), ["host-packages"]);
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
        assert.equal(exports.url, "https://devpi.example.com");
        assert.equal(exports.pipIndexUrl, "https://devpi.example.com/bz/dev/+simple/");
        assert.doesNotMatch(String(exports.pypirc), /password/);
        const withPassword = exports.pypircWithPassword as pulumi.Output<string>;
        assert.equal(await pulumi.isSecret(withPassword), true);
        assert.equal(exports.devpiUse, "devpi use https://devpi.example.com/bz/dev/ --set-cfg");
    });
});
