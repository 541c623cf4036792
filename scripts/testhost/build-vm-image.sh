#!/usr/bin/env bash
# Build (once) and cache the disk image the VM test hosts boot from; print the
# image's directory on stdout (it holds base.qcow2, vmlinuz and initrd.img).
# up.sh calls this for DEVPI_TESTHOST_KIND=vm; run it directly to warm the cache.
#
# The image is the same debootstrap minbase as the chroot hosts (build-rootfs.sh)
# plus what a real server has and a chroot lacks: a kernel, systemd as PID 1,
# udev, dbus and logind, networking by systemd-networkd (DHCP on QEMU's
# user-mode network). It is an ext4 file system without partitions, made with
# `mkfs.ext4 -d` (no loop device or mount needed) and booted with QEMU's
# -kernel/-initrd, so there is no boot loader to install or wait for.
#
# Anything unique per host (SSH host keys, the deploy user's key, the host
# name, sshd's port) is not in the image: up.sh passes it on a small seed disk
# that a oneshot unit copies in at every boot, before sshd starts.
#
# Cache key: the rootfs recipe (release, mirrors, packages) and a hash of this
# script, so any change to the recipe builds a new image instead of reusing a
# stale one. Images live in ${XDG_CACHE_HOME:-~/.cache}/devpi-pulumi/vm/.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/lib.sh
. "$here/lib.sh"

release=${DEVPI_TESTHOST_RELEASE:-trixie}
# A server's packages on top of the chroot host's: kernel, init, device manager, IPC, login sessions.
vm_packages=linux-image-amd64,systemd-sysv,udev,kmod,dbus,libpam-systemd,e2fsprogs
disk_size=${DEVPI_TESTHOST_VM_DISK:-8G}

require_root
require_cmds mkfs.ext4 qemu-img tar sha256sum flock

tarball=$(DEVPI_TESTHOST_RELEASE=$release DEVPI_TESTHOST_EXTRA_PACKAGES=$vm_packages "$here/build-rootfs.sh")
# The machine's extra CA certificates are baked in (see up.sh: same network, same trust), so
# they are part of the key too.
extra_cas=()
if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then extra_cas=(/usr/local/share/ca-certificates/*.crt); fi
key=$({ printf '%s\n' "$tarball" "$disk_size"; cat "${BASH_SOURCE[0]}" "${extra_cas[@]}"; } | sha256sum | cut -c1-12)
cache_dir="${XDG_CACHE_HOME:-$HOME/.cache}/devpi-pulumi/vm"
image_dir="$cache_dir/$release-$key"

if [[ -f $image_dir/.complete ]]; then
    printf '%s\n' "$image_dir"
    exit 0
fi
mkdir -p "$cache_dir"
exec 9>"$cache_dir/.lock"
flock 9
if [[ -f $image_dir/.complete ]]; then
    printf '%s\n' "$image_dir"
    exit 0
fi

start=$SECONDS
build=$(mktemp -d "$cache_dir/.build.XXXXXX")
trap 'remove_tree_safely "$build" "$cache_dir"' EXIT
trap 'exit 130' INT TERM
root=$build/root
mkdir "$root"
log "building the $release VM image (first time only)"
tar -I "$(case $tarball in *.zst) echo zstd ;; *) echo gzip ;; esac)" \
    --numeric-owner --xattrs --xattrs-include='*' -C "$root" -xpf "$tarball"

# Boot files come out of the image: QEMU loads them directly.
kernel=$(find "$root/boot" -maxdepth 1 -name 'vmlinuz-*' | sort -V | tail -n1)
initrd=$(find "$root/boot" -maxdepth 1 -name 'initrd.img-*' | sort -V | tail -n1)
[[ -f $kernel && -f $initrd ]] || die "no kernel/initrd in the $release rootfs (is linux-image-amd64 installed?)"
cp "$kernel" "$build/vmlinuz"
cp "$initrd" "$build/initrd.img"

cat >"$root/etc/fstab" <<'EOF'
# devpi-pulumi VM test host: the whole disk is one ext4 file system.
/dev/vda / ext4 errors=remount-ro 0 1
EOF

# Networking: QEMU's user-mode network gives 10.0.2.15 by DHCP and a DNS relay at 10.0.2.3.
mkdir -p "$root/etc/systemd/network"
cat >"$root/etc/systemd/network/10-qemu.network" <<'EOF'
[Match]
Name=en* eth*

[Network]
DHCP=ipv4
EOF
printf 'nameserver 10.0.2.3\n' >"$root/etc/resolv.conf"
[[ -f $root/lib/systemd/system/systemd-networkd.service || -f $root/usr/lib/systemd/system/systemd-networkd.service ]] ||
    die "systemd-networkd is missing from the $release image"

# The per-host seed: a read-only disk labelled DEVPISEED, copied in before sshd starts.
cat >"$root/usr/local/sbin/devpi-testhost-seed" <<'EOF'
#!/bin/sh
# devpi-pulumi VM test host: install this host's identity from the seed disk (see scripts/testhost/up.sh).
set -eu
dev=/dev/vdb
[ "$(blkid -o value -s LABEL "$dev" 2>/dev/null)" = DEVPISEED ] || { echo "no seed disk; keeping what is installed" >&2; exit 0; }
mkdir -p /run/devpi-seed
mount -o ro "$dev" /run/devpi-seed
s=/run/devpi-seed
install -m 0600 -o root -g root "$s"/ssh_host_ed25519_key /etc/ssh/ssh_host_ed25519_key
install -m 0644 -o root -g root "$s"/ssh_host_ed25519_key.pub /etc/ssh/ssh_host_ed25519_key.pub
install -m 0644 -o root -g root "$s"/sshd.conf /etc/ssh/sshd_config.d/10-devpi-testhost.conf
install -d -m 0700 -o deploy -g deploy /home/deploy/.ssh
install -m 0600 -o deploy -g deploy "$s"/authorized_keys /home/deploy/.ssh/authorized_keys
name=$(cat "$s"/hostname)
printf '%s\n' "$name" >/etc/hostname
hostname "$name"
grep -q "^127.0.1.1[[:space:]]$name\$" /etc/hosts || printf '127.0.1.1\t%s\n' "$name" >>/etc/hosts
umount /run/devpi-seed
EOF
chmod 0755 "$root/usr/local/sbin/devpi-testhost-seed"
cat >"$root/etc/systemd/system/devpi-testhost-seed.service" <<'EOF'
[Unit]
Description=devpi-pulumi test host identity from the seed disk
DefaultDependencies=no
# The seed is always the second virtio disk; waiting for that one device is much faster than
# waiting for udev to settle.
Requires=dev-vdb.device
After=local-fs.target dev-vdb.device
Before=ssh.service sshd.service network-pre.target
Wants=network-pre.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/devpi-testhost-seed

[Install]
WantedBy=multi-user.target
EOF

if ((${#extra_cas[@]})); then
    cp "${extra_cas[@]}" "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates >/dev/null 2>&1 || die "update-ca-certificates failed in the image"
fi

cat >"$root/etc/hosts" <<'EOF'
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
ff02::1	ip6-allnodes
ff02::2	ip6-allrouters
EOF

in_image() {
    chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"
}
in_image systemctl enable systemd-networkd.service devpi-testhost-seed.service ssh.service >/dev/null 2>&1 ||
    die "could not enable the image's units"
# A server boots to multi-user, not to a graphical target; no wait for "network online" either.
in_image systemctl set-default multi-user.target >/dev/null 2>&1
in_image systemctl mask systemd-networkd-wait-online.service >/dev/null 2>&1 || true
# The deploy user exists in the image; its key comes from the seed.
in_image useradd --create-home --shell /bin/bash deploy
in_image usermod -p '*' deploy
printf 'deploy ALL=(ALL) NOPASSWD:ALL\n' >"$root/etc/sudoers.d/90-deploy"
chmod 0440 "$root/etc/sudoers.d/90-deploy"
# Root has no password and no console login; a serial getty would only cost boot time.
in_image systemctl mask serial-getty@ttyS0.service >/dev/null 2>&1 || true
# journald keeps logs across reboots, as on a normal server.
mkdir -p "$root/var/log/journal"

log "making the ext4 image ($disk_size, sparse)"
mkfs.ext4 -q -F -L devpiroot -d "$root" "$build/disk.raw" "$disk_size"
qemu-img convert -O qcow2 "$build/disk.raw" "$build/base.qcow2"
rm -f "$build/disk.raw"
remove_tree_safely "$root" "$build"

mkdir -p "$image_dir"
mv "$build/base.qcow2" "$build/vmlinuz" "$build/initrd.img" "$image_dir/"
printf 'release=%s rootfs=%s\n' "$release" "$tarball" >"$image_dir/recipe"
touch "$image_dir/.complete"
log "cached $image_dir ($(du -sh "$image_dir" | cut -f1)) in $((SECONDS - start))s"
printf '%s\n' "$image_dir"
