#!/usr/bin/env bash
# H200 realtime run, device call 3 (right after h200_realtime.sh, same machine: /tmp/vg/site is
# reused; carry .gpu/p2 again for the seed speech). The gateway's bridge to vLLM's own
# /v1/realtime and that route directly, side by side (bench/realtime_bridge.py), in front of a
# random-weight Voxtral-Mini-4B-Realtime shape (serve/fixtures/voxtral_realtime.py), 1 to 64
# pairs of sessions (64 pairs = 128 streams, so the profile's 64 sequences are raised).
# Results: /tmp/vg/results/rtbridge/; keep them as bench/results/h200/realtime-bridge/.
export PROFILE=voxtral-mini-4b-realtime
# On a fresh machine (call 2's went back), run remote_receive.sh first: this unpacks again.
UNPACK=()
[[ -d /tmp/vg/site/vllm ]] || UNPACK=(unpack)
export RTBRIDGE_EXTRA="--utterances 5 --chunk-ms 80 --ramp-s 2 --processes 4"
bash bench/gpu/remote_run.sh stopgateway stopengine \
  "env:MODEL_FIXTURE=tiny-voxtral-realtime --shape voxtral-mini-4b-realtime" \
  "env:ENGINE_EXTRA=--max-num-seqs 160" \
  env:VOXTRAL_REALTIME__PASSTHROUGH_URL=ws://127.0.0.1:8000 \
  env:VOXTRAL_REALTIME__PASSTHROUGH_MODEL=mistralai/Voxtral-Mini-4B-Realtime-2602 \
  env:VOXTRAL_REALTIME__MAX_CONNECTIONS=512 env:VOXTRAL_WORKERS=4 \
  "${UNPACK[@]}" model engine gateway wait rtbridge:rtbridge:1,8,32,64 metrics
