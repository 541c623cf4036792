/**
 * A compromised devpi-server: the service user (`devpi`) turns hostile on a provisioned host. It
 * plants links at the paths root later touches, pointing at root-owned canaries, and the program
 * runs as usual (a config change that rewrites devpi's config and re-checks the secret, a new
 * backup directory, a restore). No canary changes owner, mode or content; each step either
 * refuses, naming the path, or replaces the link. Also here, because they need the same fresh host:
 * root's devpi password is never empty (a prober logs in as root with an empty password from
 * before the first `pulumi up` until it ends), the TLS policy seen from outside (sslscan), the key
 * and data modes seen from inside, and a bad path refused before any SSH connection.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as http from "node:http";
import * as https from "node:https";
import { after, describe } from "node:test";
import { shellQuote } from "../../components/common/shell";
import { onHost, steps } from "../e2e/harness";
import { disposeEnv, FAULT_PORTS, faultEnv, FaultEnv, hostProcesses, ROOT_PASSWORD, startedBySshd, tryUp } from "./faultHarness";

const PORTS = FAULT_PORTS(23090);
let env: FaultEnv | undefined;
const measured: string[] = [];

/** Root-owned canaries inside the host: a file and a directory, with their owner, mode and content. */
const CANARIES = "/root/canary-file /root/canary-dir /root/canary-dir/inside";
const canaryState = (e: FaultEnv) => onHost(e.host, `stat -c '%n %U:%G %a' ${CANARIES}; sha256sum /root/canary-file /root/canary-dir/inside`);
/** Runs `cmd` inside the host as the service user. */
const asDevpi = (e: FaultEnv, cmd: string) => onHost(e.host, `cd / && runuser -u devpi -- sh -c ${shellQuote(cmd)} 2>&1; true`);

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

describe("a hostile service user cannot steer root; root's password is never empty; TLS and modes", { timeout: 60 * 60 * 1000 }, () => {
    const it = steps();
    after(async () => {
        await disposeEnv(env);
        console.log(measured.join("\n"));
    });

    it("a path that would hand a system directory to the service user is refused before any SSH connection", async () => {
        env = await faultEnv("flt-hostile", PORTS);
        const e = env;
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
        await e.stack.removeConfig("devpi:serverDir");
    });

    it("root's devpi password is never empty: a prober logging in as root with an empty password through the first pulumi up never gets in", async () => {
        const e = env!;
        const prober = emptyRootProber([`https://127.0.0.1:${PORTS.https}/+login`, `http://127.0.0.1:${PORTS.devpi}/+login`], 50);
        const t0 = Date.now();
        const r = await tryUp(e);
        await prober.stop();
        assert.ok(r.ok, r.error.slice(0, 3000));
        measured.push(`first up ${((Date.now() - t0) / 1000).toFixed(0)} s; empty root logins: ${JSON.stringify(prober.counts)}`);
        const accepted = Object.entries(prober.counts).filter(([k]) => / 200$/.test(k));
        assert.deepEqual(accepted, [], JSON.stringify(prober.counts));
        // The prober reached devpi (401/403 answers), on its own port and through nginx.
        assert.ok(Object.keys(prober.counts).some((k) => k.startsWith(`${PORTS.devpi} 4`)), JSON.stringify(prober.counts));
        assert.ok(Object.keys(prober.counts).some((k) => k.startsWith(`${PORTS.https} 4`)), JSON.stringify(prober.counts));
    });

    it("modes from inside: the TLS key, devpi's config and secret are root's; backups the service user's alone", () => {
        const e = env!;
        const modes = onHost(e.host, "stat -c '%n %U:%G %a' /srv/ssl/devpi /srv/ssl/devpi/server.key /etc/devpi /etc/devpi/devpi-server.yml /etc/devpi/secret /srv/devpi/backups");
        measured.push(modes.trim());
        assert.match(modes, /^\/srv\/ssl\/devpi\/server\.key root:root 400$/m);
        assert.match(modes, /^\/srv\/ssl\/devpi root:root (700|500)$/m);
        assert.match(modes, /^\/etc\/devpi root:root 755$/m);
        assert.match(modes, /^\/etc\/devpi\/devpi-server\.yml root:root 644$/m);
        assert.match(modes, /^\/etc\/devpi\/secret devpi:devpi 600$/m);
        assert.match(modes, /^\/srv\/devpi\/backups devpi:devpi 700$/m);
        assert.match(asDevpi(e, "cat /srv/ssl/devpi/server.key"), /Permission denied/);
        assert.match(asDevpi(e, "touch /etc/devpi/x; ln -s /root/canary-file /etc/devpi/secret.new"), /Permission denied/);
        assert.match(asDevpi(e, "rm -f /opt/devpi/venv"), /Permission denied/);
    });

    it("the TLS policy seen from outside (sslscan): TLS 1.2 and 1.3 only, TLS 1.2 with forward-secret AEAD suites only", () => {
        const out = execFileSync("sslscan", ["--no-colour", "--no-heartbleed", "--no-compression", "--no-fallback", "--no-renegotiation", `127.0.0.1:${PORTS.https}`], { encoding: "utf8" });
        const accepted = out.split("\n").filter((l) => /^(Preferred|Accepted)\s/.test(l)).map((l) => l.trim().split(/\s+/));
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
        onHost(e.host, "mkdir -p /root/canary-dir && echo secret >/root/canary-dir/inside && echo canary >/root/canary-file && chmod 0600 /root/canary-file /root/canary-dir/inside && chmod 0700 /root/canary-dir");
        const before = canaryState(e);
        // The old secret place (read once, as the service user, when a server migrates) and a new backup directory.
        asDevpi(e, "ln -sfn /root/canary-file /srv/devpi/.secret; ln -sfn /root/canary-dir /srv/devpi/backups2");
        await e.stack.setConfig("devpi:mirrorCacheExpiry", { value: "1700" });
        const r1 = await tryUp(e);
        assert.ok(r1.ok, r1.error.slice(0, 3000));
        assert.equal(canaryState(e), before, "a config change (devpi-server.yml rewritten, the secret re-checked) left the canaries alone");
        await e.stack.setConfig("devpi:backupDir", { value: "/srv/devpi/backups2" });
        const r2 = await tryUp(e);
        assert.equal(r2.ok, false, "a backup directory that is a link is refused");
        const cause = r2.error.split("\n").find((l) => l.includes("backups2 is a symbolic link")) ?? "";
        measured.push(`refused: ${cause.trim()}`);
        assert.match(cause, /devpi step \S+ failed: \/srv\/devpi\/backups2 is a symbolic link; refusing to use it as devpi's directory/);
        assert.equal(canaryState(e), before, "the refused run left the canaries alone");
        await e.stack.setConfig("devpi:backupDir", { value: "/srv/devpi/backups" });
    });

    it("a restore run by root with the backup directory replaced by a link refuses; a backup run as the service user cannot write into root's directory", () => {
        const e = env!;
        const before = canaryState(e);
        asDevpi(e, "mv /srv/devpi/backups /srv/devpi/backups.real && ln -s /root/canary-dir /srv/devpi/backups");
        const restore = onHost(e.host, "devpi-restore inside 2>&1; echo rc=$?");
        assert.match(restore, /\/srv\/devpi\/backups is not a directory \(a link\?\); nothing was done/);
        assert.match(restore, /rc=1/);
        const backup = asDevpi(e, "/usr/local/sbin/devpi-backup; echo rc=$?");
        assert.match(backup, /rc=1/);
        assert.equal(canaryState(e), before, "neither touched the canaries");
        asDevpi(e, "rm /srv/devpi/backups && mv /srv/devpi/backups.real /srv/devpi/backups && rm -f /srv/devpi/.secret /srv/devpi/backups2");
    });

    it("with the links gone, pulumi up converges, root's password still works, and a second run is a no-op", async () => {
        const e = env!;
        const r = await tryUp(e);
        assert.ok(r.ok, r.error.slice(0, 3000));
        const login = onHost(e.host, `printf '%s' '{"user":"root","password":"${ROOT_PASSWORD}"}' | curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' -H 'Accept: application/json' --data-binary @- http://127.0.0.1:${PORTS.devpi}/+login`);
        assert.equal(login.trim(), "200");
        const preview = await e.stack.preview({ expectNoChanges: true, color: "never" });
        assert.deepEqual(Object.keys(preview.changeSummary), ["same"]);
    });
});
