#!/usr/bin/env bash
# The whole test suite: unit tests, then the end-to-end tests against a local Debian test host.
# Needs root on Debian (debootstrap, chroot) and the packages .ci/run installs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
eval "$(scripts/toolchain.sh)"
node --version >&2
node --import tsx --test --test-reporter=spec 'test/unit/**/*.test.ts'
node --import tsx --test --test-reporter=spec --test-concurrency=1 --test-timeout=5400000 'test/e2e/**/*.test.ts'
