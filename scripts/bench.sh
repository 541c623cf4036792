#!/usr/bin/env bash
# bench.sh [--smoke] [--only=B1,...] [--out=DIR] [--keep] — the benchmark of issue 11 (bench/run.ts).
# Holds the e2e lock like every end-to-end run: it starts test hosts and runs `pulumi up`, and the
# figures are quieter when no other e2e run shares the machine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v wrk >/dev/null || { echo "bench: wrk is missing (Debian package 'wrk': apt-get install wrk)" >&2; exit 1; }
eval "$(scripts/toolchain.sh)"
# A caller that already holds the lock (e.g. `flock /tmp/devpi-e2e.lock npm test`) sets BENCH_LOCK_HELD=1.
if [ "${BENCH_LOCK_HELD:-}" = 1 ]; then exec node --import tsx bench/run.ts "$@"; fi
exec flock /tmp/devpi-e2e.lock node --import tsx bench/run.ts "$@"
