#!/usr/bin/env bash
# H200 run 1, device call 3 of 3 (right after call 2, same machine): more engine variants,
# vLLM alone on 30 s clips at c=256, one engine start each.
BASE="--no-enable-prefix-caching --mm-processor-cache-gb 0 --enable-logging-iteration-details"
export PROFILE=voxtral-mini-3b-h100-80gb
bash bench/gpu/remote_run.sh stopengine \
  "env:ENGINE_EXTRA=$BASE --max-num-partial-prefills 8 --max-long-partial-prefills 8 --max-num-seqs 512 --max-cudagraph-capture-size 512" \
  engine wait direct:v2-c30hi:clip30:256:128 stopengine \
  "env:ENGINE_EXTRA=$BASE --api-server-count 4 --max-num-seqs 512 --max-cudagraph-capture-size 512" \
  engine wait direct:v3-c30hi:clip30:256:128 stopengine \
  "env:ENGINE_EXTRA=$BASE --disable-chunked-mm-input --max-num-batched-tokens 65536 --max-num-seqs 512 --max-cudagraph-capture-size 512" \
  engine wait direct:v4-c30hi:clip30:256:128
