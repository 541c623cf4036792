// command:remote:Command handler for the offline stand-in provider.
// Mirrors pulumi-command v1.2.1 provider/pkg/provider/remote/commandController.go.

import * as crypto from "node:crypto";
import type * as provider from "@pulumi/pulumi/provider";
import type { Client } from "ssh2";
import type { Logger } from "../common/engine";
import { RawMap, UNKNOWN, containsUnknown, deepUnwrap, isUnset, nameFromUrn, unwrap, wasSecret } from "../common/props";
import type { ResourceHandler } from "../common/serve";
import { checkCommand, commandError, diffCommand, setenvRejectedMessage, shouldLog, trimOneNewline } from "./logic";
import { DialHooks, dial, parseConnection, runInSession } from "./ssh";

export const PULUMI_COMMAND_STDOUT = "PULUMI_COMMAND_STDOUT";
export const PULUMI_COMMAND_STDERR = "PULUMI_COMMAND_STDERR";

type CommandKey = "create" | "update" | "delete";

export class RemoteCommandHandler implements ResourceHandler {
    private readonly active = new Set<Client>();
    private abort = new AbortController();

    constructor(
        private readonly logger: Logger,
        private readonly dialDelays?: DialHooks["delays"],
    ) {}

    check(_urn: string, _olds: RawMap, news: RawMap): provider.CheckResult {
        return checkCommand(news);
    }

    diff(_id: string, _urn: string, olds: RawMap, news: RawMap): provider.DiffResult {
        return diffCommand(olds, news);
    }

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
        const key: CommandKey | undefined = !isUnset(news.update) ? "update" : !isUnset(news.create) ? "create" : undefined;
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
    private async run(urn: string, state: RawMap, key: CommandKey): Promise<{ stdout: string; stderr: string }> {
        const cmd = unwrap(state[key]);
        if (typeof cmd !== "string") {
            throw new Error(`${key} must be a string`);
        }
        const conn = parseConnection(deepUnwrap(state.connection));
        const envRaw = deepUnwrap(state.environment);
        const env: [string, string][] = [];
        if (envRaw !== undefined && envRaw !== null) {
            if (typeof envRaw !== "object" || Array.isArray(envRaw)) {
                throw new Error("environment must be a map of strings");
            }
            for (const k of Object.keys(envRaw).sort()) {
                env.push([k, String((envRaw as Record<string, unknown>)[k])]);
            }
        }
        const optionalEnv: [string, string][] = [];
        if (unwrap(state.addPreviousOutputInEnv) !== false) {
            const prevOut = deepUnwrap(state.stdout);
            const prevErr = deepUnwrap(state.stderr);
            if (typeof prevOut === "string" && prevOut !== "") {
                optionalEnv.push([PULUMI_COMMAND_STDOUT, prevOut]);
            }
            if (typeof prevErr === "string" && prevErr !== "") {
                optionalEnv.push([PULUMI_COMMAND_STDERR, prevErr]);
            }
        }
        const stdinRaw = deepUnwrap(state.stdin);
        const log = shouldLog(state.logging);

        // Keep engine log messages in order without blocking the data path.
        let logChain: Promise<void> = Promise.resolve();
        const emit = (severity: "info" | "warning" | "error", message: string, ephemeral: boolean) => {
            logChain = logChain.then(() => this.logger.log(severity, message, urn, ephemeral));
        };

        const client = await dial(conn, { status: (m) => emit("info", m, true), signal: this.abort.signal, delays: this.dialDelays }, this.active);
        try {
            const res = await runInSession(client, cmd, {
                env,
                optionalEnv,
                stdin: typeof stdinRaw === "string" ? stdinRaw : undefined,
                logStdout: log.stdout,
                logStderr: log.stderr,
                onLine: (line) => emit("info", line, true),
                onEnvRejected: (k, required) => {
                    emit(required ? "error" : "warning", setenvRejectedMessage(k), false);
                    return logChain;
                },
            });
            await logChain;
            if (res.exitError) {
                throw new Error(commandError(res.exitError, cmd, res.combined, wasSecret(state[key])));
            }
            return { stdout: trimOneNewline(res.stdout), stderr: trimOneNewline(res.stderr) };
        } finally {
            await logChain;
            client.end();
        }
    }
}
