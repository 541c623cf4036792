/**
 * The stack's configuration (the `devpi:` keys): read once, validated before any server is
 * touched, and turned into the {@link DevpiArgs} of the `Devpi` component by {@link fromStackConfig}.
 */
export * from "./errors";
export * from "./keys";
export { loadConfig } from "./load";
export { parseOffsite } from "./offsite";
export type { OffsiteConfig } from "./offsite";
export { SYSTEM_DIRS } from "./rules";
export { FALLBACK_VENV_VERSIONS_DIR, LEGACY_SECRET_FILE } from "../components/constants";
export { readStackConfig } from "./stack";
export * from "./types";
export { devpiArgsFromConfig, fromStackConfig } from "./toArgs";
