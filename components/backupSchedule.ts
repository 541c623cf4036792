import * as pulumi from "@pulumi/pulumi";
import { renderBackupInstallScript, renderBackupRemoveScript, renderBackupScript, renderCronEntry } from "./backupScript";
import { RemoteHost, remoteStep } from "./remoteStep";

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
}

/**
 * Scheduled backups: `/usr/local/sbin/devpi-backup` (devpi-export into BACKUPDIR/devpi-export-TIMESTAMP,
 * keeping the newest N) run by cron as the service user (`/etc/cron.d/devpi-backup`).
 * Destroy removes the schedule; the backups stay.
 */
export class BackupSchedule extends pulumi.ComponentResource {
    /** Run this on the server (as the service user) for an immediate backup. */
    public readonly command: string;

    constructor(name: string, args: BackupScheduleArgs, opts?: pulumi.ComponentResourceOptions) {
        super("devpi:index:BackupSchedule", name, {}, opts);
        const scriptPath = "/usr/local/sbin/devpi-backup";
        const cronPath = "/etc/cron.d/devpi-backup";
        this.command = `sudo -u ${args.serviceUser} ${scriptPath}`;
        const script = renderBackupScript({ venvDir: args.venvDir, configFile: args.configFile, backupDir: args.backupDir, keep: args.keep });
        remoteStep(
            `${name}-cron`,
            args.host,
            {
                create: renderBackupInstallScript(scriptPath, script, cronPath, renderCronEntry(args.schedule, args.serviceUser, scriptPath)),
                delete: renderBackupRemoveScript(scriptPath, cronPath),
            },
            { parent: this },
        );
        this.registerOutputs({});
    }
}
