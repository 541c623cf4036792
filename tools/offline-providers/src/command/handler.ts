// Resource handlers of the offline stand-in for pulumi-resource-command.
// CommandHandlerBase is the create/update/delete flow that upstream's
// remote/commandController.go and local/commandController.go share;
// RemoteCommandHandler runs the commands over SSH (local.ts runs them here).

import * as crypto from "node:crypto";
import type * as provider from "@pulumi/pulumi/provider";
import type { Client } from "ssh2";
import type { Logger } from "../common/engine";
import { RawMap, UNKNOWN, containsUnknown, deepUnwrap, isUnset, nameFromUrn, unwrap, wasSecret } from "../common/props";
import type { ResourceHandler } from "../common/serve";
import { checkCommand, commandError, diffCommand, environmentEntries, previousOutputEnv, setenvRejectedMessage, shouldLog, trimOneNewline, updateCommandKey } from "./logic";
import { DialHooks, dial, parseConnection, runInSession } from "./ssh";

export { PULUMI_COMMAND_STDERR, PULUMI_COMMAND_STDOUT } from "./logic";

export type CommandKey = "create" | "update" | "delete";

/** Sends engine log messages for one run in order, without blocking the data path. */
export class OrderedLog {
    private chain: Promise<void> = Promise.resolve();

    constructor(
        private readonly logger: Logger,
        private readonly urn: string,
    ) {}

    emit(severity: "info" | "warning" | "error", message: string, ephemeral: boolean): Promise<void> {
        this.chain = this.chain.then(() => this.logger.log(severity, message, this.urn, ephemeral));
        return this.chain;
    }

    /** Resolves once every message emitted so far has been sent. */
    flush(): Promise<void> {
        return this.chain;
    }
}

/**
 * The Create/Read/Update/Delete flow of upstream's remote and local
 * commandController.go (identical for both): create runs `create` if set;
 * update keeps the previous stdout/stderr and runs `update`, else `create`,
 * else nothing; delete runs `delete` if set; read keeps the state. `run`
 * executes `state[key]` with the state's settings and returns the new
 * stdout/stderr (PULUMI_COMMAND_STDOUT/STDERR come from `state.stdout/stderr`).
 */
export abstract class CommandHandlerBase implements ResourceHandler {
    abstract check(urn: string, olds: RawMap, news: RawMap): provider.CheckResult;
    abstract diff(id: string, urn: string, olds: RawMap, news: RawMap): provider.DiffResult;
    protected abstract run(urn: string, state: RawMap, key: CommandKey): Promise<{ stdout: string; stderr: string }>;
    /** Provider Cancel: stop what is running (upstream cancels the request contexts). */
    abstract cancel(): Promise<void>;

    async create(urn: string, inputs: RawMap): Promise<provider.CreateResult> {
        // resource.NewUniqueHex(name, 8, 0): the resource name plus 8 random hex digits.
        const id = nameFromUrn(urn) + crypto.randomBytes(4).toString("hex");
        if (containsUnknown(inputs)) {
            // Only happens during a preview, which runs nothing (the engine does not
            // normally call Create then, since this provider does not opt into previews).
            return { id, outs: { ...inputs, stdout: UNKNOWN, stderr: UNKNOWN } };
        }
        const outs: RawMap = { ...inputs, stdout: "", stderr: "" };
        if (isUnset(inputs.create)) {
            return { id, outs };
        }
        const r = await this.run(urn, outs, "create");
        return { id, outs: { ...outs, ...r } };
    }

    read(id: string, _urn: string, props: RawMap): provider.ReadResult {
        // Upstream has no custom Read: refresh keeps the recorded state.
        return { id, props };
    }

    async update(_id: string, urn: string, olds: RawMap, news: RawMap): Promise<provider.UpdateResult> {
        // The previous stdout/stderr carry over (and feed PULUMI_COMMAND_STDOUT/STDERR).
        const state: RawMap = { ...news, stdout: olds.stdout ?? "", stderr: olds.stderr ?? "" };
        if (containsUnknown(news)) {
            return { outs: { ...state, stdout: UNKNOWN, stderr: UNKNOWN } };
        }
        const key = updateCommandKey(news);
        if (key) {
            Object.assign(state, await this.run(urn, state, key));
        }
        return { outs: state };
    }

    async delete(_id: string, urn: string, props: RawMap): Promise<void> {
        if (!isUnset(props.delete)) {
            await this.run(urn, props, "delete");
        }
    }
}

export class RemoteCommandHandler extends CommandHandlerBase {
    private readonly active = new Set<Client>();
    private abort = new AbortController();

    constructor(
        private readonly logger: Logger,
        private readonly dialDelays?: DialHooks["delays"],
    ) {
        super();
    }

    check(_urn: string, _olds: RawMap, news: RawMap): provider.CheckResult {
        return checkCommand(news);
    }

    diff(_id: string, _urn: string, olds: RawMap, news: RawMap): provider.DiffResult {
        return diffCommand(olds, news);
    }

    /** Provider Cancel: abort dials and close open connections. */
    cancel(): Promise<void> {
        this.abort.abort();
        for (const c of this.active) {
            c.end();
        }
        this.abort = new AbortController();
        return Promise.resolve();
    }

    /** CommandOutputs.run: dial, set the environment, run `state[key]`, capture output. */
    protected async run(urn: string, state: RawMap, key: CommandKey): Promise<{ stdout: string; stderr: string }> {
        const cmd = unwrap(state[key]);
        if (typeof cmd !== "string") {
            throw new Error(`${key} must be a string`);
        }
        const conn = parseConnection(deepUnwrap(state.connection));
        const env = environmentEntries(state.environment);
        const optionalEnv = previousOutputEnv(state);
        const stdinRaw = deepUnwrap(state.stdin);
        const log = shouldLog(state.logging);
        const logs = new OrderedLog(this.logger, urn);

        const client = await dial(conn, { status: (m) => void logs.emit("info", m, true), signal: this.abort.signal, delays: this.dialDelays }, this.active);
        try {
            const res = await runInSession(client, cmd, {
                env,
                optionalEnv,
                stdin: typeof stdinRaw === "string" ? stdinRaw : undefined,
                logStdout: log.stdout,
                logStderr: log.stderr,
                onLine: (line) => void logs.emit("info", line, true),
                onEnvRejected: (k, required) => logs.emit(required ? "error" : "warning", setenvRejectedMessage(k), false),
            });
            await logs.flush();
            if (res.exitError) {
                throw new Error(commandError(res.exitError, cmd, res.combined, wasSecret(state[key])));
            }
            return { stdout: trimOneNewline(res.stdout), stderr: trimOneNewline(res.stderr) };
        } finally {
            await logs.flush();
            client.end();
        }
    }
}
