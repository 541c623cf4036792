/**
 * A program that makes its own server and puts devpi on it, in one `pulumi up`: the server's
 * outputs (address, SSH port, host key, private key) feed `new Devpi(...)` directly.
 *
 * The server here is a disposable Debian host on this machine (this repository's
 * scripts/testhost/up.sh, a chroot with its own sshd on 127.0.0.1), created and destroyed by a
 * `command.local.Command`: it stands in for a cloud VM such as `aws.ec2.Instance` or
 * `hcloud.Server` (see the README for that variant). It needs root, like the test hosts.
 */
import * as path from "node:path";
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { Devpi } from "devpi-pulumi";

const cfg = new pulumi.Config();
const serverName = cfg.get("serverName") ?? "own-server";
const sshPort = cfg.getNumber("sshPort") ?? 26501;
const httpsPort = cfg.getNumber("httpsPort") ?? 26543;
const scripts = path.resolve(cfg.get("testhostScripts") ?? "../../scripts/testhost");

/** What the server hands over, as a cloud VM's outputs would. */
interface MadeServer {
    host: string;
    port: number;
    user: string;
    hostKey: string;
    privateKey: string;
}

// up.sh prints TESTHOST_* assignments; the step turns them into one JSON document on stdout,
// which carries the private key: stdout is a secret output and never logged.
const made = new command.local.Command(
    "server",
    {
        create: `set -euo pipefail
eval "$(bash ${JSON.stringify(path.join(scripts, "up.sh"))} ${serverName} ${sshPort})"
export TESTHOST_SSH_HOST TESTHOST_SSH_PORT TESTHOST_SSH_USER TESTHOST_HOST_KEY TESTHOST_SSH_KEY
python3 - <<'PY'
import json, os, sys
e = os.environ
with open(e["TESTHOST_SSH_KEY"]) as key:
    json.dump({"host": e["TESTHOST_SSH_HOST"], "port": int(e["TESTHOST_SSH_PORT"]), "user": e["TESTHOST_SSH_USER"],
               "hostKey": e["TESTHOST_HOST_KEY"], "privateKey": key.read()}, sys.stdout)
PY
`,
        delete: `bash ${JSON.stringify(path.join(scripts, "down.sh"))} ${serverName}`,
        interpreter: ["/bin/bash", "-c"],
        logging: "stderr",
    },
    { additionalSecretOutputs: ["stdout"] },
);
const server = made.stdout.apply((s) => JSON.parse(s) as MadeServer);

const devpi = new Devpi("example", {
    server: {
        ssh: {
            host: server.host,
            port: server.port,
            user: server.user,
            privateKey: pulumi.secret(server.privateKey),
            hostKey: server.hostKey,
        },
        domain: "localhost",
        httpPort: 26580,
        httpsPort,
        devpiPort: 26540,
    },
    options: { listenIpv6: false, upstreamCaBundle: "/etc/ssl/certs/ca-certificates.crt" },
    access: {
        rootPassword: cfg.requireSecret("rootPassword"),
        users: [{ name: "alice", password: cfg.requireSecret("aliceIndexPassword") }],
        indexes: [{ name: "alice/dev" }],
    },
});

export const url = devpi.url;
export const pipIndexUrl = devpi.pipIndexUrl;
export const caCertificate = devpi.caCertificate;
export const healthCheck = devpi.healthCheck;
