/**
 * Renders a replica's re-sync step. devpi binds a replica to its primary's identity (the UUID in
 * the primary's `.nodeinfo`): a primary that was rebuilt by export/import (a forced or
 * data-format upgrade, or a restore) has a new one, and devpi then refuses the replica's
 * replication requests for good ("expected X as primary_uuid, replica sent Y") while the replica
 * goes on serving what it had. The step compares the two identities and, when they differ,
 * starts the replica over from an empty server directory, keeping the old one aside.
 */
import { READ_CREDENTIAL_PY } from "../common/readCredential";
import { shellQuote } from "../common/shell";

export interface ReplicaResyncSettings {
    /** The primary's public HTTPS URL. */
    primaryUrl: string;
    /** The replica's devpi-server on loopback, e.g. http://127.0.0.1:4040. */
    devpiUrl: string;
    serverDir: string;
    configFile: string;
    venvDir: string;
    serviceUser: string;
    /** supervisor program name. */
    program: string;
    /** Seconds to wait for the replica to learn its primary's identity, and to catch up after a re-sync. */
    timeout: number;
    /** Anything whose change must re-run the comparison (the primary's and the replica's versions). */
    revision: string;
}

/**
 * argv: MODE PRIMARY_URL LOCAL_URL TIMEOUT; stdin: the CA bundle that verifies the primary, and
 * where reads need a user, whom to read the primary's status as (see READ_CREDENTIAL_PY).
 * `identity`: waits until the replica knows a primary identity, prints "PRIMARY_UUID FOLLOWED_UUID".
 * `synced`: waits until the replica follows the primary's identity and has reached its serial.
 */
export const REPLICA_IDENTITY_PY = `import base64, json, ssl, sys, time, urllib.request
mode, primary_url, local_url, timeout = sys.argv[1], sys.argv[2].rstrip("/"), sys.argv[3].rstrip("/"), int(sys.argv[4])
${READ_CREDENTIAL_PY}
ctx = ssl.create_default_context()
if ca.strip():
    ctx.load_verify_locations(cadata=ca)


def status(url, context=None):
    # The primary (through nginx) may need a user; the replica's own devpi on loopback never does.
    headers = {"Accept": "application/json"}
    if auth and context is not None:
        headers["Authorization"] = auth
    req = urllib.request.Request(url + "/+status", headers=headers)
    with urllib.request.urlopen(req, timeout=30, context=context) as r:
        return json.load(r)["result"]


try:
    primary = status(primary_url, ctx)
except (OSError, ValueError, KeyError) as e:
    print("cannot read the primary's /+status at %s: %s" % (primary_url, e), file=sys.stderr)
    sys.exit(1)
start, mine, last_error = time.monotonic(), None, None
while time.monotonic() - start < timeout:
    try:
        mine = status(local_url)
        last_error = None
        followed = mine.get("primary-uuid")
        if mine.get("role") != "REPLICA":
            print("%s is not a replica (role %s)" % (local_url, mine.get("role")), file=sys.stderr)
            sys.exit(1)
        if mode == "identity" and followed:
            print(primary["uuid"], followed)
            sys.exit(0)
        if mode == "synced" and followed == primary["uuid"] and mine["serial"] >= primary["serial"]:
            print("replica at serial %d of the primary's %d after %.1fs" % (mine["serial"], primary["serial"], time.monotonic() - start))
            sys.exit(0)
    except (OSError, ValueError, KeyError) as e:
        last_error = e
    time.sleep(0.5)
print("the replica at %s did not %s within %ds" % (local_url, "learn its primary's identity" if mode == "identity" else "catch up with the primary %s (serial %d)" % (primary["uuid"], primary["serial"]), timeout), file=sys.stderr)
if last_error is not None:
    print("last error: %s" % last_error, file=sys.stderr)
if mine is not None:
    print("replica: serial %s, primary-uuid %s, replication-errors %s" % (mine.get("serial"), mine.get("primary-uuid"), json.dumps(mine.get("replication-errors"))), file=sys.stderr)
sys.exit(1)
`;

/**
 * 1. Wait (bounded) until the replica knows which primary it follows (a fresh replica learns it
 *    from its first replication request).
 * 2. Same identity as the primary's: nothing to do.
 * 3. Otherwise stop the replica, move SERVERDIR aside (SERVERDIR.pre-resync-STAMP; only the newest
 *    such copy is kept: a replica holds nothing that is not on its primary), devpi-init an empty
 *    one, start, and wait until the replica follows the new identity and reached the primary's
 *    serial. A failure puts the old directory back.
 * Stdin: the CA bundle that verifies the primary's certificate.
 */
export function renderReplicaResyncScript(s: ReplicaResyncSettings): string {
    const q = shellQuote;
    const py = (mode: string) => `printf '%s' "$payload" | python3 -c "$identity_py" ${mode} ${q(s.primaryUrl)} ${q(s.devpiUrl)} ${s.timeout}`;
    return `# revision ${s.revision}
sd=${q(s.serverDir)}
cfg=${q(s.configFile)}
user=${q(s.serviceUser)}
prog=${q(s.program)}
identity_py=${q(REPLICA_IDENTITY_PY)}
# Stdin (the CA, maybe a credential) stays in memory: printf is a builtin (no argv, no file).
payload=$(cat)
ids=$(${py("identity")})
read -r primary_uuid followed <<<"$ids"
if [ -z "$primary_uuid" ] || [ -z "$followed" ]; then echo "could not read the primary's and the replica's identities (got: $ids)" >&2; exit 1; fi
if [ "$primary_uuid" = "$followed" ]; then
  echo "replica follows primary $primary_uuid"
  exit 0
fi
echo "the replica follows primary $followed, but the primary is now $primary_uuid (rebuilt by export/import or a restore): re-syncing from it" >&2
supervisorctl stop "$prog" >&2
aside="$sd.pre-resync-$(date -u +%Y%m%dT%H%M%SZ)"
# The server directory is the service user's: moved, made and removed as that user.
runuser -u "$user" -- mv -T -- "$sd" "$aside"
runuser -u "$user" -- mkdir -m 0750 -- "$sd"
if ! runuser -u "$user" -- ${q(s.venvDir)}/bin/devpi-init -c "$cfg" >&2 || ! supervisorctl start "$prog" >&2 || ! ${py("synced")} >&2; then
  echo "the re-sync failed; putting the replica's old data back" >&2
  supervisorctl stop "$prog" >&2 || true
  runuser -u "$user" -- rm -rf -- "$sd"; runuser -u "$user" -- mv -T -- "$aside" "$sd"
  supervisorctl start "$prog" >&2 || true
  exit 1
fi
for d in "$sd".pre-resync-*; do
  [ "$d" = "$aside" ] || runuser -u "$user" -- rm -rf -- "$d"
done
echo "re-synced replica: now follows primary $primary_uuid (was $followed); old data kept in $aside"
`;
}
