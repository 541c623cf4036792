#!/usr/bin/env bash
# exec.sh NAME [CMD...] — run CMD as root inside a running test host
# (default: an interactive bash). For tests that inspect the server from the
# inside, e.g. `exec.sh web1 ps -ef` or `exec.sh web1 cat /var/log/nginx/error.log`.
# This bypasses SSH and sudo on purpose: it is the tester's view, not the program's.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/lib.sh
. "$here/lib.sh"

[[ $# -ge 1 ]] || die "usage: $0 NAME [CMD...]"
name=$1
shift
validate_name "$name"
require_root

state=$(state_dir "$name")
if [[ $(cat "$state/kind" 2>/dev/null) == vm ]]; then
    # A VM has no tree to chroot into: the tester's view is root over SSH (deploy + sudo).
    [[ -f $state/env ]] || die "test host '$name' is not running"
    ssh_cmd=(ssh -F /dev/null -i "$state/id_ed25519" -p "$(sed -n "s/^TESTHOST_SSH_PORT='\(.*\)'$/\1/p" "$state/env")"
        -o BatchMode=yes -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes
        -o "UserKnownHostsFile=$state/known_hosts" -o GlobalKnownHostsFile=/dev/null
        -o ConnectTimeout=5 -o LogLevel=ERROR)
    if [[ $# -eq 0 ]]; then exec "${ssh_cmd[@]}" -t deploy@127.0.0.1 sudo -i; fi
    exec "${ssh_cmd[@]}" deploy@127.0.0.1 sudo -n -- "$(printf '%q ' "$@")"
fi
rootfs=$state/rootfs
[[ -d $rootfs ]] || die "no test host '$name' (start it with up.sh)"
mountpoint -q "$rootfs/proc" || die "test host '$name' is not running (proc not mounted)"
[[ $# -gt 0 ]] || set -- /bin/bash -l

cmd=(chroot "$rootfs" /usr/bin/env -i
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" "$@")

# Join the host's UTS namespace (kept alive by its sshd, or any other process
# of the host), so `hostname` inside answers NAME as it does over SSH.
pid=$(cat "$rootfs/run/sshd.pid" 2>/dev/null || true)
if [[ -z $pid || $(readlink "/proc/$pid/root" 2>/dev/null) != "$rootfs" ]]; then
    pid=$(host_pids "$rootfs" | head -n1)
fi
if [[ -n $pid ]]; then
    exec nsenter --target "$pid" --uts -- "${cmd[@]}"
fi
log "warning: no process runs in '$name'; hostname inside will be the machine's"
exec "${cmd[@]}"
