/**
 * How a step that reads through nginx learns the CA to trust and, where reads need a user
 * (`devpi:reads authenticated`), whom to read as: both on stdin, never in its argv or a file.
 */
import * as pulumi from "@pulumi/pulumi";

/** The devpi user a step reads as where reads are restricted (root, with devpi:rootPassword). */
export interface ReadCredential {
    user: string;
    password: pulumi.Input<string>;
}

/**
 * Python (stdlib only) that reads the step's stdin: the CA certificate (PEM, or empty), or JSON
 * `{"ca", "user", "password"}`. Sets `ca` and `auth` (an Authorization header value, or None).
 * Needs `base64`, `json` and `sys` imported.
 */
export const READ_CREDENTIAL_PY = `raw = sys.stdin.read()
auth = None
if raw.startswith("{"):
    payload = json.loads(raw)
    ca = payload["ca"]
    auth = "Basic " + base64.b64encode(("%s:%s" % (payload["user"], payload["password"])).encode()).decode()
else:
    ca = raw`;

/**
 * The step's stdin: the CA alone (as before reads could be restricted, so such stacks see no
 * change), or with a credential the CA and the credential as JSON, a Pulumi secret.
 */
export function caAndCredential(caPem: pulumi.Input<string>, credential?: ReadCredential): { stdin: pulumi.Input<string>; secret: boolean } {
    if (!credential) return { stdin: caPem, secret: false };
    return {
        stdin: pulumi.secret(pulumi.all([caPem, credential.password]).apply(([ca, password]) => JSON.stringify({ ca, user: credential.user, password }))),
        secret: true,
    };
}
