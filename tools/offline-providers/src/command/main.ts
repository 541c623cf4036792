// Entry point of the offline stand-in for the pulumi-resource-command plugin.
// See docs/offline-providers.md: used only where the official plugin cannot be installed.

import * as pulumiProvider from "@pulumi/pulumi/provider";
import { EngineLogger, engineAddressFromArgs } from "../common/engine";
import { makeProvider, requireNode22 } from "../common/serve";
import { RemoteCommandHandler } from "./handler";
import { LocalCommandHandler } from "./local";

/** The version the @pulumi/command 1.2.1 SDK asks the engine for. */
export const COMMAND_PLUGIN_VERSION = "1.2.1";

const LOGGING_VALUES = ["stdout", "stderr", "stdoutAndStderr", "none"];

/** A small schema describing what the stand-in implements (the engine does not need more for `pulumi up`). */
export const COMMAND_SCHEMA = JSON.stringify({
    name: "command",
    version: COMMAND_PLUGIN_VERSION,
    description: "Offline stand-in for the Pulumi Command provider (command:remote:Command and command:local:Command only).",
    resources: {
        "command:remote:Command": {
            inputProperties: {
                connection: { $ref: "#/types/command:remote:Connection", secret: true },
                create: { type: "string" },
                update: { type: "string" },
                delete: { type: "string" },
                environment: { type: "object", additionalProperties: { type: "string" } },
                stdin: { type: "string" },
                triggers: { type: "array", items: { $ref: "pulumi.json#/Any" }, replaceOnChanges: true },
                addPreviousOutputInEnv: { type: "boolean" },
                logging: { $ref: "#/types/command:remote:Logging" },
            },
            requiredInputs: ["connection"],
            properties: {
                connection: { $ref: "#/types/command:remote:Connection", secret: true },
                stdout: { type: "string" },
                stderr: { type: "string" },
            },
            required: ["connection", "stdout", "stderr"],
        },
        "command:local:Command": {
            inputProperties: {
                create: { type: "string" },
                update: { type: "string" },
                delete: { type: "string" },
                interpreter: { type: "array", items: { type: "string" } },
                dir: { type: "string" },
                environment: { type: "object", additionalProperties: { type: "string" } },
                stdin: { type: "string" },
                triggers: { type: "array", items: { $ref: "pulumi.json#/Any" }, replaceOnChanges: true },
                addPreviousOutputInEnv: { type: "boolean" },
                logging: { $ref: "#/types/command:local:Logging" },
                // Accepted by the schema, refused by the stand-in's check (not implemented).
                assetPaths: { type: "array", items: { type: "string" } },
                archivePaths: { type: "array", items: { type: "string" } },
            },
            properties: {
                stdout: { type: "string" },
                stderr: { type: "string" },
                assets: { type: "object", additionalProperties: { $ref: "pulumi.json#/Any" } },
                archive: { $ref: "pulumi.json#/Archive" },
            },
            required: ["stdout", "stderr"],
        },
    },
    types: {
        "command:local:Logging": { type: "string", enum: LOGGING_VALUES.map((value) => ({ value })) },
        "command:remote:Logging": { type: "string", enum: LOGGING_VALUES.map((value) => ({ value })) },
    },
});

export async function serve(args: string[]): Promise<void> {
    const logger = new EngineLogger(engineAddressFromArgs(args));
    const remote = new RemoteCommandHandler(logger);
    const local = new LocalCommandHandler(logger);
    const p = makeProvider(
        COMMAND_PLUGIN_VERSION,
        { "command:remote:Command": remote, "command:local:Command": local },
        {
            schema: COMMAND_SCHEMA,
            cancel: async () => {
                await Promise.all([remote.cancel(), local.cancel()]);
            },
        },
    );
    await pulumiProvider.main(p, args);
}

if (require.main === module) {
    requireNode22();
    serve(process.argv.slice(2)).catch((e: Error) => {
        process.stderr.write(`pulumi-resource-command (offline stand-in): ${e.stack ?? e.message}\n`);
        process.exit(1);
    });
}
