#!/usr/bin/env bash
# run.sh NAME CAPACITY [VOXTRAL_X=Y ...]: gateway with the cpu-whisper-tiny-en profile's
# gateway_env (+ overrides) on a free port against the shared engine, then bench.overload.
# CLIP=a 16 kHz WAV (here: espeak-ng "The quick brown fox jumps over the lazy dog near the
# river bank.", 3.67 s), OUT=where results go; engine: the shared Whisper tiny.en on :18001.
set -euo pipefail
cd "$(dirname "$0")/../../.."
export PYTHONPATH=$PWD
name=$1; capacity=$2; shift 2
port=$(.venv/bin/python -c 'from tests.fixtures.gateway import free_port; print(free_port())')
profile_env=$(.venv/bin/python -c 'from serve.profiles import load_profile; print(" ".join(f"{k}={v}" for k,v in load_profile("cpu-whisper-tiny-en").gateway_env.items()))')
env $profile_env "$@" VOXTRAL_PORT=$port VOXTRAL_UPSTREAM_URLS='["http://127.0.0.1:18001"]' VOXTRAL_LOG_LEVEL=WARNING \
  .venv/bin/voxtral-gateway serve > "$OUT/$name-gateway.log" 2>&1 &
gw=$!
trap 'kill $gw 2>/dev/null; wait $gw 2>/dev/null || true' EXIT
for i in $(seq 1 300); do curl -sf -o /dev/null http://127.0.0.1:$port/health && break; sleep 0.2; done
echo "profile env: $profile_env $*"
.venv/bin/python -m bench.overload --gateway http://127.0.0.1:$port --gateway-pid $gw \
  --clip "$CLIP" --capacity $capacity --clients 32 --seconds ${SECONDS_RUN:-40} \
  --unloaded-requests 20 --out "$OUT/$name" --note "profile cpu-whisper-tiny-en gateway_env: $profile_env $*"
