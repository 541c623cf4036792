// The offline stand-in providers (tools/offline-providers) under the real
// Pulumi engine: `pulumi up` / `up --expect-no-changes` / an update / destroy of
// a small program using @pulumi/tls and @pulumi/command against a throwaway
// sshd on 127.0.0.1. Runs when `pulumi` and `pulumi-language-nodejs` are on
// PATH (e.g. after `eval "$(scripts/toolchain.sh)"`) and a real sshd can run.

import assert from "node:assert/strict";
import * as child_process from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { BIN_DIR } from "../../tools/offline-providers/testing/plugin";
import { TestSshd, sshdUnavailableReason, startTestSshd } from "../../tools/offline-providers/testing/sshd";

const REPO = path.resolve(__dirname, "..", "..");

function onPath(cmd: string): boolean {
    return (process.env.PATH ?? "").split(path.delimiter).some((d) => d !== "" && fs.existsSync(path.join(d, cmd)));
}

const skip =
    sshdUnavailableReason() ??
    (!onPath("pulumi") ? "no pulumi CLI on PATH (eval \"$(scripts/toolchain.sh)\" provides one)" : undefined) ??
    (!onPath("pulumi-language-nodejs") ? "no pulumi-language-nodejs on PATH" : undefined);

const PROGRAM = `
const pulumi = require("@pulumi/pulumi");
const tls = require("@pulumi/tls");
const command = require("@pulumi/command");
const cfg = new pulumi.Config();
const dir = cfg.require("dir");
const caKey = new tls.PrivateKey("ca-key", { algorithm: "ECDSA", ecdsaCurve: "P256" });
const ca = new tls.SelfSignedCert("ca", {
    privateKeyPem: caKey.privateKeyPem, isCaCertificate: true, validityPeriodHours: 100,
    allowedUses: ["cert_signing", "crl_signing"], subject: { commonName: "e2e ca" },
});
const key = new tls.PrivateKey("srv-key", { algorithm: "ED25519" });
const csr = new tls.CertRequest("csr", { privateKeyPem: key.privateKeyPem, subject: { commonName: "srv" }, dnsNames: ["localhost"] });
const cert = new tls.LocallySignedCert("cert", {
    certRequestPem: csr.certRequestPem, caPrivateKeyPem: caKey.privateKeyPem, caCertPem: ca.certPem,
    validityPeriodHours: 10, allowedUses: ["server_auth", "digital_signature"],
});
const connection = { host: "127.0.0.1", port: cfg.requireNumber("port"), privateKey: cfg.requireSecret("key"), hostKey: cfg.require("hostKey") };
const write = new command.remote.Command("write", {
    connection,
    create: \`mkdir -p \${dir} && cat > \${dir}/cert.pem && echo written\`,
    stdin: cert.certPem,
    delete: \`echo deleted > \${dir}/deleted\`,
    triggers: [cert.certPem],
}, { deleteBeforeReplace: true });
const show = new command.remote.Command("show", {
    connection,
    create: \`openssl x509 -noout -subject -issuer -in \${dir}/cert.pem \${cfg.get("extra") ?? ""}\`,
}, { dependsOn: [write] });
exports.shown = show.stdout;
exports.written = write.stdout;
`;

describe("offline stand-in providers under the real Pulumi engine", { skip: skip ? `skipped: ${skip}` : false }, () => {
    let sshd: TestSshd;
    let work: string;
    let env: NodeJS.ProcessEnv;
    let remoteDir: string;

    function pulumi(...args: string[]): string {
        const r = child_process.spawnSync("pulumi", ["--non-interactive", ...args], { cwd: path.join(work, "proj"), env, encoding: "utf8", timeout: 240_000 });
        if (r.status !== 0) {
            throw new Error(`pulumi ${args.join(" ")} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
        }
        return r.stdout;
    }
    const outputs = () => JSON.parse(pulumi("stack", "output", "--json", "--show-secrets")) as Record<string, string>;

    before(async () => {
        sshd = await startTestSshd();
        work = fs.mkdtempSync(path.join(os.tmpdir(), "offline-engine-"));
        remoteDir = path.join(work, "remote");
        fs.mkdirSync(path.join(work, "proj"));
        fs.symlinkSync(path.join(REPO, "node_modules"), path.join(work, "proj", "node_modules"));
        fs.writeFileSync(path.join(work, "proj", "Pulumi.yaml"), "name: offline-engine\nruntime: nodejs\nmain: index.js\n");
        fs.writeFileSync(path.join(work, "proj", "index.js"), PROGRAM);
        env = {
            ...process.env,
            PATH: `${BIN_DIR}${path.delimiter}${process.env.PATH ?? ""}`,
            PULUMI_HOME: path.join(work, "home"),
            PULUMI_BACKEND_URL: `file://${path.join(work, "state")}`,
            PULUMI_CONFIG_PASSPHRASE: "offline-providers-test",
            PULUMI_SKIP_UPDATE_CHECK: "true",
            PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
        };
        fs.mkdirSync(path.join(work, "state"));
        pulumi("stack", "init", "test");
        pulumi("config", "set", "port", String(sshd.port));
        pulumi("config", "set", "hostKey", sshd.hostKey);
        pulumi("config", "set", "dir", remoteDir);
        pulumi("config", "set", "--secret", "key", "--", sshd.clientKey);
    });
    after(async () => {
        await sshd?.stop();
        if (work) {
            fs.rmSync(work, { recursive: true, force: true });
        }
    });

    it("up creates everything, runs the commands and uses the generated certificate", () => {
        pulumi("up", "--yes");
        const out = outputs();
        assert.equal(out.written, "written");
        assert.equal(out.shown, "subject=CN = srv\nissuer=CN = e2e ca");
        assert.match(fs.readFileSync(path.join(remoteDir, "cert.pem"), "utf8"), /^-----BEGIN CERTIFICATE-----\n/);
    });

    it("a second up has nothing to do", () => {
        pulumi("up", "--yes", "--expect-no-changes");
    });

    it("changing a command updates in place and re-runs it", () => {
        pulumi("config", "set", "extra", "--", "-ext subjectAltName");
        const preview = pulumi("preview", "--diff");
        assert.match(preview, /~ command:remote:Command: \(update\)/);
        pulumi("up", "--yes");
        assert.match(outputs().shown, /DNS:localhost/);
    });

    it("destroy runs the delete command", () => {
        pulumi("destroy", "--yes");
        assert.equal(fs.readFileSync(path.join(remoteDir, "deleted"), "utf8"), "deleted\n");
    });
});
