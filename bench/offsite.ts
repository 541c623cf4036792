/**
 * B8 (issue 20): the off-host copy of a backup (restic over SFTP to another test host, encrypted)
 * and the restore from that copy alone, on the server B6/B7 filled with data. Baselines from the
 * same run: a plain unencrypted copy of the same export over the same SSH connection, and the
 * restore of the local backup (B7's devpi-restore).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { Stack } from "@pulumi/pulumi/automation";
import { startSftpTarget, stopHost } from "../test/e2e/harness";

export const OFFSITE_TARGET = { name: "bench-off", ssh: 26322 };
const REPO_PASSWORD = "repo-Pw-bench-5521-long";
const BACKUPS = "/srv/devpi/backups";

export interface OffsiteBench {
    stack: Stack;
    /** The bench's server (test host name). */
    host: string;
    work: string;
    sh(host: string, command: string): string;
    timed<T>(fn: () => T): Promise<[number, T]>;
    up(stack: Stack): Promise<number>;
    add(row: { id: string; what: string; unit: string; values: number[]; baseline: string; baselineValues: number[]; note?: string }): void;
    /** Throws unless the restored index serves the data again. */
    check(): void;
}

/** Measures B8; stops its target host when done. */
export async function measureOffsite(b: OffsiteBench): Promise<void> {
    const key = path.join(b.work, "offsite_key");
    const target = startSftpTarget(OFFSITE_TARGET.name, OFFSITE_TARGET.ssh, key);
    try {
        const newest = () => b.sh(b.host, `ls -1d ${BACKUPS}/devpi-export-* 2>/dev/null | tail -n 1`).trim();
        if (!newest()) b.sh(b.host, "runuser -u devpi -- /usr/local/sbin/devpi-backup >/dev/null");
        const name = path.basename(newest());
        const exportMb = Number(b.sh(b.host, `du -sm ${BACKUPS}/${name} | cut -f1`).trim());
        await b.stack.setAllConfig(
            {
                "offsite.repository": { value: "sftp:restic@127.0.0.1:/srv/restic/bench" },
                "offsite.sshPort": { value: String(OFFSITE_TARGET.ssh) },
                "offsite.sshHostKey": { value: target.hostKey },
            },
            true,
        );
        await b.stack.setConfig("offsite.password", { value: REPO_PASSWORD, secret: true }, true);
        await b.stack.setConfig("offsite.sshPrivateKey", { value: fs.readFileSync(key, "utf8"), secret: true }, true);
        const setup = await b.up(b.stack);

        const asDevpi = "runuser -u devpi --";
        const ssh = `ssh -p ${OFFSITE_TARGET.ssh} -i /etc/devpi/offsite/ssh_key -o UserKnownHostsFile=/etc/devpi/offsite/known_hosts -o BatchMode=yes restic@127.0.0.1`;
        const [plain] = await b.timed(() =>
            b.sh(b.host, `cd ${BACKUPS} && ${asDevpi} tar -cf - ${name} | ${asDevpi} ${ssh} 'rm -rf /tmp/plain && mkdir /tmp/plain && tar -C /tmp/plain -xf - && sync'`),
        );
        const [first] = await b.timed(() => b.sh(b.host, `${asDevpi} /usr/local/sbin/devpi-offsite ${BACKUPS}/${name}`));
        const [again] = await b.timed(() => b.sh(b.host, `${asDevpi} /usr/local/sbin/devpi-offsite ${BACKUPS}/${name}`));
        const repoMb = b.sh(target.name, "du -sm /srv/restic/bench | cut -f1").trim();
        const baseline = "tar of the same export piped over the same SSH connection (unencrypted, no deduplication)";
        const note = `export ${exportMb} MB, repository ${repoMb} MB on the target; \`pulumi up\` that set up the copy: ${setup.toFixed(1)} s`;
        b.add({
            id: "B8",
            what: `off-host copy (restic over SFTP to another host, encrypted), first copy of a ${exportMb} MB export`,
            unit: "s",
            values: [first],
            baseline,
            baselineValues: [plain],
            note,
        });
        b.add({ id: "B8", what: "off-host copy of the same export again (restic sends only what the repository lacks)", unit: "s", values: [again], baseline, baselineValues: [plain] });

        const [local] = await b.timed(() => b.sh(b.host, `/usr/local/sbin/devpi-restore ${name}`));
        // From the off-host copy alone: no local export and no restic cache left on the server.
        b.sh(b.host, `${asDevpi} find ${BACKUPS} -mindepth 1 -maxdepth 1 \\( -name 'devpi-export-*' -o -name .restic-cache \\) -exec rm -rf {} +`);
        const [remote, out] = await b.timed(() => b.sh(b.host, "/usr/local/sbin/devpi-restore-offsite 2>&1"));
        if (!/from the off-host repository/.test(out)) throw new Error(`B8: devpi-restore-offsite said:\n${out}`);
        b.check();
        b.add({
            id: "B8",
            what: "restore from the off-host copy alone (devpi-restore-offsite: restic restore, then devpi-restore)",
            unit: "s",
            values: [remote],
            baseline: "devpi-restore of the local backup (B7's restore)",
            baselineValues: [local],
            note: "no local export and an empty restic cache before the restore",
        });
    } finally {
        stopHost(OFFSITE_TARGET.name);
    }
}
