/**
 * Renders devpi-server's YAML config file and the install/init scripts of the devpi-server step.
 */
import { stringify } from "yaml";
import { shellQuote, writeFileLines } from "../common/shell";

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
    serverVersion: string;
    webVersion: string;
    web: boolean;
    /** A PyPI-compatible index to install from (default: pip's own). */
    packageIndex?: string;
    /** CA bundle pip trusts instead of its own (networks that inspect TLS). */
    caBundle?: string;
}

/** The pinned requirements installed into the virtualenv. */
export function requirements(s: InstallSettings): string[] {
    const reqs = [`devpi-server==${s.serverVersion}`];
    if (s.web) reqs.push(`devpi-web==${s.webVersion}`);
    return reqs;
}

/** The directory name of one installed version set, e.g. `devpi-server-6.20.3_devpi-web-5.1.1`. */
export function venvKey(s: Omit<InstallSettings, "venvDir">): string {
    return `devpi-server-${s.serverVersion}` + (s.web ? `_devpi-web-${s.webVersion}` : "");
}

/** Where versions live side by side: `VENVDIR.versions/KEY`; `VENVDIR` is a symlink to the active one. */
export function versionsDir(venvDir: string): string {
    return `${venvDir}.versions`;
}

/**
 * Installs exactly the pinned versions into their own root-owned virtualenv beside the others
 * (so the service cannot rewrite its own code, and an upgrade can go back). On a fresh server
 * VENVDIR is pointed at it; on an existing one switching is the upgrade step's job. A VENVDIR
 * that is a plain directory (installed by hand, as in the seed) is kept as version `legacy`.
 */
export function renderInstallScript(s: InstallSettings): string {
    const venv = shellQuote(s.venvDir);
    const target = shellQuote(`${versionsDir(s.venvDir)}/${venvKey(s)}`);
    const reqs = requirements(s).map(shellQuote).join(" ");
    const index = (s.packageIndex ? ` --index-url ${shellQuote(s.packageIndex)}` : "") + (s.caBundle ? ` --cert ${shellQuote(s.caBundle)}` : "");
    return `install -d -m 0755 ${shellQuote(versionsDir(s.venvDir))}
if [ -d ${venv} ] && [ ! -L ${venv} ]; then
  mv -T ${venv} ${shellQuote(`${versionsDir(s.venvDir)}/legacy`)}
  ln -s ${shellQuote(`${versionsDir(s.venvDir)}/legacy`)} ${venv}
  echo "kept the existing virtualenv as version legacy" >&2
fi
# An earlier run cut off mid-install may still be running pip here: take turns.
exec 9>${shellQuote(`${versionsDir(s.venvDir)}/.install.lock`)}
if ! flock -n 9; then
  note "waiting for an earlier install that is still running on the server (up to 600 s)"
  flock -w 600 9 || fail "an earlier install into ${versionsDir(s.venvDir)} still runs after 600 s"
fi
# No pip yet means a venv that was never finished (a cut connection): make it again.
if [ ! -x ${target}/bin/pip ]; then run_logged "python3 -m venv" python3 -m venv --clear ${target}; fi
note "installing ${requirements(s).join(" ")} (pip's output: $DEVPI_LOG)"
run_logged ${shellQuote(`pip install ${requirements(s).join(" ")}`)} ${target}/bin/pip install --disable-pip-version-check --no-input${index} ${reqs}
exec 9>&-
if [ ! -e ${venv} ]; then ln -sfn ${target} ${venv}; fi
${target}/bin/pip freeze --disable-pip-version-check 2>/dev/null | grep -iE '^devpi-(server|web)=='
`;
}

/** Removes every installed version on destroy; data, secret and backups stay. */
export function renderUninstallScript(venvDir: string): string {
    return `rm -f -- ${shellQuote(venvDir)}
rm -rf -- ${shellQuote(versionsDir(venvDir))}
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
}

/** Writes devpi-server.yml and creates the secret file once (never rotated: it would log everyone out). */
export function renderConfigScript(s: ConfigFileSettings): string {
    const u = shellQuote(s.serviceUser);
    if (s.secretFromStdin) {
        const f = shellQuote(s.secretFile);
        return `${writeFileLines(s.configFile, "0644", "root:root", s.yaml)}umask 077
secret=$(mktemp)
trap 'rm -f "$secret"' EXIT
base64 -d >"$secret"
if [ "$(stat -c %s "$secret")" -lt 32 ]; then echo "the primary's secret file is missing or shorter than 32 bytes" >&2; exit 1; fi
echo "secret from the primary $(write_if_changed ${f} 0600 ${u}:${u} <"$secret")"
`;
    }
    return `${writeFileLines(s.configFile, "0644", "root:root", s.yaml)}if [ ! -s ${shellQuote(s.secretFile)} ]; then
  runuser -u ${u} -- ${shellQuote(s.venvDir)}/bin/devpi-gen-secret --secretfile ${shellQuote(s.secretFile)} >&2
  echo "secret created"
fi
chown ${u}:${u} ${shellQuote(s.secretFile)}
chmod 0600 ${shellQuote(s.secretFile)}
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

/** Initialises the server directory exactly once: devpi-init refuses when .nodeinfo exists. */
export function renderInitScript(s: { configFile: string; serverDir: string; serviceUser: string; venvDir: string }): string {
    return `if [ -e ${shellQuote(s.serverDir)}/.nodeinfo ]; then
  echo "already initialised"
else
  runuser -u ${shellQuote(s.serviceUser)} -- ${shellQuote(s.venvDir)}/bin/devpi-init -c ${shellQuote(s.configFile)} >&2
  echo "initialised"
fi
`;
}
