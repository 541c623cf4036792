/**
 * The package's entry point (`import { Devpi } from "devpi-pulumi"`): the Devpi component, its
 * argument and output types, the per-server component, and the stack-config adapter for
 * programs configured the way this project's own stacks are.
 */
export { Devpi, LEGACY_NAME } from "./deployment/devpi";
export type {
    AccessArgs,
    BackupArgs,
    CertificateWindows,
    ClientArgs,
    DevpiArgs,
    IndexArgs,
    ReplicaTarget,
    ServerClientSettings,
    ServerOptions,
    ServerTarget,
    SshTarget,
    TlsArgs,
    UserArgs,
} from "./deployment/devpiArgs";
export { DevpiHost } from "./deployment/devpiHost";
export { ConfigError } from "../config/errors";
export { devpiArgsFromConfig, fromStackConfig } from "../config/toArgs";
