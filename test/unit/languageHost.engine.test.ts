// The Node.js language host against the real Pulumi engine: a tiny TypeScript project (config, a secret, outputs,
// a program that throws) goes through stack init / config set / preview / up / stack output / destroy with a local
// backend. It needs the `pulumi` CLI on PATH (`eval "$(scripts/toolchain.sh)"`) and is skipped without it. Whichever
// host the engine picks is tested: ours (tools/pulumi-language-nodejs) or the official one.
import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";

const repoRoot = path.resolve(__dirname, "../..");
const pulumiFound = spawnSync("pulumi", ["version"], { encoding: "utf8" }).status === 0;

describe("language host under the real engine", { skip: pulumiFound ? false : "no pulumi CLI on PATH" }, () => {
    let work: string;
    let proj: string;
    let env: NodeJS.ProcessEnv;

    const pulumi = (args: string[], extraEnv: NodeJS.ProcessEnv = {}) => {
        const r = spawnSync("pulumi", [...args, "--non-interactive"], {
            cwd: proj,
            env: { ...env, ...extraEnv },
            encoding: "utf8",
            timeout: 180_000,
        });
        return { status: r.status, out: `${r.stdout}${r.stderr}` };
    };

    before(() => {
        work = fs.mkdtempSync(path.join(os.tmpdir(), "langhost-engine-"));
        proj = path.join(work, "proj");
        fs.mkdirSync(proj);
        fs.symlinkSync(path.join(repoRoot, "node_modules"), path.join(proj, "node_modules"));
        fs.writeFileSync(path.join(proj, "Pulumi.yaml"), "name: lhtest\nruntime: nodejs\n");
        fs.writeFileSync(path.join(proj, "package.json"), JSON.stringify({ name: "lhtest", private: true, main: "index.ts" }));
        fs.writeFileSync(
            path.join(proj, "tsconfig.json"),
            JSON.stringify({
                compilerOptions: {
                    strict: true,
                    target: "es2022",
                    // @pulumi/pulumi's runner defaults moduleResolution to nodenext (TypeScript >= 4.7), which rejects
                    // module=commonjs unless moduleResolution is set too (error TS5110).
                    module: "commonjs",
                    moduleResolution: "node",
                    types: ["node"],
                    skipLibCheck: true,
                },
                files: ["index.ts"],
            }),
        );
        fs.writeFileSync(
            path.join(proj, "index.ts"),
            `import * as pulumi from "@pulumi/pulumi";
const config = new pulumi.Config();
const greeting: string = config.require("greeting");
const token = config.requireSecret("token");
if (process.env.LHTEST_THROW === "1") {
    throw new Error("boom: the program failed on purpose");
}
console.log("program ran, dry run: " + pulumi.runtime.isDryRun());
export const message = pulumi.interpolate\`\${greeting}, \${pulumi.getProject()}/\${pulumi.getStack()}\`;
export const tokenLength = token.apply((t) => t.length);
`,
        );
        env = {
            ...process.env,
            PULUMI_HOME: path.join(work, "home"),
            PULUMI_BACKEND_URL: `file://${path.join(work, "state")}`,
            PULUMI_CONFIG_PASSPHRASE: "test",
            PULUMI_SKIP_UPDATE_CHECK: "true",
            PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
        };
        fs.mkdirSync(path.join(work, "state"));
    });

    after(() => {
        if (work) fs.rmSync(work, { recursive: true, force: true });
    });

    it("creates a stack and sets config", () => {
        let r = pulumi(["stack", "init", "dev"]);
        assert.equal(r.status, 0, r.out);
        r = pulumi(["config", "set", "greeting", "hello"]);
        assert.equal(r.status, 0, r.out);
        r = pulumi(["config", "set", "--secret", "token", "s3cr3t"]);
        assert.equal(r.status, 0, r.out);
    });

    it("previews and deploys the program", () => {
        let r = pulumi(["preview"]);
        assert.equal(r.status, 0, r.out);
        assert.match(r.out, /program ran, dry run: true/);
        r = pulumi(["up", "--yes"]);
        assert.equal(r.status, 0, r.out);
        assert.match(r.out, /program ran, dry run: false/);
        r = pulumi(["stack", "output", "--json", "--show-secrets"]);
        assert.equal(r.status, 0, r.out);
        assert.deepEqual(JSON.parse(r.out), { message: "hello, lhtest/dev", tokenLength: 6 });
    });

    it("shows the message of an error thrown by the program and fails", () => {
        const r = pulumi(["preview"], { LHTEST_THROW: "1" });
        assert.notEqual(r.status, 0, r.out);
        assert.match(r.out, /boom: the program failed on purpose/);
    });

    it("destroys the stack", () => {
        const r = pulumi(["destroy", "--yes"]);
        assert.equal(r.status, 0, r.out);
        assert.match(r.out, /1 deleted/);
    });
});
