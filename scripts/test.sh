#!/usr/bin/env bash
# The whole test suite: unit tests, then the end-to-end tests against local Debian test hosts, in
# two lanes side by side:
#   lane 1: every e2e suite on Debian 13 (trixie) chroot hosts; the self-signed suite again on
#           Debian 12 (bookworm); the benchmark's smoke setting (it writes a table under .bench/);
#   lane 2: the fault-injection suite (SSH cuts, killed CLI, server faults, a hostile service user)
#           on trixie, the hostile service user again on bookworm in the seed's layout, then the
#           systemd suite on a trixie VM (QEMU, systemd as PID 1) with a real reboot.
# Needs root on Debian (debootstrap, chroot, QEMU); installs the Debian packages it needs when missing.
# Every suite runs even when an earlier one failed; the exit status is non-zero if any failed.
#
#   scripts/test.sh [all|unit|e2e|faults|systemd]   (default: all; npm run test:<name> runs one)
#
# Prints a table of each suite's time at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
what=${1:-all}
case $what in
    all | unit | e2e | faults | systemd) ;;
    *) echo "test.sh: '$what' is not a selection: use all, unit, e2e, faults or systemd" >&2; exit 2 ;;
esac
[[ $what == unit ]] || scripts/test-packages.sh
eval "$(scripts/toolchain.sh)"
node --version >&2
started=$SECONDS

mkdir -p .pulumi-test
failed=()
times=()
timed() { # timed NAME COMMAND...: runs it, records its time and whether it failed
    local name=$1 t0=$SECONDS
    shift
    echo "=== $name" >&2
    "$@" || failed+=("$name")
    times+=("$(printf '%-34s %5ss' "$name" "$((SECONDS - t0))")")
}
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

# The second lane: the fault suites, then the systemd VM. Its test hosts and ports are its own
# (faults 23xxx, the VM 29xxx; e2e 24xxx-28xxx), and most of every suite's time is spent waiting on
# SSH, pip and devpi, so with `all` it runs beside the e2e lane. Its times and failures go to
# .pulumi-test/lane-b.{times,failed}.
lane_b() {
    failed=()
    times=()
    local vm_image=
    if [[ $what == all || $what == systemd ]]; then
        # The VM image takes minutes to build the first time; build it while the fault suites run.
        scripts/testhost/build-vm-image.sh >.pulumi-test/vm-image.log 2>&1 &
        vm_image=$!
    fi
    if [[ $what == all || $what == faults ]]; then
        suite faults trixie 'test/faults/**/*.test.ts'
        DEVPI_HOSTILE_LAYOUT=seed suite "faults-seed-layout" bookworm test/faults/hostileServiceUser.test.ts
    fi
    if [[ -n $vm_image ]]; then
        if wait "$vm_image"; then
            suite systemd-vm trixie 'test/systemd/**/*.test.ts'
        else
            cat .pulumi-test/vm-image.log >&2
            failed+=(vm-image)
        fi
    fi
    printf '%s\n' "${times[@]}" >.pulumi-test/lane-b.times
    printf '%s\n' "${failed[@]}" >.pulumi-test/lane-b.failed
}
merge_lane_b() {
    local line
    while IFS= read -r line; do [[ -z $line ]] || times+=("$line (lane 2)"); done <.pulumi-test/lane-b.times
    while IFS= read -r line; do [[ -z $line ]] || failed+=("$line"); done <.pulumi-test/lane-b.failed
}
rm -f .pulumi-test/lane-b.times .pulumi-test/lane-b.failed

if [[ $what == all || $what == unit ]]; then
    timed unit node --import tsx --test --test-reporter=spec 'test/unit/**/*.test.ts'
fi
lane_started=$SECONDS
if [[ $what == all ]]; then
    (lane_b) >.pulumi-test/lane-b.log 2>&1 &
    lane=$!
elif [[ $what == faults || $what == systemd ]]; then
    (lane_b)
    merge_lane_b
fi
if [[ $what == all || $what == e2e ]]; then
    suite e2e trixie 'test/e2e/**/*.test.ts'
    suite e2e-bookworm bookworm test/e2e/selfSigned.test.ts
fi
if [[ $what == all ]]; then
    timed bench-smoke bash scripts/bench.sh --smoke
    times+=("$(printf '%-34s %5ss' "lane 1 (e2e, bench)" "$((SECONDS - lane_started))")")
    wait "$lane" || true
    times+=("$(printf '%-34s %5ss' "both lanes" "$((SECONDS - lane_started))")")
    echo "=== lane 2: faults, seed layout, systemd VM (ran beside the e2e suites)" >&2
    cat .pulumi-test/lane-b.log >&2
    if [[ -f .pulumi-test/lane-b.failed ]]; then merge_lane_b; else failed+=("lane 2 (no result)"); fi
fi

echo "=== time per suite" >&2
printf '%s\n' "${times[@]}" >&2
printf '%-28s %5ss\n' total "$((SECONDS - started))" >&2
if ((${#failed[@]})); then
    echo "FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "all suites passed" >&2
