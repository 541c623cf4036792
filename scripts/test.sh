#!/usr/bin/env bash
# The whole test suite: unit tests, then the end-to-end tests against local Debian test hosts:
#   - every e2e suite on Debian 13 (trixie) chroot hosts (the mirrors suite beside the others);
#   - the self-signed suite again on Debian 12 (bookworm);
#   - the fault-injection suite (SSH cuts, killed CLI, server faults, a hostile service user) on
#     trixie, and the hostile service user again on bookworm in the seed's layout;
#   - the benchmark's smoke setting (it runs and writes a table under .bench/);
#   - the systemd suite on a trixie VM (QEMU, systemd as PID 1) with a real reboot.
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
if [[ $what == all || $what == systemd ]]; then
    # The VM image takes minutes to build the first time; build it while the other suites run.
    scripts/testhost/build-vm-image.sh >.pulumi-test/vm-image.log 2>&1 &
    vm_image=$!
fi

failed=()
times=()
timed() { # timed NAME COMMAND...: runs it, records its time and whether it failed
    local name=$1 t0=$SECONDS
    shift
    echo "=== $name" >&2
    "$@" || failed+=("$name")
    times+=("$(printf '%-28s %5ss' "$name" "$((SECONDS - t0))")")
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

if [[ $what == all || $what == unit ]]; then
    timed unit node --import tsx --test --test-reporter=spec 'test/unit/**/*.test.ts'
fi
# Suites with hosts and ports of their own that mostly wait (on SSH, pip, devpi, or a clock) run
# beside the trixie e2e suites, their output kept until they end: the hostile service user in the
# seed layout on bookworm, and the mirrors suite (5 minutes of it watch a new server idle).
beside() { # beside NAME RELEASE FILES...: starts them in the background; `joined NAME` waits
    local name=$1 release=$2
    shift 2
    (
        t0=$SECONDS rc=0
        node_tests "$release" "$@" || rc=1
        echo "$((SECONDS - t0))" >".pulumi-test/$name.time"
        exit $rc
    ) >".pulumi-test/$name.log" 2>&1 &
    pids[$name]=$!
}
joined() { # joined NAME LABEL: waits for a suite started by `beside`, prints its output and time
    local name=$1 label=$2
    wait "${pids[$name]}" || failed+=("$label")
    times+=("$(printf '%-28s %5ss (beside the e2e suites)' "$name" "$(cat ".pulumi-test/$name.time" 2>/dev/null || echo '?')")")
    echo "=== $label (ran beside the e2e suites)" >&2
    cat ".pulumi-test/$name.log" >&2
}
declare -A pids=()
if [[ $what == all || $what == faults ]]; then
    DEVPI_HOSTILE_LAYOUT=seed beside faults-bookworm-seed bookworm test/faults/hostileServiceUser.test.ts
fi
if [[ $what == all || $what == e2e ]]; then
    beside e2e-mirrors trixie test/e2e/mirrors.test.ts
    e2e_files=()
    for f in test/e2e/*.test.ts; do [[ $f == test/e2e/mirrors.test.ts ]] || e2e_files+=("$f"); done
    suite e2e trixie "${e2e_files[@]}"
    suite e2e-bookworm bookworm test/e2e/selfSigned.test.ts
    joined e2e-mirrors "e2e-mirrors (Debian trixie)"
fi
if [[ $what == all || $what == faults ]]; then
    suite faults trixie 'test/faults/**/*.test.ts'
    joined faults-bookworm-seed "faults-bookworm-seed (Debian bookworm, seed layout)"
fi
if [[ $what == all ]]; then
    timed bench-smoke bash scripts/bench.sh --smoke
fi
if [[ $what == all || $what == systemd ]]; then
    if wait "$vm_image"; then
        suite systemd-vm trixie 'test/systemd/**/*.test.ts'
    else
        cat .pulumi-test/vm-image.log >&2
        failed+=(vm-image)
    fi
fi

echo "=== time per suite" >&2
printf '%s\n' "${times[@]}" >&2
printf '%-28s %5ss\n' total "$((SECONDS - started))" >&2
if ((${#failed[@]})); then
    echo "FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "all suites passed" >&2
