import * as pulumi from "@pulumi/pulumi";
import { TokenConfig } from "../../config/types";
import { RemoteHost, remoteStep } from "../common/remoteStep";
import { ApiTarget, renderApiScript } from "./devpiApi";

/** devpi-tokens' permission names for each scope. */
export const TOKEN_PERMISSIONS: Record<TokenConfig["scope"], string[]> = {
    read: ["pkg_read"],
    upload: ["pkg_read", "upload"],
};

const DAY_MS = 86_400_000;

/**
 * The token's generation at `now`: it changes every `validDays - renewBeforeDays`, and each change
 * makes a new token. A token made during a generation is valid for `validDays`, so when the next
 * one begins it still has at least `renewBeforeDays` left: a `pulumi up` inside that window
 * replaces it before it expires.
 */
export function tokenGeneration(t: Pick<TokenConfig, "validDays" | "renewBeforeDays">, now: number): number {
    return Math.floor(now / ((t.validDays - t.renewBeforeDays) * DAY_MS));
}

/** The spec the server's token-ensure action receives on stdin. */
export function tokenSpec(t: TokenConfig, now: number): { user: string; allowed: string[]; indexes: string[]; seconds: number; generation: number } {
    return { user: t.user, allowed: TOKEN_PERMISSIONS[t.scope], indexes: t.indexes, seconds: Math.round(t.validDays * 86_400), generation: tokenGeneration(t, now) };
}

export interface DevpiTokenArgs {
    host: RemoteHost;
    api: ApiTarget;
    token: TokenConfig;
    /** The time the run started (ms since the epoch): it picks the token's generation. */
    now: number;
}

/** What the step hands back (secret). */
export interface IssuedToken {
    token: string;
    id: string;
    user: string;
    /** Seconds since the epoch. */
    expires: number;
}

/**
 * A devpi-tokens token (`devpi:index:DevpiToken`) on the primary: made as root for `token.user`,
 * limited to `token.indexes` and to the permissions of its scope, valid for `validDays`. The same
 * spec in the same generation hands back the same token (recorded on the server, root-only); a
 * new generation or another spec makes a new one and revokes the old. Removing it revokes it.
 * The token is a secret output, never logged.
 */
export class DevpiToken extends pulumi.ComponentResource {
    /** The token, for pip/uv/twine as the password of `user` (secret). */
    public readonly token: pulumi.Output<string>;
    /** When it expires (ISO 8601). */
    public readonly expires: pulumi.Output<string>;

    constructor(name: string, args: DevpiTokenArgs, opts?: pulumi.ComponentResourceOptions) {
        super("devpi:index:DevpiToken", name, {}, opts);
        const step = remoteStep(
            `${name}-token`,
            args.host,
            {
                create: renderApiScript(args.api, "token-ensure", args.token.name),
                delete: renderApiScript(args.api, "token-delete", args.token.name),
                stdin: JSON.stringify(tokenSpec(args.token, args.now)),
                secretOutput: true,
            },
            { parent: this },
        );
        const issued = step.stdout.apply((out) => JSON.parse(out.trim().split("\n").pop()!) as IssuedToken);
        this.token = pulumi.secret(issued.apply((t) => t.token));
        this.expires = issued.apply((t) => new Date(t.expires * 1000).toISOString());
        this.registerOutputs({ token: this.token, expires: this.expires });
    }
}
