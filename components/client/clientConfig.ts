/**
 * Pure renderers of the client-side configuration a stack exports: what users put on their
 * workstations and CI runners to install from and upload to the index.
 */

export interface ClientSettings {
    /** https://DOMAIN[:PORT] */
    baseUrl: string;
    /** USER/INDEX the clients use. */
    index: string;
    /** Uploading user (the index owner). */
    username: string;
    /** Path where clients keep the CA certificate (self-signed mode), e.g. ~/.config/devpi/ca.pem. */
    caPath?: string;
}

/** The pip index URL: https://HOST/USER/INDEX/+simple/ */
export function indexUrl(s: ClientSettings): string {
    return `${s.baseUrl}/${s.index}/+simple/`;
}

/** ~/.config/pip/pip.conf (or /etc/pip.conf). */
export function renderPipConf(s: ClientSettings): string {
    return `[global]
index-url = ${indexUrl(s)}
${s.caPath ? `cert = ${s.caPath}\n` : ""}`;
}

/** ~/.config/uv/uv.toml */
export function renderUvToml(s: ClientSettings): string {
    return `[[index]]
name = "devpi"
url = "${indexUrl(s)}"
default = true
`;
}

/**
 * ~/.pypirc for twine: the repository URL is the index itself, without +simple/. The password
 * line is included only when a password is given (the stack exports that variant as a secret).
 */
export function renderPypirc(s: ClientSettings, password?: string): string {
    return `[distutils]
index-servers =
    devpi

[devpi]
repository = ${s.baseUrl}/${s.index}/
username = ${s.username}
${password !== undefined ? `password = ${password}\n` : ""}`;
}

/** The devpi-client command that points a workstation at the index and writes pip/uv config. */
export function devpiUseCommand(s: ClientSettings): string {
    return `devpi use ${s.baseUrl}/${s.index}/ --set-cfg`;
}
