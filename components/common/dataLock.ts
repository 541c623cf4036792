/**
 * One reader or rewriter of devpi's data at a time: the scheduled backup (`devpi-backup`), a
 * restore (`devpi-restore`) and an upgrade each hold an flock on the backup directory while they
 * export, import or move the server directory. Without it, a backup that cron starts during an
 * export/import upgrade or a restore exports a half-imported server, looks complete, and pushes
 * an older good backup out of the kept set.
 */
import { shellQuote } from "./shell";

/** How long a backup, restore or upgrade waits for the one that holds the lock. */
export const DATA_LOCK_WAIT_SECONDS = 3600;

/**
 * Bash that takes the lock on `dir` (which must exist) as file descriptor 9, saying what it waits
 * for; after `waitSeconds` it calls `failWith` (a function taking one message) and does nothing.
 * The lock is released when the script exits; devpi-server itself, started by supervisord, never
 * inherits it.
 */
export function renderDataLock(dir: string, failWith: string, waitSeconds = DATA_LOCK_WAIT_SECONDS): string {
    const d = shellQuote(dir);
    return `# One backup, restore or upgrade at a time (an flock on the backup directory). Never opened
# through a link: the directory is the service user's, and root takes this lock too.
if [ -L ${d} ] || [ ! -d ${d} ]; then ${failWith} "${dir} is not a directory (a link?); nothing was done"; fi
exec 9<${d}
if ! flock -n 9; then
  echo "waiting up to ${waitSeconds} s for a running devpi backup, restore or upgrade to finish (it holds the lock on "${d}")" >&2
  flock -w ${waitSeconds} 9 || ${failWith} "a devpi backup, restore or upgrade still held the lock on "${d}" after ${waitSeconds} s; nothing was done. Run this again once it has finished."
fi
`;
}
