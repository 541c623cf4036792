#!/usr/bin/env bash
# up-vm.sh NAME SSH_PORT [PORT...] — the VM kind of test host (up.sh calls this
# when DEVPI_TESTHOST_KIND=vm): a QEMU virtual machine with its own kernel and
# systemd as PID 1, booted from a copy-on-write overlay over the cached image
# (build-vm-image.sh), so a fresh host rebuilds nothing and can really reboot.
#
# Interface as for the chroot kind: sshd on 127.0.0.1:SSH_PORT (forwarded to the
# guest's port 22), the `deploy` user with a fresh key and NOPASSWD sudo, a fresh
# pinned host key, TESTHOST_* lines on stdout. Each extra PORT is forwarded from
# 127.0.0.1:PORT to the same port in the guest (the stack's HTTP/HTTPS ports), so
# https://localhost:PORT means the same thing inside the guest and outside.
#
# QEMU runs with software emulation (TCG): this machine has no usable hardware
# virtualisation. The guest's user-mode network reaches what the machine reaches.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/lib.sh
. "$here/lib.sh"

[[ $# -ge 2 ]] || die "usage: $0 NAME SSH_PORT [PORT...]"
name=$1 port=$2
shift 2
validate_name "$name"
port=$(port_number port "$port")
extra_ports=()
for p in "$@"; do extra_ports+=("$(port_number port "$p")"); done
require_root
require_cmds qemu-system-x86_64 qemu-img mkfs.ext4 ssh ssh-keygen ss

base=$(testhost_base)
state=$(state_dir "$name")
user=deploy
timeout=${DEVPI_TESTHOST_BOOT_TIMEOUT:-600}
memory=${DEVPI_TESTHOST_VM_MEMORY:-2048}
cpus=${DEVPI_TESTHOST_VM_CPUS:-2}

replace_existing_host "$name"
for p in "$port" "${extra_ports[@]}"; do require_free_port "$p"; done

image=$("$here/build-vm-image.sh")

teardown_on_failure "$name"

start=$SECONDS
mkdir -p "$base"
mkdir -m 0755 "$state"
printf 'vm\n' >"$state/kind"
printf '%s\n' "${DEVPI_TESTHOST_RELEASE:-trixie}" >"$state/release"
qemu-img create -q -f qcow2 -F qcow2 -b "$image/base.qcow2" "$state/disk.qcow2"

# The seed disk: this host's identity, copied in by devpi-testhost-seed.service at boot.
seed=$state/seed
mkdir -m 0700 "$seed"
ssh-keygen -q -t ed25519 -N '' -C "root@$name" -f "$seed/ssh_host_ed25519_key"
key=$state/id_ed25519
ssh-keygen -q -t ed25519 -N '' -C "$user@$name (devpi-pulumi testhost)" -f "$key"
chmod 0600 "$key"
cp "$key.pub" "$seed/authorized_keys"
printf '%s\n' "$name" >"$seed/hostname"
cat >"$seed/sshd.conf" <<'EOF'
# devpi-pulumi test host (scripts/testhost/up-vm.sh); QEMU forwards 127.0.0.1:SSH_PORT here.
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
EOF
mkfs.ext4 -q -L DEVPISEED -d "$seed" "$state/seed.img" 4M >&2

host_key=$(cut -d' ' -f1,2 "$seed/ssh_host_ed25519_key.pub")
known_hosts=$state/known_hosts
printf '[127.0.0.1]:%s %s\n' "$port" "$host_key" >"$known_hosts"
rm -f "$seed/ssh_host_ed25519_key"

netdev="user,id=net0,hostfwd=tcp:127.0.0.1:$port-:22"
for p in "${extra_ports[@]}"; do netdev+=",hostfwd=tcp:127.0.0.1:$p-:$p"; done
qemu-system-x86_64 \
    -name "devpi-testhost-$name" \
    -machine q35 -accel tcg,thread=multi -cpu max -smp "$cpus" -m "$memory" \
    -kernel "$image/vmlinuz" -initrd "$image/initrd.img" \
    -append "root=/dev/vda rw console=ttyS0 net.ifnames=0 quiet systemd.show_status=auto" \
    -drive "file=$state/disk.qcow2,if=virtio,format=qcow2" \
    -drive "file=$state/seed.img,if=virtio,format=raw,readonly=on" \
    -netdev "$netdev" -device virtio-net-pci,netdev=net0 \
    -device virtio-rng-pci \
    -display none -serial "file:$state/console.log" \
    -monitor "unix:$state/monitor.sock,server,nowait" \
    -pidfile "$state/qemu.pid" -daemonize ||
    die "qemu failed to start"
log "booting '$name' (QEMU pid $(cat "$state/qemu.pid"), console log $state/console.log)"

ssh_opts=(-F /dev/null -i "$key" -p "$port" -o BatchMode=yes -o IdentitiesOnly=yes
    -o StrictHostKeyChecking=yes -o "UserKnownHostsFile=$known_hosts"
    -o GlobalKnownHostsFile=/dev/null -o ConnectTimeout=5 -o LogLevel=ERROR)
deadline=$((SECONDS + timeout))
until err=$(ssh "${ssh_opts[@]}" "$user@127.0.0.1" sudo -n true 2>&1); do
    if ((SECONDS >= deadline)); then
        log "last ssh error: $err"
        tail -n 30 "$state/console.log" >&2 || true
        die "host '$name' did not accept 'ssh -p $port $user@127.0.0.1 sudo -n true' within ${timeout}s"
    fi
    kill -0 "$(cat "$state/qemu.pid")" 2>/dev/null || { tail -n 30 "$state/console.log" >&2; die "QEMU exited while booting"; }
    sleep 1
done

q() { printf "'%s'" "${1//\'/\'\\\'\'}"; }
env_lines=$(
    printf 'TESTHOST_NAME=%s\n' "$(q "$name")"
    printf 'TESTHOST_KIND=%s\n' "$(q vm)"
    printf 'TESTHOST_ROOT=%s\n' "$(q "")"
    printf 'TESTHOST_SSH_HOST=%s\n' "$(q 127.0.0.1)"
    printf 'TESTHOST_SSH_PORT=%s\n' "$(q "$port")"
    printf 'TESTHOST_SSH_USER=%s\n' "$(q "$user")"
    printf 'TESTHOST_SSH_KEY=%s\n' "$(q "$key")"
    printf 'TESTHOST_HOST_KEY=%s\n' "$(q "$host_key")"
    printf 'TESTHOST_KNOWN_HOSTS=%s\n' "$(q "$known_hosts")"
)
printf '%s\n' "$env_lines" >"$state/env"
if [[ -n ${SUDO_UID:-} && -n ${SUDO_GID:-} ]]; then
    chown "$SUDO_UID:$SUDO_GID" "$key" "$key.pub" "$known_hosts" "$state/env"
fi
log "host '$name' (vm, $(ssh "${ssh_opts[@]}" "$user@127.0.0.1" '. /etc/os-release; echo "$PRETTY_NAME"')) up in $((SECONDS - start))s: ssh -i $key -p $port $user@127.0.0.1"
printf '%s\n' "$env_lines"
