/**
 * Names and paths fixed by this program (not configurable), in one place: what other parts of
 * the server and the tests rely on.
 */

/** devpi's built-in PyPI mirror index, the default base of every index. */
export const MIRROR_INDEX = "root/pypi";

/** The supervisor program that runs devpi-server (`supervisorctl status devpi`). */
export const DEVPI_PROGRAM = "devpi";

/** Where supervisor writes devpi-server's output. */
export const SUPERVISOR_LOG = "/var/log/supervisor/devpi.log";

/** The directory node-exporter's textfile collector reads (the service user's; devpi-metrics writes it). */
export const TEXTFILE_DIR = "/var/lib/devpi-metrics";

/** The scheduled backup's last result (`ok|failed EPOCH`), written by devpi-backup for devpi-metrics. */
export const BACKUP_RESULT_FILE = `${TEXTFILE_DIR}/backup-result`;

/** nginx's stub_status socket (the site's), read by devpi-metrics. */
export const NGINX_STATUS_SOCKET = "/run/devpi-nginx-status.sock";

/** Debian's CA bundle: what outbound HTTPS trusts unless `upstreamCaBundle` is set. */
export const SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt";

/** Where clients are told to keep the CA certificate (self-signed or a provided private CA). */
export const CLIENT_CA_PATH = "~/.config/devpi/ca.pem";

/**
 * The default secretFile before it moved to `/etc/devpi/secret`: a file in `/srv/devpi`, the
 * service user's home directory (which that user could replace with a symlink). The server step
 * migrates a secret found there, so logins survive the move.
 */
export const LEGACY_SECRET_FILE = "/srv/devpi/.secret";

/**
 * Where the root-owned virtualenvs go when venvDir lies inside a directory the service user owns
 * (the seed layout): see `venvVersionsDir` in the validated config.
 */
export const FALLBACK_VENV_VERSIONS_DIR = "/opt/devpi/versions";
