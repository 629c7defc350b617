#!/usr/bin/env bash
# H200 run 1, device call 2 of 3 (after remote_receive.sh): baseline side by side, windows per
# clip, engine profile, then one engine variant. Run from the repo root on the device.
PROF='--profiler-config {"profiler":"torch","torch_profiler_dir":"/tmp/vg/results/prof","torch_profiler_with_stack":false,"ignore_frontend":true}'
BASE="--no-enable-prefix-caching --mm-processor-cache-gb 0 --enable-logging-iteration-details"
export PROFILE=voxtral-mini-3b-h100-80gb
bash bench/gpu/remote_run.sh env:VOXTRAL_WORKERS=4 "env:ENGINE_EXTRA=$BASE $PROF" \
  unpack model engine gateway clips wait \
  gwrun:g-c30hi:clip30:256:128 \
  bench:c30hi:clip30:256:128 \
  env:BENCH_EXTRA=--stream bench:c5s:clip5:1:11 env:BENCH_EXTRA= \
  bench:c5m:clip5:32:32 \
  bench:c600:clip600:16:4 \
  overhead:ov:100 \
  profile:p-c30hi:clip30:256:96 \
  metrics stopgateway stopengine \
  "env:ENGINE_EXTRA=$BASE --max-num-seqs 512 --max-num-batched-tokens 32768 --max-cudagraph-capture-size 512" \
  engine wait direct:v1-c30hi:clip30:256:128
