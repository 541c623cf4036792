// Unit tests for the stand-in Node.js language host (tools/pulumi-language-nodejs/host.ts): its pure helpers, and its
// gRPC service driven in-process by the client stubs that ship in @pulumi/pulumi (no engine needed: `Run` is pointed
// at a fake program runner through PULUMI_LANGUAGE_NODEJS_RUN_PATH, as the official host allows).
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";

import * as grpc from "@grpc/grpc-js";
import * as langrpc from "@pulumi/pulumi/proto/language_grpc_pb";
import * as langproto from "@pulumi/pulumi/proto/language_pb";
import * as plugproto from "@pulumi/pulumi/proto/plugin_pb";
import * as emptyproto from "google-protobuf/google/protobuf/empty_pb";
import * as structproto from "google-protobuf/google/protobuf/struct_pb";

import {
    EXIT_AFTER_LOGGING_USER_ACTIONABLE_MESSAGE,
    HOST_VERSION,
    LanguageHost,
    findPulumiPackages,
    parseArgs,
    parseOptions,
    programDependencies,
    runCommand,
    runResult,
    serve,
    splitArgs,
    transformConfig,
    type RunSpec,
} from "../../tools/pulumi-language-nodejs/host";

const repoRoot = path.resolve(__dirname, "../..");

const tmpdirs: string[] = [];
function tmpdir(): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "langhost-test-"));
    tmpdirs.push(dir);
    return dir;
}
after(() => {
    for (const dir of tmpdirs) fs.rmSync(dir, { recursive: true, force: true });
});

function writeJson(file: string, data: unknown): void {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, JSON.stringify(data));
}

describe("transformConfig", () => {
    it("rewrites <namespace>:<name> keys to the <namespace>:config:<name> form the runner reads", () => {
        assert.deepEqual(transformConfig({ "proj:greeting": "hi", "aws:region": "eu-west-1" }), {
            "proj:config:greeting": "hi",
            "aws:config:region": "eu-west-1",
        });
    });
    it("keeps legacy keys and rejects malformed ones", () => {
        assert.deepEqual(transformConfig({ "proj:config:x": "1" }), { "proj:config:x": "1" });
        assert.throws(() => transformConfig({ nocolon: "1" }), /could not parse nocolon/);
        assert.throws(() => transformConfig({ "a:b:c": "1" }), /could not parse a:b:c/);
    });
});

describe("parseOptions and splitArgs", () => {
    it("defaults typescript to true and validates option types", () => {
        assert.deepEqual(parseOptions({}), { typescript: true, tsconfigpath: "", nodeargs: "" });
        assert.deepEqual(parseOptions({ typescript: false, tsconfig: "tsconfig.build.json", nodeargs: "--x" }), {
            typescript: false,
            tsconfigpath: "tsconfig.build.json",
            nodeargs: "--x",
        });
        assert.throws(() => parseOptions({ typescript: "yes" }), /typescript option must be a boolean/);
        assert.throws(() => parseOptions({ nodeargs: 3 }), /nodeargs option must be a string/);
    });
    it("splits nodeargs like a shell", () => {
        assert.deepEqual(splitArgs(""), []);
        assert.deepEqual(splitArgs("  --max-old-space-size=4096   --no-warnings "), ["--max-old-space-size=4096", "--no-warnings"]);
        assert.deepEqual(splitArgs(`--title "a b" 'c d' e\\ f ""`), ["--title", "a b", "c d", "e f", ""]);
        assert.throws(() => splitArgs(`"open`), /unterminated quote/);
    });
});

describe("parseArgs", () => {
    it("takes the engine address after the flags the engine may pass", () => {
        assert.deepEqual(parseArgs(["--logtostderr", "-v=9", "--tracing", "http://zipkin", "127.0.0.1:4321"]), {
            engineAddress: "127.0.0.1:4321",
            tracing: "http://zipkin",
            version: false,
        });
        assert.deepEqual(parseArgs(["-tracing=t", "-runtime", "nodejs", "127.0.0.1:1"]).engineAddress, "127.0.0.1:1");
        assert.equal(parseArgs(["--version"]).version, true);
        assert.equal(parseArgs([]).engineAddress, "");
        assert.throws(() => parseArgs(["--runtime=bun", "x"]), /unsupported runtime: bun/);
    });
});

describe("findPulumiPackages", () => {
    it("finds provider plugins in node_modules, scoped and nested, through symlinks, once each", () => {
        const dir = tmpdir();
        const nm = path.join(dir, "node_modules");
        writeJson(path.join(nm, "@pulumi/command/package.json"), {
            name: "@pulumi/command",
            version: "1.2.1",
            pulumi: { resource: true, name: "command", version: "1.2.1" },
        });
        // Name derived from the @pulumi scope, version from the package, server kept.
        writeJson(path.join(nm, "@pulumi/random/package.json"), {
            name: "@pulumi/random",
            version: "4.0.0",
            pulumi: { resource: true, server: "https://example.invalid" },
        });
        writeJson(path.join(nm, "@pulumi/pulumi/package.json"), { name: "@pulumi/pulumi", version: "3.270.0" });
        writeJson(path.join(nm, "plain/package.json"), { name: "plain", version: "1.0.0" });
        // Nested node_modules, and a parameterized package.
        writeJson(path.join(nm, "plain/node_modules/@acme/thing/package.json"), {
            name: "@acme/thing",
            version: "0.1.0",
            pulumi: {
                resource: true,
                name: "terraform-provider",
                version: "v0.8.0",
                parameterization: { name: "thing", version: "0.1.0", value: "e30=" },
            },
        });
        // A third-party package without a plugin name is reported and skipped.
        const warnings: string[] = [];
        writeJson(path.join(nm, "third/package.json"), { name: "third", version: "1.0.0", pulumi: { resource: true } });
        // A symlink back to node_modules must not loop, nor duplicate.
        fs.symlinkSync(nm, path.join(nm, "plain/node_modules/loop"));

        const found = findPulumiPackages(dir, (w) => warnings.push(w));
        assert.deepEqual(found, [
            { name: "command", version: "v1.2.1", server: "", parameterization: undefined },
            { name: "random", version: "v4.0.0", server: "https://example.invalid", parameterization: undefined },
            {
                name: "terraform-provider",
                version: "v0.8.0",
                server: "",
                parameterization: { name: "thing", version: "0.1.0", value: "e30=" },
            },
        ]);
        assert.equal(warnings.length, 1);
        assert.match(warnings[0], /Missing property "name" for the third-party plugin 'third'/);
        assert.deepEqual(findPulumiPackages(tmpdir()), []);
    });

    it("reports this project's command and tls plugins at the versions their packages pin", () => {
        const found = findPulumiPackages(repoRoot).map((p) => `${p.name}@${p.version}`);
        const pinned = (name: string): string => {
            const file = path.join(repoRoot, "node_modules/@pulumi", name, "package.json");
            return (JSON.parse(fs.readFileSync(file, "utf8")) as { pulumi: { version: string } }).pulumi.version;
        };
        assert.ok(found.includes(`command@v${pinned("command")}`), found.join(","));
        assert.ok(found.includes(`tls@v${pinned("tls")}`), found.join(","));
    });
});

describe("programDependencies", () => {
    it("lists package.json dependencies with their installed versions", () => {
        const dir = tmpdir();
        writeJson(path.join(dir, "package.json"), {
            dependencies: { a: "^1.0.0", missing: "~2.0.0" },
            devDependencies: { b: "3.0.0" },
        });
        writeJson(path.join(dir, "node_modules/a/package.json"), { name: "a", version: "1.4.2" });
        writeJson(path.join(dir, "node_modules/b/package.json"), { name: "b", version: "3.0.0" });
        assert.deepEqual(programDependencies(dir), [
            ["a", "1.4.2"],
            ["b", "3.0.0"],
            ["missing", "~2.0.0"],
        ]);
    });
});

const baseSpec: RunSpec = {
    monitorAddress: "127.0.0.1:1111",
    engineAddress: "127.0.0.1:2222",
    organization: "org",
    project: "proj",
    stack: "dev",
    rootDirectory: "/root/dir",
    programDirectory: "/prog/dir",
    entryPoint: ".",
    args: ["extra"],
    config: { "proj:greeting": "hi" },
    configSecretKeys: ["proj:token"],
    dryRun: true,
    parallel: 16,
    options: {},
    tracing: "",
};

describe("runCommand", () => {
    it("builds the runner's argv and environment like the official host", () => {
        const { args, env } = runCommand(baseSpec, "/sdk/cmd/run/index.js");
        assert.deepEqual(args, [
            "/sdk/cmd/run/index.js",
            "--monitor",
            "127.0.0.1:1111",
            "--engine",
            "127.0.0.1:2222",
            "--organization",
            "org",
            "--project",
            "proj",
            "--root-directory",
            "/root/dir",
            "--stack",
            "dev",
            "--pwd",
            "/prog/dir",
            "--dry-run",
            "--parallel",
            "16",
            ".",
            "extra",
        ]);
        assert.deepEqual(env, {
            PULUMI_CONFIG: JSON.stringify({ "proj:config:greeting": "hi" }),
            PULUMI_CONFIG_SECRET_KEYS: JSON.stringify(["proj:token"]),
            PULUMI_NODEJS_TYPESCRIPT: "true",
        });
    });
    it("honours typescript, tsconfig and nodeargs options and omits empty flags", () => {
        const { args, env } = runCommand(
            {
                ...baseSpec,
                organization: "",
                dryRun: false,
                tracing: "http://zipkin",
                options: { typescript: false, tsconfig: "tsconfig.x.json", nodeargs: "--no-warnings" },
            },
            "run.js",
        );
        assert.equal(args[0], "--no-warnings");
        assert.equal(args[1], "run.js");
        assert.ok(!args.includes("--organization") && !args.includes("--dry-run"));
        assert.deepEqual(args.slice(args.indexOf("--tracing"), args.indexOf("--tracing") + 2), ["--tracing", "http://zipkin"]);
        assert.equal(env.PULUMI_NODEJS_TYPESCRIPT, undefined);
        assert.equal(env.PULUMI_NODEJS_TSCONFIG_PATH, "tsconfig.x.json");
    });
});

describe("runResult", () => {
    it("maps the program's exit to error and bail", () => {
        assert.deepEqual(runResult(0, null), { error: "", bail: false });
        assert.deepEqual(runResult(EXIT_AFTER_LOGGING_USER_ACTIONABLE_MESSAGE, null), { error: "", bail: true });
        assert.deepEqual(runResult(1, null), { error: "Program exited with non-zero exit code: 1", bail: false });
        assert.deepEqual(runResult(null, "SIGKILL"), { error: "Program exited due to signal SIGKILL", bail: false });
    });
});

describe("gRPC service (in-process)", () => {
    let server: grpc.Server;
    let client: langrpc.LanguageRuntimeClient;
    let dir: string;
    let runner: string;
    const savedRunPath = process.env.PULUMI_LANGUAGE_NODEJS_RUN_PATH;

    before(async () => {
        dir = tmpdir();
        writeJson(path.join(dir, "node_modules/@pulumi/tls/package.json"), {
            name: "@pulumi/tls",
            version: "5.6.1",
            pulumi: { resource: true, name: "tls", version: "5.6.1" },
        });
        // A fake runner: records its argv, cwd and config env, then exits as the program asks.
        runner = path.join(dir, "fake-run.js");
        fs.writeFileSync(
            runner,
            `const fs = require("fs");
             fs.writeFileSync(process.env.FAKE_RUN_OUT, JSON.stringify({ argv: process.argv.slice(2), cwd: process.cwd(),
               config: process.env.PULUMI_CONFIG, secrets: process.env.PULUMI_CONFIG_SECRET_KEYS,
               ts: process.env.PULUMI_NODEJS_TYPESCRIPT }));
             process.stdout.write("hello from the program\\n");
             process.exit(Number(process.env.FAKE_RUN_EXIT || 0));`,
        );
        process.env.PULUMI_LANGUAGE_NODEJS_RUN_PATH = runner;
        const started = await serve(new LanguageHost("127.0.0.1:9"));
        server = started.server;
        client = new langrpc.LanguageRuntimeClient(`127.0.0.1:${started.port}`, grpc.credentials.createInsecure());
    });

    after(() => {
        client?.close();
        server?.forceShutdown();
        if (savedRunPath === undefined) delete process.env.PULUMI_LANGUAGE_NODEJS_RUN_PATH;
        else process.env.PULUMI_LANGUAGE_NODEJS_RUN_PATH = savedRunPath;
    });

    const rpc = <Res>(invoke: (cb: (err: grpc.ServiceError | null, res: Res) => void) => unknown): Promise<Res> =>
        new Promise((resolve, reject) => {
            invoke((err, res) => (err ? reject(err) : resolve(res)));
        });

    const info = (): langproto.ProgramInfo => new langproto.ProgramInfo().setRootDirectory(dir).setProgramDirectory(dir).setEntryPoint(".").setOptions(structproto.Struct.fromJavaScript({}));

    it("answers GetPluginInfo, Handshake and About", async () => {
        const pluginInfo = await rpc<plugproto.PluginInfo>((cb) => client.getPluginInfo(new emptyproto.Empty(), cb));
        assert.equal(pluginInfo.getVersion(), HOST_VERSION);
        await rpc<langproto.LanguageHandshakeResponse>((cb) => client.handshake(new langproto.LanguageHandshakeRequest().setEngineAddress("127.0.0.1:2222"), cb));
        const about = await rpc<langproto.AboutResponse>((cb) => client.about(new langproto.AboutRequest().setInfo(info()), cb));
        assert.equal(about.getVersion(), process.versions.node);
    });

    it("answers GetRequiredPackages and GetRequiredPlugins from node_modules", async () => {
        const pkgs = await rpc<langproto.GetRequiredPackagesResponse>((cb) => client.getRequiredPackages(new langproto.GetRequiredPackagesRequest().setInfo(info()), cb));
        assert.deepEqual(
            pkgs.getPackagesList().map((p) => [p.getName(), p.getKind(), p.getVersion()]),
            [["tls", "resource", "v5.6.1"]],
        );
        const plugins = await rpc<langproto.GetRequiredPluginsResponse>((cb) => client.getRequiredPlugins(new langproto.GetRequiredPluginsRequest().setInfo(info()), cb));
        assert.deepEqual(
            plugins.getPluginsList().map((p) => [p.getName(), p.getKind(), p.getVersion()]),
            [["tls", "resource", "v5.6.1"]],
        );
    });

    const runRequest = (): langproto.RunRequest => {
        const req = new langproto.RunRequest()
            .setProject("proj")
            .setStack("dev")
            .setMonitorAddress("127.0.0.1:1111")
            .setDryrun(true)
            .setParallel(4)
            .setConfigsecretkeysList(["proj:token"])
            .setInfo(info());
        req.getConfigMap().set("proj:greeting", "hi");
        return req;
    };

    it("Run starts the runner with the engine's settings and reports success", async () => {
        const out = path.join(dir, "run-ok.json");
        process.env.FAKE_RUN_OUT = out;
        process.env.FAKE_RUN_EXIT = "0";
        const res = await rpc<langproto.RunResponse>((cb) => client.run(runRequest(), cb));
        assert.equal(res.getError(), "");
        assert.equal(res.getBail(), false);
        const seen = JSON.parse(fs.readFileSync(out, "utf8")) as {
            argv: string[];
            cwd: string;
            config: string;
            secrets: string;
            ts: string;
        };
        assert.equal(seen.cwd, fs.realpathSync(dir));
        assert.deepEqual(seen.argv, [
            "--monitor",
            "127.0.0.1:1111",
            "--engine",
            "127.0.0.1:2222", // from the Handshake above
            "--project",
            "proj",
            "--root-directory",
            dir,
            "--stack",
            "dev",
            "--pwd",
            dir,
            "--dry-run",
            "--parallel",
            "4",
            ".",
        ]);
        assert.equal(seen.config, JSON.stringify({ "proj:config:greeting": "hi" }));
        assert.equal(seen.secrets, JSON.stringify(["proj:token"]));
        assert.equal(seen.ts, "true");
    });

    it("Run reports a failed program as an error, and an already-reported one as bail", async () => {
        process.env.FAKE_RUN_OUT = path.join(dir, "run-fail.json");
        process.env.FAKE_RUN_EXIT = "3";
        const failed = await rpc<langproto.RunResponse>((cb) => client.run(runRequest(), cb));
        assert.equal(failed.getError(), "Program exited with non-zero exit code: 3");
        assert.equal(failed.getBail(), false);

        process.env.FAKE_RUN_EXIT = String(EXIT_AFTER_LOGGING_USER_ACTIONABLE_MESSAGE);
        const bailed = await rpc<langproto.RunResponse>((cb) => client.run(runRequest(), cb));
        assert.equal(bailed.getError(), "");
        assert.equal(bailed.getBail(), true);
    });

    it("Run explains a missing SDK instead of failing obscurely", async () => {
        delete process.env.PULUMI_LANGUAGE_NODEJS_RUN_PATH;
        try {
            const res = await rpc<langproto.RunResponse>((cb) => client.run(runRequest(), cb)); // dir has no @pulumi/pulumi
            assert.match(res.getError(), /Pulumi SDK has not been installed.*npm ci/);
        } finally {
            process.env.PULUMI_LANGUAGE_NODEJS_RUN_PATH = runner;
        }
    });

    it("InstallDependencies streams npm install's output, and its failure", async () => {
        // A fake npm first on PATH: prints to both streams and exits with FAKE_NPM_EXIT.
        const bin = path.join(dir, "bin");
        fs.mkdirSync(bin, { recursive: true });
        fs.writeFileSync(path.join(bin, "npm"), `#!/bin/sh\necho "fake npm $*"\necho "fake warning" >&2\nexit \${FAKE_NPM_EXIT:-0}\n`, { mode: 0o755 });
        const savedPath = process.env.PATH;
        process.env.PATH = `${bin}:${savedPath}`;
        const install = (): Promise<{ out: string; err: string; error?: grpc.ServiceError }> =>
            new Promise((resolve) => {
                let out = "";
                let err = "";
                const stream = client.installDependencies(new langproto.InstallDependenciesRequest().setInfo(info()));
                stream.on("data", (msg: langproto.InstallDependenciesResponse) => {
                    out += Buffer.from(msg.getStdout_asU8()).toString();
                    err += Buffer.from(msg.getStderr_asU8()).toString();
                });
                stream.on("error", (error: grpc.ServiceError) => resolve({ out, err, error }));
                stream.on("end", () => resolve({ out, err }));
            });
        try {
            process.env.FAKE_NPM_EXIT = "0";
            const ok = await install();
            assert.equal(ok.error, undefined);
            assert.match(ok.out, /\$ npm install \(in .*\)\n/);
            assert.match(ok.out, /fake npm install\n/);
            assert.equal(ok.err, "fake warning\n");

            process.env.FAKE_NPM_EXIT = "1";
            const failed = await install();
            assert.match(failed.error?.details ?? "", /npm install exited with code 1; run 'npm ci'/);
        } finally {
            process.env.PATH = savedPath;
            delete process.env.FAKE_NPM_EXIT;
        }
    });

    it("answers UNIMPLEMENTED for code generation", async () => {
        await assert.rejects(
            rpc<langproto.GenerateProjectResponse>((cb) => client.generateProject(new langproto.GenerateProjectRequest(), cb)),
            (err: grpc.ServiceError) => err.code === grpc.status.UNIMPLEMENTED,
        );
    });
});
