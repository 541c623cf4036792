#!/usr/bin/env bash
# up.sh NAME SSH_PORT [PORT...] — start a fresh, disposable Debian host to provision.
#
# DEVPI_TESTHOST_KIND picks the kind: `chroot` (default, below) or `vm` (a QEMU
# machine with systemd as PID 1 that can reboot: up-vm.sh). DEVPI_TESTHOST_RELEASE
# picks the Debian release (trixie by default; bookworm too).
#
# The host is a chroot of a cached debootstrap rootfs with its own sshd on
# 127.0.0.1:SSH_PORT, a `deploy` user with key-only SSH and NOPASSWD sudo, and
# no running daemons: like a fresh cloud VM, minus an init system. It shares
# the machine's network (see docs/testhost.md).
#
# Prints TESTHOST_* shell assignments on stdout (also written to STATE/env);
# logs go to stderr. An existing host of the same NAME is torn down first.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/lib.sh
. "$here/lib.sh"

usage() { die "usage: $0 NAME SSH_PORT [PORT...]"; }
case ${DEVPI_TESTHOST_KIND:-chroot} in
    chroot) ;;
    vm) exec "$here/up-vm.sh" "$@" ;;
    *) die "DEVPI_TESTHOST_KIND='$DEVPI_TESTHOST_KIND' is not a kind of test host: use chroot or vm" ;;
esac
# The chroot shares the machine's network: extra PORTs need no forwarding.
[[ $# -ge 2 ]] || usage
name=$1 port=$2
validate_name "$name"
port=$(port_number "SSH port" "$port")
require_root
require_cmds chroot mount umount unshare hostname ssh ssh-keygen ss tar

base=$(testhost_base)
state=$(state_dir "$name")
rootfs=$state/rootfs
user=deploy
timeout=${DEVPI_TESTHOST_SSH_TIMEOUT:-30}

replace_existing_host "$name"
require_free_port "$port"

tarball=$("$here/build-rootfs.sh")

teardown_on_failure "$name"

start=$SECONDS
mkdir -p "$base"
mkdir -m 0755 "$state"
printf 'chroot\n' >"$state/kind"
printf '%s\n' "${DEVPI_TESTHOST_RELEASE:-trixie}" >"$state/release"
mkdir "$rootfs"
tar -I "$(case $tarball in *.zst) echo zstd ;; *) echo gzip ;; esac)" \
    --numeric-owner --xattrs --xattrs-include='*' -C "$rootfs" -xpf "$tarball"
log "unpacked rootfs in $((SECONDS - start))s"

# Commands inside run with a clean environment: the machine's locale and
# variables would only produce confusing warnings in there.
in_root() {
    chroot "$rootfs" /usr/bin/env -i \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 "$@"
}

# The host gets its own UTS namespace (below), so it can be called NAME; sudo
# looks its own host name up in /etc/hosts and warns if it is missing. These
# are private copies, not bind mounts: the program may edit them freely.
printf '%s\n' "$name" >"$rootfs/etc/hostname"
cat >"$rootfs/etc/hosts" <<EOF
127.0.0.1	localhost
127.0.1.1	$name
::1	localhost ip6-localhost ip6-loopback
ff02::1	ip6-allnodes
ff02::2	ip6-allrouters
EOF
# Copied (cat follows symlinks) so apt and pip resolve names the way the machine does.
rm -f "$rootfs/etc/resolv.conf"
cat /etc/resolv.conf >"$rootfs/etc/resolv.conf"

# Same network, same trust: where this machine reaches registries through a TLS-inspecting
# proxy, its extra CA certificates are what a server on this network would trust as well.
if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    mkdir -p "$rootfs/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
    chroot "$rootfs" update-ca-certificates >/dev/null 2>&1 || die "update-ca-certificates failed in the test host"
fi

# The chroot shares the machine's network, so a package's postinst starting
# its daemon (nginx on :80, ...) would grab the machine's ports before the
# program has configured them. invoke-rc.d, which postinst scripts use, obeys
# policy-rc.d's 101 ("action forbidden"); `service X start` ignores it, so
# the program can still start services explicitly.
cat >"$rootfs/usr/sbin/policy-rc.d" <<'EOF'
#!/bin/sh
# devpi-pulumi test host: packages must not start daemons on install (shared network).
exit 101
EOF
chmod 0755 "$rootfs/usr/sbin/policy-rc.d"

# Like a cloud image: key-only SSH for an unprivileged sudoer, no root login.
# Port and address live in the config (not only on the command line) so a
# `service ssh restart` by the program keeps listening where tests expect.
cat >"$rootfs/etc/ssh/sshd_config.d/10-devpi-testhost.conf" <<EOF
# devpi-pulumi test host (scripts/testhost/up.sh)
Port $port
ListenAddress 127.0.0.1
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
EOF
in_root ssh-keygen -A >/dev/null
mkdir -p "$rootfs/run/sshd"

in_root useradd --create-home --shell /bin/bash "$user"
# '*' = no valid password (password login impossible) without marking the
# account locked, which some sshd setups would treat as "no login at all".
in_root usermod -p '*' "$user"
printf '%s ALL=(ALL) NOPASSWD:ALL\n' "$user" >"$rootfs/etc/sudoers.d/90-$user"
chmod 0440 "$rootfs/etc/sudoers.d/90-$user"
in_root visudo -cqf "/etc/sudoers.d/90-$user" || die "generated sudoers file is invalid"

# A fresh client key per host: nothing from the machine's ~/.ssh is involved.
key=$state/id_ed25519
ssh-keygen -q -t ed25519 -N '' -C "$user@$name (devpi-pulumi testhost)" -f "$key"
chmod 0600 "$key"
home=$rootfs/home/$user
install -d -m 0700 "$home/.ssh"
install -m 0600 "$key.pub" "$home/.ssh/authorized_keys"
in_root chown -R "$user:$user" "/home/$user/.ssh"

host_key=$(cut -d' ' -f1,2 "$rootfs/etc/ssh/ssh_host_ed25519_key.pub")
known_hosts=$state/known_hosts
printf '[127.0.0.1]:%s %s\n' "$port" "$host_key" >"$known_hosts"

# Kernel file systems from the machine. private: no mount or unmount here can
# propagate back to the machine's own /dev etc., whatever the machine's
# default propagation is. Unmounted in reverse order by down.sh.
for m in sys proc dev dev/pts; do
    mount --bind "/$m" "$rootfs/$m"
    mount --make-private "$rootfs/$m"
done

# sshd in its own UTS namespace, so `hostname` in the host says NAME and not
# the machine's name; every session and service started over SSH inherits it.
# shellcheck disable=SC2016 # $1/$2 are for the inner sh, passed as arguments
unshare --uts sh -c 'hostname "$1" && exec chroot "$2" /usr/bin/env -i \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
    /usr/sbin/sshd -E /var/log/sshd-testhost.log' sh "$name" "$rootfs" ||
    die "sshd failed to start; see $rootfs/var/log/sshd-testhost.log"

# Ready means: a real login as deploy, with the pinned host key, can sudo.
ssh_opts=(-F /dev/null -i "$key" -p "$port" -o BatchMode=yes -o IdentitiesOnly=yes
    -o StrictHostKeyChecking=yes -o "UserKnownHostsFile=$known_hosts"
    -o GlobalKnownHostsFile=/dev/null -o ConnectTimeout=3 -o LogLevel=ERROR)
deadline=$((SECONDS + timeout))
until err=$(ssh "${ssh_opts[@]}" "$user@127.0.0.1" sudo -n true 2>&1); do
    if ((SECONDS >= deadline)); then
        log "last ssh error: $err"
        tail -n 20 "$rootfs/var/log/sshd-testhost.log" >&2 || true
        die "host '$name' did not accept 'ssh -p $port $user@127.0.0.1 sudo -n true' within ${timeout}s"
    fi
    sleep 0.3
done
# Only now is sshd's pid file surely written (sshd writes it after forking).
cp "$rootfs/run/sshd.pid" "$state/sshd.pid"

q() { printf "'%s'" "${1//\'/\'\\\'\'}"; }
env_lines=$(
    printf 'TESTHOST_NAME=%s\n' "$(q "$name")"
    printf 'TESTHOST_KIND=%s\n' "$(q chroot)"
    printf 'TESTHOST_ROOT=%s\n' "$(q "$rootfs")"
    printf 'TESTHOST_SSH_HOST=%s\n' "$(q 127.0.0.1)"
    printf 'TESTHOST_SSH_PORT=%s\n' "$(q "$port")"
    printf 'TESTHOST_SSH_USER=%s\n' "$(q "$user")"
    printf 'TESTHOST_SSH_KEY=%s\n' "$(q "$key")"
    printf 'TESTHOST_HOST_KEY=%s\n' "$(q "$host_key")"
    printf 'TESTHOST_KNOWN_HOSTS=%s\n' "$(q "$known_hosts")"
)
printf '%s\n' "$env_lines" >"$state/env"

# Under sudo, let the invoking user's tests read the key and env files.
if [[ -n ${SUDO_UID:-} && -n ${SUDO_GID:-} ]]; then
    chown "$SUDO_UID:$SUDO_GID" "$key" "$key.pub" "$known_hosts" "$state/env"
fi

log "host '$name' up in $((SECONDS - start))s: ssh -i $key -p $port $user@127.0.0.1"
printf '%s\n' "$env_lines"
