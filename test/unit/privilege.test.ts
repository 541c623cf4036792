/**
 * The privilege rule, run for real with bash as root on this machine: what root writes, chowns or
 * links never goes through a path another user controls. `nobody` plays the service user.
 * (These tests need root, as the rest of the suite's step tests do.)
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { PRELUDE, shellQuote } from "../../components/common/shell";
import { renderConfigScript, renderInitScript } from "../../components/devpi/devpiServerConfig";

const USER = "nobody";
let tmp = "";
let uid = 0;
before(() => {
    // A root-owned 0755 directory of our own: mkdtemp makes 0700, which `nobody` cannot enter.
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "devpi-priv-"));
    fs.chmodSync(tmp, 0o755);
    uid = Number(spawnSync("id", ["-u", USER], { encoding: "utf8" }).stdout.trim());
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Runs `body` after the prelude as root; returns status, stdout and stderr. */
function run(body: string, input = "") {
    const r = spawnSync("bash", ["-c", `${PRELUDE}\n${body}`], { input, encoding: "utf8", env: { ...process.env, DEVPI_STEP: "t" } });
    return { code: r.status, out: r.stdout, err: r.stderr };
}

/** A root-owned canary file and what it looked like. */
function canary(name: string) {
    const p = path.join(tmp, name);
    fs.writeFileSync(p, "canary\n", { mode: 0o600 });
    const st = () => {
        const s = fs.statSync(p);
        return `${s.uid}:${s.gid}:${(s.mode & 0o7777).toString(8)}:${fs.readFileSync(p, "utf8")}`;
    };
    return { path: p, before: st(), now: st };
}

/** A directory owned by the service user. */
function userDir(name: string): string {
    const d = path.join(tmp, name);
    fs.mkdirSync(d, { mode: 0o750 });
    fs.chownSync(d, uid, uid);
    return d;
}

describe("the privilege rule (root never acts through the service user's paths)", { skip: process.getuid?.() !== 0 ? "needs root" : false }, () => {
    it("root_path accepts root's own directories and refuses a user's, a group-writable one and a link", () => {
        const mine = fs.mkdtempSync(path.join(tmp, "root-"));
        const theirs = userDir("theirs-rp");
        const gw = fs.mkdtempSync(path.join(tmp, "gw-"));
        fs.chmodSync(gw, 0o775);
        const link = path.join(tmp, "link-rp");
        fs.symlinkSync(mine, link);
        const check = (d: string) => run(`if root_path ${shellQuote(d)}; then echo yes; else echo no; fi`).out.trim();
        assert.equal(check(mine), "yes");
        assert.equal(check(theirs), "no");
        assert.equal(check(path.join(theirs, "sub")), "no", "a missing directory is not root's");
        assert.equal(check(gw), "no");
        assert.equal(check(link), "no");
        fs.mkdirSync(path.join(theirs, "rootsub"));
        assert.equal(check(path.join(theirs, "rootsub")), "no", "a root-owned directory inside a user's is not root's alone");
    });

    it("write_if_changed refuses to write into the service user's directory, naming the path; the canary is untouched", () => {
        const d = userDir("wic-user");
        const c = canary("wic-canary");
        fs.symlinkSync(c.path, path.join(d, "devpi.yml"));
        const r = run(`write_if_changed ${shellQuote(path.join(d, "devpi.yml"))} 0644 root:root`, "x\n");
        assert.equal(r.code, 1);
        assert.match(r.err, new RegExp(`devpi step t failed: refusing to write ${d}/devpi.yml: ${d} \\(or a directory above it\\) is a link, or is not owned by root alone`));
        assert.equal(c.now(), c.before);
        assert.deepEqual(fs.readdirSync(d), ["devpi.yml"], "no temporary file left in the user's directory");
    });

    it("write_if_changed replaces a link at its destination instead of writing through it", () => {
        const d = fs.mkdtempSync(path.join(tmp, "wic-root-"));
        const c = canary("wic-canary2");
        const dest = path.join(d, "site");
        fs.symlinkSync(c.path, dest);
        const r = run(`write_if_changed ${shellQuote(dest)} 0644 root:root`, "site\n");
        assert.equal(r.code, 0, r.err);
        assert.equal(r.out.trim(), "changed");
        assert.equal(fs.lstatSync(dest).isSymbolicLink(), false);
        assert.equal(fs.readFileSync(dest, "utf8"), "site\n");
        assert.equal(c.now(), c.before);
    });

    it("service_dir makes a directory as the user inside the user's own, and never re-owns an existing one", () => {
        const home = userDir("sd-home");
        const r = run(`service_dir ${USER} 0750 ${shellQuote(path.join(home, "data"))}`);
        assert.equal(r.code, 0, r.err);
        assert.equal(fs.statSync(path.join(home, "data")).uid, uid);
        const rootOwned = path.join(tmp, "sd-rootowned");
        fs.mkdirSync(rootOwned);
        const r2 = run(`service_dir ${USER} 0750 ${shellQuote(rootOwned)}`);
        assert.equal(r2.code, 1);
        assert.match(r2.err, new RegExp(`${rootOwned} exists but belongs to root, not ${USER}; the program hands over only directories it creates`));
        assert.equal(fs.statSync(rootOwned).uid, 0);
    });

    it("service_dir refuses a link planted in place of the directory; the link's target keeps owner and mode", () => {
        const home = userDir("sd-home2");
        const target = fs.mkdtempSync(path.join(tmp, "sd-target-"));
        const before = fs.statSync(target);
        fs.symlinkSync(target, path.join(home, "backups"));
        const r = run(`service_dir ${USER} 0700 ${shellQuote(path.join(home, "backups"))}`);
        assert.equal(r.code, 1);
        assert.match(r.err, /backups is a symbolic link; refusing to use it as nobody's directory/);
        const after = fs.statSync(target);
        assert.deepEqual([after.uid, after.mode], [before.uid, before.mode]);
    });

    it("service_dir in a root-owned parent makes the directory and hands it over", () => {
        const parent = fs.mkdtempSync(path.join(tmp, "sd-parent-"));
        fs.chmodSync(parent, 0o755);
        const d = path.join(parent, "new", "home");
        const r = run(`service_dir ${USER} 0750 ${shellQuote(d)}`);
        assert.equal(r.code, 0, r.err);
        assert.equal(fs.statSync(d).uid, uid);
        assert.equal(fs.statSync(path.dirname(d)).uid, 0, "the parent it made is root's");
    });

    it("set_link in the service user's directory acts as that user", () => {
        const d = userDir("sl-home");
        const r = run(`set_link /opt/elsewhere ${shellQuote(path.join(d, "venv"))}`);
        assert.equal(r.code, 0, r.err);
        assert.equal(fs.readlinkSync(path.join(d, "venv")), "/opt/elsewhere");
        assert.equal(fs.lstatSync(path.join(d, "venv")).uid, uid, "made by the user, not root");
    });

    it("the secret: a link planted at its path is removed, not chowned through; the old secret is read as the service user", () => {
        const etc = fs.mkdtempSync(path.join(tmp, "etc-"));
        fs.chmodSync(etc, 0o755);
        const home = userDir("home-secret");
        const legacy = path.join(home, ".secret");
        fs.writeFileSync(legacy, "L".repeat(44));
        fs.chownSync(legacy, uid, uid);
        const c = canary("secret-canary");
        const secret = path.join(etc, "secret");
        fs.symlinkSync(c.path, secret);
        const script = renderConfigScript({ configFile: path.join(etc, "devpi-server.yml"), yaml: "a: 1\n", secretFile: secret, serviceUser: USER, venvDir: "/nonexistent", legacySecretFile: legacy });
        const r = run(script);
        assert.equal(r.code, 0, r.err);
        assert.equal(c.now(), c.before, "the canary behind the planted link is untouched");
        const st = fs.lstatSync(secret);
        assert.ok(st.isFile());
        assert.equal(`${st.uid}:${(st.mode & 0o777).toString(8)}`, `${uid}:600`);
        assert.equal(fs.readFileSync(secret, "utf8"), "L".repeat(44), "moved from the old place");
        assert.match(r.out, /secret moved from/);
        // A legacy "secret" that is a link to a root-only file: the user cannot read it, so nothing is copied.
        fs.rmSync(secret);
        fs.rmSync(legacy);
        fs.symlinkSync(c.path, legacy);
        const r2 = run(script);
        assert.equal(r2.code, 0, r2.err);
        assert.match(r2.out, /secret created/);
        assert.notEqual(fs.readFileSync(secret, "utf8"), "canary\n");
        assert.equal(fs.readFileSync(secret, "utf8").length, 44, "base64 of 32 random bytes, as devpi-gen-secret writes");
    });

    it("the secret's directory must be root's alone", () => {
        const home = userDir("home-secret2");
        const script = renderConfigScript({ configFile: path.join(tmp, "cfg.yml"), yaml: "a: 1\n", secretFile: path.join(home, ".secret"), serviceUser: USER, venvDir: "/nonexistent" });
        const r = run(script);
        assert.equal(r.code, 1);
        assert.match(r.err, new RegExp(`refusing to manage the secret file ${home}/\\.secret: its directory is not root's alone`));
    });

    it("devpi-init gives root a random bootstrap password through the environment, never in argv, kept in a root-only file first", () => {
        const dir = fs.mkdtempSync(path.join(tmp, "init-"));
        fs.chmodSync(dir, 0o755);
        const venv = path.join(dir, "venv");
        fs.mkdirSync(path.join(venv, "bin"), { recursive: true });
        // A stand-in devpi-init that records its argv and the variable it received.
        fs.writeFileSync(
            path.join(venv, "bin", "devpi-init"),
            `#!/bin/sh\nprintf '%s\\n' "$*" >${shellQuote(path.join(dir, "argv"))}\nprintf '%s' "$DEVPISERVER_ROOT_PASSWD" >${shellQuote(path.join(dir, "env"))}\n`,
            { mode: 0o755 },
        );
        for (const f of ["argv", "env"]) {
            fs.writeFileSync(path.join(dir, f), "");
            fs.chmodSync(path.join(dir, f), 0o666);
        }
        const cred = path.join(dir, "root-credential.json");
        const sd = userDir("init-data");
        const script = renderInitScript({ configFile: "/etc/devpi/devpi-server.yml", serverDir: sd, serviceUser: USER, venvDir: venv, rootCredentialFile: cred });
        const r = run(script);
        assert.equal(r.code, 0, r.err);
        assert.match(r.out, /^initialised; root has a random bootstrap password/);
        const given = fs.readFileSync(path.join(dir, "env"), "utf8");
        assert.match(given, /^[A-Za-z0-9]{24,}$/, "a non-empty random password reached devpi-init");
        assert.deepEqual(JSON.parse(fs.readFileSync(cred, "utf8")), { password: given }, "the password step finds it in the credential file");
        const st = fs.statSync(cred);
        assert.equal(`${st.uid}:${(st.mode & 0o777).toString(8)}`, "0:600");
        assert.equal(fs.readFileSync(path.join(dir, "argv"), "utf8").trim(), "-c /etc/devpi/devpi-server.yml");
        assert.doesNotMatch(r.out + r.err, new RegExp(given));
        // A second server gets another password; an initialised one is left alone.
        fs.rmSync(sd, { recursive: true });
        userDir("init-data");
        assert.equal(run(script).code, 0);
        assert.notEqual(fs.readFileSync(path.join(dir, "env"), "utf8"), given);
        fs.writeFileSync(path.join(sd, ".nodeinfo"), "{}");
        const again = fs.readFileSync(cred, "utf8");
        assert.equal(run(script).out.trim(), "already initialised");
        assert.equal(fs.readFileSync(cred, "utf8"), again);
    });

    it("devpi-init refuses to keep the bootstrap password in a directory the service user controls", () => {
        const home = userDir("init-cred-home");
        const sd = userDir("init-data2");
        const script = renderInitScript({ configFile: "/x.yml", serverDir: sd, serviceUser: USER, venvDir: "/nonexistent", rootCredentialFile: path.join(home, "cred.json") });
        const r = run(script);
        assert.equal(r.code, 1);
        assert.match(r.err, new RegExp(`refusing to keep root's bootstrap password in ${home}: .*nothing was initialised`));
        assert.ok(!fs.existsSync(path.join(home, "cred.json")));
    });
});
