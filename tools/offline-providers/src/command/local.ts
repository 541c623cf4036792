// command:local:Command handler for the offline stand-in provider. Mirrors
// pulumi-command v1.2.1 provider/pkg/provider/local/commandController.go
// (create/update/delete, shared with remote in CommandHandlerBase) and
// commandOutputs.go (run: interpreter, dir, environment, stdin,
// PULUMI_COMMAND_STDOUT/STDERR, logging, outputs, errors).

import type { ChildProcess } from "node:child_process";
import type * as provider from "@pulumi/pulumi/provider";
import type { Logger } from "../common/engine";
import { RawMap, deepUnwrap, isUnset, unwrap, wasSecret } from "../common/props";
import { defaultInterpreter, runLocal } from "./exec";
import { CommandHandlerBase, CommandKey, OrderedLog } from "./handler";
import { LOCAL_UNSUPPORTED_INPUTS, checkLocalCommand, commandError, diffLocalCommand, environmentEntries, previousOutputEnv, shouldLog, trimOneNewline, unsupportedLocalInputMessage } from "./logic";

/** The argv upstream runs: `interpreter` if set and non-empty, else the default, then the command. */
export function localArgs(interpreter: unknown, cmd: string): string[] {
    const i = deepUnwrap(interpreter);
    if (i !== undefined && i !== null && (!Array.isArray(i) || i.some((a) => typeof a !== "string"))) {
        throw new Error("interpreter must be a list of strings");
    }
    const base = Array.isArray(i) && i.length > 0 ? (i as string[]) : defaultInterpreter();
    return [...base, cmd];
}

export class LocalCommandHandler extends CommandHandlerBase {
    private readonly running = new Set<ChildProcess>();

    constructor(
        private readonly logger: Logger,
        /** The provider's own environment, which commands inherit (default process.env). */
        private readonly baseEnv?: NodeJS.ProcessEnv,
    ) {
        super();
    }

    check(_urn: string, _olds: RawMap, news: RawMap): provider.CheckResult {
        return checkLocalCommand(news);
    }

    diff(_id: string, _urn: string, olds: RawMap, news: RawMap): provider.DiffResult {
        return diffLocalCommand(olds, news);
    }

    /** Provider Cancel: upstream's exec.CommandContext kills (SIGKILL) the running processes. */
    cancel(): Promise<void> {
        for (const c of this.running) {
            c.kill("SIGKILL");
        }
        return Promise.resolve();
    }

    /** local.run: run `state[key]` through the interpreter and capture its output. */
    protected async run(urn: string, state: RawMap, key: CommandKey): Promise<{ stdout: string; stderr: string }> {
        for (const k of LOCAL_UNSUPPORTED_INPUTS) {
            if (!isUnset(state[k])) {
                throw new Error(unsupportedLocalInputMessage(k));
            }
        }
        const cmd = unwrap(state[key]);
        if (typeof cmd !== "string") {
            throw new Error(`${key} must be a string`);
        }
        const args = localArgs(state.interpreter, cmd);
        const dir = deepUnwrap(state.dir);
        if (dir !== undefined && dir !== null && typeof dir !== "string") {
            throw new Error("dir must be a string");
        }
        const stdin = deepUnwrap(state.stdin);
        const log = shouldLog(state.logging);
        const logs = new OrderedLog(this.logger, urn);
        let child: ChildProcess | undefined;
        try {
            const res = await runLocal({
                args,
                dir: dir ?? undefined,
                // os.Environ(), then `environment`, then PULUMI_COMMAND_STDOUT/STDERR: the last one wins.
                extraEnv: [...environmentEntries(state.environment), ...previousOutputEnv(state)],
                stdin: typeof stdin === "string" ? stdin : undefined,
                logStdout: log.stdout,
                logStderr: log.stderr,
                onLine: (line) => void logs.emit("info", line, true),
                onStart: (c) => {
                    child = c;
                    this.running.add(c);
                },
                baseEnv: this.baseEnv,
            });
            await logs.flush();
            if (res.error !== undefined) {
                throw new Error(commandError(res.error, cmd, res.combined, wasSecret(state[key])));
            }
            return { stdout: trimOneNewline(res.stdout), stderr: trimOneNewline(res.stderr) };
        } finally {
            if (child) {
                this.running.delete(child);
            }
            await logs.flush();
        }
    }
}
