// A small stand-in for Pulumi's Node.js language host (`pulumi-language-nodejs`).
//
// Why it exists: `pulumi preview/up/destroy` on a TypeScript project need the engine's Node.js language plugin, a Go
// binary that Pulumi ships only in its release archives. On our machines only package registries are reachable, and
// the Go module proxy here does not serve its module (github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3,
// see docs/toolchain.md for the evidence), so the official host cannot be installed or built. scripts/toolchain.sh
// uses this stand-in only when no official host is found; with internet, install the official CLI instead.
//
// What it does: it serves the LanguageRuntime gRPC service (proto/pulumi/language.proto) with the generated stubs
// that ship inside @pulumi/pulumi. Like the official host, `Run` starts the program with @pulumi/pulumi's own runner
// (`@pulumi/pulumi/cmd/run`), which compiles TypeScript with ts-node (the project's, else the copy vendored in
// @pulumi/pulumi) and the project's `typescript`, and talks to the engine's resource monitor. Unlike the official host
// it gives the runner the monitor address directly (no forwarding proxy) and offers no synchronous-invoke pipes, no
// debugger attach, no `bun` runtime and no code generation (those calls answer UNIMPLEMENTED).
//
// Plugin contract: the engine runs `pulumi-language-nodejs [flags] ENGINE_ADDRESS`; we listen on 127.0.0.1 on a free
// port and print that port on stdout. Anything printed afterwards (including the program's own output) is shown by the
// engine as the program's output.
import { spawn, type ChildProcess } from "child_process";
import * as fs from "fs";
import { createRequire } from "module";
import * as net from "net";
import * as path from "path";

import * as grpc from "@grpc/grpc-js";
import * as langrpc from "@pulumi/pulumi/proto/language_grpc_pb";
import * as langproto from "@pulumi/pulumi/proto/language_pb";
import * as plugproto from "@pulumi/pulumi/proto/plugin_pb";
import * as emptyproto from "google-protobuf/google/protobuf/empty_pb";

export const HOST_VERSION = "0.1.0";

/** Exit code with which @pulumi/pulumi's runner says "the error was already shown to the user". */
export const EXIT_AFTER_LOGGING_USER_ACTIONABLE_MESSAGE = 32;

/** The Node.js used for programs: the one running this host (the launcher picks Node >= 22). */
const nodeBin = process.execPath;

// ---- Pure helpers (unit-tested) -------------------------------------------------------------------------------------

/**
 * Config keys come as `<namespace>:<name>`; @pulumi/pulumi's runner reads PULUMI_CONFIG with the legacy
 * `<namespace>:config:<name>` keys, so they are rewritten as the official host does.
 */
export function transformConfig(config: Record<string, string>): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [key, value] of Object.entries(config)) {
        const parts = key.split(":");
        if (parts.length === 2) {
            out[`${parts[0]}:config:${parts[1]}`] = value;
        } else if (parts.length === 3 && parts[1] === "config") {
            out[key] = value;
        } else {
            throw new Error(`could not parse ${key} as a configuration key (configuration keys should be of the form \`<namespace>:<name>\`)`);
        }
    }
    return out;
}

export interface NodeOptions {
    typescript: boolean;
    tsconfigpath: string;
    nodeargs: string;
}

/** The `runtime.options` of Pulumi.yaml that matter for running a program (typescript defaults to true). */
export function parseOptions(options: Record<string, unknown>): NodeOptions {
    const opts: NodeOptions = { typescript: true, tsconfigpath: "", nodeargs: "" };
    const check = (key: string, type: "boolean" | "string"): unknown => {
        const value = options[key];
        if (value !== undefined && typeof value !== type) {
            throw new Error(`${key} option must be a ${type}`);
        }
        return value;
    };
    const ts = check("typescript", "boolean");
    if (ts !== undefined) opts.typescript = ts as boolean;
    opts.tsconfigpath = (check("tsconfig", "string") as string | undefined) ?? "";
    opts.nodeargs = (check("nodeargs", "string") as string | undefined) ?? "";
    return opts;
}

/** Splits `nodeargs` like a POSIX shell would for simple cases: whitespace, single and double quotes, backslash. */
export function splitArgs(s: string): string[] {
    const args: string[] = [];
    let cur = "";
    let inArg = false;
    let quote: "'" | '"' | undefined;
    for (let i = 0; i < s.length; i++) {
        const c = s[i];
        if (quote) {
            if (c === quote) quote = undefined;
            else if (c === "\\" && quote === '"' && i + 1 < s.length) cur += s[++i];
            else cur += c;
        } else if (c === "'" || c === '"') {
            quote = c;
            inArg = true;
        } else if (c === "\\" && i + 1 < s.length) {
            cur += s[++i];
            inArg = true;
        } else if (/\s/.test(c)) {
            if (inArg) args.push(cur);
            cur = "";
            inArg = false;
        } else {
            cur += c;
            inArg = true;
        }
    }
    if (quote) throw new Error(`unterminated quote in nodeargs: ${s}`);
    if (inArg) args.push(cur);
    return args;
}

export interface PulumiPackage {
    name: string;
    version: string;
    server: string;
    parameterization?: { name: string; version: string; value: string };
}

interface PackageJson {
    name?: string;
    version?: string;
    pulumi?: {
        resource?: boolean;
        name?: string;
        version?: string;
        server?: string;
        parameterization?: { name: string; version: string; value: string };
    };
    dependencies?: Record<string, string>;
    devDependencies?: Record<string, string>;
}

function readJson(file: string): PackageJson | undefined {
    try {
        return JSON.parse(fs.readFileSync(file, "utf8")) as PackageJson;
    } catch {
        return undefined;
    }
}

/** The provider plugin a package.json asks for (its `pulumi` section with `resource: true`), if any. */
export function pluginOf(pkg: PackageJson): PulumiPackage | undefined {
    const p = pkg.pulumi;
    if (!p || !p.resource) return undefined;
    let name = p.name;
    if (!name) {
        if (!pkg.name?.startsWith("@pulumi/")) {
            throw new Error(`Missing property "name" for the third-party plugin '${pkg.name}' inside package.json under the "pulumi" section.`);
        }
        name = pkg.name.slice("@pulumi/".length);
    }
    const version = p.version || pkg.version;
    if (!version) throw new Error(`Missing expected "version" property in package ${pkg.name}`);
    return {
        name,
        version: version.startsWith("v") ? version : `v${version}`,
        server: p.server ?? "",
        parameterization: p.parameterization,
    };
}

/**
 * Lists the provider plugins of every package installed under `dir/node_modules`, nested node_modules included,
 * following symlinks (each real directory is read once). Problems are reported to `warn` and skipped.
 */
export function findPulumiPackages(dir: string, warn: (msg: string) => void = () => undefined): PulumiPackage[] {
    const found = new Map<string, PulumiPackage>();
    const visited = new Set<string>();
    const visitNodeModules = (nm: string): void => {
        let real: string;
        try {
            real = fs.realpathSync(nm);
        } catch {
            return; // no node_modules here
        }
        if (visited.has(real)) return;
        visited.add(real);
        for (const entry of fs.readdirSync(real)) {
            if (entry.startsWith(".")) continue;
            const full = path.join(real, entry);
            if (entry.startsWith("@")) {
                let scoped: string[] = [];
                try {
                    scoped = fs.readdirSync(full);
                } catch {
                    continue;
                }
                for (const sub of scoped) visitPackage(path.join(full, sub));
            } else {
                visitPackage(full);
            }
        }
    };
    const visitPackage = (pkgDir: string): void => {
        const pkg = readJson(path.join(pkgDir, "package.json"));
        if (pkg) {
            try {
                const plugin = pluginOf(pkg);
                if (plugin) found.set(`${plugin.name}@${plugin.version}`, plugin);
            } catch (err) {
                warn(`${pkgDir}/package.json: ${(err as Error).message}`);
            }
        }
        visitNodeModules(path.join(pkgDir, "node_modules"));
    };
    visitNodeModules(path.join(dir, "node_modules"));
    return [...found.values()].sort((a, b) => a.name.localeCompare(b.name) || a.version.localeCompare(b.version));
}

/** What `Run` needs from a RunRequest, as plain data. */
export interface RunSpec {
    monitorAddress: string;
    engineAddress: string;
    organization: string;
    project: string;
    stack: string;
    rootDirectory: string;
    programDirectory: string;
    entryPoint: string;
    args: string[];
    config: Record<string, string>;
    configSecretKeys: string[];
    dryRun: boolean;
    parallel: number;
    options: Record<string, unknown>;
    tracing: string;
}

/** The Node.js argv and extra environment for running a program with @pulumi/pulumi's runner at `runPath`. */
export function runCommand(spec: RunSpec, runPath: string): { args: string[]; env: Record<string, string> } {
    const opts = parseOptions(spec.options);
    const args = [...splitArgs(opts.nodeargs), runPath];
    const flag = (name: string, value: string): void => {
        if (value) args.push(`--${name}`, value);
    };
    flag("monitor", spec.monitorAddress);
    flag("engine", spec.engineAddress);
    flag("organization", spec.organization);
    flag("project", spec.project);
    flag("root-directory", spec.rootDirectory);
    flag("stack", spec.stack);
    flag("pwd", spec.programDirectory);
    if (spec.dryRun) args.push("--dry-run");
    flag("parallel", String(spec.parallel));
    flag("tracing", spec.tracing);
    args.push(spec.entryPoint || ".", ...spec.args);

    const env: Record<string, string> = {
        PULUMI_CONFIG: JSON.stringify(transformConfig(spec.config)),
        PULUMI_CONFIG_SECRET_KEYS: JSON.stringify(spec.configSecretKeys),
    };
    if (opts.typescript) env.PULUMI_NODEJS_TYPESCRIPT = "true";
    if (opts.tsconfigpath) env.PULUMI_NODEJS_TSCONFIG_PATH = opts.tsconfigpath;
    return { args, env };
}

/** Maps how the program's process ended to a RunResponse's `error` and `bail`, as the official host does. */
export function runResult(code: number | null, signal: NodeJS.Signals | null): { error: string; bail: boolean } {
    if (code === 0) return { error: "", bail: false };
    if (code === EXIT_AFTER_LOGGING_USER_ACTIONABLE_MESSAGE) return { error: "", bail: true };
    if (code === null) return { error: `Program exited due to signal ${signal ?? "unknown"}`, bail: false };
    return { error: `Program exited with non-zero exit code: ${code}`, bail: false };
}

/** Resolves @pulumi/pulumi's program runner from the program's directory (PULUMI_LANGUAGE_NODEJS_RUN_PATH overrides). */
export function locateRunner(programDirectory: string): string {
    const mod = process.env.PULUMI_LANGUAGE_NODEJS_RUN_PATH || "@pulumi/pulumi/cmd/run";
    try {
        return createRequire(path.join(programDirectory, "__pulumi_language_nodejs__.js")).resolve(mod);
    } catch {
        throw new Error(`It looks like the Pulumi SDK has not been installed: cannot find ${mod} from ${programDirectory}. Have you run npm ci (or npm install)?`);
    }
}

// ---- The gRPC service ------------------------------------------------------------------------------------------------

const children = new Set<ChildProcess>();

function unimplemented(what: string): grpc.ServiceError {
    const err = new Error(`${what} is not supported by the stand-in Node.js language host`) as grpc.ServiceError;
    err.code = grpc.status.UNIMPLEMENTED;
    return err;
}

function programInfo(info: langproto.ProgramInfo | undefined, fallbackDir: string) {
    return {
        rootDirectory: info?.getRootDirectory() || fallbackDir,
        programDirectory: info?.getProgramDirectory() || fallbackDir,
        entryPoint: info?.getEntryPoint() || ".",
        options: (info?.getOptions()?.toJavaScript() ?? {}) as Record<string, unknown>,
    };
}

function logWarning(msg: string): void {
    process.stderr.write(`warning: ${msg}\n`);
}

export class LanguageHost {
    constructor(
        public engineAddress: string,
        private readonly tracing = "",
    ) {}

    handshake = (call: grpc.ServerUnaryCall<langproto.LanguageHandshakeRequest, langproto.LanguageHandshakeResponse>, callback: grpc.sendUnaryData<langproto.LanguageHandshakeResponse>): void => {
        this.engineAddress = call.request.getEngineAddress() || this.engineAddress;
        callback(null, new langproto.LanguageHandshakeResponse());
    };

    getPluginInfo = (_call: grpc.ServerUnaryCall<emptyproto.Empty, plugproto.PluginInfo>, callback: grpc.sendUnaryData<plugproto.PluginInfo>): void => {
        callback(null, new plugproto.PluginInfo().setVersion(HOST_VERSION));
    };

    getRequiredPackages = (
        call: grpc.ServerUnaryCall<langproto.GetRequiredPackagesRequest, langproto.GetRequiredPackagesResponse>,
        callback: grpc.sendUnaryData<langproto.GetRequiredPackagesResponse>,
    ): void => {
        const info = programInfo(call.request.getInfo(), process.cwd());
        const deps = findPulumiPackages(info.programDirectory, logWarning).map((p) => {
            const dep = new plugproto.PackageDependency().setName(p.name).setKind("resource").setVersion(p.version).setServer(p.server);
            if (p.parameterization) {
                dep.setParameterization(new plugproto.PackageParameterization().setName(p.parameterization.name).setVersion(p.parameterization.version).setValue(p.parameterization.value));
            }
            return dep;
        });
        callback(null, new langproto.GetRequiredPackagesResponse().setPackagesList(deps));
    };

    getRequiredPlugins = (
        call: grpc.ServerUnaryCall<langproto.GetRequiredPluginsRequest, langproto.GetRequiredPluginsResponse>,
        callback: grpc.sendUnaryData<langproto.GetRequiredPluginsResponse>,
    ): void => {
        const info = programInfo(call.request.getInfo(), call.request.getPwd() || process.cwd());
        const plugins = findPulumiPackages(info.programDirectory, logWarning)
            .filter((p) => !p.parameterization)
            .map((p) => new plugproto.PluginDependency().setName(p.name).setKind("resource").setVersion(p.version).setServer(p.server));
        callback(null, new langproto.GetRequiredPluginsResponse().setPluginsList(plugins));
    };

    run = (call: grpc.ServerUnaryCall<langproto.RunRequest, langproto.RunResponse>, callback: grpc.sendUnaryData<langproto.RunResponse>): void => {
        const req = call.request;
        const respond = (r: { error: string; bail: boolean }): void => callback(null, new langproto.RunResponse().setError(r.error).setBail(r.bail));
        if (req.getAttachDebugger()) {
            respond({ error: "attaching a debugger is not supported by the stand-in Node.js language host", bail: false });
            return;
        }
        let command: { args: string[]; env: Record<string, string> };
        const info = programInfo(req.getInfo(), req.getPwd() || process.cwd());
        try {
            const config: Record<string, string> = {};
            req.getConfigMap().forEach((value, key) => {
                config[key] = value;
            });
            const spec: RunSpec = {
                ...info,
                entryPoint: req.getInfo()?.getEntryPoint() || req.getProgram() || ".",
                monitorAddress: req.getMonitorAddress(),
                engineAddress: this.engineAddress,
                organization: req.getOrganization(),
                project: req.getProject(),
                stack: req.getStack(),
                args: req.getArgsList(),
                config,
                configSecretKeys: req.getConfigsecretkeysList(),
                dryRun: req.getDryrun(),
                parallel: req.getParallel(),
                tracing: this.tracing,
            };
            command = runCommand(spec, locateRunner(info.programDirectory));
        } catch (err) {
            respond({ error: (err as Error).message, bail: false });
            return;
        }
        // The program's output goes straight to our stdout/stderr, which the engine shows.
        const child = spawn(nodeBin, command.args, {
            cwd: info.programDirectory,
            env: { ...process.env, ...command.env },
            stdio: ["ignore", "inherit", "inherit"],
        });
        children.add(child);
        call.on("cancelled", () => stopChild(child));
        let done = false;
        child.on("error", (err) => {
            if (done) return;
            done = true;
            children.delete(child);
            respond({ error: `Problem executing program (could not run language executor): ${err.message}`, bail: false });
        });
        child.on("exit", (code, signal) => {
            if (done) return;
            done = true;
            children.delete(child);
            respond(runResult(code, signal));
        });
    };

    installDependencies = (call: grpc.ServerWritableStream<langproto.InstallDependenciesRequest, langproto.InstallDependenciesResponse>): void => {
        const info = programInfo(call.request.getInfo(), call.request.getDirectory() || process.cwd());
        const dir = info.programDirectory;
        const send = (stream: "stdout" | "stderr", data: Uint8Array | string): void => {
            // A string given to a bytes field would be taken as base64, so always send bytes.
            const bytes = typeof data === "string" ? Buffer.from(data) : data;
            const msg = new langproto.InstallDependenciesResponse();
            if (stream === "stdout") msg.setStdout(bytes);
            else msg.setStderr(bytes);
            call.write(msg);
        };
        send("stdout", `$ npm install (in ${dir})\n`);
        const child = spawn("npm", ["install"], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
        child.stdout.on("data", (d: Buffer) => send("stdout", d));
        child.stderr.on("data", (d: Buffer) => send("stderr", d));
        const fail = (msg: string): void => void call.emit("error", Object.assign(new Error(`${msg}; run 'npm ci' in ${dir} yourself`), { code: grpc.status.UNKNOWN }));
        child.on("error", (err) => fail(`could not run npm: ${err.message}`));
        child.on("exit", (code) => (code === 0 ? call.end() : fail(`npm install exited with code ${code}`)));
    };

    about = (_call: grpc.ServerUnaryCall<langproto.AboutRequest, langproto.AboutResponse>, callback: grpc.sendUnaryData<langproto.AboutResponse>): void => {
        const resp = new langproto.AboutResponse().setExecutable(nodeBin).setVersion(process.versions.node);
        resp.getMetadataMap().set("languageHost", `stand-in ${HOST_VERSION} (tools/pulumi-language-nodejs)`);
        callback(null, resp);
    };

    getProgramDependencies = (
        call: grpc.ServerUnaryCall<langproto.GetProgramDependenciesRequest, langproto.GetProgramDependenciesResponse>,
        callback: grpc.sendUnaryData<langproto.GetProgramDependenciesResponse>,
    ): void => {
        const info = programInfo(call.request.getInfo(), call.request.getPwd() || process.cwd());
        const deps = programDependencies(info.programDirectory).map(([name, version]) => new langproto.DependencyInfo().setName(name).setVersion(version));
        callback(null, new langproto.GetProgramDependenciesResponse().setDependenciesList(deps));
    };

    runtimeOptionsPrompts = (_call: grpc.ServerUnaryCall<langproto.RuntimeOptionsRequest, langproto.RuntimeOptionsResponse>, callback: grpc.sendUnaryData<langproto.RuntimeOptionsResponse>): void => {
        callback(null, new langproto.RuntimeOptionsResponse());
    };

    cancel = (_call: grpc.ServerUnaryCall<emptyproto.Empty, emptyproto.Empty>, callback: grpc.sendUnaryData<emptyproto.Empty>): void => {
        for (const child of children) stopChild(child);
        callback(null, new emptyproto.Empty());
    };

    /** The handlers, checked against the generated service interface. */
    implementation(): langrpc.ILanguageRuntimeServer {
        return {
            handshake: this.handshake,
            getPluginInfo: this.getPluginInfo,
            getRequiredPackages: this.getRequiredPackages,
            getRequiredPlugins: this.getRequiredPlugins,
            run: this.run,
            installDependencies: this.installDependencies,
            about: this.about,
            getProgramDependencies: this.getProgramDependencies,
            runtimeOptionsPrompts: this.runtimeOptionsPrompts,
            cancel: this.cancel,
            template: this.template,
            runPlugin: this.runPlugin,
            generateProgram: this.generateProgram,
            generateProject: this.generateProject,
            generatePackage: this.generatePackage,
            pack: this.pack,
            link: this.link,
        };
    }

    template = (_call: unknown, callback: grpc.sendUnaryData<langproto.TemplateResponse>): void => callback(unimplemented("Template"), null);
    runPlugin = (call: grpc.ServerWritableStream<langproto.RunPluginRequest, langproto.RunPluginResponse>): void => void call.emit("error", unimplemented("RunPlugin (Node.js plugins)"));
    generateProgram = (_call: unknown, callback: grpc.sendUnaryData<langproto.GenerateProgramResponse>): void => callback(unimplemented("GenerateProgram"), null);
    generateProject = (_call: unknown, callback: grpc.sendUnaryData<langproto.GenerateProjectResponse>): void => callback(unimplemented("GenerateProject"), null);
    generatePackage = (_call: unknown, callback: grpc.sendUnaryData<langproto.GeneratePackageResponse>): void => callback(unimplemented("GeneratePackage"), null);
    pack = (_call: unknown, callback: grpc.sendUnaryData<langproto.PackResponse>): void => callback(unimplemented("Pack"), null);
    link = (_call: unknown, callback: grpc.sendUnaryData<langproto.LinkResponse>): void => callback(unimplemented("Link"), null);
}

/** `[name, installed version]` for the dependencies in the program's package.json (declared range if not installed). */
export function programDependencies(programDirectory: string): Array<[string, string]> {
    const pkg = readJson(path.join(programDirectory, "package.json")) ?? {};
    const names = Object.entries({ ...pkg.devDependencies, ...pkg.dependencies });
    return names
        .map(([name, range]): [string, string] => {
            let dir = programDirectory;
            for (;;) {
                const installed = readJson(path.join(dir, "node_modules", name, "package.json"));
                if (installed?.version) return [name, installed.version];
                const parent = path.dirname(dir);
                if (parent === dir) return [name, range];
                dir = parent;
            }
        })
        .sort(([a], [b]) => a.localeCompare(b));
}

function stopChild(child: ChildProcess): void {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGINT");
    setTimeout(() => child.kill("SIGKILL"), 5000).unref();
}

/** Starts the server on 127.0.0.1 (a free port unless given) and resolves to the server and its port. */
export function serve(host: LanguageHost, port = 0): Promise<{ server: grpc.Server; port: number }> {
    const server = new grpc.Server({
        "grpc.max_receive_message_length": 400 * 1024 * 1024,
        "grpc.max_send_message_length": 400 * 1024 * 1024,
    });
    server.addService(langrpc.LanguageRuntimeService, host.implementation());
    return new Promise((resolve, reject) => {
        server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve({ server, port: bound })));
    });
}

/** Parses the plugin's command line: Go-style flags (`-x`, `--x`, `--x=v`, `--x v`) then the engine address. */
export function parseArgs(argv: string[]): { engineAddress: string; tracing: string; version: boolean } {
    const withValue = new Set(["tracing", "runtime"]);
    const result = { engineAddress: "", tracing: "", version: false };
    const positional: string[] = [];
    for (let i = 0; i < argv.length; i++) {
        const arg = argv[i];
        const m = /^--?([^=]+)(?:=(.*))?$/.exec(arg);
        if (!m || arg === "-" || arg === "--") {
            positional.push(...(arg === "--" ? argv.slice(i + 1) : [arg]));
            if (arg === "--") break;
            continue;
        }
        const [, name, inline] = m;
        const value = inline ?? (withValue.has(name) ? (argv[++i] ?? "") : "");
        if (name === "tracing") result.tracing = value;
        else if (name === "version") result.version = true;
        else if (name === "runtime" && value !== "nodejs") throw new Error(`unsupported runtime: ${value}`);
    }
    result.engineAddress = positional[0] ?? "";
    return result;
}

/** Exits when the engine stops listening (the official host health-checks the engine the same way). */
function watchEngine(address: string): void {
    const sep = address.lastIndexOf(":");
    if (sep < 0) return;
    const hostname = address.slice(0, sep).replace(/^\[|\]$/g, "");
    const port = Number(address.slice(sep + 1));
    let failures = 0;
    const timer = setInterval(() => {
        const sock = net.connect({ host: hostname, port });
        sock.setTimeout(5000);
        sock.once("connect", () => {
            failures = 0;
            sock.destroy();
        });
        const failed = (): void => {
            sock.destroy();
            if (++failures >= 3) shutdown(0);
        };
        sock.once("error", failed);
        sock.once("timeout", failed);
    }, 5000);
    timer.unref();
}

function shutdown(code: number): never {
    for (const child of children) child.kill("SIGKILL");
    process.exit(code);
}

export async function main(argv: string[]): Promise<void> {
    const args = parseArgs(argv);
    if (args.version) {
        process.stdout.write(`${HOST_VERSION}\n`);
        return;
    }
    const { port } = await serve(new LanguageHost(args.engineAddress, args.tracing));
    process.stdout.write(`${port}\n`);
    if (args.engineAddress) watchEngine(args.engineAddress);
    for (const sig of ["SIGINT", "SIGTERM"] as const) {
        process.on(sig, () => {
            for (const child of children) stopChild(child);
            setTimeout(() => shutdown(1), 5000).unref();
            if (children.size === 0) shutdown(0);
        });
    }
}

if (require.main === module) {
    main(process.argv.slice(2)).catch((err: Error) => {
        process.stderr.write(`pulumi-language-nodejs: ${err.message}\n`);
        process.exit(1);
    });
}
