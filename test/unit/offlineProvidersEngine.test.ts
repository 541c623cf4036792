// The offline stand-in providers (tools/offline-providers) under the real
// Pulumi engine: `pulumi up` / `up --expect-no-changes` / an update / destroy of
// a small program using @pulumi/tls and @pulumi/command against a throwaway
// sshd on 127.0.0.1, and of one using command.local.Command. Runs when `pulumi`
// and `pulumi-language-nodejs` are on PATH (e.g. after
// `eval "$(scripts/toolchain.sh)"`); the remote part also needs a real sshd.

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

const engineSkip =
    (!onPath("pulumi") ? 'no pulumi CLI on PATH (eval "$(scripts/toolchain.sh)" provides one)' : undefined) ?? (!onPath("pulumi-language-nodejs") ? "no pulumi-language-nodejs on PATH" : undefined);
const skip = sshdUnavailableReason() ?? engineSkip;

/** A throwaway project using this repository's node_modules, with a file backend and the stand-ins on PATH. */
class TestProject {
    readonly work = fs.mkdtempSync(path.join(os.tmpdir(), "offline-engine-"));
    readonly dir = path.join(this.work, "proj");
    private readonly env: NodeJS.ProcessEnv;

    constructor(name: string, program: string) {
        fs.mkdirSync(this.dir);
        fs.symlinkSync(path.join(REPO, "node_modules"), path.join(this.dir, "node_modules"));
        fs.writeFileSync(path.join(this.dir, "Pulumi.yaml"), `name: ${name}\nruntime: nodejs\nmain: index.js\n`);
        fs.writeFileSync(path.join(this.dir, "index.js"), program);
        this.env = {
            ...process.env,
            PATH: `${BIN_DIR}${path.delimiter}${process.env.PATH ?? ""}`,
            PULUMI_HOME: path.join(this.work, "home"),
            PULUMI_BACKEND_URL: `file://${path.join(this.work, "state")}`,
            PULUMI_CONFIG_PASSPHRASE: "offline-providers-test",
            PULUMI_SKIP_UPDATE_CHECK: "true",
            PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
        };
        fs.mkdirSync(path.join(this.work, "state"));
        this.pulumi("stack", "init", "test");
    }

    pulumi(...args: string[]): string {
        const r = child_process.spawnSync("pulumi", ["--non-interactive", ...args], { cwd: this.dir, env: this.env, encoding: "utf8", timeout: 240_000 });
        if (r.status !== 0) {
            throw new Error(`pulumi ${args.join(" ")} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
        }
        return r.stdout;
    }

    outputs(): Record<string, string> {
        return JSON.parse(this.pulumi("stack", "output", "--json", "--show-secrets")) as Record<string, string>;
    }

    remove(): void {
        fs.rmSync(this.work, { recursive: true, force: true });
    }
}

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
    let project: TestProject;
    let remoteDir: string;
    const pulumi = (...args: string[]) => project.pulumi(...args);
    const outputs = () => project.outputs();

    before(async () => {
        sshd = await startTestSshd();
        project = new TestProject("offline-engine", PROGRAM);
        remoteDir = path.join(project.work, "remote");
        pulumi("config", "set", "port", String(sshd.port));
        pulumi("config", "set", "hostKey", sshd.hostKey);
        pulumi("config", "set", "dir", remoteDir);
        pulumi("config", "set", "--secret", "key", "--", sshd.clientKey);
    });
    after(async () => {
        await sshd?.stop();
        project?.remove();
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

const LOCAL_PROGRAM = `
const pulumi = require("@pulumi/pulumi");
const command = require("@pulumi/command");
const cfg = new pulumi.Config();
const dir = cfg.require("dir");
const cmd = new command.local.Command("local", {
    create: 'echo "created $GREETING"; echo "created" >> log',
    update: 'echo "updated $GREETING (was: $PULUMI_COMMAND_STDOUT)"; echo updated >> log',
    delete: 'echo "deleted after: $PULUMI_COMMAND_STDOUT" >> log',
    environment: { GREETING: cfg.require("greeting") },
    dir,
    logging: "stdout",
});
const where = new command.local.Command("where", { create: "pwd -P; echo to-stderr >&2", interpreter: ["/bin/bash", "-c"] });
exports.out = cmd.stdout;
exports.where = where.stdout;
exports.whereErr = where.stderr;
`;

describe("command:local:Command under the real Pulumi engine", { skip: engineSkip ? `skipped: ${engineSkip}` : false }, () => {
    let project: TestProject;
    let dir: string;

    before(() => {
        project = new TestProject("offline-local", LOCAL_PROGRAM);
        dir = path.join(project.work, "files");
        fs.mkdirSync(dir);
        project.pulumi("config", "set", "dir", dir);
        project.pulumi("config", "set", "greeting", "hello");
    });
    after(() => project?.remove());

    it("up runs create in `dir` with `environment`; without `dir` a command runs in the project directory", () => {
        const out = project.pulumi("up", "--yes");
        assert.match(out, /created hello/, "stdout lines are shown (logging: stdout)");
        const o = project.outputs();
        assert.equal(o.out, "created hello");
        assert.equal(o.where, fs.realpathSync(project.dir), "the engine starts the plugin in the project directory");
        assert.equal(o.whereErr, "to-stderr");
        assert.equal(fs.readFileSync(path.join(dir, "log"), "utf8"), "created\n");
    });

    it("a second up has nothing to do and runs nothing", () => {
        project.pulumi("up", "--yes", "--expect-no-changes");
        assert.equal(fs.readFileSync(path.join(dir, "log"), "utf8"), "created\n");
    });

    it("changing an input updates in place: runs `update` with PULUMI_COMMAND_STDOUT", () => {
        project.pulumi("config", "set", "greeting", "bye");
        const preview = project.pulumi("preview", "--diff");
        assert.match(preview, /~ command:local:Command: \(update\)/);
        project.pulumi("up", "--yes");
        assert.equal(project.outputs().out, "updated bye (was: created hello)");
        assert.equal(fs.readFileSync(path.join(dir, "log"), "utf8"), "created\nupdated\n");
    });

    it("destroy runs `delete` with the last stdout in PULUMI_COMMAND_STDOUT", () => {
        project.pulumi("destroy", "--yes");
        assert.equal(fs.readFileSync(path.join(dir, "log"), "utf8"), "created\nupdated\ndeleted after: updated bye (was: created hello)\n");
    });
});
