// The command:local:Command stand-in (tools/offline-providers) started the way
// the Pulumi engine starts a plugin, driven over the ResourceProvider gRPC
// protocol; the commands run on this machine. Expected texts are upstream's
// (pulumi-command v1.2.1 local/commandOutputs.go with Go's os/exec errors).

import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import * as emptyproto from "google-protobuf/google/protobuf/empty_pb";
import * as provproto from "@pulumi/pulumi/proto/provider_pb";
import { PluginUnderTest, urnOf } from "../../tools/offline-providers/testing/plugin";

const SECRET_KEY = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";
const secret = (value: unknown) => ({ [SECRET_KEY]: SECRET_SIG, value });

const TYPE = "command:local:Command";

describe("offline command provider: command:local:Command", { skip: process.platform !== "linux" ? "needs Linux" : false }, () => {
    let plugin: PluginUnderTest;
    let work: string;

    before(async () => {
        work = fs.mkdtempSync(path.join(os.tmpdir(), "offline-local-"));
        // The provider's own environment, which commands inherit (as upstream's os.Environ()).
        plugin = await PluginUnderTest.start("command", {
            ...process.env,
            OFFLINE_LOCAL_BASE: "from-provider",
            OFFLINE_LOCAL_OVERRIDE: "provider-value",
            PULUMI_COMMAND_STDOUT: "inherited-stdout",
        });
    });
    after(async () => {
        await plugin?.stop();
        if (work) {
            fs.rmSync(work, { recursive: true, force: true });
        }
    });

    /** Check (as the engine does before create), then Create. */
    async function create(name: string, inputs: Record<string, unknown>) {
        const urn = urnOf(TYPE, name);
        const checked = await plugin.check(urn, {}, inputs);
        assert.deepEqual(checked.failures, []);
        const created = await plugin.create(urn, checked.inputs);
        return { urn, ...created, inputs: checked.inputs };
    }
    const logsOf = (urn: string) => plugin.logs.filter((l) => l.urn === urn);

    it("GetSchema describes command:local:Command next to command:remote:Command", async () => {
        const res = await new Promise<provproto.GetSchemaResponse>((resolve, reject) => plugin.client.getSchema(new provproto.GetSchemaRequest(), (err, r) => (err ? reject(err) : resolve(r))));
        const schema = JSON.parse(res.getSchema()) as { resources: Record<string, { inputProperties: Record<string, unknown>; properties: Record<string, unknown> }> };
        assert.deepEqual(Object.keys(schema.resources).sort(), ["command:local:Command", "command:remote:Command"]);
        const local = schema.resources["command:local:Command"];
        assert.deepEqual(Object.keys(local.inputProperties).sort(), [
            "addPreviousOutputInEnv",
            "archivePaths",
            "assetPaths",
            "create",
            "delete",
            "dir",
            "environment",
            "interpreter",
            "logging",
            "stdin",
            "triggers",
            "update",
        ]);
        assert.deepEqual(Object.keys(local.properties).sort(), ["archive", "assets", "stderr", "stdout"]);
    });

    it("check passes the inputs through (upstream has no defaults or secrets for local commands)", async () => {
        const inputs = { create: "true", interpreter: ["/bin/bash", "-c"], dir: "/tmp", environment: { A: "1" }, logging: "none" };
        const { inputs: checked, failures } = await plugin.check(urnOf(TYPE, "c"), {}, inputs);
        assert.deepEqual(failures, []);
        assert.deepEqual(checked, inputs);
    });

    it("check refuses assetPaths and archivePaths with a clear message", async () => {
        const { failures } = await plugin.check(urnOf(TYPE, "assets"), {}, { create: "true", assetPaths: ["*.txt"], archivePaths: [] });
        assert.deepEqual(
            failures.map((f) => f.property),
            ["assetPaths", "archivePaths"],
        );
        assert.match(failures[0].reason, /^assetPaths is not supported by the offline stand-in for pulumi-resource-command 1\.2\.1/);
        assert.match(failures[1].reason, /archivePaths is not supported .*archive output/);
    });

    it("create runs `create` with /bin/sh -c, captures stdout/stderr (one trailing newline trimmed) and logs lines", async () => {
        // Pauses let each stream's data arrive in order (stdout and stderr are separate pipes).
        const script = "echo hello; sleep 0.1; echo oops >&2; sleep 0.1; printf 'two\\r\\n\\n'; printf '\\303'; sleep 0.1; printf '\\251tail'";
        const { id, outs, urn } = await create("hello", { create: script });
        assert.match(id, /^hello[0-9a-f]{8}$/);
        assert.equal(outs.stdout, "hello\ntwo\r\n\nétail");
        assert.equal(outs.stderr, "oops");
        assert.equal(outs.create, script, "inputs are kept in the state");
        assert.equal("assets" in outs || "archive" in outs, false);
        // bufio.ScanLines over both streams: "\r" dropped, empty lines kept, the unterminated last line emitted.
        assert.deepEqual(
            logsOf(urn).map((l) => l.message),
            ["hello", "oops", "two", "", "étail"],
        );
        assert.ok(logsOf(urn).every((l) => l.severity === "info" && l.ephemeral));
    });

    it("without create, nothing runs and stdout/stderr are empty", async () => {
        const marker = path.join(work, "never");
        const { outs, urn } = await create("nothing", { delete: `touch ${marker}` });
        assert.equal(outs.stdout, "");
        assert.equal(outs.stderr, "");
        assert.deepEqual(logsOf(urn), []);
        assert.equal(fs.existsSync(marker), false);
    });

    it("logging selects which streams reach the engine log; both are captured regardless", async () => {
        const want: Record<string, string[]> = { stdout: ["out"], stderr: ["err"], stdoutAndStderr: ["out", "err"], none: [] };
        for (const [logging, lines] of Object.entries(want)) {
            const { outs, urn } = await create(`log-${logging}`, { create: "echo out; sleep 0.05; echo err >&2", logging });
            assert.equal(outs.stdout, "out");
            assert.equal(outs.stderr, "err");
            assert.deepEqual(
                logsOf(urn).map((l) => l.message),
                lines,
                logging,
            );
        }
    });

    it("interpreter replaces /bin/sh -c (looked up in the provider's PATH); an empty list means the default", async () => {
        const bash = await create("bash", { create: 'echo "$0 ${BASH_VERSION:+is-bash}"', interpreter: ["bash", "-c"] });
        assert.equal(bash.outs.stdout, "bash is-bash");
        const echo = await create("echo", { create: "the command", interpreter: ["echo", "arg:"] });
        assert.equal(echo.outs.stdout, "arg: the command");
        const dflt = await create("empty-interp", { create: 'echo "$0"', interpreter: [] });
        assert.equal(dflt.outs.stdout, "/bin/sh");
    });

    it("dir sets the working directory; unset, the provider's own", async () => {
        const inDir = await create("dir", { create: "pwd", dir: work });
        assert.equal(inDir.outs.stdout, fs.realpathSync(work));
        const here = await create("nodir", { create: "pwd -P" });
        assert.equal(here.outs.stdout, fs.realpathSync(process.cwd()), "the plugin runs in the engine's (here: the test's) directory");
    });

    it("environment is merged over the provider's environment", async () => {
        const { outs } = await create("env", {
            create: 'echo "$OFFLINE_LOCAL_BASE $OFFLINE_LOCAL_OVERRIDE $OFFLINE_LOCAL_NEW"',
            environment: { OFFLINE_LOCAL_OVERRIDE: "mine", OFFLINE_LOCAL_NEW: secret("new") },
        });
        assert.equal(outs.stdout, "from-provider mine new");
    });

    it("stdin is written to the process and closed; unset or empty, stdin is /dev/null", async () => {
        const withStdin = await create("stdin", { create: "cat; echo done", stdin: "line1\nline2\n" });
        assert.equal(withStdin.outs.stdout, "line1\nline2\ndone");
        const empty = await create("nostdin", { create: "cat; readlink /proc/self/fd/0", stdin: "" });
        assert.equal(empty.outs.stdout, "/dev/null");
        const ignored = await create("unread", { create: "echo ignored-input", stdin: "x".repeat(1 << 20) });
        assert.equal(ignored.outs.stdout, "ignored-input", "a process that does not read its stdin is fine (EPIPE ignored)");
    });

    it("a nonzero exit fails with upstream's message: exit error, quoted command, interleaved output", async () => {
        await assert.rejects(create("fails", { create: "echo out; sleep 0.1; echo bad >&2; exit 3" }), (e: Error) => {
            assert.match(e.message, /exit status 3: running "echo out; sleep 0\.1; echo bad >&2; exit 3":\nout\nbad\n$/);
            return true;
        });
    });

    it("process and start failures read like Go's os/exec errors", async () => {
        const file = path.join(work, "a-file");
        fs.writeFileSync(file, "");
        const cases: [string, Record<string, unknown>, RegExp][] = [
            ["killed", { create: "echo before; kill -9 $$" }, /signal: killed: running "echo before; kill -9 \$\$":\nbefore\n/],
            ["terminated", { create: "kill -TERM $$" }, /signal: terminated: running "kill -TERM \$\$":\n/],
            ["nointerp", { create: "true", interpreter: ["no-such-interpreter-x", "-c"] }, /exec: "no-such-interpreter-x": executable file not found in \$PATH: running "true":\n$/],
            ["badpath", { create: "true", interpreter: ["/no/such/sh"] }, /fork\/exec \/no\/such\/sh: no such file or directory: running "true":\n$/],
            ["nodir", { create: "pwd", dir: path.join(work, "missing") }, new RegExp(`chdir ${work}/missing: no such file or directory: running "pwd":\\n$`)],
            ["dirisfile", { create: "pwd", dir: file }, /fork\/exec \/bin\/sh: not a directory: running "pwd":\n$/],
            ["nul", { create: "true", environment: { X: "a\u0000b" } }, /exec: environment variable contains NUL: running "true":\n$/],
        ];
        for (const [name, inputs, want] of cases) {
            await assert.rejects(create(name, inputs), (e: Error) => {
                assert.match(e.message, want, name);
                return true;
            });
        }
        const script = path.join(work, "noshebang");
        fs.writeFileSync(script, "echo hi\n", { mode: 0o755 });
        await assert.rejects(create("noexec", { create: "x", interpreter: [script] }), (e: Error) => {
            assert.match(e.message, new RegExp(`fork/exec ${script}: exec format error: running "x":\\n$`), "no /bin/sh fallback, as with Go");
            return true;
        });
    });

    it("redacts a secret command in the error, like the remote stand-in", async () => {
        await assert.rejects(create("secretfail", { create: secret("echo hunter2; exit 1") }), (e: Error) => {
            assert.match(e.message, /exit status 1: running \[secret\]:\nhunter2/);
            return true;
        });
    });

    it("update runs `update` (or `create` when unset) with the previous output in PULUMI_COMMAND_STDOUT/STDERR", async () => {
        const show = 'echo "prev=$PULUMI_COMMAND_STDOUT preverr=$PULUMI_COMMAND_STDERR"';
        const first = await create("upd", { create: "echo first; echo firsterr >&2", update: show });
        const news = { ...first.inputs, update: `${show}; true` };
        assert.deepEqual(await plugin.diff(first.id, first.urn, first.outs, news), { changes: "some", replaces: [], deleteBeforeReplace: false });
        const outs = await plugin.update(first.id, first.urn, first.outs, news);
        assert.equal(outs.stdout, "prev=first preverr=firsterr");
        assert.equal(outs.stderr, "");

        const { update: _dropped, ...withoutUpdate } = first.inputs;
        void _dropped;
        const noUpdate = { ...withoutUpdate, create: 'echo "again=$PULUMI_COMMAND_STDOUT"' };
        const outs2 = await plugin.update(first.id, first.urn, outs, noUpdate);
        assert.equal(outs2.stdout, "again=prev=first preverr=firsterr");

        // Previous output off: the provider's own PULUMI_COMMAND_STDOUT shows through (upstream appends nothing).
        const off = { ...noUpdate, addPreviousOutputInEnv: false };
        const outs3 = await plugin.update(first.id, first.urn, outs2, off);
        assert.equal(outs3.stdout, "again=inherited-stdout");

        // `environment` cannot override a non-empty previous output: upstream appends PULUMI_COMMAND_* after it.
        const env = { ...noUpdate, environment: { PULUMI_COMMAND_STDOUT: "from-environment", PULUMI_COMMAND_STDERR: "err-env" } };
        const outs4 = await plugin.update(first.id, first.urn, outs3, env);
        assert.equal(outs4.stdout, "again=again=inherited-stdout");
        const errShown = await plugin.update(first.id, first.urn, outs4, { ...env, create: 'echo "$PULUMI_COMMAND_STDERR"' });
        assert.equal(errShown.stdout, "err-env", "the previous stderr was empty, so `environment`'s value stays");

        // Neither update nor create: nothing runs and the previous output is kept.
        const { create: _c, ...neither } = noUpdate;
        void _c;
        const outs5 = await plugin.update(first.id, first.urn, errShown, { ...neither, stdin: "changed" });
        assert.equal(outs5.stdout, "err-env");
    });

    it("a failed update fails the operation (the engine keeps the old state)", async () => {
        const first = await create("updfail", { create: "echo ok" });
        await assert.rejects(plugin.update(first.id, first.urn, first.outs, { ...first.inputs, update: "exit 4" }), /exit status 4: running "exit 4":\n/);
    });

    it("delete runs `delete` with the recorded settings and the last output in PULUMI_COMMAND_STDOUT", async () => {
        const marker = path.join(work, "deleted");
        const first = await create("del", {
            create: "echo made",
            delete: 'echo "$PULUMI_COMMAND_STDOUT $DEL_VAR $(pwd)" > deleted',
            dir: work,
            environment: { DEL_VAR: "v" },
        });
        await plugin.delete(first.id, first.urn, first.outs);
        assert.equal(fs.readFileSync(marker, "utf8"), `made v ${fs.realpathSync(work)}\n`);
        const none = await create("nodel", { create: "echo x" });
        await plugin.delete(none.id, none.urn, none.outs); // no delete command: nothing runs
    });

    it("diff: triggers replace, every other input change is an update", async () => {
        const first = await create("diff", { create: "true", triggers: ["a", 1], dir: work });
        const d = (news: Record<string, unknown>) => plugin.diff(first.id, first.urn, first.outs, { ...first.inputs, ...news });
        assert.deepEqual(await d({}), { changes: "none", replaces: [], deleteBeforeReplace: false });
        assert.deepEqual(await d({ triggers: ["a", 2] }), { changes: "some", replaces: ["triggers"], deleteBeforeReplace: false });
        for (const change of [{ interpreter: ["/bin/bash", "-c"] }, { dir: "/" }, { environment: { A: "1" } }, { stdin: "x" }, { logging: "none" }, { delete: "true" }]) {
            assert.deepEqual(await d(change), { changes: "some", replaces: [], deleteBeforeReplace: false }, JSON.stringify(change));
        }
    });

    it("refresh keeps the recorded state", async () => {
        const first = await create("read", { create: "echo r" });
        assert.deepEqual(await plugin.read(first.id, first.urn, first.outs), { id: first.id, props: first.outs });
    });

    it("Cancel kills a running command (exec.CommandContext: SIGKILL)", async () => {
        const urn = urnOf(TYPE, "cancelled");
        const started = Date.now();
        // `exec`: only the process is killed (as in Go), and a surviving child holding stdout open would keep
        // Wait waiting, as upstream (no WaitDelay).
        const pending = plugin.create(urn, { create: "echo started; exec sleep 30" });
        // Wait for the command to be running (its first line reaches the engine log).
        while (!logsOf(urn).some((l) => l.message === "started")) {
            await new Promise((r) => setTimeout(r, 20));
        }
        await new Promise<void>((resolve, reject) => plugin.client.cancel(new emptyproto.Empty(), (err) => (err ? reject(err) : resolve())));
        await assert.rejects(pending, /signal: killed: running "echo started; exec sleep 30":\nstarted\n$/);
        assert.ok(Date.now() - started < 20_000);
    });

    it("resource types the stand-in does not implement fail with a clear message", async () => {
        await assert.rejects(
            plugin.create(urnOf("command:remote:CopyToRemote", "copy"), {}),
            /command:remote:CopyToRemote is not implemented by this offline stand-in provider \(it implements command:remote:Command, command:local:Command\)/,
        );
    });
});
