/**
 * Renders devpi-server's YAML config file and the install/init scripts of the devpi-server step.
 */
import * as path from "node:path";
import { stringify } from "yaml";
import { renderSpaceCheck, shellQuote, writeFileLines } from "../common/shell";
import { LocalPlugin } from "./readAclPlugin";

export interface DevpiServerSettings {
    serverDir: string;
    host: string;
    port: number;
    secretFile: string;
    restrictModify: string;
    mirrorCacheExpiry: number;
    /**
     * Upload limit in MiB. nginx enforces it (client_max_body_size); devpi-server's own limit is
     * set to at least devpi's default (1 GiB) and never below it, so lowering the limit only
     * touches nginx and raising it above 1 GiB raises both.
     */
    maxUploadMb: number;
    /** Set only for a replica; absent means a standalone/primary server. */
    primaryUrl?: string;
    /** `primary` only when replicas follow this server (devpi enables its replication feed only then). */
    role?: "primary";
}

/**
 * devpi-server.yml: every option under the top-level `devpi-server:` key, named like the long
 * command-line options. No secrets: the secret lives in its own 0600 file.
 */
export function renderDevpiServerYaml(s: DevpiServerSettings): string {
    const body: Record<string, string | number> = {
        serverdir: s.serverDir,
        host: s.host,
        port: s.port,
        secretfile: s.secretFile,
        "restrict-modify": s.restrictModify,
        "mirror-cache-expiry": s.mirrorCacheExpiry,
        "max-request-body-size": Math.max(s.maxUploadMb, 1024) * 1024 * 1024,
    };
    if (s.role === "primary" && !s.primaryUrl) body.role = "primary";
    if (s.primaryUrl) {
        body.role = "replica";
        body["primary-url"] = s.primaryUrl;
    }
    return "# Managed by Pulumi (devpi). Local edits are overwritten.\n" + stringify({ "devpi-server": body });
}

export interface InstallSettings {
    venvDir: string;
    /**
     * Where the root-owned virtualenvs live (default `VENVDIR.versions`). Must be root's alone:
     * root installs into them and runs pip there. A `venvDir` inside the service user's home (the
     * seed layout) keeps its link there but its versions elsewhere.
     */
    versionsDir?: string;
    serverVersion: string;
    webVersion: string;
    web: boolean;
    /**
     * devpi-server plugins installed beside it at exact versions, e.g. devpi-lockdown (authenticated
     * reads) and devpi-tokens; part of the version set, so adding or removing one is an upgrade.
     */
    plugins?: { name: string; version: string }[];
    /**
     * Plugins of this program's own (see readAclPlugin.ts), written into the virtualenv's
     * site-packages after pip; part of the version set like the others.
     */
    localPlugins?: LocalPlugin[];
    /** A PyPI-compatible index to install from (default: pip's own). */
    packageIndex?: string;
    /** CA bundle pip trusts instead of its own (networks that inspect TLS). */
    caBundle?: string;
}

/** The pinned requirements installed into the virtualenv. */
export function requirements(s: InstallSettings): string[] {
    const reqs = [`devpi-server==${s.serverVersion}`];
    if (s.web) reqs.push(`devpi-web==${s.webVersion}`);
    for (const p of s.plugins ?? []) reqs.push(`${p.name}==${p.version}`);
    return reqs;
}

/**
 * The directory name of one installed version set, e.g. `devpi-server-6.20.3_devpi-web-5.1.1`
 * (plus `_NAME-VERSION` per plugin).
 */
export function venvKey(s: Omit<InstallSettings, "venvDir">): string {
    return `devpi-server-${s.serverVersion}` + (s.web ? `_devpi-web-${s.webVersion}` : "") + [...(s.plugins ?? []), ...(s.localPlugins ?? [])].map((p) => `_${p.name}-${p.version}`).join("");
}

/** Where versions live side by side: `VENVDIR.versions/KEY`; `VENVDIR` is a symlink to the active one. */
export function versionsDir(venvDir: string): string {
    return `${venvDir}.versions`;
}

/** Free space a new virtualenv needs where it goes (MiB): devpi-server, devpi-web and their dependencies take about 100. */
export const VENV_SPACE_MIB = 250;

/**
 * Installs exactly the pinned versions into their own root-owned virtualenv beside the others
 * (so the service cannot rewrite its own code, and an upgrade can go back). On a fresh server
 * VENVDIR is pointed at it; on an existing one switching is the upgrade step's job. A VENVDIR
 * that is a plain directory (installed by hand, as in the seed) is kept as version `legacy`.
 */
export function renderInstallScript(s: InstallSettings): string {
    const venv = shellQuote(s.venvDir);
    const vdir = s.versionsDir ?? versionsDir(s.venvDir);
    const target = shellQuote(`${vdir}/${venvKey(s)}`);
    const reqs = requirements(s).map(shellQuote).join(" ");
    const index = (s.packageIndex ? ` --index-url ${shellQuote(s.packageIndex)}` : "") + (s.caBundle ? ` --cert ${shellQuote(s.caBundle)}` : "");
    return `install -d -m 0755 ${shellQuote(vdir)}
root_path ${shellQuote(vdir)} || fail "refusing to install into ${vdir}: it (or a directory above it) is a link or not owned by root alone, and root runs pip there"
if [ -d ${venv} ] && [ ! -L ${venv} ]; then
  mv -T ${venv} ${shellQuote(`${vdir}/legacy`)}
  set_link ${shellQuote(`${vdir}/legacy`)} ${venv}
  echo "kept the existing virtualenv as version legacy" >&2
fi
# An earlier run cut off mid-install may still be running pip here: take turns.
exec 9>${shellQuote(`${vdir}/.install.lock`)}
if ! flock -n 9; then
  note "waiting for an earlier install that is still running on the server (up to 600 s)"
  flock -w 600 9 || fail "an earlier install into ${vdir} still runs after 600 s"
fi
# A new virtualenv with devpi-server and devpi-web takes about 100 MiB (and pip's downloads beside it).
if [ ! -x ${target}/bin/devpi-server ]; then
${renderSpaceCheck(vdir, VENV_SPACE_MIB, `devpi's virtualenv ${venvKey(s)}`)}fi
# No pip yet means a venv that was never finished (a cut connection): make it again.
if [ ! -x ${target}/bin/pip ]; then run_logged "python3 -m venv" python3 -m venv --clear ${target}; fi
note "installing ${requirements(s).join(" ")} (pip's output: $DEVPI_LOG)"
run_logged ${shellQuote(`pip install ${requirements(s).join(" ")}`)} ${target}/bin/pip install --disable-pip-version-check --no-input${index} ${reqs}
${renderLocalPlugins(target, s.localPlugins ?? [])}exec 9>&-
if [ ! -e ${venv} ] && [ ! -L ${venv} ]; then set_link ${target} ${venv}; fi
${target}/bin/pip freeze --disable-pip-version-check 2>/dev/null | grep -iE '^devpi-(${["server", "web", ...[...(s.plugins ?? []), ...(s.localPlugins ?? [])].map((p) => p.name.replace(/^devpi-/, ""))].join("|")})=='
`;
}

/** Writes the local plugins' files into the (root-owned, just installed) virtualenv's site-packages. */
function renderLocalPlugins(target: string, plugins: LocalPlugin[]): string {
    if (plugins.length === 0) return "";
    const lines = [`site=$(${target}/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')`, `[ -d "$site" ] || fail "no site-packages in ${target.replace(/'/g, "")}"`];
    const dirs = new Set<string>();
    for (const p of plugins) {
        for (const [file, content] of Object.entries(p.files)) {
            const dir = file.includes("/") ? file.slice(0, file.lastIndexOf("/")) : "";
            if (dir && !dirs.has(dir)) lines.push(`install -d -m 0755 "$site"/${shellQuote(dir)}`);
            dirs.add(dir);
            lines.push(`printf %s ${shellQuote(Buffer.from(content).toString("base64"))} | base64 -d > "$site"/${shellQuote(file)}`);
        }
        lines.push(`note "installed ${p.name} ${p.version} (this program's own plugin)"`);
    }
    return lines.join("\n") + "\n";
}

/** Removes every installed version on destroy; data, secret and backups stay. */
export function renderUninstallScript(venvDir: string, versions = versionsDir(venvDir)): string {
    return `rm -f -- ${shellQuote(venvDir)}
rm -rf -- ${shellQuote(versions)}
echo "removed ${venvDir}; data kept"
`;
}

export interface ConfigFileSettings {
    configFile: string;
    yaml: string;
    secretFile: string;
    serviceUser: string;
    venvDir: string;
    /**
     * A replica: the secret file's content arrives base64-encoded on stdin (the primary's: devpi
     * requires the same secret on primary and replicas) instead of being generated here.
     */
    secretFromStdin?: boolean;
    /**
     * Where earlier versions of this program kept the secret (inside the service user's home):
     * a server that has one there keeps its secret (and everyone stays logged in), copied as the
     * service user into `secretFile`.
     */
    legacySecretFile?: string;
}

/**
 * Shell lines that check the secret file's directory is root's alone and clear a link at the
 * secret's path: root chowns and chmods the secret, so neither may be something the service user
 * could point elsewhere.
 */
function secretFileGuard(secretFile: string): string {
    const f = shellQuote(secretFile);
    return `root_path "$(dirname ${f})" || fail "refusing to manage the secret file ${secretFile}: its directory is not root's alone (a link, or writable by another user), so root's chown could be redirected; use e.g. /etc/devpi/secret"
if [ -L ${f} ] || { [ -e ${f} ] && [ ! -f ${f} ]; }; then rm -rf -- ${f}; fi
`;
}

/**
 * Writes devpi-server.yml and creates the secret file once (never rotated: it would log everyone
 * out). The secret is the service user's (devpi refuses a secret others can read) in a directory
 * only root writes; it is made by root (devpi-gen-secret's format: base64 of 32 random bytes), or
 * moved from the old place inside the service user's home, read as the service user.
 */
export function renderConfigScript(s: ConfigFileSettings): string {
    const u = shellQuote(s.serviceUser);
    const f = shellQuote(s.secretFile);
    if (s.secretFromStdin) {
        return `${writeFileLines(s.configFile, "0644", "root:root", s.yaml)}${secretFileGuard(s.secretFile)}umask 077
secret=$(mktemp)
trap 'rm -f "$secret"' EXIT
base64 -d >"$secret"
if [ "$(stat -c %s "$secret")" -lt 32 ]; then echo "the primary's secret file is missing or shorter than 32 bytes" >&2; exit 1; fi
echo "secret from the primary $(write_if_changed ${f} 0600 ${u}: <"$secret")"
`;
    }
    const legacy = s.legacySecretFile && s.legacySecretFile !== s.secretFile ? shellQuote(s.legacySecretFile) : undefined;
    return `${writeFileLines(s.configFile, "0644", "root:root", s.yaml)}${secretFileGuard(s.secretFile)}if [ ! -s ${f} ]; then
  tmp=$(umask 077 && mktemp "$(dirname ${f})/.secret.XXXXXX")
  # Read as the service user: it can hand over nothing it could not read itself.
  ${
      legacy
          ? `if runuser -u ${u} -- cat -- ${legacy} >"$tmp" 2>/dev/null && [ -s "$tmp" ]; then
    echo "secret moved from ${s.legacySecretFile} (kept there until you remove it)"
  else
    head -c 32 /dev/urandom | base64 -w0 >"$tmp"
    echo "secret created"
  fi`
          : `head -c 32 /dev/urandom | base64 -w0 >"$tmp"
  echo "secret created"`
  }
  chown -h ${u}: "$tmp"
  mv -fT "$tmp" ${f}
fi
chown -h ${u}: ${f}
chmod 0600 ${f}
`;
}

/**
 * Prints the secret file base64-encoded (the step's stdout is a Pulumi secret): replicas need
 * the primary's secret to authenticate to its replication feed.
 */
export function renderSecretExportScript(secretFile: string): string {
    return `base64 -w0 ${shellQuote(secretFile)}
`;
}

/**
 * A replica's CA bundle for devpi-server's outbound HTTPS (REQUESTS_CA_BUNDLE): the primary's CA
 * (stdin; empty when the primary's certificate is publicly trusted) followed by the bundle used
 * for PyPI, so the replica trusts the primary without losing its way to other servers.
 */
export function renderTrustBundleScript(bundlePath: string, upstreamBundle: string): string {
    return `work=$(mktemp)
trap 'rm -f "$work"' EXIT
cat >"$work"
cat ${shellQuote(upstreamBundle)} >>"$work"
echo "CA bundle $(write_if_changed ${shellQuote(bundlePath)} 0644 root:root <"$work")"
`;
}

/**
 * Initialises the server directory exactly once: devpi-init refuses when .nodeinfo exists.
 *
 * With `rootCredentialFile` (a primary or standalone server), devpi-init gives root a random
 * bootstrap password that root generates on the server and writes to that root-only file first
 * (0600 in root's own configuration directory); it reaches devpi-init through
 * DEVPISERVER_ROOT_PASSWD, devpi's environment form of --root-passwd, so it is in no argv, log or
 * Pulumi state. devpi's root thus never has an empty password, not even between devpi-server's
 * first start and the password step, and a first `pulumi up` cut off anywhere leaves no server
 * that lets anyone log in as root. The password step then logs in with the stored bootstrap
 * password and sets the configured one. (Ordering the nginx site after the password step would
 * only shrink the window: devpi answers on its loopback port to every local user from its first
 * start.) The configured password is not an input of this step, so rotating it re-runs the
 * password step only. A replica gets root from its primary.
 */
export function renderInitScript(s: { configFile: string; serverDir: string; serviceUser: string; venvDir: string; rootCredentialFile?: string }): string {
    const init = `runuser -u ${shellQuote(s.serviceUser)} -- ${shellQuote(s.venvDir)}/bin/devpi-init -c ${shellQuote(s.configFile)} >&2`;
    const cred = s.rootCredentialFile;
    return `if runuser -u ${shellQuote(s.serviceUser)} -- test -e ${shellQuote(s.serverDir)}/.nodeinfo; then
  echo "already initialised"
else
${
    cred !== undefined
        ? `  root_path ${shellQuote(path.posix.dirname(cred))} || fail "refusing to keep root's bootstrap password in ${path.posix.dirname(cred)}: it (or a directory above it) is a link or not root's alone; nothing was initialised"
  DEVPISERVER_ROOT_PASSWD=$(head -c 24 /dev/urandom | base64 -w0 | tr -d '+/=')
  [ \${#DEVPISERVER_ROOT_PASSWD} -ge 24 ] || fail "could not make a bootstrap password for root; nothing was initialised"
  printf '{"password": "%s"}' "$DEVPISERVER_ROOT_PASSWD" | write_if_changed ${shellQuote(cred)} 0600 root:root >/dev/null
  export DEVPISERVER_ROOT_PASSWD
  ${init}
  unset DEVPISERVER_ROOT_PASSWD
  echo "initialised; root has a random bootstrap password (in ${cred}) until the password step sets the configured one"`
        : `  ${init}
  echo "initialised"`
}
fi
`;
}
