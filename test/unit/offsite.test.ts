/**
 * The off-host copy of the backups in our own code: devpi:offsite's rules (stack keys and the
 * component's argument), and the scripts (shellcheck; secrets never in an argument).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";
import { PRELUDE, renderSpaceCheck } from "../../components/common/shell";
import { renderBackupScript, renderRestoreScript } from "../../components/backup/backupScript";
import { renderInstallScript } from "../../components/devpi/devpiServerConfig";
import { renderUpgradeScript } from "../../components/devpi/devpiUpgradeScript";
import { renderOffsiteRestoreScript, renderOffsiteScript, renderOffsiteSetupScript } from "../../components/backup/offsiteScript";
import { ConfigError, parseOffsite } from "../../config";

const KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE\n-----END OPENSSH PRIVATE KEY-----\n";
const SFTP = { repository: "sftp:backup@backup.example.com:/srv/restic/devpi", password: "a-long-repository-password", sshPrivateKey: KEY, sshHostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGf0" };

/** The off-host scripts' settings: an SFTP target on port 2222, the default layout. */
const SCRIPT_SETTINGS = { repository: SFTP.repository, sshPort: 2222, sshHostKey: SFTP.sshHostKey, keep: { daily: 7, weekly: 4, monthly: 12 }, serviceUser: "devpi", backupDir: "/srv/devpi/backups" };

function rejects(v: unknown, message: RegExp): void {
    assert.throws(
        () => parseOffsite(v),
        (e: unknown) => e instanceof ConfigError && message.test(e.message),
        `expected ${message}`,
    );
}

describe("devpi:offsite", () => {
    it("unset or empty: none; SFTP and S3 with defaults filled in", () => {
        assert.equal(parseOffsite(undefined), undefined);
        assert.equal(parseOffsite({}), undefined);
        assert.deepEqual(parseOffsite(SFTP), {
            repository: SFTP.repository,
            password: SFTP.password,
            sftp: { privateKey: KEY, hostKey: SFTP.sshHostKey, port: 22 },
            keep: { daily: 7, weekly: 4, monthly: 12 },
        });
        const s3 = parseOffsite({
            repository: "s3:https://minio.example.com/devpi",
            password: "a-long-repository-password",
            s3AccessKeyId: "AK",
            s3SecretAccessKey: "SK",
            keep: { daily: 3, weekly: 0 },
        });
        assert.deepEqual(s3?.s3, { accessKeyId: "AK", secretAccessKey: "SK" });
        assert.deepEqual(s3?.keep, { daily: 3, weekly: 0, monthly: 12 });
    });

    it("refuses bad input before any server is touched, naming the key", () => {
        rejects({ ...SFTP, repository: "backup.example.com:/srv" }, /^devpi:offsite\.repository: invalid value "backup\.example\.com:\/srv": must be sftp:USER@HOST:\/ABSOLUTE\/PATH .* or s3:/);
        rejects({ ...SFTP, repository: "sftp:backup@host:relative" }, /^devpi:offsite\.repository:/);
        rejects({ ...SFTP, password: "short" }, /^devpi:offsite\.password: invalid value "\(secret\)": must be at least 12 characters/);
        rejects({ ...SFTP, sshPrivateKey: undefined }, /^devpi:offsite\.sshPrivateKey: .*private key/);
        rejects({ ...SFTP, sshHostKey: "not a key" }, /^devpi:offsite\.sshHostKey: invalid value "not a key": must be the SFTP target's host key/);
        rejects({ ...SFTP, sshPort: 0 }, /^devpi:offsite\.sshPort: invalid value 0:/);
        rejects({ ...SFTP, keep: { daily: 0, weekly: 0, monthly: 0 } }, /^devpi:offsite\.keep: .*keeps nothing/);
        rejects({ ...SFTP, keep: { hourly: 3 } }, /^devpi:offsite\.keep\.hourly: .*unknown key/);
        rejects({ ...SFTP, keep: { daily: -1 } }, /^devpi:offsite\.keep\.daily: invalid value -1: must be an integer from 0 to 1000/);
        rejects({ ...SFTP, bucket: "x" }, /^devpi:offsite\.bucket: .*unknown key/);
        rejects({ repository: "s3:https://minio.example.com/devpi", password: "a-long-repository-password" }, /^devpi:offsite\.s3AccessKeyId: .*required for an s3: repository/);
    });
});

describe("the off-host scripts", () => {
    const settings = SCRIPT_SETTINGS;
    const script = renderOffsiteScript(settings);
    const restore = renderOffsiteRestoreScript({ ...settings, restoreScript: "/usr/local/sbin/devpi-restore" });
    const setup = renderOffsiteSetupScript({ ...settings, script, restore });

    it("pass shellcheck", () => {
        for (const [name, body] of [
            ["devpi-offsite", script],
            ["devpi-restore-offsite", restore],
            ["the backup script", renderBackupScript({ venvDir: "/v", configFile: "/c", backupDir: "/b", keep: 3 })],
        ]) {
            const r = spawnSync("shellcheck", ["-"], { input: body, encoding: "utf8" });
            assert.equal(r.status, 0, `${name}: ${r.stdout}`);
        }
        const r = spawnSync("shellcheck", ["-s", "bash", "-"], { input: `#!/bin/bash\n${PRELUDE}${setup}`, encoding: "utf8" });
        assert.equal(r.status, 0, `setup: ${r.stdout}`);
    });

    it("restic reads the password from a file and logs in with the pinned host key; secrets come on stdin", () => {
        assert.match(script, /RESTIC_PASSWORD_FILE=\/etc\/devpi\/offsite\/password/);
        assert.match(script, /sftp\.command=ssh -p 2222 -i \/etc\/devpi\/offsite\/ssh_key -o UserKnownHostsFile=\/etc\/devpi\/offsite\/known_hosts -o StrictHostKeyChecking=yes/);
        assert.match(script, /forget --tag devpi --host devpi --group-by host,tags --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --prune/);
        assert.match(setup, /secrets=\$\(cat\)/);
        assert.match(setup, /'\[backup\.example\.com\]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGf0'/);
        assert.doesNotMatch(setup + script, /PRIVATE KEY|a-long-repository-password/);
    });

    it("a copy with too little room for restic's cache fails before restic runs, naming the path and both sizes", () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "offsite-space-"));
        const bin = path.join(dir, "bin");
        const backups = path.join(dir, "backups");
        fs.mkdirSync(bin);
        fs.mkdirSync(path.join(backups, "devpi-export-1"), { recursive: true });
        // df reports 10 MiB free; restic leaves a mark if it is ever run.
        fs.writeFileSync(path.join(bin, "df"), `#!/bin/sh\necho "Filesystem 1024-blocks Used Available Capacity Mounted on"\necho "/dev/x 1048576 1038336 10240 99% /srv"\n`, { mode: 0o755 });
        fs.writeFileSync(path.join(bin, "restic"), `#!/bin/sh\ntouch ${dir}/restic-ran\n`, { mode: 0o755 });
        const body = renderOffsiteScript({ ...SCRIPT_SETTINGS, backupDir: backups });
        const r = spawnSync("bash", ["-c", body, "devpi-offsite", path.join(backups, "devpi-export-1")], { encoding: "utf8", env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
        assert.equal(r.status, 1, r.stdout + r.stderr);
        assert.equal(
            r.stderr.trim(),
            `devpi-offsite failed: not enough free space for restic's cache in ${backups}/.restic-cache: 10 MiB free on /srv, at least 64 MiB needed; free space there and run it again`,
        );
        assert.equal(fs.existsSync(path.join(dir, "restic-ran")), false, "restic never ran");
        fs.rmSync(dir, { recursive: true });
    });
});

describe("free space checked before a step writes much", () => {
    it("fails at once naming the path, the free and the needed space; passes when there is enough", () => {
        const run = (mib: number) => spawnSync("bash", ["-c", `fail() { echo "$1" >&2; exit 1; }\n${renderSpaceCheck("/tmp/not/yet/made", mib, "the test's files")}echo fits`], { encoding: "utf8" });
        const small = run(1);
        assert.equal(small.status, 0, small.stderr);
        assert.equal(small.stdout.trim(), "fits");
        const huge = run(100_000_000);
        assert.equal(huge.status, 1);
        assert.match(huge.stderr, /^not enough free space for the test's files in \/tmp\/not\/yet\/made: \d+ MiB free on \/\S*, at least 100000000 MiB needed; free space there and run it again$/m);
    });

    it("a need computed on the server ($need) is checked the same way", () => {
        const run = (need: number) =>
            spawnSync("bash", ["-c", `set -u; fail() { echo "$1" >&2; exit 1; }\nneed=${need}\n${renderSpaceCheck("/tmp", "$need", "the import of $name")}echo fits`], {
                encoding: "utf8",
                env: { ...process.env, name: "devpi-export-X" },
            });
        assert.equal(run(1).stdout.trim(), "fits");
        const huge = run(100_000_000);
        assert.equal(huge.status, 1);
        assert.match(huge.stderr, /^not enough free space for the import of devpi-export-X in \/tmp: \d+ MiB free on \/\S*, at least 100000000 MiB needed/m);
    });

    it("every step that writes much checks before it writes: the virtualenv, the restore's import, the upgrade's export and import, the off-host copy and restore", () => {
        const base = {
            venvDir: "/opt/devpi/venv",
            configFile: "/etc/devpi/devpi-server.yml",
            backupDir: "/srv/devpi/backups",
            serverDir: "/srv/devpi/data",
            serviceUser: "devpi",
            program: "devpi",
            devpiUrl: "http://127.0.0.1:4040",
        };
        const upgrade = renderUpgradeScript({ ...base, key: "devpi-server-6.20.3", allowDowngrade: false, readyTimeout: 120, strategy: "export-import", logFile: "/var/log/devpi.log" });
        const cases: [string, string, string, string][] = [
            ["the virtualenv", renderInstallScript({ venvDir: "/opt/devpi/venv", serverVersion: "6.20.3", webVersion: "5.1.1", web: true }), "for devpi's virtualenv", "python3 -m venv"],
            ["the restore's import", renderRestoreScript(base), "for the import of $name in /srv/devpi/data", "devpi-import"],
            ["the upgrade's export", upgrade, "for the backup taken before the upgrade to $new_ver in /srv/devpi/backups", "bin/devpi-export"],
            ["the upgrade's import", upgrade, "for the import into $new_ver (nothing was switched; $old_ver serves again) in /srv/devpi/data", "bin/devpi-import"],
            ["the off-host copy's cache", renderOffsiteScript(SCRIPT_SETTINGS), "for restic's cache in /srv/devpi/backups/.restic-cache", " backup --tag devpi"],
            [
                "the off-host restore",
                renderOffsiteRestoreScript({ ...SCRIPT_SETTINGS, restoreScript: "/usr/local/sbin/devpi-restore" }),
                "for the snapshot $snapshot in /srv/devpi/backups",
                "--restic restore",
            ],
        ];
        for (const [what, script, check, writer] of cases) {
            const at = script.indexOf(`not enough free space ${check}`);
            assert.ok(at >= 0, `${what}: checks the free space (${check})`);
            assert.ok(at < script.indexOf(writer), `${what}: checks before ${writer}`);
        }
        assert.match(upgrade, /space_fail\(\) \{ supervisorctl start "\$prog"/, "a refused import starts the old version again");
    });
});
