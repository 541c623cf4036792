/**
 * Renders the script that installs the TLS key and certificate chain on the server.
 */
import { shellQuote } from "../common/shell";

export interface SslFilesSettings {
    dir: string;
    /** File names as in the seed: server.key and ssl-unified.crt. */
    keyFile: string;
    chainFile: string;
}

/**
 * Script lines that make `dir` a real directory owned by root:root with mode 0700, whatever was
 * there before: a symlink is removed (never followed), a directory of another owner (the seed's
 * www-data) is taken over. nginx's master process reads the key and certificate as root before
 * it drops privileges, so no other user needs the directory, and a compromised nginx worker can
 * neither read nor replace what is in it. Once this has run, only root can create entries in
 * `dir`, so files checked in it afterwards cannot be swapped. Fails if `dir` is something else
 * (a file), and checks the result. The parent is created (root, 0755) when missing.
 */
export function renderRootOnlyDirLines(dir: string): string {
    const d = shellQuote(dir);
    return `install -d -m 0755 "$(dirname ${d})"
if [ -L ${d} ]; then
  rm -f -- ${d}
  note "removed the symbolic link at ${dir} (not followed); a root-owned directory replaces it"
elif [ -e ${d} ] && [ ! -d ${d} ]; then
  fail "${dir} exists and is not a directory"
fi
[ -d ${d} ] || mkdir -m 0700 -- ${d}
if [ "$(stat -c %u:%g ${d})" != 0:0 ]; then note "${dir} was owned by $(stat -c %U:%G ${d}); now root:root"; fi
chown -h root:root -- ${d}
chmod 0700 -- ${d}
[ "$(stat -c %F:%u:%g:%a ${d})" = directory:0:0:700 ] || fail "${dir} is not a root-owned 0700 directory: $(stat -c '%F %U:%G %a' ${d})"
`;
}

/**
 * Shell function `put_root_file SRC DEST MODE`: moves SRC (a file in DEST's directory) to DEST,
 * owned by root:root with MODE, and prints "changed" or "unchanged". A symbolic link at DEST is
 * removed and replaced, never written through; a file at DEST of another owner or mode is
 * replaced (rename), so what was there is never written to. Fails when DEST is something else.
 */
export const PUT_ROOT_FILE = `put_root_file() {
  local src=$1 dest=$2 mode=$3
  chmod "$mode" "$src"
  chown -h root:root "$src"
  if [ -L "$dest" ]; then
    rm -f -- "$dest"
    note "removed the symbolic link at $dest (not followed)"
  elif [ -e "$dest" ] && [ ! -f "$dest" ]; then
    fail "$dest exists and is not a regular file"
  fi
  if [ -f "$dest" ] && cmp -s "$src" "$dest" && [ "$(stat -c %a:%u:%g "$src")" = "$(stat -c %a:%u:%g "$dest")" ]; then
    rm -f -- "$src"
    echo unchanged
  else
    mv -fT -- "$src" "$dest"
    echo changed
  fi
}
`;

/**
 * Reads the private key followed by the chain (PEM) from stdin, so the key never appears in a
 * command line, and installs them root:root with mode 0400 in a root:root 0700 directory (see
 * {@link renderRootOnlyDirLines}): nginx's master reads them as root, nothing else reads them.
 * Temporaries live in that directory (mktemp), so the key never passes through a directory
 * another user can write to, and an existing server's files (the seed's www-data) are re-owned.
 */
export function renderSslFilesScript(s: SslFilesSettings): string {
    const dir = shellQuote(s.dir);
    return `umask 077
${renderRootOnlyDirLines(s.dir)}${PUT_ROOT_FILE}work=$(mktemp -d ${shellQuote(`${s.dir}/.incoming.XXXXXX`)})
trap 'rm -rf -- "$work"' EXIT
cat >"$work/in"
awk -v key="$work/key" -v chain="$work/chain" '
  out == "" { out = key }
  { print > out }
  out == key && /^-----END [A-Z ]*PRIVATE KEY-----$/ { out = chain }
' "$work/in"
rm -f -- "$work/in"
grep -q 'PRIVATE KEY' "$work/key" || { echo "no private key on stdin" >&2; exit 1; }
grep -q 'BEGIN CERTIFICATE' "$work/chain" || { echo "no certificate chain on stdin" >&2; exit 1; }
k=$(put_root_file "$work/key" ${shellQuote(`${s.dir}/${s.keyFile}`)} 0400)
c=$(put_root_file "$work/chain" ${shellQuote(`${s.dir}/${s.chainFile}`)} 0400)
# Files the seed or an earlier version left in ${s.dir} with another owner (nothing else reads them).
find ${dir} -mindepth 1 -maxdepth 1 ! -user root -exec chown -h root:root -- {} +
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
