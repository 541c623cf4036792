#!/usr/bin/env bash
# The whole test suite: unit tests, then the end-to-end tests against local Debian test hosts:
#   - every e2e suite on Debian 13 (trixie) chroot hosts;
#   - the self-signed suite again on Debian 12 (bookworm);
#   - the fault-injection suite (SSH cuts, killed CLI, server faults) on trixie;
#   - the benchmark's smoke setting (it runs and writes a table under .bench/);
#   - the systemd suite on a trixie VM (QEMU, systemd as PID 1) with a real reboot.
# Needs root on Debian (debootstrap, chroot, QEMU) and the packages .ci/run installs.
# Every suite runs even when an earlier one failed; the exit status is non-zero if any failed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
eval "$(scripts/toolchain.sh)"
node --version >&2

# The VM image takes minutes to build the first time; build it while the other suites run.
mkdir -p .pulumi-test
scripts/testhost/build-vm-image.sh >.pulumi-test/vm-image.log 2>&1 &
vm_image=$!

failed=()
suite() { # suite NAME RELEASE FILES...
    local name=$1 release=$2
    shift 2
    echo "=== $name (Debian $release)" >&2
    DEVPI_TESTHOST_RELEASE=$release node --import tsx --test --test-reporter=spec --test-concurrency=1 \
        --test-timeout=5400000 "$@" || failed+=("$name")
}

node --import tsx --test --test-reporter=spec 'test/unit/**/*.test.ts' || failed+=(unit)
suite e2e trixie 'test/e2e/**/*.test.ts'
suite e2e-bookworm bookworm test/e2e/selfSigned.test.ts
suite faults trixie 'test/faults/**/*.test.ts'
echo "=== bench (smoke)" >&2
bash scripts/bench.sh --smoke || failed+=(bench-smoke)
if wait "$vm_image"; then
    suite systemd-vm trixie 'test/systemd/**/*.test.ts'
else
    cat .pulumi-test/vm-image.log >&2
    failed+=(vm-image)
fi

if ((${#failed[@]})); then
    echo "FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "all suites passed" >&2
