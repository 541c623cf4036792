/**
 * Runs the whole program (index.ts) under Pulumi's mocks with a given stack config and records
 * every resource it registers: type, name, parent, dependsOn (captured with a stack
 * transformation, since mocks do not report it), inputs, additional secret outputs and, for
 * remote commands, which of stdin/create/connection are secret. Each test file runs in its own
 * process, so each may load the program once with its own config.
 */
import * as pulumi from "@pulumi/pulumi";

export interface Registered {
    type: string;
    name: string;
    parent?: string;
    dependsOn: string[];
    inputs: Record<string, unknown>;
    secretOutputs: string[];
    /** How many aliases it was registered with. */
    aliases: number;
}

export interface ProgramUnderMocks {
    registered: Map<string, Registered>;
    /** Per remote command: whether its stdin, create and connection inputs are secret. */
    secretInputs: Map<string, Promise<Record<string, boolean>>>;
    exports: Record<string, unknown>;
}

export const TEST_SSH_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n";

/** A pinned SSH host key for the stack configs (devpi:hostKey is required). */
export const TEST_HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB";

/** What the mocked tls resources return as their certificate. */
export const TEST_CERT = `-----BEGIN CERTIFICATE-----
MIIBfTCCASOgAwIBAgIUUZ2M8Tp9tM3bF1fO/2bqYKQH8gUwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MB4XDTI2MTEyNTAwMDAwMFoXDTM2MTEyMzAw
MDAwMFowFDESMBAGA1UEAwwJbG9jYWxob3N0MFkwEwYHKoZIzj0CAQYIKoZIzj0D
AQcDQgAEZ1xXHnKfz6QF3oZ2mXmzJX0RuNV6hQ0S3n2tGZcl4Ry4F1bkbqWmFvZb
gF7QxUq0qBeJx3t8cO2qAOOlO8vcUaNTMFEwHQYDVR0OBBYEFJ8qNnF6M3Qn0Ktf
cBqz5N0Yh3x9MB8GA1UdIwQYMBaAFJ8qNnF6M3Qn0KtfcBqz5N0Yh3x9MA8GA1Ud
EwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIhAJ9YcF3wJ6vQ3xWQ8k8m8n0b
t7sGq2h8Qe7m8Yb3zY1nAiB2q8b0hXhTn4v6sQ3Qv3H8m9q6V0h9m8kq4qZQ2m3Q2w==
-----END CERTIFICATE-----`;

function resourceName(r: pulumi.Resource | undefined): Promise<string | undefined> {
    if (!r) return Promise.resolve(undefined);
    return new Promise((resolve) => r.urn.apply((u) => resolve(u.split("::").pop())));
}

/** The resolved value of an Input or Output (secret or not). */
export function value<T>(o: unknown): Promise<T> {
    return new Promise((resolve) => pulumi.output(o as pulumi.Input<T>).apply((v) => resolve(v as T)));
}

/** How resources answer under mocks. */
export interface MockOptions {
    /** Preview (dry run): outputs a resource does not return, or returns as UNKNOWN, are unknown. */
    preview?: boolean;
    /** stdout of remote command `name` ("ok" by default). */
    stdoutOf?: (name: string) => string;
    /** Outputs of other resource types (e.g. a VM's), merged over its inputs. */
    outputsOf?: (type: string, name: string) => Record<string, unknown> | undefined;
}

/** The mocks' spelling of an unknown value (known only after a real deployment). */
export const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

/**
 * Loads index.ts under mocks with `config` (keys `devpi:...`; `secretKeys` are marked secret).
 * Remote commands answer `stdoutOf(name)` ("ok" by default); tls resources answer TEST_CERT.
 */
export async function runProgramUnderMocks(config: Record<string, string>, secretKeys: string[], stdoutOf: (name: string) => string = () => "ok"): Promise<ProgramUnderMocks> {
    pulumi.runtime.setAllConfig(config, secretKeys);
    return runUnderMocks(async () => await import("../../index"), { stdoutOf });
}

/** Runs `program` (which creates resources and returns its exports) under mocks, recording every resource. */
export async function runUnderMocks(program: () => Promise<Record<string, unknown>>, options: MockOptions = {}): Promise<ProgramUnderMocks> {
    const stdoutOf = options.stdoutOf ?? (() => "ok");
    const registered = new Map<string, Registered>();
    const secretInputs = new Map<string, Promise<Record<string, boolean>>>();
    pulumi.runtime.setMocks(
        {
            newResource: (args) => {
                const outputs: Record<string, unknown> = { ...(args.inputs as Record<string, unknown>) };
                if (args.type === "command:remote:Command") Object.assign(outputs, { stdout: stdoutOf(args.name), stderr: "" });
                if (args.type.startsWith("tls:")) Object.assign(outputs, { privateKeyPem: "KEY", certPem: TEST_CERT, certRequestPem: "CSR" });
                Object.assign(outputs, options.outputsOf?.(args.type, args.name) ?? {});
                return { id: `${args.name}-id`, state: outputs };
            },
            call: () => ({}),
        },
        "devpi",
        "test",
        options.preview ?? false,
    );
    const transformation: pulumi.ResourceTransformation = (args) => {
        const opts = args.opts as pulumi.CustomResourceOptions;
        const entry: Registered = {
            type: args.type,
            name: args.name,
            dependsOn: [],
            inputs: args.props,
            secretOutputs: opts.additionalSecretOutputs ?? [],
            aliases: (opts.aliases ?? []).length,
        };
        registered.set(args.name, entry);
        const deps = args.opts.dependsOn;
        const list = (Array.isArray(deps) ? deps : deps ? [deps] : []) as pulumi.Resource[];
        void resourceName(args.opts.parent).then((p) => (entry.parent = p));
        void Promise.all(list.map(resourceName)).then((names) => (entry.dependsOn = names.filter((n): n is string => !!n)));
        if (args.type === "command:remote:Command") {
            const props = args.props as Record<string, unknown>;
            secretInputs.set(
                args.name,
                Promise.all(["stdin", "create", "connection"].map(async (k) => [k, props[k] === undefined ? false : await pulumi.isSecret(pulumi.output(props[k]))] as const)).then(
                    (pairs) => Object.fromEntries(pairs) as Record<string, boolean>,
                ),
            );
        }
        return undefined;
    };
    let exports: Record<string, unknown> = {};
    // Transformations need the root stack resource, which mocks only create inside runInPulumiStack.
    await pulumi.runtime.runInPulumiStack(async () => {
        pulumi.runtime.registerStackTransformation(transformation);
        exports = await program();
        return exports;
    });
    await new Promise((r) => setTimeout(r, 500));
    return { registered, secretInputs, exports };
}
