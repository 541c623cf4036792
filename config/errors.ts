/** Errors of the stack configuration: each names the key, the bad value and what is allowed. */

/** Thrown for any invalid stack configuration. */
export class ConfigError extends Error {
    constructor(message: string) {
        super(message);
        this.name = "ConfigError";
    }
}

/** Throws a {@link ConfigError} for stack key `key` (shown as `devpi:KEY`). */
export function fail(key: string, value: unknown, allowed: string): never {
    const shown = JSON.stringify(value) ?? String(value);
    throw new ConfigError(`devpi:${key}: invalid value ${shown}: ${allowed}`);
}
