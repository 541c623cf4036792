// The command:remote:Command stand-in (tools/offline-providers) started the way
// the Pulumi engine starts a plugin, driven over the ResourceProvider gRPC
// protocol against a real OpenSSH server on 127.0.0.1.

import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { PluginUnderTest, urnOf } from "../../tools/offline-providers/testing/plugin";
import { TestSshd, sshdUnavailableReason, startTestSshd } from "../../tools/offline-providers/testing/sshd";
import { generateKey, privateKeyAttributes } from "../../tools/offline-providers/src/tls/keys";

const SECRET_KEY = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";
const secret = (value: unknown) => ({ [SECRET_KEY]: SECRET_SIG, value });
const unsecret = (v: unknown): unknown => (typeof v === "object" && v !== null && (v as Record<string, unknown>)[SECRET_KEY] === SECRET_SIG ? (v as { value: unknown }).value : v);

const TYPE = "command:remote:Command";
const skip = sshdUnavailableReason();

describe("offline command provider against a real sshd", { skip: skip ? `no real sshd: ${skip}` : false }, () => {
    let plugin: PluginUnderTest;
    let stock: TestSshd; // stock configuration: refuses every environment variable
    let acceptEnv: TestSshd; // AcceptEnv for the variables the tests use
    // Keys made by the tls stand-in itself, as the project's program does.
    const ed25519 = privateKeyAttributes(generateKey("ED25519", 2048, "P224"));
    const rsa = privateKeyAttributes(generateKey("RSA", 2048, "P224"));
    const ecdsa = privateKeyAttributes(generateKey("ECDSA", 2048, "P256"));

    before(async () => {
        const extra = [ed25519.publicKeyOpenssh, rsa.publicKeyOpenssh, ecdsa.publicKeyOpenssh];
        stock = await startTestSshd({ extraAuthorizedKeys: extra });
        acceptEnv = await startTestSshd({ acceptEnv: ["PULUMI_COMMAND_*", "OFFLINE_TEST_*"], extraAuthorizedKeys: extra });
        plugin = await PluginUnderTest.start("command");
    });
    after(async () => {
        await plugin?.stop();
        await stock?.stop();
        await acceptEnv?.stop();
    });

    const conn = (s: TestSshd, extra: Record<string, unknown> = {}) => ({ host: s.host, port: s.port, user: s.user, privateKey: s.clientKey, ...extra });

    /** Check (as the engine does before create), then Create. */
    async function create(name: string, inputs: Record<string, unknown>) {
        const urn = urnOf(TYPE, name);
        const checked = await plugin.check(urn, {}, inputs);
        assert.deepEqual(checked.failures, []);
        const created = await plugin.create(urn, checked.inputs);
        return { urn, ...created, inputs: checked.inputs };
    }

    it("reports the version the SDK asks for", async () => {
        assert.equal(await plugin.pluginVersion(), "1.2.1");
    });

    it("check applies the connection defaults and marks the connection secret", async () => {
        const { inputs, failures } = await plugin.check(urnOf(TYPE, "c"), {}, { create: "true", connection: { host: "h" } });
        assert.deepEqual(failures, []);
        assert.deepEqual(inputs.connection, secret({ host: "h", user: "root", port: 22, dialErrorLimit: 10, perDialTimeout: 15 }));
        const missing = await plugin.check(urnOf(TYPE, "c"), {}, { create: "true" });
        assert.equal(missing.failures[0].property, "connection");
    });

    it("create runs the command and captures stdout/stderr (one trailing newline trimmed), logging lines to the engine", async () => {
        const { id, outs, urn } = await create("hello", {
            connection: conn(stock),
            create: "echo hello; echo oops >&2; printf 'two\\n\\n'",
        });
        assert.match(id, /^hello[0-9a-f]{8}$/);
        assert.equal(outs.stdout, "hello\ntwo\n");
        assert.equal(outs.stderr, "oops");
        assert.equal(outs.create, "echo hello; echo oops >&2; printf 'two\\n\\n'");
        assert.ok(unsecret(outs.connection), "connection is kept in the state");
        assert.equal((outs.connection as Record<string, unknown>)[SECRET_KEY], SECRET_SIG, "and stays secret");
        const lines = plugin.logs.filter((l) => l.urn === urn).map((l) => l.message);
        for (const want of ["hello", "oops", "two"]) {
            assert.ok(lines.includes(want), `engine log has ${want}: ${JSON.stringify(lines)}`);
        }
        assert.ok(plugin.logs.filter((l) => l.urn === urn).every((l) => l.severity === "info" && l.ephemeral));
    });

    it("logging: none keeps output out of the engine log but still captures it", async () => {
        const { outs, urn } = await create("quiet", { connection: conn(stock), create: "echo secret-ish", logging: "none" });
        assert.equal(outs.stdout, "secret-ish");
        assert.deepEqual(
            plugin.logs.filter((l) => l.urn === urn),
            [],
        );
    });

    it("sends stdin and then closes it", async () => {
        const { outs } = await create("stdin", { connection: conn(stock), create: "cat; echo done", stdin: "line1\nline2\n" });
        assert.equal(outs.stdout, "line1\nline2\ndone");
    });

    it("without create, nothing runs and stdout/stderr are empty", async () => {
        const { outs } = await create("nothing", { connection: conn(stock), delete: "true" });
        assert.equal(outs.stdout, "");
        assert.equal(outs.stderr, "");
    });

    it("a nonzero exit fails the create with upstream's message", async () => {
        await assert.rejects(create("fails", { connection: conn(stock), create: "echo out; echo bad >&2; exit 3" }), (e: Error) => {
            assert.match(e.message, /Process exited with status 3: running "echo out; echo bad >&2; exit 3":\nout\nbad/);
            return true;
        });
    });

    it("a command killed by a signal fails like Go's ExitError", async () => {
        await assert.rejects(create("killed", { connection: conn(stock), create: "echo before; kill -9 $$" }), (e: Error) => {
            assert.match(e.message, /: Process exited with status 137 from signal KILL: running "echo before; kill -9 \$\$":\nbefore\n/);
            return true;
        });
    });

    it("redacts a secret command in the error", async () => {
        await assert.rejects(create("secretfail", { connection: conn(stock), create: secret("echo hunter2; exit 1") }), (e: Error) => {
            assert.match(e.message, /Process exited with status 1: running \[secret\]:\nhunter2/);
            assert.doesNotMatch(e.message, /running "echo hunter2/);
            return true;
        });
    });

    it("update runs `update` (or `create` when unset) with the previous output in PULUMI_COMMAND_STDOUT/STDERR", async () => {
        const first = await create("upd", {
            connection: conn(acceptEnv),
            create: "echo first; echo firsterr >&2",
            update: "echo prev=$PULUMI_COMMAND_STDOUT preverr=$PULUMI_COMMAND_STDERR",
        });
        const news = { ...first.inputs, update: "echo prev=$PULUMI_COMMAND_STDOUT preverr=$PULUMI_COMMAND_STDERR; true" };
        const d = await plugin.diff(first.id, first.urn, first.outs, news);
        assert.deepEqual(d, { changes: "some", replaces: [], deleteBeforeReplace: false });
        const outs = await plugin.update(first.id, first.urn, first.outs, news);
        assert.equal(outs.stdout, "prev=first preverr=firsterr");

        const { update: _dropped, ...withoutUpdate } = first.inputs;
        void _dropped;
        const noUpdate = { ...withoutUpdate, create: "echo again=$PULUMI_COMMAND_STDOUT" };
        const outs2 = await plugin.update(first.id, first.urn, outs, noUpdate);
        assert.equal(outs2.stdout, "again=prev=first preverr=firsterr");

        const off = { ...noUpdate, addPreviousOutputInEnv: false };
        const outs3 = await plugin.update(first.id, first.urn, outs2, off);
        assert.equal(outs3.stdout, "again=");
    });

    it("a server without AcceptEnv: PULUMI_COMMAND_* is skipped with a warning, `environment` fails the run", async () => {
        const first = await create("noenv", { connection: conn(stock), create: "echo first" });
        const news = { ...first.inputs, create: "echo prev=$PULUMI_COMMAND_STDOUT" };
        const outs = await plugin.update(first.id, first.urn, first.outs, news);
        assert.equal(outs.stdout, "prev=");
        const warnings = plugin.logs.filter((l) => l.urn === first.urn && l.severity === "warning");
        assert.match(warnings[0]?.message ?? "", /Unable to set 'PULUMI_COMMAND_STDOUT'\. This only works if your SSH server is configured to accept/);

        await assert.rejects(create("envfail", { connection: conn(stock), create: "echo $OFFLINE_TEST_X", environment: { OFFLINE_TEST_X: "1" } }), (e: Error) => {
            assert.match(e.message, /could not set environment variable "OFFLINE_TEST_X": ssh: setenv failed/);
            return true;
        });
        const ok = await create("envok", { connection: conn(acceptEnv), create: "echo x=$OFFLINE_TEST_X", environment: { OFFLINE_TEST_X: "1" } });
        assert.equal(ok.outs.stdout, "x=1");
    });

    it("delete runs `delete` with the last output in the environment", async () => {
        const marker = path.join(acceptEnv.dir, "deleted");
        const first = await create("del", { connection: conn(acceptEnv), create: "echo made", delete: `echo "$PULUMI_COMMAND_STDOUT" > ${marker}` });
        await plugin.delete(first.id, first.urn, first.outs);
        assert.equal(fs.readFileSync(marker, "utf8"), "made\n");
    });

    it("a connection-only change is an update (upstream re-runs the command on the new target)", async () => {
        const first = await create("move", { connection: conn(stock), create: "echo on-$PPID >/dev/null; echo ran" });
        const moved = (await plugin.check(first.urn, first.inputs, { ...first.inputs, connection: conn(acceptEnv) })).inputs;
        const d = await plugin.diff(first.id, first.urn, first.outs, moved);
        assert.deepEqual(d, { changes: "some", replaces: [], deleteBeforeReplace: false });
        const same = await plugin.diff(first.id, first.urn, first.outs, first.inputs);
        assert.equal(same.changes, "none");
    });

    it("a triggers change replaces", async () => {
        const first = await create("trig", { connection: conn(stock), create: "true", triggers: ["a", 1] });
        const d = await plugin.diff(first.id, first.urn, first.outs, { ...first.inputs, triggers: ["a", 2] });
        assert.deepEqual(d, { changes: "some", replaces: ["triggers"], deleteBeforeReplace: false });
    });

    it("accepts the right hostKey and rejects a different one", async () => {
        const ok = await create("hk", { connection: conn(stock, { hostKey: stock.hostKey }), create: "echo pinned" });
        assert.equal(ok.outs.stdout, "pinned");
        await assert.rejects(create("hkbad", { connection: conn(stock, { hostKey: acceptEnv.hostKey, dialErrorLimit: 0 }), create: "true" }), (e: Error) => {
            assert.match(e.message, /after 0 failed attempts: ssh: handshake failed: ssh: host key mismatch$/, "exactly upstream's text");
            return true;
        });
    });

    it("retries dialing dialErrorLimit times, then fails like upstream", async () => {
        const closedPort = stock.port + 1 === acceptEnv.port ? stock.port + 2 : stock.port + 1;
        await assert.rejects(create("refused", { connection: { host: "127.0.0.1", port: closedPort, privateKey: stock.clientKey, dialErrorLimit: 2 }, create: "true" }), (e: Error) => {
            assert.match(e.message, new RegExp(`after 2 failed attempts: dial tcp 127\\.0\\.0\\.1:${closedPort}: connect: connection refused`));
            return true;
        });
        const status = plugin.logs.filter((l) => l.urn === urnOf(TYPE, "refused")).map((l) => l.message);
        assert.deepEqual(status, ["Dial 1/2 failed: retrying", "Dial 2/2 failed: retrying"]);
    });

    it("authenticates with keys generated by the tls stand-in (OpenSSH ed25519, PKCS#1 RSA, SEC1 ECDSA, PKCS#8)", async () => {
        for (const [name, key] of [
            ["ed", ed25519.privateKeyOpenssh],
            ["rsa", rsa.privateKeyPem],
            ["ec", ecdsa.privateKeyPem],
            ["pkcs8", ed25519.privateKeyPemPkcs8],
        ] as const) {
            const r = await create(`key-${name}`, { connection: { host: stock.host, port: stock.port, privateKey: key, dialErrorLimit: 0 }, create: "whoami" });
            assert.equal(r.outs.stdout, "root", name);
        }
    });

    it("a wrong key fails authentication with Go's message", async () => {
        const other = privateKeyAttributes(generateKey("ED25519", 2048, "P224"));
        await assert.rejects(create("badkey", { connection: { host: stock.host, port: stock.port, privateKey: other.privateKeyOpenssh, dialErrorLimit: 0 }, create: "true" }), (e: Error) => {
            assert.match(e.message, /ssh: handshake failed: ssh: unable to authenticate, attempted methods \[none publickey\], no supported methods remain/);
            return true;
        });
    });
});
