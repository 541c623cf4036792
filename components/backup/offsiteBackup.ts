import * as pulumi from "@pulumi/pulumi";
import { RemoteHost, remoteStep } from "../common/remoteStep";
import { OffsiteSettings, renderOffsiteRemoveScript, renderOffsiteRestoreScript, renderOffsiteScript, renderOffsiteSetupScript, OFFSITE_RESTORE_SCRIPT } from "./offsiteScript";

/** Where the off-host copy goes, and with which secrets (Pulumi secrets; they reach the server on stdin). */
export interface OffsiteArgs {
    /** restic's repository: `sftp:USER@HOST:/PATH` or `s3:https://HOST/BUCKET[/PREFIX]`. */
    repository: string;
    /** The repository's encryption password (at least 12 characters). Keep a copy elsewhere: without it the copy is unreadable. */
    password: pulumi.Input<string>;
    /** SFTP: the key that logs in to the target, the target's host key line, its port (default 22). */
    sftp?: { privateKey: pulumi.Input<string>; hostKey: string; port?: number };
    /** S3-compatible stores: the access key. */
    s3?: { accessKeyId: pulumi.Input<string>; secretAccessKey: pulumi.Input<string> };
    /** Snapshots restic keeps. Default 7 daily, 4 weekly, 12 monthly. */
    keep?: { daily?: number; weekly?: number; monthly?: number };
}

export interface OffsiteBackupArgs {
    host: RemoteHost;
    offsite: OffsiteArgs;
    serviceUser: string;
    backupDir: string;
    /** The local restore script (devpi-restore), which imports what was fetched. */
    restoreScript: string;
}

/**
 * The off-host copy of the scheduled backups: restic (Debian's package) with its settings in
 * `/etc/devpi/offsite/` (root's, readable by the service user's group: the password, the SSH key
 * and pinned host key, or the S3 keys), `/usr/local/sbin/devpi-offsite` (run by devpi-backup after
 * each export: `restic backup`, then `restic forget --prune` with the retention counts) and
 * `/usr/local/sbin/devpi-restore-offsite` (a fresh server restores from the copy alone). Destroy
 * removes the scripts and settings; the repository keeps its snapshots.
 */
export class OffsiteBackup extends pulumi.ComponentResource {
    /** Run this on the server (as root) to restore the newest off-host snapshot. */
    public readonly restoreCommand: string;

    constructor(name: string, args: OffsiteBackupArgs, opts?: pulumi.ComponentResourceOptions) {
        super("devpi:index:OffsiteBackup", name, {}, opts);
        const o = args.offsite;
        const settings: OffsiteSettings = {
            repository: o.repository,
            sshPort: o.sftp?.port,
            sshHostKey: o.sftp?.hostKey,
            keep: { daily: o.keep?.daily ?? 7, weekly: o.keep?.weekly ?? 4, monthly: o.keep?.monthly ?? 12 },
            serviceUser: args.serviceUser,
            backupDir: args.backupDir,
        };
        const secrets = pulumi
            .all([o.password, o.sftp?.privateKey ?? "", o.s3?.accessKeyId ?? "", o.s3?.secretAccessKey ?? ""])
            .apply(([password, sshKey, s3AccessKeyId, s3SecretAccessKey]) => JSON.stringify({ password, sshKey, s3AccessKeyId, s3SecretAccessKey }));
        remoteStep(
            `${name}-setup`,
            args.host,
            {
                create: renderOffsiteSetupScript({
                    ...settings,
                    script: renderOffsiteScript(settings),
                    restore: renderOffsiteRestoreScript({ ...settings, restoreScript: args.restoreScript }),
                }),
                delete: renderOffsiteRemoveScript(),
                stdin: secrets,
                secret: true,
            },
            { parent: this },
        );
        this.restoreCommand = `sudo ${OFFSITE_RESTORE_SCRIPT}`;
        this.registerOutputs({});
    }
}
