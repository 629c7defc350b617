#!/usr/bin/env bash
# H200 realtime run, device call 2 of 2 (call 1: bench/gpu/remote_receive.sh, carry .gpu/p1;
# this one carries .gpu/p2 and follows at once). The gateway's /v1/realtime in front of the
# Voxtral-Mini-3B shape (random weights, profile voxtral-mini-3b-h200): 1 to 256 concurrent
# sessions, each streaming .gpu/p2/seed speech at real-time pace (bench/realtime_load.py);
# stops after two levels in a row that do not hold. ~160 s setup + ~40 s per level.
# Results: /tmp/vg/results/realtime/ in the tarball `remote_run.sh out` writes to $OUT; keep
# them as bench/results/h200/realtime/ (bench/results/h200/README.md).
export PROFILE=voxtral-mini-3b-h200
export REALTIME_EXTRA="--sentences 8 --chunk-ms 100 --silence-ms 500 --max-p99-s 1.5 --ramp-s 2 --processes 4"
bash bench/gpu/remote_run.sh env:VOXTRAL_WORKERS=4 env:VOXTRAL_REALTIME__MAX_CONNECTIONS=512 \
  unpack model engine gateway wait realtime:realtime:1,8,32,64,128,256 metrics
