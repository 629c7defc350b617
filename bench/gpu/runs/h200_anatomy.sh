#!/usr/bin/env bash
# Issue 21, step anatomy: device call 2 of 2 (call 1: bench/gpu/remote_receive.sh, carry .gpu/p1;
# this one carries .gpu/p2). vLLM alone, profile voxtral-mini-3b-h200, direct c=256 load of 30 s
# clips (as run 1's p-c30hi), profiled for 1.5 s after 8 s. remote_run.sh gives a profiling
# engine VLLM_CUSTOM_SCOPES_FOR_PROFILING=1, so NAME/profile.txt ends with the step anatomy
# (per step with new audio vs decode-only: runner phases' CPU and GPU time, GPU idle, time
# between steps) and NAME/trace-trimmed.json.gz comes back (`python3 bench/gpu/profile_trace.py
# FILE` prints it again). Twice: vLLM's default async scheduling (run 1's engine), then
# --no-async-scheduling, whose steps do not overlap. ~160 s setup, ~130 s per extra engine.
PROF='--profiler-config {"profiler":"torch","torch_profiler_dir":"/tmp/vg/results/prof","torch_profiler_with_stack":false,"ignore_frontend":true}'
BASE="--no-enable-prefix-caching --mm-processor-cache-gb 0 --enable-logging-iteration-details"
export PROFILE=voxtral-mini-3b-h200
bash bench/gpu/remote_run.sh "env:ENGINE_EXTRA=$BASE $PROF" \
  unpack model engine clips wait profile:anat-c30hi:clip30:256:96 stopengine \
  "env:ENGINE_EXTRA=$BASE --no-async-scheduling $PROF" \
  engine wait profile:anat-c30hi-sync:clip30:256:96 stop out
