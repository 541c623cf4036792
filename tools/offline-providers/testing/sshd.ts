// Test support: a throwaway OpenSSH server on 127.0.0.1 (own config, host key
// and authorized_keys in a temp dir) for exercising the command stand-in
// against a real sshd. Needs root and /usr/sbin/sshd (Debian: openssh-server).

import * as child_process from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";

export interface TestSshd {
    host: string;
    port: number;
    user: string;
    /** The server's host public key as an authorized_keys line ("ssh-ed25519 AAAA..."). */
    hostKey: string;
    /** An ed25519 client key (OpenSSH format, made by ssh-keygen) that the server accepts. */
    clientKey: string;
    dir: string;
    stop(): Promise<void>;
}

export const SSHD = "/usr/sbin/sshd";

/** Why a real sshd cannot be used here, or undefined if it can. */
export function sshdUnavailableReason(): string | undefined {
    if (process.platform !== "linux") {
        return "needs Linux";
    }
    if (typeof process.getuid === "function" && process.getuid() !== 0) {
        return "needs root to run a throwaway sshd";
    }
    if (!fs.existsSync(SSHD)) {
        return `${SSHD} not found (apt-get install openssh-server)`;
    }
    if (child_process.spawnSync("ssh-keygen", ["-?"], { stdio: "ignore" }).error) {
        return "ssh-keygen not found (apt-get install openssh-client)";
    }
    return undefined;
}

function freePort(): Promise<number> {
    return new Promise((resolve, reject) => {
        const srv = net.createServer();
        srv.once("error", reject);
        srv.listen(0, "127.0.0.1", () => {
            const port = (srv.address() as net.AddressInfo).port;
            srv.close(() => resolve(port));
        });
    });
}

async function waitForPort(port: number, proc: child_process.ChildProcess, log: () => string): Promise<void> {
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
        if (proc.exitCode !== null) {
            throw new Error(`sshd exited with ${proc.exitCode}: ${log()}`);
        }
        const ok = await new Promise<boolean>((resolve) => {
            const s = net.connect({ host: "127.0.0.1", port }, () => {
                s.destroy();
                resolve(true);
            });
            s.once("error", () => resolve(false));
        });
        if (ok) {
            return;
        }
        await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`sshd did not listen on ${port}: ${log()}`);
}

function keygen(file: string): void {
    child_process.execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "", "-f", file], { stdio: "ignore" });
}

/**
 * Starts sshd -D on 127.0.0.1:<free port>. `acceptEnv` lists AcceptEnv
 * patterns; empty means a stock configuration that refuses every variable.
 * `extraAuthorizedKeys` are added to root's authorized keys for this server.
 */
export async function startTestSshd(opts: { acceptEnv?: string[]; extraAuthorizedKeys?: string[] } = {}): Promise<TestSshd> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "offline-providers-sshd-"));
    fs.chmodSync(dir, 0o700);
    const hostKeyFile = path.join(dir, "host_ed25519");
    const clientKeyFile = path.join(dir, "client_ed25519");
    keygen(hostKeyFile);
    keygen(clientKeyFile);
    const authorized = [fs.readFileSync(`${clientKeyFile}.pub`, "utf8").trim(), ...(opts.extraAuthorizedKeys ?? []).map((k) => k.trim())];
    fs.writeFileSync(path.join(dir, "authorized_keys"), authorized.join("\n") + "\n", { mode: 0o600 });
    const port = await freePort();
    const config = [
        `Port ${port}`,
        "ListenAddress 127.0.0.1",
        `HostKey ${hostKeyFile}`,
        `AuthorizedKeysFile ${path.join(dir, "authorized_keys")}`,
        `PidFile ${path.join(dir, "sshd.pid")}`,
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",
        "LogLevel VERBOSE",
        ...(opts.acceptEnv && opts.acceptEnv.length > 0 ? [`AcceptEnv ${opts.acceptEnv.join(" ")}`] : []),
    ];
    const configFile = path.join(dir, "sshd_config");
    fs.writeFileSync(configFile, config.join("\n") + "\n");
    fs.mkdirSync("/run/sshd", { recursive: true, mode: 0o755 }); // privilege separation directory
    const proc = child_process.spawn(SSHD, ["-D", "-e", "-f", configFile], { stdio: ["ignore", "ignore", "pipe"] });
    let log = "";
    proc.stderr.on("data", (d: Buffer) => (log += d.toString()));
    await waitForPort(port, proc, () => log);
    return {
        host: "127.0.0.1",
        port,
        user: "root",
        hostKey: fs.readFileSync(`${hostKeyFile}.pub`, "utf8").trim(),
        clientKey: fs.readFileSync(clientKeyFile, "utf8"),
        dir,
        async stop() {
            if (proc.exitCode === null) {
                proc.kill("SIGTERM");
                await new Promise((r) => proc.once("exit", r));
            }
            fs.rmSync(dir, { recursive: true, force: true });
        },
    };
}
