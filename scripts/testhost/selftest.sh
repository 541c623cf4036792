#!/usr/bin/env bash
# selftest.sh — check the test host scripts end to end on this machine and
# print timings. Starts nginx inside a test host, so the machine's port 80
# must be free. Needs the network to reach deb.debian.org.
#
#   sudo scripts/testhost/selftest.sh            # ports 2201 and 2202
#   SELFTEST_PORTS="2301 2302" sudo scripts/testhost/selftest.sh
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/lib.sh
. "$here/lib.sh"
require_root

read -r port_a port_b <<<"${SELFTEST_PORTS:-2201 2202}"
a=selftest-a b=selftest-b
base=$(testhost_base)

trap '"$here/down.sh" "$a" || true; "$here/down.sh" "$b" || true' EXIT

fail() { log "SELFTEST FAILED: $*"; exit 1; }
ok() { log "ok: $*"; }
timed() { # timed LABEL CMD... : run CMD, report its wall time
    local label=$1 t0 t1
    shift
    t0=$(date +%s.%N)
    "$@"
    t1=$(date +%s.%N)
    log "time: $label $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')s"
}
# ssh into host NAME the way the Pulumi program will: key, pinned host key.
hssh() {
    local name=$1
    shift
    (
        # shellcheck disable=SC1090,SC1091
        . "$base/$name/env"
        ssh -F /dev/null -i "$TESTHOST_SSH_KEY" -p "$TESTHOST_SSH_PORT" -o BatchMode=yes \
            -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes \
            -o "UserKnownHostsFile=$TESTHOST_KNOWN_HOSTS" -o GlobalKnownHostsFile=/dev/null \
            -o LogLevel=ERROR "$TESTHOST_SSH_USER@$TESTHOST_SSH_HOST" "$@"
    )
}
listening() { [[ -n $(ss -Hltn "( sport = :$1 )") ]]; }

listening 80 && fail "port 80 is already in use on this machine; nginx in the test host needs it"

timed "up $a (rootfs cache possibly cold)" "$here/up.sh" "$a" "$port_a" >/dev/null
key1=$(grep TESTHOST_HOST_KEY "$base/$a/env")
hssh "$a" 'sudo -n touch /etc/selftest-marker'
timed "up $a again (cached rootfs, replaces the running host)" "$here/up.sh" "$a" "$port_a" >/dev/null
[[ $(grep TESTHOST_HOST_KEY "$base/$a/env") != "$key1" ]] || fail "host key did not change on re-up"
hssh "$a" '! test -e /etc/selftest-marker' || fail "re-up did not give a fresh host"
ok "re-up gives a fresh host with a new host key"

[[ $(hssh "$a" id -un) == deploy ]] || fail "not logged in as deploy"
[[ $(hssh "$a" sudo -n id -u) == 0 ]] || fail "sudo -n does not give root"
[[ $(hssh "$a" hostname) == "$a" ]] || fail "hostname inside is not $a"
hssh "$a" sudo -n true 2>&1 | grep -q 'unable to resolve' && fail "sudo cannot resolve the host name"
ok "ssh as deploy, sudo -n to root, hostname $a"

# shellcheck disable=SC1090,SC1091
. "$base/$a/env"
if ssh -F /dev/null -i "$TESTHOST_SSH_KEY" -p "$port_a" -o BatchMode=yes \
    -o "UserKnownHostsFile=$TESTHOST_KNOWN_HOSTS" root@127.0.0.1 true 2>/dev/null; then
    fail "root login works"
fi
methods=$(ssh -F /dev/null -v -p "$port_a" -o BatchMode=yes -o PubkeyAuthentication=no \
    -o "UserKnownHostsFile=$TESTHOST_KNOWN_HOSTS" deploy@127.0.0.1 true 2>&1 |
    tr -d '\r' | sed -n 's/.*Authentications that can continue: //p' | head -n1) || true
[[ $methods == publickey ]] || fail "server offers auth methods '$methods', expected only publickey"
ok "root login refused, only publickey offered"

timed "apt-get update + install nginx-light supervisor python3-venv" \
    hssh "$a" 'sudo -n apt-get update -qq && sudo -n DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light supervisor python3-venv >/dev/null'
listening 80 && fail "installing nginx started it (policy-rc.d not honoured)"
ok "installing nginx did not start it (policy-rc.d)"

hssh "$a" 'sudo -n service nginx start && sudo -n service supervisor start' >/dev/null
sleep 1
listening 80 || fail "nginx is not listening on :80 after 'service nginx start'"
hssh "$a" 'sudo -n service nginx status && sudo -n supervisorctl status' >/dev/null ||
    fail "nginx or supervisord not running"
"$here/exec.sh" "$a" ps -o pid=,args= -C nginx,supervisord | grep -q supervisord ||
    fail "exec.sh does not see supervisord"
[[ $(hssh "$a" 'python3 -m venv /tmp/venv && /tmp/venv/bin/python -c "print(42)"') == 42 ]] ||
    fail "python3 -m venv does not work"
ok "service nginx/supervisor start work, python3 venv works, exec.sh works"

timed "up $b while $a runs" "$here/up.sh" "$b" "$port_b" >/dev/null
[[ $(hssh "$b" hostname) == "$b" && $(hssh "$a" hostname) == "$a" ]] ||
    fail "two hosts do not run side by side"
ok "two hosts side by side"

timed "down $a (with nginx and supervisord running)" "$here/down.sh" "$a"
timed "down $b" "$here/down.sh" "$b"
"$here/down.sh" "$a" || fail "down of a removed host is not idempotent"
trap - EXIT

left=$(findmnt -rn -o TARGET | grep -F "$base/" || true)
[[ -z $left ]] || fail "mounts left: $left"
procs=$(for p in /proc/[0-9]*; do readlink "$p/root" 2>/dev/null; done | grep -F "$base/" || true)
[[ -z $procs ]] || fail "processes left in test hosts"
[[ ! -e $base/$a && ! -e $base/$b ]] || fail "state dirs left"
listening 80 && fail "nginx still listening on :80"
ok "nothing left: no mounts, processes, state dirs or listeners"
log "SELFTEST PASSED"
