/**
 * The example of a program that makes its own server (examples/own-server), used as a user would:
 * the package is packed with `npm pack`, the example installs that tarball
 * (`import { Devpi } from "devpi-pulumi"`), and one `pulumi up` creates the server (a local
 * Debian test host standing in for a cloud VM, made by a command.local.Command) and devpi on it
 * from the server's outputs. pip installs through it, a second up is a no-op, and `pulumi
 * destroy` removes devpi's steps and then the server, leaving nothing of ours behind.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe } from "node:test";
import { Stack } from "@pulumi/pulumi/automation";
import { buildPackage, client, clientVenv, createStack, EventLog, ROOT, steps, stopHost } from "./harness";

const SERVER = "own-server-e2e";
const PORTS = { ssh: 26501, https: 26543 };
const TESTHOST_BASE = "/var/tmp/devpi-testhost";

let stack: Stack;
const log = new EventLog();
const work = fs.mkdtempSync(path.join(os.tmpdir(), "devpi-e2e-own-server-"));
const example = path.join(work, "example");
const caFile = path.join(work, "ca.pem");
let venv: string;
const clientEnv = () => ({ REQUESTS_CA_BUNDLE: caFile, PIP_CERT: caFile, DEVPI_CLIENTDIR: path.join(work, "devpi-client") });

/** Processes whose root directory is inside the test host's tree (its sshd, devpi, nginx, ...). */
function processesOfServer(): string[] {
    const tree = path.join(TESTHOST_BASE, SERVER);
    return fs.readdirSync("/proc").filter((p) => {
        if (!/^\d+$/.test(p)) return false;
        try {
            return fs.readlinkSync(`/proc/${p}/root`).startsWith(tree);
        } catch {
            return false;
        }
    });
}

describe("the example that makes its own server, through the npm pack tarball", { timeout: 40 * 60 * 1000 }, () => {
    const it = steps();
    before(async () => {
        const tgz = execFileSync("npm", ["pack", "--silent", "--ignore-scripts=false", "--pack-destination", work], { cwd: ROOT, encoding: "utf8" }).trim().split("\n").pop()!;
        fs.cpSync(path.join(ROOT, "examples/own-server"), example, { recursive: true });
        const pkgFile = path.join(example, "package.json");
        const pkg = JSON.parse(fs.readFileSync(pkgFile, "utf8")) as { dependencies: Record<string, string> };
        pkg.dependencies["devpi-pulumi"] = `file:${path.join(work, tgz)}`;
        fs.writeFileSync(pkgFile, JSON.stringify(pkg, null, 2));
        execFileSync("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline"], { cwd: example, stdio: ["ignore", "inherit", "inherit"] });
        fs.mkdirSync(path.join(work, "state"));
        stack = await createStack("example", example, path.join(work, "state"));
        await stack.setAllConfig({
            "devpi-own-server:rootPassword": { value: "root-Pw-example-1", secret: true },
            "devpi-own-server:aliceIndexPassword": { value: "alice-Pw-example-2", secret: true },
            "devpi-own-server:serverName": { value: SERVER },
            "devpi-own-server:sshPort": { value: String(PORTS.ssh) },
            "devpi-own-server:httpsPort": { value: String(PORTS.https) },
            "devpi-own-server:testhostScripts": { value: path.join(ROOT, "scripts/testhost") },
        });
    });
    after(async () => {
        if (process.env.DEVPI_E2E_KEEP === "1") return;
        try {
            await stack.workspace.removeStack(stack.name, { force: true });
        } catch {
            // best effort: the backend is a scratch directory
        }
        stopHost(SERVER);
        fs.rmSync(work, { recursive: true, force: true });
    });

    it("the packed package holds the built component and its types, and nothing of the repository's tests, tools or state", () => {
        const tgz = fs.readdirSync(work).find((f) => f.endsWith(".tgz"))!;
        const files = execFileSync("tar", ["-tzf", path.join(work, tgz)], { encoding: "utf8" })
            .trim()
            .split("\n");
        assert.ok(files.includes("package/dist/components/index.js") && files.includes("package/dist/components/index.d.ts"), files.join("\n"));
        assert.ok(files.includes("package/CHANGELOG.md") && files.includes("package/README.md"));
        const stray = files.filter((f) => /^package\/(test|tools|scripts|bench|examples|node_modules|\.pulumi)|Pulumi\.[^/]*\.yaml$|\.ts$/.test(f) && !f.endsWith(".d.ts"));
        assert.deepEqual(stray, []);
        assert.ok(fs.existsSync(path.join(example, "node_modules/devpi-pulumi/dist/components/index.js")), "the example installed the tarball");
    });

    it("one pulumi up makes the server and devpi on it, from the server's outputs", async () => {
        const result = await stack.up({ color: "never", onOutput: log.onOutput, onEvent: log.onEvent });
        assert.equal(result.summary.result, "succeeded");
        const created = log.changed();
        assert.ok(created.includes("create:server") && created.includes("create:example-host-packages"), created.join(", "));
        assert.doesNotMatch(log.text(), /BEGIN OPENSSH PRIVATE KEY/, "the server's private key is never shown");
        const outputs = await stack.outputs();
        assert.equal(outputs.url.value, `https://localhost:${PORTS.https}`);
        assert.match(String(outputs.healthCheck.value), /^healthy: https:\/\/localhost:26543\//);
        fs.writeFileSync(caFile, String(outputs.caCertificate.value));
    });

    it("pip installs through it what alice uploaded", async () => {
        venv = clientVenv();
        const env = clientEnv();
        const base = `https://localhost:${PORTS.https}`;
        assert.equal((await client(venv, "devpi", ["use", `${base}/alice/dev`], env)).code, 0);
        assert.equal((await client(venv, "devpi", ["login", "alice", "--password", "alice-Pw-example-2"], env)).code, 0);
        const upload = await client(venv, "devpi", ["upload", buildPackage(venv, "own-server-pkg", "1.0.0", path.join(work, "dist"))], env);
        assert.equal(upload.code, 0, upload.out);
        const pip = await client(venv, "pip", ["install", "--no-cache-dir", "--target", path.join(work, "site"), "--index-url", `${base}/alice/dev/+simple/`, "own-server-pkg==1.0.0"], env);
        assert.equal(pip.code, 0, pip.out);
    });

    it("a second pulumi up changes nothing", async () => {
        const again = await stack.up({ color: "never" });
        assert.deepEqual(Object.keys(again.summary.resourceChanges ?? {}), ["same"]);
    });

    it("pulumi destroy removes devpi's steps, then the server: no host tree, no process of it left", async () => {
        log.clear();
        const result = await stack.destroy({ color: "never", onOutput: log.onOutput, onEvent: log.onEvent });
        assert.equal(result.summary.result, "succeeded");
        assert.ok(log.changed().includes("delete:server"), log.changed().join(", "));
        assert.equal(fs.existsSync(path.join(TESTHOST_BASE, SERVER)), false, "the server's tree is gone");
        assert.deepEqual(processesOfServer(), []);
    });
});
