#!/usr/bin/env bash
# make bench: every benchmark under bench/, each printing its ratio against its peer.
set -euo pipefail
cd "$(dirname "$0")/.."
go test -run '^$' -bench . -benchtime 1x ./bench/... 
