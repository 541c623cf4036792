#!/usr/bin/env bash
# Build (once) and cache the Debian root filesystem the test hosts start from;
# print the tarball's path on stdout. up.sh calls this; run it directly to
# warm the cache (e.g. in a CI setup step).
#
# The cache key covers everything that goes into the tarball (release,
# mirrors, package list, recipe version), so changing any of them builds a new
# tarball instead of silently reusing a stale one.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/lib.sh
. "$here/lib.sh"

# Bump when the customisation below changes, to invalidate old tarballs.
RECIPE_VERSION=1

release=${DEVPI_TESTHOST_RELEASE:-trixie}
mirror=${DEVPI_TESTHOST_MIRROR:-http://deb.debian.org/debian}
security_mirror=${DEVPI_TESTHOST_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
# Deliberately minimal: sshd + sudo is what a fresh cloud VM guarantees. The
# rest is from Debian's "important" set that every normal install has (ps,
# ip, /etc/services). No python3 or curl: the program must install what it
# uses, and a test host that already had them would hide a missing step.
base_packages=openssh-server,sudo,ca-certificates,procps,iproute2,netbase
packages=$(printf '%s,%s' "$base_packages" "${DEVPI_TESTHOST_EXTRA_PACKAGES:-}" |
    tr ', ' '\n' | sed '/^$/d' | sort -u | paste -sd, -)

cache_dir="${XDG_CACHE_HOME:-$HOME/.cache}/devpi-pulumi/rootfs"
recipe="recipe=$RECIPE_VERSION release=$release variant=minbase mirror=$mirror security=$security_mirror packages=$packages"
key=$(printf '%s' "$recipe" | sha256sum | cut -c1-12)
# zstd unpacks a ~250 MB tree in about a second; gzip is the portable fallback.
if command -v zstd >/dev/null 2>&1; then
    compress=(-I 'zstd -T0 -3') ext=tar.zst
else
    compress=(-z) ext=tar.gz
fi
tarball="$cache_dir/$release-minbase-$key.$ext"

if [[ -f $tarball ]]; then
    printf '%s\n' "$tarball"
    exit 0
fi

require_root
require_cmds debootstrap tar flock sha256sum
mkdir -p "$cache_dir"

# Parallel `up`s on a cold cache must not build twice or read a half-written file. The lock is
# per tarball, so different releases or package sets build side by side.
exec 9>"$cache_dir/.lock-$release-$key"
flock 9
if [[ -f $tarball ]]; then
    printf '%s\n' "$tarball"
    exit 0
fi

# Leftovers of killed builds of this tarball (we hold its lock, so none is live).
# debootstrap mounts proc and sys in its target, hence the careful removal.
for old in "$cache_dir/.build.$release-$key".*; do
    [[ -e $old ]] || continue
    log "removing leftover build dir $old"
    stop_processes_in "$old"
    unmount_all_under "$old"
    remove_tree_safely "$old" "$cache_dir"
done

build=$(mktemp -d "$cache_dir/.build.$release-$key.XXXXXX")
cleanup() {
    stop_processes_in "$build"
    unmount_all_under "$build"
    remove_tree_safely "$build" "$cache_dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rootfs=$build/rootfs
log "building $release rootfs with $packages (first time only, about a minute)"
start=$SECONDS
debootstrap --variant=minbase --include="$packages" "$release" "$rootfs" "$mirror" >&2 ||
    die "debootstrap failed (log: $rootfs/debootstrap/debootstrap.log, removed on exit)"

# Like a real install: updates and security suites, so `apt-get upgrade` and
# the package versions the program sees match a patched server.
cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $mirror $release main
deb $mirror $release-updates main
deb $security_mirror $release-security main
EOF

# Anything that must be unique per host is removed here and made by up.sh:
# sharing SSH host keys between hosts would defeat host-key pinning tests.
rm -f "$rootfs"/etc/ssh/ssh_host_*
rm -f "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin
rm -f "$rootfs/etc/hostname" "$rootfs/etc/resolv.conf"
if [[ -e $rootfs/etc/machine-id ]]; then : >"$rootfs/etc/machine-id"; fi
printf '%s\n' "$recipe" >"$rootfs/etc/devpi-testhost-recipe"

# Nothing may be mounted in the tree we archive (debootstrap unmounts its
# proc/sys on success, but check: tar would otherwise archive the machine's).
[[ -z $(mounts_under "$rootfs") ]] || die "mounts left in $rootfs: $(mounts_under "$rootfs")"
tar "${compress[@]}" --numeric-owner --xattrs --xattrs-include='*' --one-file-system \
    -C "$rootfs" -cf "$build/rootfs.$ext" .
printf '%s\n' "$recipe" >"$build/recipe"
# rename(2) within one directory is atomic: readers see no tarball or a whole one.
mv "$build/recipe" "${tarball%."$ext"}.recipe"
mv "$build/rootfs.$ext" "$tarball"
log "cached $tarball ($(du -h "$tarball" | cut -f1)) in $((SECONDS - start))s"
printf '%s\n' "$tarball"
