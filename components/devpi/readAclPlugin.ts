/**
 * Per-index reads: a small devpi-server plugin of this project's own (`devpi-pulumi-reads`), written
 * into the root-owned virtualenv beside devpi-server when an index declares `acl_read`.
 *
 * devpi-server has the parts but not the whole: a `pkg_read` permission whose principals a plugin
 * may supply per index (`devpiserver_stage_get_principals_for_pkg_read`, since 6.0), enforced by
 * devpi itself only on release files (`+f/`, `+e/`), and a hook through which a plugin may forbid
 * a request in `/+authcheck` (`devpiserver_authcheck_forbidden`), which nginx asks before serving
 * anything when reads are `authenticated` (devpi-lockdown). The plugin adds:
 *
 * - the index key `pulumi_acl_read` (a list of users or `:AUTHENTICATED:`; empty: no restriction),
 *   prefixed as devpi asks of plugin keys;
 * - `pkg_read` for those principals (devpi adds root and restrict-modify's users itself);
 * - in `/+authcheck`, 403 for a logged-in user without `pkg_read` on every route of a restricted
 *   index (simple pages, JSON, web pages, documentation, files), and for `/+search` to everyone
 *   but root (its results span indexes). Anonymous requests are left to devpi-lockdown (401, login
 *   page), also where devpi-server itself would answer 403 (release files).
 *
 * nginx asks `/+authcheck` before its page cache and before serving files from disk, so both
 * follow the same decision.
 */
import * as crypto from "node:crypto";

/** The index key devpi stores the readers under. */
export const READ_ACL_KEY = "pulumi_acl_read";

const MODULE = "devpi_pulumi_reads";
const VERSION = "1.0.0";

/** The plugin's Python module (imported by devpi-server through its entry point). */
export const READ_ACL_PLUGIN_PY = `"""devpi-pulumi-reads: who may read an index (index key ${READ_ACL_KEY}). Installed by the devpi Pulumi program."""
from devpi_server.model import ACLList
from pluggy import HookimplMarker

hookimpl = HookimplMarker("devpiserver")
KEY = "${READ_ACL_KEY}"


@hookimpl
def devpiserver_indexconfig_defaults(index_type):
    if index_type != "stage":
        return {}
    return {KEY: ACLList()}


@hookimpl
def devpiserver_stage_get_principals_for_pkg_read(ixconfig):
    readers = ixconfig.get(KEY)
    return list(readers) if readers else None


def forbidden(request):
    """True when a logged-in user may not read what the request is for."""
    user = request.authenticated_userid
    route = request.matched_route
    if route is None:
        return False
    if route.name == "search":
        return user != "root"
    matchdict = request.matchdict or {}
    if "user" not in matchdict or "index" not in matchdict:
        return False
    try:
        stage = request.context.stage
    except Exception:  # no such index: devpi answers 404 itself
        return False
    if not stage.ixconfig.get(KEY):
        return False
    return not request.has_permission("pkg_read")


@hookimpl(hookwrapper=True)
def devpiserver_authcheck_forbidden(request):
    # A wrapper, so that it also decides over devpi-server's own answer: an anonymous request is
    # never "forbidden" but left to devpi-lockdown's 401 (a browser goes to the login page, and
    # pip or uv send the credentials they have only after a 401).
    outcome = yield
    if not request.authenticated_userid:
        outcome.force_result([])
    elif forbidden(request):
        outcome.force_result([True])
`;

const METADATA = `Metadata-Version: 2.1
Name: devpi-pulumi-reads
Version: ${VERSION}
Summary: Per-index read permission for devpi-server (index key ${READ_ACL_KEY}), from the devpi Pulumi program
`;

const ENTRY_POINTS = `[devpi_server]
${MODULE} = ${MODULE}
`;

/** A plugin this program writes into the virtualenv itself (it is not on any package index). */
export interface LocalPlugin {
    /** Distribution name, as pip lists it. */
    name: string;
    /** Version plus a hash of the files, so that changed code is a new version set. */
    version: string;
    /** Path under site-packages to content. */
    files: Record<string, string>;
}

/** The plugin as files under site-packages: the module and a dist-info pluggy finds its entry point in. */
export function readAclPlugin(): LocalPlugin {
    const dist = `devpi_pulumi_reads-${VERSION}.dist-info`;
    const files: Record<string, string> = {
        [`${MODULE}.py`]: READ_ACL_PLUGIN_PY,
        [`${dist}/METADATA`]: METADATA,
        [`${dist}/entry_points.txt`]: ENTRY_POINTS,
        [`${dist}/INSTALLER`]: "devpi-pulumi\n",
    };
    const hash = crypto.createHash("sha256").update(JSON.stringify(files)).digest("hex").slice(0, 12);
    // RECORD lists the files (without hashes, as pip accepts for files it did not install).
    files[`${dist}/RECORD`] =
        Object.keys(files)
            .map((f) => `${f},,`)
            .concat(`${dist}/RECORD,,`)
            .join("\n") + "\n";
    return { name: "devpi-pulumi-reads", version: `${VERSION}+${hash}`, files };
}
