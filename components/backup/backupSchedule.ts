import * as pulumi from "@pulumi/pulumi";
import { renderBackupInstallScript, renderBackupRemoveScript, renderBackupScript, renderCronEntry, renderRestoreScript } from "./backupScript";
import { RemoteHost, remoteStep } from "../common/remoteStep";

/** The restore command's path on the server. */
export const RESTORE_SCRIPT = "/usr/local/sbin/devpi-restore";

export interface BackupScheduleArgs {
    host: RemoteHost;
    venvDir: string;
    configFile: string;
    serviceUser: string;
    /** Where exports go (default /srv/devpi/backups); never inside serverDir. */
    backupDir: string;
    /** 5-field cron schedule. Default "17 3 * * *". */
    schedule: string;
    /** Exports kept; older ones are removed after each successful export. */
    keep: number;
    /** For the restore command: devpi's data directory, supervisor program and loopback URL. */
    serverDir: string;
    program: string;
    devpiUrl: string;
}

/**
 * Scheduled backups: `/usr/local/sbin/devpi-backup` (devpi-export into BACKUPDIR/devpi-export-TIMESTAMP,
 * keeping the newest N) run by cron as the service user (`/etc/cron.d/devpi-backup`), and
 * `/usr/local/sbin/devpi-restore NAME`, which imports a backup into a fresh serverDir (the
 * current data is moved aside, never deleted). Destroy removes the schedule; the backups stay.
 */
export class BackupSchedule extends pulumi.ComponentResource {
    /** Run this on the server for an immediate backup. */
    public readonly command: string;
    /** Run this on the server (as root) with a backup's name to restore it. */
    public readonly restoreCommand: string;

    constructor(name: string, args: BackupScheduleArgs, opts?: pulumi.ComponentResourceOptions) {
        super("devpi:index:BackupSchedule", name, {}, opts);
        const scriptPath = "/usr/local/sbin/devpi-backup";
        const cronPath = "/etc/cron.d/devpi-backup";
        const restorePath = RESTORE_SCRIPT;
        this.command = `sudo -u ${args.serviceUser} ${scriptPath}`;
        this.restoreCommand = `sudo ${restorePath} BACKUP_NAME`;
        const restore = renderRestoreScript({
            venvDir: args.venvDir,
            configFile: args.configFile,
            backupDir: args.backupDir,
            serverDir: args.serverDir,
            serviceUser: args.serviceUser,
            program: args.program,
            devpiUrl: args.devpiUrl,
        });
        const script = renderBackupScript({ venvDir: args.venvDir, configFile: args.configFile, backupDir: args.backupDir, keep: args.keep });
        remoteStep(
            `${name}-cron`,
            args.host,
            {
                create: renderBackupInstallScript(scriptPath, script, cronPath, renderCronEntry(args.schedule, args.serviceUser, scriptPath), restorePath, restore),
                delete: renderBackupRemoveScript(scriptPath, cronPath, restorePath),
            },
            { parent: this },
        );
        this.registerOutputs({});
    }
}
