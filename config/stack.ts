/** Feeds {@link loadConfig} the running stack's config (the fixed `devpi:` namespace). */
import * as pulumi from "@pulumi/pulumi";
import * as runtimeConfig from "@pulumi/pulumi/runtime/config";
import { ConfigError } from "./errors";
import { loadConfig } from "./load";
import { DevpiConfig } from "./types";

/**
 * Reads and validates the running stack's config (the `devpi:` namespace). A bad value fails the
 * program with a RunError, which Pulumi shows without a stack trace.
 */
export function readStackConfig(): DevpiConfig {
    // Fixed, whatever the project is called: a program that embeds the stack adapter keeps `devpi:` keys.
    const prefix = "devpi:";
    // The SDK knows which keys were set with --secret but does not declare that function in its types.
    const { isConfigSecret } = runtimeConfig as unknown as { isConfigSecret?: (key: string) => boolean };
    try {
        const cfg = loadConfig(
            (key) => pulumi.runtime.getConfig(prefix + key),
            Object.keys(pulumi.runtime.allConfig())
                .filter((k) => k.startsWith(prefix))
                .map((k) => k.slice(prefix.length)),
            new Date(),
            isConfigSecret ? (key) => isConfigSecret(prefix + key) : undefined,
        );
        for (const w of cfg.warnings) void pulumi.log.warn(w);
        return cfg;
    } catch (e) {
        throw e instanceof ConfigError ? new pulumi.RunError(e.message) : e;
    }
}
