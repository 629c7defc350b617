#!/usr/bin/env bash
# Each device call carries the working tree (tracked and untracked-not-ignored files) plus one
# carried folder, 64 MiB in all: check both calls of bench/gpu/pack.sh's layout fit, with room.
# Usage: bash bench/gpu/carry_size.sh [GPU_DIR]   (default .gpu; run from the repo root)
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
GPU=${1:-.gpu}
LIMIT=$((64 * 1024 * 1024))
tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 du -cb 2>/dev/null |
  tail -1 | cut -f1)
status=0
for piece in p1 p2; do
  [[ -d $GPU/$piece ]] || { echo "$GPU/$piece: missing (run bench/gpu/pack.sh)"; status=1; continue; }
  carried=$(du -sb "$GPU/$piece" | cut -f1)
  total=$((tree + carried))
  printf '%s: tree %.1f MiB + %s %.1f MiB = %.1f MiB of 64 (%.1f MiB spare)\n' "$piece" \
    "$(bc -l <<<"$tree/1048576")" "$piece" "$(bc -l <<<"$carried/1048576")" \
    "$(bc -l <<<"$total/1048576")" "$(bc -l <<<"($LIMIT-$total)/1048576")"
  ((total <= LIMIT)) || { echo "$piece: over the 64 MiB a call may carry" >&2; status=1; }
done
exit "$status"
