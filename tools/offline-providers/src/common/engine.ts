// A small client for the engine's Log RPC, so a stand-in provider can report
// diagnostics attached to a resource the way the official Go providers do
// (pulumi-go-provider's logger sends pulumirpc.LogRequest with the URN).

import * as grpc from "@grpc/grpc-js";
import * as engrpc from "@pulumi/pulumi/proto/engine_grpc_pb";
import * as engproto from "@pulumi/pulumi/proto/engine_pb";

export type Severity = "debug" | "info" | "warning" | "error";

export interface Logger {
    log(severity: Severity, message: string, urn?: string, ephemeral?: boolean): Promise<void>;
}

/** The engine address is the first plugin argument that is not a flag (see @pulumi/pulumi/provider/internals). */
export function engineAddressFromArgs(args: string[]): string | undefined {
    for (let i = 0; i < args.length; i++) {
        const a = args[i];
        if (a === "--tracing") {
            i++;
            continue;
        }
        if (a.startsWith("-")) {
            continue;
        }
        return a;
    }
    return undefined;
}

const severities: Record<Severity, engproto.LogSeverity> = {
    debug: engproto.LogSeverity.DEBUG,
    info: engproto.LogSeverity.INFO,
    warning: engproto.LogSeverity.WARNING,
    error: engproto.LogSeverity.ERROR,
};

export class EngineLogger implements Logger {
    private client: engrpc.EngineClient | undefined;

    constructor(private readonly address: string | undefined) {}

    async log(severity: Severity, message: string, urn?: string, ephemeral = false): Promise<void> {
        if (!this.address) {
            // No engine (unit tests): keep stdout clean, it carries the gRPC port.
            process.stderr.write(`[${severity}] ${message}\n`);
            return;
        }
        if (!this.client) {
            this.client = new engrpc.EngineClient(this.address, grpc.credentials.createInsecure());
        }
        const req = new engproto.LogRequest();
        req.setSeverity(severities[severity]);
        req.setMessage(message);
        req.setUrn(urn ?? "");
        req.setEphemeral(ephemeral);
        const client = this.client;
        await new Promise<void>((resolve) => {
            client.log(req, (err) => {
                if (err) {
                    process.stderr.write(`failed to send log to engine: ${err.message}\n`);
                }
                resolve();
            });
        });
    }
}

/** A logger that records messages in memory (for tests). */
export class MemoryLogger implements Logger {
    readonly messages: { severity: Severity; message: string; urn?: string; ephemeral: boolean }[] = [];
    log(severity: Severity, message: string, urn?: string, ephemeral = false): Promise<void> {
        this.messages.push({ severity, message, urn, ephemeral });
        return Promise.resolve();
    }
}
