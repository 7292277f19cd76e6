#!/usr/bin/env bash
# make demo: the main job, step by step.
set -euo pipefail
echo "demo: nothing to show yet" >&2
