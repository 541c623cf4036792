#!/usr/bin/env bash
# The whole test suite: unit tests, then the end-to-end tests against local Debian test hosts:
#   - every e2e suite on Debian 13 (trixie) chroot hosts, with Debian 12 (bookworm) servers in two of
#     them (the private-reads suite's replica, the fresh primary the off-host backup suite restores);
#   - the fault-injection suite (SSH cuts, killed CLI, server faults, expiry, a hostile service user) on trixie.
# `extra` runs what CI's 45 minutes on two cores cannot also hold (README, "Development"): the
# systemd suite on a trixie VM (QEMU under software emulation, systemd as PID 1, a real reboot;
# `systemd` runs it alone), the variants listed at E2E_EXTRA and FAULTS_EXTRA below, on Debian 12
# the self-signed suite, the private-reads suite and the hostile service user in the seed's layout,
# and the benchmark's smoke setting (it runs and writes a table under .bench/).
# Needs root on Debian (debootstrap, chroot, QEMU); installs the Debian packages it needs when missing.
# Every suite runs even when an earlier one failed; the exit status is non-zero if any failed.
#
#   scripts/test.sh [all|unit|e2e|faults|systemd|extra]   (default: all; npm run test:<name> runs one)
#
# Time (CI must stay within 45 minutes with empty caches): what is built once per machine (the
# Pulumi CLI, the test hosts' root file systems, the VM image) is built in the background while the
# unit tests run; then the suites run in three lanes side by side, each suite with its own test hosts
# and ports: most e2e files in the foreground; the replicas and ACME files and the fault suite beside
# them; and the mirrors file, which spends most of its time waiting (its 5-minute CPU window), in a
# third. The two background lanes' output is printed once all lanes have ended. One suite alone
# leaves about a third of two cores idle (it waits on SSH, pip, devpi or a clock); the lanes keep
# both busy, each running slower than alone, and end sooner than one after the other. Prints a
# table of each suite's time at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
what=${1:-all}
case $what in
    all | unit | e2e | faults | systemd | extra) ;;
    *) echo "test.sh: '$what' is not a selection: use all, unit, e2e, faults, systemd or extra" >&2; exit 2 ;;
esac
started=$SECONDS
mkdir -p .pulumi-test

failed=()
times=()
timed() { # timed NAME COMMAND...: runs it, records its time and whether it failed
    local name=$1 t0=$SECONDS
    shift
    echo "=== $name" >&2
    "$@" || failed+=("$name")
    times+=("$(printf '%-36s %5ss' "$name" "$((SECONDS - t0))")")
}
prepare() { # prepare NAME COMMAND...: starts a build in the background (log in .pulumi-test/NAME.log)
    local name=$1
    shift
    rm -f ".pulumi-test/$name.rc"
    ( "$@" >".pulumi-test/$name.log" 2>&1; echo $? >".pulumi-test/$name.rc" ) &
}
prepared() { # prepared NAME: waits for a build started by `prepare` (from any subshell); false with its log if it failed
    local name=$1
    until [[ -s .pulumi-test/$name.rc ]]; do sleep 1; done
    [[ $(cat ".pulumi-test/$name.rc") == 0 ]] && return 0
    cat ".pulumi-test/$name.log" >&2
    failed+=("$name")
    return 1
}

if [[ $what != unit ]]; then
    scripts/test-packages.sh
    t0=$SECONDS
    prepare toolchain scripts/toolchain.sh
    prepare rootfs bash -c 'scripts/testhost/build-rootfs.sh && DEVPI_TESTHOST_RELEASE=bookworm scripts/testhost/build-rootfs.sh'
    if [[ $what == systemd || $what == extra ]]; then prepare vm-image scripts/testhost/build-vm-image.sh; fi
fi
eval "$(scripts/toolchain.sh --node)"
node --version >&2
if [[ $what == all || $what == unit ]]; then
    timed unit node --import tsx --test --test-reporter=spec 'test/unit/**/*.test.ts'
fi
if [[ $what != unit ]]; then
    if ! prepared toolchain || ! prepared rootfs; then
        echo "FAILED: ${failed[*]}" >&2
        exit 1
    fi
    eval "$(scripts/toolchain.sh)"
    times+=("$(printf '%-36s %5ss' "(toolchain and root file systems)" "$((SECONDS - t0))")")
fi

node_tests() { # node_tests RELEASE FILES...: node's test runner, one file at a time, on Debian RELEASE test hosts
    local release=$1
    shift
    DEVPI_TESTHOST_RELEASE=$release node --import tsx --test --test-reporter=spec --test-concurrency=1 \
        --test-timeout=5400000 "$@"
}
suite() { # suite NAME RELEASE FILES...
    local name=$1 release=$2
    shift 2
    timed "$name (Debian $release)" node_tests "$release" "$@"
}

# The e2e files that run beside the foreground lane, to keep the lanes about even (measured cold: README):
# the replicas and ACME files in the lane with the fault suite; the mirrors file alone in a third
# lane (it mostly waits: devpi-server's CPU is measured over the 5 minutes after its first up).
E2E_BESIDE=(test/e2e/replicas.test.ts test/e2e/acme.test.ts)
E2E_WAITING=(test/e2e/mirrors.test.ts)
# What `npm test` leaves to `extra` (`npm run test:extra`) to stay within CI's 45 minutes (the cold
# runs of 2026-12-06 took 48 and 49 min with them; README, "Development"), each a variant of what
# npm test still covers:
# - e2e: a replica's upgrade (beside upgrade.test.ts), ACME with a replica (beside acme.test.ts),
#   the single-server program's stack (beside the component takeover and the seed layout's);
E2E_EXTRA=(test/e2e/replicaUpgrade.test.ts test/e2e/acmeReplicas.test.ts test/e2e/singleHostCompat.test.ts)
# - faults: the CA renewal with a replica (beside expiryAndTraffic's), and devpi-export or the
#   upgrade step killed during an upgrade (beside upgrade.test.ts's failed and rolled-back upgrades);
#   `npm run test:faults` still runs them;
FAULTS_EXTRA=(test/faults/replicaCaRenewal.test.ts test/faults/upgradeKilled.test.ts)
# - the self-signed suite again on Debian 12 (npm test provisions Debian 12 servers in the
#   private-reads suite, a replica, and the off-host backup suite, the fresh primary it restores);
# - the bench's smoke setting (the bench's own code, not the product's).
e2e_lane() { # in the foreground
    if [[ $what == all || $what == e2e ]]; then
        local e2e_files=()
        for f in test/e2e/*.test.ts; do [[ " ${E2E_BESIDE[*]} ${E2E_WAITING[*]} ${E2E_EXTRA[*]} " == *" $f "* ]] || e2e_files+=("$f"); done
        suite e2e trixie "${e2e_files[@]}"
    fi
    if [[ $what == extra ]]; then
        suite e2e-extra trixie "${E2E_EXTRA[@]}"
        suite e2e-bookworm bookworm test/e2e/selfSigned.test.ts
        suite private-reads-bookworm bookworm test/e2e/privateReads.test.ts
        DEVPI_HOSTILE_LAYOUT=seed suite faults-bookworm-seed bookworm test/faults/hostileServiceUser.test.ts
    fi
}
beside_lane() { # beside the e2e lane (see in_background)
    if [[ $what == all || $what == e2e ]]; then suite e2e-beside trixie "${E2E_BESIDE[@]}"; fi
    if [[ $what == all ]]; then
        local fault_files=()
        for f in test/faults/*.test.ts; do [[ " ${FAULTS_EXTRA[*]} " == *" $f "* ]] || fault_files+=("$f"); done
        suite faults trixie "${fault_files[@]}"
    fi
    if [[ $what == faults ]]; then suite faults trixie 'test/faults/**/*.test.ts'; fi
    if [[ $what == extra ]]; then
        suite faults-extra trixie "${FAULTS_EXTRA[@]}"
        # The benchmark's smoke setting: that the bench runs (figures taken beside another lane are no benchmark).
        timed bench-smoke bash scripts/bench.sh --smoke
    fi
    if [[ $what == systemd || $what == extra ]]; then
        if prepared vm-image; then suite systemd-vm trixie 'test/systemd/**/*.test.ts'; fi
    fi
}
waiting_lane() { # the third lane (see in_background), for npm test and test:e2e: the e2e file that mostly waits
    suite e2e-waiting trixie "${E2E_WAITING[@]}"
}
lane_body() { # lane_body NAME FUNCTION: runs FUNCTION's suites; their times, failures and the end go to .pulumi-test/NAME.*
    local name=$1 fn=$2 failed=() times=()
    "$fn"
    printf '%s\n' "${times[@]}" >".pulumi-test/$name.times"
    printf '%s\n' "${failed[@]}" >".pulumi-test/$name.failed"
    echo "$((SECONDS - lanes_began))" >".pulumi-test/$name.ended"
}
in_background() { # in_background NAME FUNCTION: a lane in a subshell, its output in .pulumi-test/NAME.log
    rm -f ".pulumi-test/$1".{log,times,failed,ended}
    lane_body "$1" "$2" >".pulumi-test/$1.log" 2>&1 &
    lanes+=($!) lane_names+=("$1")
}
collect() { # collect NAME: prints a lane's log (after it ended) and adds its times and failures
    local name=$1 t lane_times lane_failed
    echo "=== the lane '$name' (it ended $(cat ".pulumi-test/$name.ended" 2>/dev/null || echo '?') s after the lanes began)" >&2
    cat ".pulumi-test/$name.log" >&2
    mapfile -t lane_times < <(sed '/^$/d' ".pulumi-test/$name.times" 2>/dev/null || echo "the lane '$name': no times (it did not end normally)")
    mapfile -t lane_failed < <(sed '/^$/d' ".pulumi-test/$name.failed" 2>/dev/null || echo "the lane '$name'")
    for t in "${lane_times[@]}"; do times+=("$t ($name)"); done
    failed+=("${lane_failed[@]}")
}

if [[ $what != unit ]]; then
    lanes=() lane_names=() lanes_began=$SECONDS
    in_background beside beside_lane
    if [[ $what == all || $what == e2e ]]; then in_background waiting waiting_lane; fi
    e2e_lane
    wait "${lanes[@]}" || true
    for name in "${lane_names[@]}"; do collect "$name"; done
fi
echo "=== time per suite" >&2
printf '%s\n' "${times[@]}" >&2
printf '%-36s %5ss\n' total "$((SECONDS - started))" >&2
if ((${#failed[@]})); then
    echo "FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "all suites passed" >&2
