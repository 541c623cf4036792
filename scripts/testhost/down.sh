#!/usr/bin/env bash
# down.sh NAME — stop a test host made by up.sh and delete it.
#
# Order matters: processes first (they keep mounts busy), then unmounts
# (innermost first), then, only once nothing below the host's directory is
# mounted any more, the files. A host that does not exist is not an error.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/lib.sh
. "$here/lib.sh"

[[ $# -eq 1 ]] || die "usage: $0 NAME"
name=$1
validate_name "$name"
require_root

base=$(testhost_base)
state=$(state_dir "$name")
[[ -e $state ]] || exit 0

if [[ $(cat "$state/kind" 2>/dev/null) == vm ]]; then
    # A VM: stop QEMU (only the one started for this state dir), then delete its files.
    pid=$(cat "$state/qemu.pid" 2>/dev/null || true)
    if [[ -n $pid ]] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$state/disk.qcow2"; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    remove_tree_safely "$state" "$base"
    log "host '$name' removed"
    exit 0
fi

# Processes are matched by their root directory, not by a pid file: daemons
# the program started (nginx, supervisord, devpi) are not sshd's children.
stop_processes_in "$state/rootfs"
# Everything mounted below the state dir, newest first: dev/pts, dev, proc,
# sys, plus anything the program mounted itself.
unmount_all_under "$state"
remove_tree_safely "$state" "$base"
log "host '$name' removed"
