// Test support: start a stand-in provider plugin exactly as the Pulumi engine
// does (exec the launcher with the engine's gRPC address, read the port from
// the first stdout line) and talk to it over the ResourceProvider protocol.
// A fake engine records the Log RPCs the plugin sends.

import * as child_process from "node:child_process";
import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as emptyproto from "google-protobuf/google/protobuf/empty_pb";
import * as structproto from "google-protobuf/google/protobuf/struct_pb";
import * as engrpc from "@pulumi/pulumi/proto/engine_grpc_pb";
import * as engproto from "@pulumi/pulumi/proto/engine_pb";
import * as plugproto from "@pulumi/pulumi/proto/plugin_pb";
import * as provrpc from "@pulumi/pulumi/proto/provider_grpc_pb";
import * as provproto from "@pulumi/pulumi/proto/provider_pb";

export const BIN_DIR = path.resolve(__dirname, "..", "bin");

export interface EngineLog {
    severity: "debug" | "info" | "warning" | "error";
    message: string;
    urn: string;
    ephemeral: boolean;
}

export interface DiffReply {
    changes: "none" | "some" | "unknown";
    replaces: string[];
    deleteBeforeReplace: boolean;
}

type Props = Record<string, unknown>;

function toStruct(p: Props): structproto.Struct {
    return structproto.Struct.fromJavaScript(p as Record<string, structproto.JavaScriptValue>);
}

const severityNames: Record<number, EngineLog["severity"]> = {
    [engproto.LogSeverity.DEBUG]: "debug",
    [engproto.LogSeverity.INFO]: "info",
    [engproto.LogSeverity.WARNING]: "warning",
    [engproto.LogSeverity.ERROR]: "error",
};

function unary<Req, Res>(fn: (req: Req, cb: (err: grpc.ServiceError | null, res: Res) => void) => unknown, req: Req): Promise<Res> {
    return new Promise((resolve, reject) => {
        fn(req, (err, res) => (err ? reject(err) : resolve(res)));
    });
}

export class PluginUnderTest {
    private constructor(
        readonly proc: child_process.ChildProcess,
        readonly client: provrpc.ResourceProviderClient,
        private readonly engine: grpc.Server,
        /** Log RPCs received by the fake engine. */
        readonly logs: EngineLog[],
        private readonly stderrChunks: string[],
    ) {}

    get stderr(): string {
        return this.stderrChunks.join("");
    }

    static async start(name: "command" | "tls", env: NodeJS.ProcessEnv = process.env): Promise<PluginUnderTest> {
        const logs: EngineLog[] = [];
        const engine = new grpc.Server();
        engine.addService(engrpc.EngineService, {
            log: (call: grpc.ServerUnaryCall<engproto.LogRequest, emptyproto.Empty>, cb: grpc.sendUnaryData<emptyproto.Empty>) => {
                const r = call.request;
                logs.push({
                    severity: severityNames[r.getSeverity()] ?? "info",
                    message: r.getMessage(),
                    urn: r.getUrn(),
                    ephemeral: r.getEphemeral(),
                });
                cb(null, new emptyproto.Empty());
            },
        });
        const enginePort = await new Promise<number>((resolve, reject) => engine.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))));
        const proc = child_process.spawn(path.join(BIN_DIR, `pulumi-resource-${name}`), [`127.0.0.1:${enginePort}`], {
            env,
            stdio: ["ignore", "pipe", "pipe"],
        });
        const stderrChunks: string[] = [];
        proc.stderr.on("data", (d: Buffer) => stderrChunks.push(d.toString()));
        const stderr = () => stderrChunks.join("");
        const port = await new Promise<number>((resolve, reject) => {
            let out = "";
            const timer = setTimeout(() => reject(new Error(`plugin did not print its port in time; stderr: ${stderr()}`)), 30_000);
            proc.stdout.on("data", (d: Buffer) => {
                out += d.toString();
                const nl = out.indexOf("\n");
                if (nl >= 0) {
                    clearTimeout(timer);
                    resolve(Number(out.slice(0, nl).trim()));
                }
            });
            proc.once("exit", (code) => {
                clearTimeout(timer);
                reject(new Error(`plugin exited with ${code} before printing its port; stderr: ${stderr()}`));
            });
        });
        const client = new provrpc.ResourceProviderClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
        return new PluginUnderTest(proc, client, engine, logs, stderrChunks);
    }

    async stop(): Promise<void> {
        this.client.close();
        if (this.proc.exitCode === null) {
            this.proc.kill("SIGTERM");
            await new Promise((r) => this.proc.once("exit", r));
        }
        await new Promise<void>((r) => this.engine.tryShutdown(() => r()));
    }

    async pluginVersion(): Promise<string> {
        const info = await unary<emptyproto.Empty, plugproto.PluginInfo>(this.client.getPluginInfo.bind(this.client), new emptyproto.Empty());
        return info.getVersion();
    }

    async check(urn: string, olds: Props, news: Props): Promise<{ inputs: Props; failures: { property: string; reason: string }[] }> {
        const req = new provproto.CheckRequest();
        req.setUrn(urn);
        req.setOlds(toStruct(olds));
        req.setNews(toStruct(news));
        const res = await unary<provproto.CheckRequest, provproto.CheckResponse>(this.client.check.bind(this.client), req);
        return {
            inputs: res.getInputs()?.toJavaScript() ?? {},
            failures: res.getFailuresList().map((f) => ({ property: f.getProperty(), reason: f.getReason() })),
        };
    }

    async diff(id: string, urn: string, olds: Props, news: Props): Promise<DiffReply> {
        const req = new provproto.DiffRequest();
        req.setId(id);
        req.setUrn(urn);
        req.setOlds(toStruct(olds));
        req.setNews(toStruct(news));
        const res = await unary<provproto.DiffRequest, provproto.DiffResponse>(this.client.diff.bind(this.client), req);
        const c = res.getChanges();
        return {
            changes: c === provproto.DiffResponse.DiffChanges.DIFF_SOME ? "some" : c === provproto.DiffResponse.DiffChanges.DIFF_NONE ? "none" : "unknown",
            replaces: res.getReplacesList(),
            deleteBeforeReplace: res.getDeletebeforereplace(),
        };
    }

    async create(urn: string, props: Props): Promise<{ id: string; outs: Props }> {
        const req = new provproto.CreateRequest();
        req.setUrn(urn);
        req.setProperties(toStruct(props));
        const res = await unary<provproto.CreateRequest, provproto.CreateResponse>(this.client.create.bind(this.client), req);
        return { id: res.getId(), outs: res.getProperties()?.toJavaScript() ?? {} };
    }

    async read(id: string, urn: string, props: Props): Promise<{ id: string; props: Props }> {
        const req = new provproto.ReadRequest();
        req.setId(id);
        req.setUrn(urn);
        req.setProperties(toStruct(props));
        const res = await unary<provproto.ReadRequest, provproto.ReadResponse>(this.client.read.bind(this.client), req);
        return { id: res.getId(), props: res.getProperties()?.toJavaScript() ?? {} };
    }

    async update(id: string, urn: string, olds: Props, news: Props): Promise<Props> {
        const req = new provproto.UpdateRequest();
        req.setId(id);
        req.setUrn(urn);
        req.setOlds(toStruct(olds));
        req.setNews(toStruct(news));
        const res = await unary<provproto.UpdateRequest, provproto.UpdateResponse>(this.client.update.bind(this.client), req);
        return res.getProperties()?.toJavaScript() ?? {};
    }

    async delete(id: string, urn: string, props: Props): Promise<void> {
        const req = new provproto.DeleteRequest();
        req.setId(id);
        req.setUrn(urn);
        req.setProperties(toStruct(props));
        await unary<provproto.DeleteRequest, emptyproto.Empty>(this.client.delete.bind(this.client), req);
    }
}

export function urnOf(type: string, name: string): string {
    return `urn:pulumi:test::offline-providers::${type}::${name}`;
}
