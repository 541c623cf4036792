/**
 * The way steps run on the server (script on stdin behind a short loader, one-line failure
 * summaries) and the package step's recovery and lock waiting, run for real with bash, perl and
 * shellcheck on this machine. apt and dpkg are replaced by recording stubs on PATH.
 */
import assert from "node:assert/strict";
import { ChildProcess, spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, describe, it } from "node:test";
import { PRELUDE, stepCommand, stepStdin } from "../../components/common/shell";
import { PACKAGE_LOCKS, renderLockWait, renderPackagesScript } from "../../components/host/hostPreparationScript";
import { renderBackupScript, renderRestoreScript } from "../../components/backup/backupScript";
import { renderDataLock } from "../../components/common/dataLock";
import { renderUpgradeScript } from "../../components/devpi/devpiUpgradeScript";
import { renderHealthCheckScript } from "../../components/health/healthCheckScript";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "devpi-steps-"));
const holders: ChildProcess[] = [];
after(() => {
    for (const h of holders) h.kill("SIGKILL");
    fs.rmSync(tmp, { recursive: true, force: true });
});

/** Runs a step the way the provider does: the command line through a shell, stdin as given. */
function runStep(cmd: string, stdin: string, env: NodeJS.ProcessEnv = process.env) {
    return spawnSync("bash", ["-c", cmd], { input: stdin, encoding: "utf8", env });
}

/** Holds an fcntl() write lock on `file` (as apt and dpkg take theirs) until killed. */
async function holdLock(file: string): Promise<ChildProcess> {
    const p = spawn(
        "perl",
        ["-MFcntl", "-e", 'open(my $f, ">>", $ARGV[0]) or die; my $l = pack("ssx4qqix4", F_WRLCK, 0, 0, 0, 0); fcntl($f, F_SETLKW, $l) or die; $| = 1; print "locked\\n"; sleep 600', file],
        { stdio: ["ignore", "pipe", "inherit"] },
    );
    holders.push(p);
    await new Promise<void>((resolve) => p.stdout.once("data", () => resolve()));
    return p;
}

describe("step command and stdin", () => {
    const create = 'echo "create as $DEVPI_STEP"; payload=$(cat); echo "payload=[$payload]"\n';
    const del = 'echo "delete as $DEVPI_STEP"; cat\n';

    it("keeps the command line short and names the step and the script's hash", () => {
        const cmd = stepCommand("index-alice/dev-index", "create", create, "deploy");
        assert.ok(cmd.length < 260, cmd);
        assert.match(cmd, /# devpi step index-alice\/dev-index \(create script [0-9a-f]{16}\)$/);
        assert.notEqual(cmd, stepCommand("index-alice/dev-index", "create", create + "true\n", "deploy"), "a new script changes the command");
        assert.ok(!cmd.includes("echo"), "the script is not in the command");
    });

    it("runs the create script with the payload, byte for byte, left on stdin", () => {
        const payload = '{"password": "p\\u00e4ss \'quoted\' $(not run)"}\nsecond line\n';
        const r = runStep(stepCommand("host-packages", "create", create, "root"), stepStdin("# é multi-byte\n" + create, del, payload));
        assert.equal(r.status, 0, r.stderr);
        assert.equal(r.stdout, `create as host-packages\npayload=[${payload.replace(/\n$/, "")}]\n`);
    });

    it("runs the delete script, skipping the create script", () => {
        const r = runStep(stepCommand("x", "delete", del, "root"), stepStdin(create, del, "PAYLOAD"));
        assert.equal(r.status, 0, r.stderr);
        assert.equal(r.stdout, "delete as x\nPAYLOAD");
    });

    it("a failing command is summed up in one line naming the step, the command and its status", () => {
        const script = "echo start\nls /nonexistent-dir\necho never\n";
        const r = runStep(stepCommand("nginx-site", "create", script, "root"), stepStdin(script, undefined));
        assert.equal(r.status, 2);
        assert.equal(r.stdout, "start\n");
        assert.match(
            r.stderr,
            /^ls: cannot access '\/nonexistent-dir': No such file or directory\ndevpi step nginx-site failed: command exited with status 2 \(script line \d+\): ls \/nonexistent-dir\n$/,
        );
    });

    it("a failing command's text is cut to its first line and 160 characters", () => {
        const script = `python3 -c 'import sys\nsys.exit(4)' ${"x".repeat(300)}\n`;
        const r = runStep(stepCommand("s", "create", script, "root"), stepStdin(script, undefined));
        assert.equal(r.status, 4);
        assert.equal(r.stderr, "devpi step s failed: command exited with status 4 (script line 76): python3 -c 'import sys...\n".replace("76", r.stderr.match(/line (\d+)/)![1]));
    });

    it("fail says what to do in one line; run_logged keeps the noise in the log and names the cause", () => {
        const failing = runStep(stepCommand("a", "create", "", "root"), stepStdin('fail "the disk is full: free space on /srv and run pulumi up again"\n', undefined));
        assert.equal(failing.status, 1);
        assert.equal(failing.stderr, "devpi step a failed: the disk is full: free space on /srv and run pulumi up again\n");
        const log = path.join(tmp, "step.log");
        const script = `DEVPI_LOG=${log}\nrun_logged "apt-get install" bash -c 'for i in $(seq 40); do echo "noise $i"; done; echo "E: Unable to locate package nginxx" >&2; exit 100'\n`;
        const r = runStep(stepCommand("host-packages", "create", script, "root"), stepStdin(script, undefined));
        assert.equal(r.status, 100);
        const lines = r.stderr.split("\n");
        assert.equal(lines[0], "devpi step host-packages failed: apt-get install exited with status 100: E: Unable to locate package nginxx ");
        assert.ok(lines.length < 20, "only the log's tail follows");
        assert.match(fs.readFileSync(log, "utf8"), /noise 1\n[\s\S]*noise 40\n/, "the whole output is in the log");
    });

    it("the prelude passes shellcheck", () => {
        const r = spawnSync("shellcheck", ["-s", "bash", "-"], { input: `#!/bin/bash\n${PRELUDE}`, encoding: "utf8" });
        assert.equal(r.status, 0, r.stdout);
    });
});

describe("waiting for another package manager", () => {
    const locks = [path.join(tmp, "lock-frontend"), path.join(tmp, "lock")];
    for (const l of locks) fs.writeFileSync(l, "");
    const run = (timeout: number) =>
        new Promise<{ code: number; stderr: string; ms: number }>((resolve) => {
            const t0 = Date.now();
            const p = spawn("bash", ["-c", `${PRELUDE}${renderLockWait(locks, timeout)}wait_for_package_manager\necho free\n`, "host-packages"], { stdio: ["ignore", "pipe", "pipe"] });
            let stderr = "";
            p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
            p.on("close", (code) => resolve({ code: code ?? -1, stderr, ms: Date.now() - t0 }));
        });

    it("goes on at once when no lock is held (a stale lock file is no lock)", async () => {
        const r = await run(5);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stderr, "");
    });

    it("waits while another process holds a lock, naming it, and goes on when it is released", async () => {
        const holder = await holdLock(locks[1]);
        setTimeout(() => holder.kill("SIGKILL"), 2500);
        const r = await run(30);
        assert.equal(r.code, 0, r.stderr);
        assert.ok(r.ms >= 2000, `waited ${r.ms} ms`);
        assert.match(r.stderr, new RegExp(`^waiting for another package manager: ${locks[1]} is held by process ${holder.pid} \\(perl -MFcntl -e `));
    });

    it("gives up after the timeout with a message that names the holder and what to do", async () => {
        const holder = await holdLock(locks[0]);
        const r = await run(2);
        holder.kill("SIGKILL");
        assert.equal(r.code, 1);
        assert.ok(r.ms >= 2000 && r.ms < 10_000, `gave up after ${r.ms} ms`);
        const last = r.stderr.trim().split("\n").pop()!;
        assert.match(
            last,
            new RegExp(
                `^devpi step host-packages failed: another package manager still holds ${locks[0]} after 2s: process ${holder.pid} \\(perl .*\\)\\. Let it finish .* then run pulumi up again\\.$`,
            ),
        );
    });

    it("is not fooled by flock(): apt and dpkg use fcntl() locks", async () => {
        const p = spawn("flock", [locks[0], "sleep", "30"], { stdio: "ignore" });
        holders.push(p);
        await new Promise((r) => setTimeout(r, 300));
        const r = await run(1);
        p.kill("SIGKILL");
        assert.equal(r.code, 0, "a flock() holder does not block apt either");
    });

    it("watches dpkg's and apt's locks by default", () => {
        assert.deepEqual([...PACKAGE_LOCKS], ["/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock", "/var/lib/apt/lists/lock", "/var/cache/apt/archives/lock"]);
    });
});

describe("the package step", () => {
    /**
     * Runs the package script against stub apt-get/apt-cache/dpkg/dpkg-query that record their
     * calls; `state` says which packages are installed, which are known to the lists, and
     * whether dpkg left an unfinished journal or broken dependencies.
     */
    function runPackages(state: { installed: string[]; known: string[]; journal?: boolean; audit?: string; broken?: boolean; stampAgeMin?: number; failFirstInstall?: boolean }) {
        const dir = fs.mkdtempSync(path.join(tmp, "pkg-"));
        const bin = path.join(dir, "bin");
        const calls = path.join(dir, "calls");
        fs.mkdirSync(bin);
        fs.mkdirSync(path.join(dir, "updates"));
        if (state.journal) fs.writeFileSync(path.join(dir, "updates", "0001"), "");
        const stamp = path.join(dir, "stamp");
        if (state.stampAgeMin !== undefined) {
            fs.writeFileSync(stamp, "");
            const t = new Date(Date.now() - state.stampAgeMin * 60_000);
            fs.utimesSync(stamp, t, t);
        }
        const stub = (name: string, body: string) => fs.writeFileSync(path.join(bin, name), `#!/bin/bash\necho "${name} $*" >>${calls}\n${body}\n`, { mode: 0o755 });
        stub("dpkg-query", `case " ${state.installed.join(" ")} " in *" \${@: -1} "*) printf 'install ok installed' ;; *) exit 1 ;; esac`);
        stub("dpkg", `if [ "$1" = --audit ]; then printf '%s' ${JSON.stringify(state.audit ?? "")}; fi`);
        stub("apt-cache", `case " ${state.known.join(" ")} " in *" $2 "*) echo "  Candidate: 1.0" ;; *) echo "  Candidate: (none)" ;; esac`);
        const failOnce = path.join(dir, "fail-once");
        if (state.failFirstInstall) fs.writeFileSync(failOnce, "");
        stub(
            "apt-get",
            `case " $*" in *" check") ${state.broken ? "exit 100" : "exit 0"} ;; *" install "*) if [ -e ${failOnce} ]; then rm ${failOnce}; echo "E: Failed to fetch http://deb.debian.org/x.deb  404  Not Found"; exit 100; fi ;; esac`,
        );
        const script = renderPackagesScript(["nginx", "curl"], { locks: [path.join(dir, "nolock")], updateStamp: stamp, dpkgUpdatesDir: path.join(dir, "updates"), lockTimeout: 5 });
        const r = spawnSync("bash", ["-c", `${PRELUDE}DEVPI_LOG=${dir}/log\n${script}`, "host-packages"], { encoding: "utf8", env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
        const recorded = fs.existsSync(calls) ? fs.readFileSync(calls, "utf8").trim().split("\n") : [];
        const actions = recorded.filter((c) => /^apt-get .*(update|install)|^dpkg .*--configure/.test(c)).map((c) => c.replace(/ -o \S+/g, "").replace(/ -y -q/, ""));
        return { ...r, actions };
    }

    it("does nothing at all when every package is present and dpkg is clean", () => {
        const r = runPackages({ installed: ["nginx", "curl"], known: ["nginx", "curl"] });
        assert.equal(r.status, 0, r.stderr);
        assert.equal(r.stdout, "all present\n");
        assert.deepEqual(r.actions, []);
    });

    it("installs without apt-get update when the lists are fresh and know the packages", () => {
        const r = runPackages({ installed: ["curl"], known: ["nginx", "curl"], stampAgeMin: 5 });
        assert.equal(r.status, 0, r.stderr);
        assert.deepEqual(r.actions, ["apt-get --no-install-recommends install nginx"]);
    });

    it("updates once when the lists are old, missing, or do not know a package", () => {
        for (const state of [
            { installed: [], known: ["nginx", "curl"], stampAgeMin: 90 },
            { installed: [], known: ["nginx", "curl"] },
            { installed: [], known: ["curl"], stampAgeMin: 5 },
        ]) {
            const r = runPackages(state);
            assert.equal(r.status, 0, r.stderr);
            assert.deepEqual(r.actions, ["apt-get update", "apt-get --no-install-recommends install nginx curl"], JSON.stringify(state));
        }
    });

    it("updates and retries once when a download fails on lists it did not refresh", () => {
        const r = runPackages({ installed: [], known: ["nginx", "curl"], stampAgeMin: 5, failFirstInstall: true });
        assert.equal(r.status, 0, r.stderr);
        assert.deepEqual(r.actions, ["apt-get --no-install-recommends install nginx curl", "apt-get update", "apt-get --no-install-recommends install nginx curl"]);
    });

    it("finishes what an interrupted dpkg left before installing", () => {
        for (const state of [
            { installed: ["curl"], known: ["nginx", "curl"], stampAgeMin: 5, journal: true },
            { installed: ["curl"], known: ["nginx", "curl"], stampAgeMin: 5, audit: "The following packages are only half configured" },
        ]) {
            const r = runPackages(state);
            assert.equal(r.status, 0, r.stderr);
            assert.match(r.stderr, /^an earlier package operation was interrupted: running dpkg --configure -a$/m);
            assert.deepEqual(r.actions, ["dpkg --force-confdef --force-confold --configure -a", "apt-get --no-install-recommends install nginx"]);
        }
    });

    it("repairs broken dependencies with apt-get -f install", () => {
        const r = runPackages({ installed: ["nginx", "curl"], known: ["nginx", "curl"], broken: true });
        assert.equal(r.status, 0, r.stderr);
        assert.deepEqual(r.actions, ["apt-get -f install"]);
    });

    it("lets apt-get wait for the lock too (the gap between our check and apt's own lock)", () => {
        assert.match(renderPackagesScript(), /DPkg::Lock::Timeout=\$lock_timeout/);
        assert.match(renderPackagesScript(undefined, { lockTimeout: 42 }), /^lock_timeout=42$/m);
    });

    it("passes shellcheck", () => {
        const r = spawnSync("shellcheck", ["-s", "bash", "-"], { input: `#!/bin/bash\n${PRELUDE}${renderPackagesScript()}`, encoding: "utf8" });
        assert.equal(r.status, 0, r.stdout);
    });
});

describe("the backup script on a full file system", () => {
    it("exits 1 with one line naming the cause, removes its partial export and keeps older backups", () => {
        const dir = fs.mkdtempSync(path.join(tmp, "backup-"));
        const venv = path.join(dir, "venv");
        const backups = path.join(dir, "backups");
        fs.mkdirSync(path.join(venv, "bin"), { recursive: true });
        fs.mkdirSync(path.join(backups, "devpi-export-20260101T000000Z"), { recursive: true });
        // A devpi-export that writes part of its dump, then runs out of space as the real one does.
        fs.writeFileSync(
            path.join(venv, "bin/devpi-export"),
            '#!/bin/bash\nmkdir -p "${@: -1}" && echo half >"${@: -1}/dataindex.json"\necho "Traceback (most recent call last):" >&2\necho "OSError: [Errno 28] No space left on device" >&2\nexit 1\n',
            { mode: 0o755 },
        );
        const script = renderBackupScript({ venvDir: venv, configFile: "/dev/null", backupDir: backups, keep: 7 });
        const r = spawnSync("bash", ["-c", script], { encoding: "utf8" });
        assert.equal(r.status, 1);
        assert.equal(r.stdout, "");
        assert.match(
            r.stderr,
            new RegExp(
                `^devpi-backup failed: devpi-export into ${backups} failed: OSError: \\[Errno 28\\] No space left on device \\(\\S+ free on /\\S*\\)\\. Older backups are kept; free space there and run it again\\.\\n$`,
            ),
        );
        assert.deepEqual(fs.readdirSync(backups), ["devpi-export-20260101T000000Z"], "no partial export left, the older backup kept");
    });
});

describe("the data lock: one backup, restore or upgrade at a time", () => {
    /** Holds an flock on `dir` (as a running backup, restore or upgrade does) until killed. */
    async function holdDirLock(dir: string): Promise<ChildProcess> {
        // One process that holds the lock itself, so that killing it frees the lock.
        const hold = "import fcntl, os, sys, time\nfd = os.open(sys.argv[1], os.O_RDONLY)\nfcntl.flock(fd, fcntl.LOCK_EX)\nprint('locked', flush=True)\ntime.sleep(600)\n";
        const p = spawn("python3", ["-c", hold, dir], { stdio: ["ignore", "pipe", "inherit"] });
        holders.push(p);
        await new Promise<void>((resolve) => p.stdout.once("data", () => resolve()));
        return p;
    }
    /** A backup directory and a devpi-export stub that records when it ran. */
    function backupSetup() {
        const dir = fs.mkdtempSync(path.join(tmp, "lock-"));
        const venv = path.join(dir, "venv");
        const backups = path.join(dir, "backups");
        fs.mkdirSync(path.join(venv, "bin"), { recursive: true });
        fs.mkdirSync(backups);
        const ran = path.join(dir, "export-ran");
        fs.writeFileSync(path.join(venv, "bin/devpi-export"), `#!/bin/bash\ndate +%s.%N >${ran}\nmkdir -p "\${@: -1}"\n`, { mode: 0o755 });
        return { backups, ran, script: renderBackupScript({ venvDir: venv, configFile: "/dev/null", backupDir: backups, keep: 7 }) };
    }

    it("a backup started while the lock is held says what it waits for and exports only once the lock is free", async () => {
        const { backups, ran, script } = backupSetup();
        const holder = await holdDirLock(backups);
        const backup = spawn("bash", ["-c", script], { stdio: ["ignore", "pipe", "pipe"] });
        let err = "";
        let out = "";
        backup.stderr.on("data", (d: Buffer) => (err += d.toString()));
        backup.stdout.on("data", (d: Buffer) => (out += d.toString()));
        const exited = new Promise<number | null>((resolve) => backup.on("exit", resolve));
        // Until it says so (bounded: a loaded machine starts bash slowly), then a while longer.
        for (let i = 0; i < 100 && !err.includes("\n"); i++) await new Promise((r) => setTimeout(r, 100));
        await new Promise((r) => setTimeout(r, 1000));
        assert.equal(backup.exitCode, null, "still waiting while the lock is held");
        assert.ok(!fs.existsSync(ran), "devpi-export has not run");
        assert.equal(err, `waiting up to 3600 s for a running devpi backup, restore or upgrade to finish (it holds the lock on ${backups})\n`);
        const freed = Date.now() / 1000;
        holder.kill("SIGKILL");
        assert.equal(await exited, 0, err);
        assert.ok(Number(fs.readFileSync(ran, "utf8")) >= freed - 0.05, "the export ran after the lock was freed");
        assert.match(out, new RegExp(`^${backups}/devpi-export-\\d{8}T\\d{6}Z\\n$`));
    });

    it("a backup with the lock free does not wait or say anything on stderr", () => {
        const { ran, script } = backupSetup();
        const r = spawnSync("bash", ["-c", script], { encoding: "utf8" });
        assert.equal(r.status, 0, r.stderr);
        assert.equal(r.stderr, "");
        assert.ok(fs.existsSync(ran));
    });

    it("after the bounded wait it fails naming the lock, and runs nothing after it", async () => {
        const dir = fs.mkdtempSync(path.join(tmp, "lock-timeout-"));
        await holdDirLock(dir);
        const script = `${PRELUDE}${renderDataLock(dir, "fail", 1)}echo "ran after the lock"\n`;
        const r = runStep(stepCommand("devpi-upgrade", "create", script, "root"), stepStdin(script, undefined));
        assert.equal(r.status, 1);
        assert.doesNotMatch(r.stdout, /ran after the lock/);
        assert.match(
            r.stderr,
            new RegExp(
                `^devpi step devpi-upgrade failed: a devpi backup, restore or upgrade still held the lock on ${dir} after 1 s; nothing was done\\. Run this again once it has finished\\.$`,
                "m",
            ),
        );
    });

    it("the restore and the upgrade take the lock before they stop devpi or move, export or import its data", () => {
        const restore = renderRestoreScript({
            venvDir: "/opt/devpi/venv",
            configFile: "/etc/devpi/devpi-server.yml",
            backupDir: "/srv/devpi/backups",
            serverDir: "/srv/devpi/data",
            serviceUser: "devpi",
            program: "devpi",
            devpiUrl: "http://127.0.0.1:4040",
        });
        const lockAt = restore.indexOf("exec 9<'/srv/devpi/backups'");
        assert.ok(lockAt > 0 && lockAt < restore.indexOf("supervisorctl stop") && lockAt < restore.indexOf('mv -T -- "$sd" "$aside"'), restore);
        const upgrade = renderUpgradeScript({
            venvDir: "/opt/devpi/venv",
            key: "devpi-server-6.20.3",
            configFile: "/etc/devpi/devpi-server.yml",
            serverDir: "/srv/devpi/data",
            backupDir: "/srv/devpi/backups",
            serviceUser: "devpi",
            program: "devpi",
            devpiUrl: "http://127.0.0.1:4040",
            strategy: "auto",
            allowDowngrade: false,
            readyTimeout: 120,
            logFile: "/var/log/supervisor/devpi.log",
        });
        // The repair of an interrupted upgrade (first) takes it before it moves anything back.
        const rLock = upgrade.indexOf("exec 9<'/srv/devpi/backups'");
        const repair = upgrade.slice(upgrade.indexOf('if [ -f "$marker" ]; then'), upgrade.indexOf("\nfi\n", upgrade.indexOf('if [ -f "$marker" ]; then')));
        assert.ok(rLock > 0 && rLock < upgrade.indexOf('as_user mv -T -- "$m_aside" "$sd"') && repair.includes("exec 9<"), "the repair takes the lock before moving data back");
        const uLock = upgrade.lastIndexOf("exec 9<'/srv/devpi/backups'");
        assert.ok(uLock > upgrade.indexOf('service_dir "$user" 0700'), "the backup directory exists before it is locked");
        for (const later of ['supervisorctl stop "$prog"', '"$cur/bin/devpi-export"', 'as_user mv -T -- "$sd" "$aside"', '"$new/bin/devpi-import"']) {
            assert.ok(uLock > rLock && uLock < upgrade.lastIndexOf(later), `lock before ${later}`);
        }
        assert.ok(uLock > upgrade.indexOf('${recovered:+$recovered; }devpi-server-6.20.3 is active"'), "an upgrade with nothing to do takes no lock");
        assert.doesNotMatch(
            renderUpgradeScript({
                venvDir: "/opt/devpi/venv",
                key: "k",
                configFile: "c",
                serverDir: "/s",
                backupDir: "/b",
                serviceUser: "devpi",
                program: "devpi",
                devpiUrl: "u",
                strategy: "auto",
                allowDowngrade: false,
                readyTimeout: 1,
                logFile: "l",
                replica: true,
            }),
            /exec 9</,
            "a replica has no backups to wait for",
        );
    });
});

describe("the health check when nothing answers", () => {
    it("fails with one line naming the step and every problem, before the log tails", () => {
        const script = renderHealthCheckScript({
            domain: "localhost",
            httpPort: 9,
            httpsPort: 9,
            certSha256: "ab",
            indexes: ["bz/dev"],
            replication: false,
            devpiLog: "/nonexistent.log",
            revision: "1",
        });
        const r = runStep(stepCommand("health-https", "create", script, "root"), stepStdin(script, undefined));
        assert.equal(r.status, 1);
        const first = r.stderr.split("\n")[0];
        assert.match(
            first,
            /^devpi step health-https failed: (nginx is not running \(start it: systemctl start nginx, or service nginx start\); )?HTTPS request to localhost:9 failed: .*Connection refused; HTTP request failed: .*Connection refused$/,
        );
        assert.match(r.stderr, /\n--- tail of \/var\/log\/nginx\/error.log\n/);
    });
});
