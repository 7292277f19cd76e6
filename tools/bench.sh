#!/usr/bin/env bash
# make bench: every benchmark under bench/, each running its peer in the same run and printing
# the ratio. One package at a time (-p 1), so that no two benchmarks share the two cores.
# BENCH=pattern narrows it, e.g. BENCH=Pod make bench.
set -euo pipefail
cd "$(dirname "$0")/.."
CAIRN_BIN=$PWD/bin exec go test -tags seccomp -p 1 -count=1 -timeout 90m -run '^$' -bench "${BENCH:-.}" -benchtime 1x ./bench/...
