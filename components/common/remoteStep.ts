/**
 * The one way this program runs something on the server: a `remote.Command` whose scripts run
 * as root. The scripts travel on stdin ahead of the secrets (see `stepCommand` in ./shell), so
 * the command line stays one short line that names the step.
 */
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { stepCommand, stepStdin } from "./shell";

/** Where and as whom remote steps run. */
export interface RemoteHost {
    /** SSH connection (the private key inside is a secret). */
    connection: pulumi.Input<command.types.input.remote.ConnectionArgs>;
    /** The SSH login; anything but root runs scripts through `sudo -n`. */
    sshUser: pulumi.Input<string>;
}

export interface StepArgs {
    /** Script run on create, and again whenever any input changes (it is idempotent). */
    create: pulumi.Input<string>;
    /**
     * Re-runs `create` whenever `value` changes although the script itself did not (e.g. the
     * devpi version it was last checked against, a restart token): rendered as the script's first
     * line, `# LABEL VALUE`, so the change shows in `pulumi preview --diff` and is an update of
     * the step, never a replacement (a command's `triggers` would replace it: delete, then create).
     */
    rerunWhen?: { label: string; value: pulumi.Input<string> };
    /** Script run when the resource is deleted: it undoes `create`, keeping user data. */
    delete?: pulumi.Input<string>;
    /** Stdin for every script. Secret stdin makes the step secret-aware (no logging). */
    stdin?: pulumi.Input<string>;
    /** Whether stdin carries a secret. */
    secret?: boolean;
    /** Whether stdout carries a secret (kept encrypted in state, never logged). */
    secretOutput?: boolean;
}

/**
 * Creates one idempotent remote step named `name` under `parent`.
 * Scripts are given as bash bodies; they are wrapped to run as root with the shared prelude.
 */
export function remoteStep(name: string, host: RemoteHost, args: StepArgs, opts: pulumi.CustomResourceOptions): command.remote.Command {
    const rerun = args.rerunWhen;
    const create = rerun ? pulumi.all([rerun.value, args.create]).apply(([v, c]) => `# ${rerun.label} ${v}\n${c}`) : pulumi.output(args.create);
    const del = args.delete === undefined ? undefined : pulumi.output(args.delete);
    const stdin = pulumi.all([create, del, args.stdin]).apply(([c, d, payload]) => stepStdin(c, d, payload ?? ""));
    return new command.remote.Command(
        name,
        {
            connection: host.connection,
            create: pulumi.all([create, host.sshUser]).apply(([c, user]) => stepCommand(name, "create", c, user)),
            delete: del ? pulumi.all([del, host.sshUser]).apply(([d, user]) => stepCommand(name, "delete", d, user)) : undefined,
            // The scripts (shown by `pulumi preview --diff`), then the payload. A change to either
            // re-runs the step. Secret whenever the payload is.
            stdin: args.secret ? pulumi.secret(stdin) : stdin,
            // Previous stdout is not needed by any script; keep the environment empty (stock sshd rejects it).
            addPreviousOutputInEnv: false,
            logging: args.secret || args.secretOutput ? "none" : "stdoutAndStderr",
        },
        {
            // A step's delete undoes its create on the same paths: replacing it the default way
            // (create the new one, then delete the old one) would remove what the new one just
            // made, e.g. `pulumi up --replace` of the nginx site deleted the site it had rewritten.
            deleteBeforeReplace: args.delete !== undefined,
            ...opts,
            additionalSecretOutputs: args.secret || args.secretOutput ? [...(args.secret ? ["stdin"] : []), ...(args.secretOutput ? ["stdout"] : [])] : undefined,
        },
    );
}
