# shellcheck shell=bash
# Shared helpers for the disposable Debian test host scripts (up.sh, down.sh,
# exec.sh, build-rootfs.sh). Sourced, never run.
#
# The one real danger in these scripts: a host's rootfs has the machine's /dev,
# /proc and /sys bind-mounted into it, so an `rm -rf` over a still-mounted tree
# would delete the machine's device nodes and worse. Everything that removes a
# tree goes through remove_tree_safely, which refuses while anything below it
# is mounted.

log() { printf 'testhost: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

require_root() {
    # chroot, mount and debootstrap all need real root.
    [[ $(id -u) -eq 0 ]] || die "must run as root (chroot, mount and debootstrap need it)"
}

require_cmds() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || die "'$c' not found; install it (e.g. apt-get install -y $c)"
    done
}

# Host names double as directory names and as the host's hostname(1), so keep
# them to what a DNS label allows: no slashes, dots or spaces can sneak into paths.
validate_name() {
    [[ ${1:-} =~ ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$ ]] ||
        die "invalid host name '${1:-}': use lowercase letters, digits and '-' (a DNS label)"
}

# Canonical (symlink-free) base dir: /proc/PID/root and /proc/self/mountinfo
# report canonical paths, so every comparison must use one too.
testhost_base() {
    local base=${DEVPI_TESTHOST_DIR:-/var/tmp/devpi-testhost}
    [[ $base == /* ]] || die "DEVPI_TESTHOST_DIR must be an absolute path (got '$base')"
    [[ $base != *[[:space:]\\]* ]] || die "DEVPI_TESTHOST_DIR must not contain whitespace or backslashes"
    realpath -m -- "$base"
}

state_dir() { printf '%s/%s' "$(testhost_base)" "$1"; }

# Mount points at or below DIR, most recently mounted first (the order they
# must be unmounted in). Mount points in mountinfo escape spaces etc. as \040.
mounts_under() {
    local dir=$1 target
    local -a found=()
    while read -r _ _ _ _ target _; do
        target=$(printf '%b' "$target")
        if [[ $target == "$dir" || $target == "$dir"/* ]]; then
            found+=("$target")
        fi
    done </proc/self/mountinfo
    local i
    for ((i = ${#found[@]} - 1; i >= 0; i--)); do
        printf '%s\n' "${found[i]}"
    done
}

# PIDs of processes whose root directory is DIR or inside it: everything
# started in the host (sshd, its sessions, nginx, supervisord, exec.sh
# commands), whatever their parent is. There is no init in the host to ask.
host_pids() {
    local dir=$1 p root
    for p in /proc/[0-9]*; do
        root=$(readlink "$p/root" 2>/dev/null) || continue
        if [[ $root == "$dir" || $root == "$dir"/* ]]; then
            printf '%s\n' "${p#/proc/}"
        fi
    done
}

# TERM, wait, then KILL. Rescans every round, because killing a supervisor
# can make it (or its children) spawn or exit processes.
stop_processes_in() {
    local dir=$1 term_wait=${DEVPI_TESTHOST_TERM_WAIT:-10} end
    local -a pids
    mapfile -t pids < <(host_pids "$dir")
    [[ ${#pids[@]} -eq 0 ]] && return 0
    log "stopping ${#pids[@]} process(es) in $dir"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    end=$((SECONDS + term_wait))
    while ((SECONDS < end)); do
        mapfile -t pids < <(host_pids "$dir")
        [[ ${#pids[@]} -eq 0 ]] && return 0
        sleep 0.2
    done
    log "still running after ${term_wait}s, sending KILL: ${pids[*]}"
    end=$((SECONDS + 5))
    while ((SECONDS < end)); do
        mapfile -t pids < <(host_pids "$dir")
        [[ ${#pids[@]} -eq 0 ]] && return 0
        kill -KILL "${pids[@]}" 2>/dev/null || true
        sleep 0.2
    done
    mapfile -t pids < <(host_pids "$dir")
    [[ ${#pids[@]} -eq 0 ]] && return 0
    ps -o pid,stat,args -p "$(IFS=,; echo "${pids[*]}")" >&2 || true
    die "could not stop processes in $dir: ${pids[*]}"
}

# Unmount everything at or below DIR, innermost/newest first. A lazy unmount
# is the last resort: it detaches the mount from the tree at once (so the rm
# afterwards cannot reach the machine's /dev), even if something still holds it.
unmount_all_under() {
    local dir=$1 m
    local -a mounts
    mapfile -t mounts < <(mounts_under "$dir")
    for m in "${mounts[@]}"; do
        umount -- "$m" 2>/dev/null || log "umount $m failed, will retry"
    done
    mapfile -t mounts < <(mounts_under "$dir")
    for m in "${mounts[@]}"; do
        umount -- "$m" 2>/dev/null || {
            log "umount $m still failing, detaching it lazily (umount -l)"
            umount -l -- "$m" || true
        }
    done
    mapfile -t mounts < <(mounts_under "$dir")
    if [[ ${#mounts[@]} -gt 0 ]]; then
        die "still mounted below $dir, refusing to go on: ${mounts[*]}"
    fi
}

# rm -rf DIR, but only if it lies strictly inside PARENT and nothing below it
# is mounted. --one-file-system is a second guard: rm then skips any directory
# on another filesystem (such as a bind-mounted /dev) instead of emptying it.
remove_tree_safely() {
    local dir=$1 parent=$2
    [[ -n $parent && $parent == /* && $parent != / && $dir == "$parent"/?* ]] ||
        die "refusing to remove '$dir': not inside '$parent'"
    [[ -e $dir ]] || return 0
    local -a mounts
    mapfile -t mounts < <(mounts_under "$dir")
    [[ ${#mounts[@]} -eq 0 ]] || die "refusing to remove $dir: still mounted: ${mounts[*]}"
    rm -rf --one-file-system -- "$dir" || die "could not fully remove $dir (see errors above)"
}

# port_number WHAT P: P as a plain number (leading zeros dropped), or die naming WHAT.
port_number() {
    if ! [[ $2 =~ ^[0-9]{1,5}$ ]] || ((10#$2 < 1 || 10#$2 > 65535)); then die "invalid $1 '$2'"; fi
    printf '%s' "$((10#$2))"
}

# require_free_port P: a server started later would fail with a less obvious message.
require_free_port() {
    if [[ -n $(ss -Hltn "( sport = :$1 )") ]]; then
        die "port $1 is already in use: $(ss -Hltnp "( sport = :$1 )" | head -n1)"
    fi
}

# replace_existing_host NAME: always a fresh host; a test must never see what an earlier run left.
replace_existing_host() {
    if [[ -e $(state_dir "$1") ]]; then
        log "host '$1' exists, tearing it down first"
        "$(dirname "${BASH_SOURCE[0]}")/down.sh" "$1"
    fi
}

# teardown_on_failure NAME: from here on, a failing up.sh removes what it set up so far, so no
# half-made host is left behind (DEVPI_TESTHOST_KEEP_ON_FAILURE=1 keeps it for debugging).
teardown_on_failure() {
    TEARDOWN_NAME=$1
    trap _teardown_if_failed EXIT
    trap 'exit 130' INT TERM
}
_teardown_if_failed() {
    local rc=$? down
    down="$(dirname "${BASH_SOURCE[0]}")/down.sh"
    if [[ $rc -ne 0 && ${DEVPI_TESTHOST_KEEP_ON_FAILURE:-0} != 1 ]]; then
        log "up failed (exit $rc), tearing down '$TEARDOWN_NAME'"
        "$down" "$TEARDOWN_NAME" || log "teardown failed too; run $down $TEARDOWN_NAME"
    fi
}
