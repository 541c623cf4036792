/**
 * Renders the script that installs the TLS key and certificate chain on the server.
 */
import { shellQuote } from "../common/shell";

export interface SslFilesSettings {
    dir: string;
    owner: string;
    /** File names as in the seed: server.key and ssl-unified.crt. */
    keyFile: string;
    chainFile: string;
}

/**
 * Reads the private key followed by the chain (PEM) from stdin, so the key never appears in a
 * command line, and installs them with mode 0400 in a 0500 directory owned by the web user
 * (nginx's master reads them as root; the directory keeps its search bit).
 */
export function renderSslFilesScript(s: SslFilesSettings): string {
    const dir = shellQuote(s.dir);
    const owner = shellQuote(s.owner);
    return `umask 077
install -d -m 0755 "$(dirname ${dir})"
install -d -m 0500 -o ${owner} -g ${owner} ${dir}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/in"
awk -v key="$work/key" -v chain="$work/chain" '
  out == "" { out = key }
  { print > out }
  out == key && /^-----END [A-Z ]*PRIVATE KEY-----$/ { out = chain }
' "$work/in"
grep -q 'PRIVATE KEY' "$work/key" || { echo "no private key on stdin" >&2; exit 1; }
grep -q 'BEGIN CERTIFICATE' "$work/chain" || { echo "no certificate chain on stdin" >&2; exit 1; }
k=$(write_if_changed ${shellQuote(`${s.dir}/${s.keyFile}`)} 0400 ${owner}:${owner} <"$work/key")
c=$(write_if_changed ${shellQuote(`${s.dir}/${s.chainFile}`)} 0400 ${owner}:${owner} <"$work/chain")
echo "key $k, chain $c"
`;
}

/** Removes the key and chain on destroy (they are not user data). */
export function renderSslRemoveScript(s: SslFilesSettings): string {
    return `rm -f ${shellQuote(`${s.dir}/${s.keyFile}`)} ${shellQuote(`${s.dir}/${s.chainFile}`)}
rmdir ${shellQuote(s.dir)} 2>/dev/null || true
echo "certificate files removed"
`;
}
