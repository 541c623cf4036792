/**
 * A compromised devpi-server: the service user (`devpi`) turns hostile on a provisioned host. It
 * plants links at the paths root later touches, pointing at root-owned canaries, and the program
 * runs as usual (a config change that rewrites devpi's config and re-checks the secret, a new
 * backup directory, a restore). No canary changes owner, mode or content; each step either
 * refuses, naming the path, or replaces the link. Also here, because they need the same fresh host:
 * root's devpi password is never empty (a prober logs in as root with an empty password from
 * before the first `pulumi up` until it ends), the TLS policy seen from outside (sslscan), the key
 * and data modes seen from inside, and a bad path refused before any SSH connection.
 *
 * DEVPI_HOSTILE_LAYOUT=seed runs it in the seed's layout (service user `web`, everything under
 * /home/web/repo, the venv link in web's own directory), where the service user also re-points the
 * venv link at a virtualenv of its own before an upgrade: nothing in it may run as root.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import * as path from "node:path";
import { after, describe } from "node:test";
import { shellQuote } from "../../components/common/shell";
import { buildPackage, client, onHost, steps } from "../e2e/harness";
import { aliceClient, CutReport, cuttingLog, disposeEnv, endCut, FAULT_PORTS, faultEnv, FaultEnv, hostProcesses, ROOT_PASSWORD, startedBySshd, tryUp } from "./faultHarness";

const SEED_START_VERSION = "6.19.3";
/** The two layouts: today's default, and the seed's (the how-to's user and paths). */
const LAYOUTS = {
    default: { user: "devpi", serverDir: "/srv/devpi/data", backupDir: "/srv/devpi/backups", venvDir: "/opt/devpi/venv", oldSecret: "/srv/devpi/.secret", config: {} },
    seed: {
        user: "web",
        serverDir: "/home/web/repo/devpi/data",
        backupDir: "/home/web/repo/backup/devpi",
        venvDir: "/home/web/repo/devpi/venv_devpi",
        oldSecret: undefined,
        config: {
            "devpi:serviceUser": { value: "web" },
            "devpi:venvDir": { value: "/home/web/repo/devpi/venv_devpi" },
            "devpi:serverDir": { value: "/home/web/repo/devpi/data" },
            "devpi:backupDir": { value: "/home/web/repo/backup/devpi" },
            "devpi:web": { value: "false" },
            // An upgrade later (the venv link case) goes from this version to the default.
            "devpi:devpiServerVersion": { value: SEED_START_VERSION },
        },
    },
} as const;
const LAYOUT_NAME = (process.env.DEVPI_HOSTILE_LAYOUT ?? "default") as keyof typeof LAYOUTS;
if (!(LAYOUT_NAME in LAYOUTS)) throw new Error(`DEVPI_HOSTILE_LAYOUT=${LAYOUT_NAME}: use default or seed`);
const L = LAYOUTS[LAYOUT_NAME];
/** A second backup directory the hostile user plants a link at (in its home, a directory it owns). */
const BACKUPS2 = `${path.posix.dirname(L.serverDir)}/backups2`;
const PORTS = FAULT_PORTS(LAYOUT_NAME === "seed" ? 23095 : 23090);
let env: FaultEnv | undefined;
const measured: string[] = [];

/** Root-owned canaries inside the host: a file and a directory, with their owner, mode and content. */
const CANARIES = "/root/canary-file /root/canary-dir /root/canary-dir/inside";
const canaryState = (e: FaultEnv) => onHost(e.host, `stat -c '%n %U:%G %a' ${CANARIES}; sha256sum /root/canary-file /root/canary-dir/inside`);
/** Runs `cmd` inside the host as `user`, with its output and errors. */
const asUser = (e: FaultEnv, user: string, cmd: string) => onHost(e.host, `cd / && runuser -u ${user} -- sh -c ${shellQuote(cmd)} 2>&1; true`);
/** Runs `cmd` inside the host as the service user. */
const asDevpi = (e: FaultEnv, cmd: string) => asUser(e, L.user, cmd);

/** POST /+login as root with an empty password, every `everyMs`, to each URL; counts answers by status. */
function emptyRootProber(urls: string[], everyMs: number) {
    const counts: Record<string, number> = {};
    let stopped = false;
    const body = JSON.stringify({ user: "root", password: "" });
    const once = (url: string) =>
        new Promise<void>((resolve) => {
            const u = new URL(url);
            const lib = u.protocol === "https:" ? https : http;
            const req = lib.request(u, { method: "POST", rejectUnauthorized: false, timeout: 2000, headers: { "Content-Type": "application/json", Accept: "application/json" } }, (res) => {
                res.resume();
                res.on("end", () => {
                    counts[`${u.port} ${res.statusCode}`] = (counts[`${u.port} ${res.statusCode}`] ?? 0) + 1;
                    resolve();
                });
            });
            req.on("error", () => {
                counts[`${u.port} no answer`] = (counts[`${u.port} no answer`] ?? 0) + 1;
                resolve();
            });
            req.on("timeout", () => req.destroy());
            req.end(body);
        });
    const loop = (async () => {
        while (!stopped) {
            await Promise.all(urls.map(once));
            await new Promise((r) => setTimeout(r, everyMs));
        }
    })();
    return {
        counts,
        stop: async () => {
            stopped = true;
            await loop;
        },
    };
}

describe(`a hostile service user cannot steer root; root's password is never empty; TLS and modes (${LAYOUT_NAME} layout)`, { timeout: 60 * 60 * 1000 }, () => {
    const it = steps();
    after(async () => {
        await disposeEnv(env);
        console.log(measured.join("\n"));
    });

    it("a path that would hand a system directory to the service user is refused before any SSH connection", async () => {
        env = await faultEnv(LAYOUT_NAME === "seed" ? "flt-hostile-seed" : "flt-hostile", PORTS);
        const e = env;
        await e.stack.setAllConfig({ ...L.config });
        await e.stack.setConfig("devpi:serverDir", { value: "/var/lib/devpi" });
        const seen: number[] = [];
        const sampler = setInterval(() => {
            for (const p of hostProcesses(e.host)) if (startedBySshd(e.host, p.pid) && !seen.includes(p.pid)) seen.push(p.pid);
        }, 20);
        const r = await tryUp(e);
        clearInterval(sampler);
        assert.equal(r.ok, false);
        assert.match(r.error, /devpi:serverDir/);
        assert.match(r.error, /\/var\/lib\/devpi/);
        assert.match(r.error, /\/var\/lib/);
        assert.deepEqual(seen, [], "nothing ran through the host's sshd");
        await e.stack.setConfig("devpi:serverDir", { value: L.serverDir });
    });

    it("root's devpi password is never empty: a prober logging in as root with an empty password never gets in, through a first pulumi up cut as root's password step starts (devpi running), 20 s after it, and the run that completes it", async () => {
        const e = env!;
        const prober = emptyRootProber([`https://127.0.0.1:${PORTS.https}/+login`, `http://127.0.0.1:${PORTS.devpi}/+login`], 50);
        const t0 = Date.now();
        const report: CutReport = { fired: false, killed: [] };
        const cut = await tryUp(e, cuttingLog(e.log, e.host, { label: "root's password step", step: "root-password-set" }, report));
        await endCut(report);
        assert.ok(report.fired, "the run was cut");
        assert.equal(cut.ok, false, "the cut run failed");
        assert.ok(
            hostProcesses(e.host).some((p) => /devpi-server -c/.test(p.args)),
            "devpi-server runs after the cut",
        );
        const cutCounts = { ...prober.counts };
        await new Promise((r) => setTimeout(r, 20_000));
        const r = await tryUp(e);
        await prober.stop();
        assert.ok(r.ok, r.error.slice(0, 3000));
        measured.push(
            `cut run and completing run ${((Date.now() - t0) / 1000).toFixed(0)} s (cut killed ${report.killed.join(" ")}); empty root logins until the cut: ${JSON.stringify(cutCounts)}; in all: ${JSON.stringify(prober.counts)}`,
        );
        const accepted = Object.entries(prober.counts).filter(([k]) => / 200$/.test(k));
        assert.deepEqual(accepted, [], JSON.stringify(prober.counts));
        // The prober reached devpi (401/403 answers), on its own port and through nginx.
        assert.ok(
            Object.keys(prober.counts).some((k) => k.startsWith(`${PORTS.devpi} 4`)),
            JSON.stringify(prober.counts),
        );
        assert.ok(
            Object.keys(prober.counts).some((k) => k.startsWith(`${PORTS.https} 4`)),
            JSON.stringify(prober.counts),
        );
    });

    it("modes from inside: the TLS key, devpi's config and secret are root's; the database and backups the service user's alone; nginx reads release files only", async () => {
        const e = env!;
        // An upload, so that there is a release file to read.
        const caFile = path.join(e.work, "ca.pem");
        fs.writeFileSync(caFile, String((await e.stack.outputs()).caCertificate.value));
        const { venv, cenv } = await aliceClient(e, caFile);
        const upload = await client(venv, "devpi", ["upload", buildPackage(venv, "hostile-pkg", "1.0.0", path.join(e.work, "dist"))], cenv);
        assert.equal(upload.code, 0, upload.out);
        const u = L.user;
        const modes = onHost(
            e.host,
            `stat -c '%n %U:%G %a' /srv/ssl/devpi /srv/ssl/devpi/server.key /etc/devpi /etc/devpi/devpi-server.yml /etc/devpi/secret /etc/devpi/root-credential.json ${L.backupDir} ${L.serverDir}/.sqlite`,
        );
        measured.push(modes.trim());
        assert.match(modes, /^\/srv\/ssl\/devpi\/server\.key root:root 400$/m);
        assert.match(modes, /^\/srv\/ssl\/devpi root:root (700|500)$/m);
        assert.match(modes, /^\/etc\/devpi root:root 755$/m);
        assert.match(modes, /^\/etc\/devpi\/devpi-server\.yml root:root 644$/m);
        assert.match(modes, new RegExp(`^/etc/devpi/secret ${u}:${u} 600$`, "m"));
        assert.match(modes, /^\/etc\/devpi\/root-credential\.json root:root 600$/m);
        assert.match(modes, new RegExp(`^${L.backupDir} ${u}:${u} 700$`, "m"));
        assert.match(modes, new RegExp(`^${L.serverDir}/\\.sqlite ${u}:${u} 600$`, "m"));
        assert.match(asDevpi(e, "cat /srv/ssl/devpi/server.key"), /Permission denied/);
        assert.match(asDevpi(e, "touch /etc/devpi/x; ln -s /root/canary-file /etc/devpi/secret.new"), /Permission denied/);
        assert.match(asDevpi(e, `rm -rf "$(dirname "$(readlink -f ${L.venvDir})")"/*`), /Permission denied/, "the service user cannot touch root's virtualenvs");
        const asNginx = (cmd: string) => asUser(e, "www-data", cmd);
        assert.match(asNginx(`cat ${L.serverDir}/.sqlite >/dev/null`), /Permission denied/, "nginx's user cannot read devpi's database");
        assert.match(asNginx(`cat /etc/devpi/secret >/dev/null`), /Permission denied/);
        assert.match(asNginx(`ls ${L.backupDir}`), /Permission denied/);
        const release = onHost(e.host, `find ${L.serverDir}/+files -name 'hostile_pkg-1.0.0-*.whl'`).trim();
        assert.ok(release, "the upload is on disk");
        assert.match(asNginx(`head -c 2 ${shellQuote(release)} && echo release-readable`), /release-readable/, "nginx's user reads the release files it serves");
    });

    it("the TLS policy seen from outside (sslscan): TLS 1.2 and 1.3 only, TLS 1.2 with forward-secret AEAD suites only", () => {
        const out = execFileSync("sslscan", ["--no-colour", "--no-heartbleed", "--no-compression", "--no-fallback", "--no-renegotiation", `127.0.0.1:${PORTS.https}`], { encoding: "utf8" });
        const accepted = out
            .split("\n")
            .filter((l) => /^(Preferred|Accepted)\s/.test(l))
            .map((l) => l.trim().split(/\s+/));
        measured.push(`sslscan accepted: ${accepted.map((a) => `${a[1]} ${a[4]}`).join(", ")}`);
        assert.ok(accepted.length > 0, out);
        for (const a of accepted) {
            const [, proto, , , cipher] = a;
            assert.ok(proto === "TLSv1.2" || proto === "TLSv1.3", `protocol ${proto} accepted`);
            if (proto === "TLSv1.2") assert.match(cipher, /^ECDHE-(ECDSA|RSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$/, `cipher ${cipher} outside the policy`);
        }
        assert.match(out, /TLSv1\.0\s+disabled/);
        assert.match(out, /TLSv1\.1\s+disabled/);
    });

    it("links planted by the service user at the secret's old place and the backup directory: a config change and a new backup directory leave every canary alone, refusing with the path", async () => {
        const e = env!;
        onHost(
            e.host,
            "mkdir -p /root/canary-dir && echo secret >/root/canary-dir/inside && echo canary >/root/canary-file && chmod 0600 /root/canary-file /root/canary-dir/inside && chmod 0700 /root/canary-dir",
        );
        const before = canaryState(e);
        // The old secret place (read once, as the service user, when a server migrates) and a new backup directory.
        asDevpi(e, `${L.oldSecret ? `ln -sfn /root/canary-file ${L.oldSecret}; ` : ""}ln -sfn /root/canary-dir ${BACKUPS2}`);
        assert.match(onHost(e.host, `test -L ${BACKUPS2} && echo planted`), /planted/, "the service user could plant its link");
        await e.stack.setConfig("devpi:mirrorCacheExpiry", { value: "1700" });
        const r1 = await tryUp(e);
        assert.ok(r1.ok, r1.error.slice(0, 3000));
        assert.equal(canaryState(e), before, "a config change (devpi-server.yml rewritten, the secret re-checked) left the canaries alone");
        await e.stack.setConfig("devpi:backupDir", { value: BACKUPS2 });
        const r2 = await tryUp(e);
        assert.equal(r2.ok, false, "a backup directory that is a link is refused");
        const cause = r2.error.split("\n").find((l) => l.includes(`${BACKUPS2} is a symbolic link`)) ?? "";
        measured.push(`refused: ${cause.trim()}`);
        assert.match(cause, new RegExp(`devpi step \\S+ failed: ${BACKUPS2} is a symbolic link; refusing to use it as ${L.user}'s directory`));
        assert.equal(canaryState(e), before, "the refused run left the canaries alone");
        await e.stack.setConfig("devpi:backupDir", { value: L.backupDir });
    });

    it("a restore run by root with the backup directory replaced by a link refuses (in the seed layout the service user cannot even replace it: its parent is root's); a backup run as the service user cannot write into root's directory", () => {
        const e = env!;
        const before = canaryState(e);
        const plant = asDevpi(e, `mv ${L.backupDir} ${L.backupDir}.real && ln -s /root/canary-dir ${L.backupDir}; test -L ${L.backupDir} && echo planted`);
        const planted = /planted/.test(plant);
        if (LAYOUT_NAME === "seed") assert.match(plant, /Permission denied/, plant);
        else assert.ok(planted, plant);
        const restore = onHost(e.host, "devpi-restore inside 2>&1; echo rc=$?");
        assert.match(restore, planted ? new RegExp(`${L.backupDir} is not a directory \\(a link\\?\\); nothing was done`) : new RegExp(`no backup named inside in ${L.backupDir}`));
        assert.match(restore, /rc=1/);
        const backup = asDevpi(e, "/usr/local/sbin/devpi-backup; echo rc=$?");
        assert.match(backup, planted ? /rc=1/ : /rc=0/, backup);
        assert.equal(canaryState(e), before, "neither touched the canaries");
        if (planted) asDevpi(e, `rm ${L.backupDir} && mv ${L.backupDir}.real ${L.backupDir}`);
        asDevpi(e, `rm -f ${L.oldSecret ?? ""} ${BACKUPS2}`);
    });

    if (LAYOUT_NAME === "seed") {
        it(`the venv link, in the service user's own directory, re-pointed at a virtualenv of its own: the upgrade ${SEED_START_VERSION} -> the default runs none of it as root, and puts the link back`, async () => {
            const e = env!;
            const real = onHost(e.host, `readlink -f ${L.venvDir}`).trim();
            assert.match(real, /^\/opt\/devpi\/versions\//);
            // Every program of the fake venv records who ran it, then runs the real one.
            const fake = `${path.posix.dirname(L.serverDir)}/fake-venv`;
            asDevpi(
                e,
                `rm -rf ${fake} && mkdir -p ${fake}/bin && for f in ${real}/bin/*; do n=$(basename "$f"); printf '#!/bin/sh\\nid -u >>/tmp/fake-ran\\nexec %s "$@"\\n' "$f" >${fake}/bin/$n; chmod 0755 ${fake}/bin/$n; done; ln -sfn ${fake} ${L.venvDir}`,
            );
            assert.equal(onHost(e.host, `readlink ${L.venvDir}; test -x ${fake}/bin/python && echo fake-ready`).trim(), `${fake}\nfake-ready`, "the service user re-pointed the link at its own venv");
            onHost(e.host, "rm -f /tmp/fake-ran; touch /tmp/fake-ran; chmod 0666 /tmp/fake-ran");
            await e.stack.removeConfig("devpi:devpiServerVersion");
            const r = await tryUp(e);
            assert.ok(r.ok, r.error.slice(0, 3000));
            const ran = onHost(e.host, "sort /tmp/fake-ran | uniq -c; id -u web");
            measured.push(`the fake venv's programs ran as (count uid): ${ran.replace(/\s+/g, " ").trim()}`);
            const webUid = ran.trim().split("\n").pop()!.trim();
            assert.ok(ran.trim().split("\n").length > 1, "the upgrade used the planted venv (as the service user), so the case tested something");
            for (const line of ran.trim().split("\n").slice(0, -1)) assert.equal(line.trim().split(/\s+/)[1], webUid, `a program of the fake venv ran as uid ${line}`);
            const now = onHost(e.host, `readlink -f ${L.venvDir}; stat -c '%U' ${L.venvDir}`);
            assert.match(now, /^\/opt\/devpi\/versions\/[^/\n]+$/m, "the link points at root's new venv again");
            assert.match(now, /^web$/m);
        });
    }

    it("with the links gone, pulumi up converges, root's password still works, and a second run is a no-op", async () => {
        const e = env!;
        const r = await tryUp(e);
        assert.ok(r.ok, r.error.slice(0, 3000));
        const login = onHost(
            e.host,
            `printf '%s' '{"user":"root","password":"${ROOT_PASSWORD}"}' | curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' -H 'Accept: application/json' --data-binary @- http://127.0.0.1:${PORTS.devpi}/+login`,
        );
        assert.equal(login.trim(), "200");
        const preview = await e.stack.preview({ expectNoChanges: true, color: "never" });
        assert.deepEqual(Object.keys(preview.changeSummary), ["same"]);
    });
});
