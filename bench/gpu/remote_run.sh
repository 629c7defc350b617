#!/usr/bin/env bash
# Runs on the H100 device machine, in the repo root, as `bash bench/gpu/remote_run.sh STEP...`.
# Steps run in the order given; state lives in /tmp/vg, which outlives a call by ~30 s, and the
# engine and gateway run in their own sessions (setsid), so a follow-up call can reuse them.
#   unpack   join /tmp/vg/site.tar.xz.part1 (call 1, remote_receive.sh) + .gpu/p2 part 2, unpack
#   model    random-weight Voxtral-Mini-3B shape, generated on the GPU in bf16 (another:
#            MODEL_FIXTURE="tiny-voxtral-realtime --shape voxtral-mini-4b-realtime")
#   engine   vLLM 0.26 with the serve/ profile $PROFILE (default voxtral-mini-3b-h100-80gb),
#            plus the flags in $ENGINE_EXTRA (space-separated), if any; a profile with
#            engine_plugins also gets their PYTHONPATH (serve/engine_plugins/)
#   stopengine  end the engine only (to start it again with other flags)
#   gateway  voxtral-gateway in front of it (tokens_per_audio_second=4; inherits env: steps,
#            e.g. env:VOXTRAL_MAX_IN_FLIGHT_REQUESTS=8 before it sets its admission capacity)
#   stopgateway  end the gateway only (to start it again with other settings)
#   wait     until both answer; records the engine's ready time
#   clips    5 s / 30 s / 10 min corpus from .gpu/p2/seed
#   bench:NAME:KINDS:CONCURRENCY[:REPEAT]   python -m bench compare, gateway vs direct
#   direct:NAME:KINDS:CONCURRENCY[:REPEAT]  python -m bench run against the engine alone
#     (both take extra bench flags from $BENCH_EXTRA, e.g. --stream for time to first token)
#   overhead:NAME:PAIRS   python -m bench.overhead on .gpu/p2/overhead-clip.wav (made here with
#     `python -m bench.overhead --save-clip .gpu/p2/overhead-clip.wav --gateway - --direct -`)
#   overload:NAME:CAPACITY:SECONDS  python -m bench.overload (10x CAPACITY clients) on the same
#     clip; CAPACITY must equal the gateway's VOXTRAL_MAX_IN_FLIGHT_REQUESTS (set via env:)
#   gwrun:NAME:KINDS:CONCURRENCY[:REPEAT]   python -m bench run against the gateway alone: the
#     engine's request count over it (engine-phases.txt) is the windows the gateway sent
#   profile:NAME:KINDS:CONCURRENCY:REPEAT   direct load; after $PROFILE_AFTER_S (8) s, vLLM's
#     torch profiler for $PROFILE_FOR_S (1.5) s (engine started with ENGINE_EXTRA holding
#     --profiler-config {"profiler":"torch","torch_profiler_dir":"/tmp/vg/results/prof",...};
#     such an engine also gets VLLM_CUSTOM_SCOPES_FOR_PROFILING=1, vLLM's per-phase annotations),
#     summarised by bench/gpu/profile_trace.py into NAME/profile.txt (with the step anatomy),
#     the trace itself trimmed to NAME/trace-trimmed.json.gz
#   realtime:NAME:LEVELS  opt-in realtime phase: python -m bench.realtime_load, LEVELS (e.g.
#     1,8,32,64,128) concurrent OpenAI-protocol sessions streaming .gpu/p2/seed speech at real-time
#     pace into the gateway's /v1/realtime (server VAD); flags from $REALTIME_EXTRA (e.g.
#     "--sentences 8 --chunk-ms 100 --max-p99-s 1.5"); start the gateway with
#     env:VOXTRAL_REALTIME__MAX_CONNECTIONS=N >= the largest level. Writes NAME/results.{md,json}
#   rtbridge:NAME:LEVELS  python -m bench.realtime_bridge: gateway bridge vs the engine's own
#     /v1/realtime side by side (needs an engine serving a Voxtral Realtime model and a gateway
#     started after env:VOXTRAL_REALTIME__PASSTHROUGH_URL=ws://127.0.0.1:$ENGINE_PORT);
#     flags from $RTBRIDGE_EXTRA
#   env:KEY=VALUE  set a variable for the steps after it (ENGINE_EXTRA, BENCH_EXTRA, VOXTRAL_*)
#   metrics  engine + gateway /metrics, nvidia-smi
#   components  encoder / prefill / decode timed alone in PyTorch (after stopengine)
#   stop     end engine and gateway
#   out      pack /tmp/vg/results and logs into $OUT
set -uo pipefail
REPO=$(pwd)
VG=${VG:-/tmp/vg}  # overridable for a CPU dry run of the gateway/realtime steps
SITE=$VG/site
RES=$VG/results
PROFILE=${PROFILE:-voxtral-mini-3b-h100-80gb}
ENGINE_PORT=${ENGINE_PORT:-8000}
GATEWAY_PORT=${GATEWAY_PORT:-8001}
TOKENS_PER_AUDIO_S=${TOKENS_PER_AUDIO_S:-4}
mkdir -p "$RES"
# Cores: half the physical cores for the engine, a quarter each for the gateway and the load
# client, hyper-thread siblings kept together (bench/gpu/cores.py); runs 1-4 used 0-7 / 8-11 /
# 12-15 regardless of siblings. Set all three to choose by hand.
if [[ -z ${ENGINE_CPUS:-} || -z ${GATEWAY_CPUS:-} || -z ${CLIENT_CPUS:-} ]]; then
  eval "$(python3 "$REPO/bench/gpu/cores.py")"
  python3 "$REPO/bench/gpu/cores.py" --describe >"$RES/cpu-topology.txt"
fi
export ENGINE_CPUS GATEWAY_CPUS CLIENT_CPUS
GPU_NAME=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
export PYTHONUNBUFFERED=1 VLLM_USE_FLASHINFER_SAMPLER=0 HF_HUB_OFFLINE=1
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export PYTHONPATH=$SITE:$REPO
python3 -c 'import av' 2>/dev/null || export PYTHONPATH=$PYTHONPATH:$REPO/bench/gpu/shim

log() { echo "[$(date -u +%H:%M:%S) +$((SECONDS))s] $*" | tee -a "$RES/steps.log"; }
stamp() { date +%s.%N; }
get() {  # get URL [FILE]: HTTP GET with Python (no curl assumed); fails unless 200
  python3 -c 'import sys, urllib.request as u
body = u.urlopen(sys.argv[1], timeout=5).read()
sys.stdout.buffer.write(body)' "$1" >"${2:-/dev/null}" 2>/dev/null
}

step_unpack() {
  local t0; t0=$(stamp)
  (cd "$VG" && cp "$REPO/.gpu/p2/site.tar.xz.sha256" . &&
    cat site.tar.xz.part1 "$REPO/.gpu/p2/site.tar.xz.part2" >site.tar.xz &&
    sha256sum -c site.tar.xz.sha256) || { log "unpack: pieces do not join"; return 1; }
  rm -rf "$SITE" && mkdir -p "$SITE"
  xz -dc -T0 "$VG/site.tar.xz" | tar -x -C "$SITE" || return 1
  rm -f "$VG/site.tar.xz" "$VG/site.tar.xz.part1"
  log "unpack: $(du -sh "$SITE" | cut -f1) in $(python3 -c "print(round($(stamp)-$t0,1))") s"
}

step_model() {
  local t0; t0=$(stamp)
  local fixture
  read -ra fixture <<<"${MODEL_FIXTURE:-tiny-voxtral --shape voxtral-mini-3b}"
  rm -rf "$VG/model"
  python3 -m serve.fixtures "${fixture[0]}" "$VG/model" "${fixture[@]:1}" --device cuda \
    --dtype bfloat16 >>"$RES/model.log" 2>&1 || { log "model: failed"; tail -20 "$RES/model.log"; return 1; }
  log "model: $(du -sh "$VG/model" | cut -f1) in $(python3 -c "print(round($(stamp)-$t0,1))") s"
}

port_free() {  # port_free NAME PORT: a server still answering there would be measured instead
  if get "http://127.0.0.1:$2/health"; then
    log "$1: port $2 still answers (a server from an earlier call?); stop it first"
    return 1
  fi
}

step_engine() {
  port_free engine "$ENGINE_PORT" || return 1
  # The profile's exact argv, with the generated folder as model and vLLM run as a module.
  python3 - "$PROFILE" "$VG/model" "$ENGINE_PORT" >"$VG/engine.argv" <<'PY' || return 1
import json, os, sys
from serve.profiles import load_profile
profile = load_profile(sys.argv[1])
argv = profile.engine_command(int(sys.argv[3]))
argv[2] = sys.argv[2]  # model
argv = ["python3", "-m", "vllm.entrypoints.cli.main", *argv[1:]]
argv[argv.index("--host") + 1] = "127.0.0.1"
argv += os.environ.get("ENGINE_EXTRA", "").split()
env = {k: v for k, v in profile.engine_env().items() if k != "PYTHONPATH"}
if profile.engine_plugins:  # their entry point (dist-info) and serve/ must reach the engine
    env["PYTHONPATH"] = os.pathsep.join([*profile.plugin_pythonpath(), os.environ["PYTHONPATH"]])
print(json.dumps({"argv": argv, "env": env}))
PY
  log "engine argv: $(python3 -c 'import json,shlex,sys; print(shlex.join(json.load(open(sys.argv[1]))["argv"]))' "$VG/engine.argv")"
  stamp >"$VG/engine.t0"
  rm -f "$VG/engine.ready"
  python3 - "$VG/engine.argv" "$RES/engine.log" <<'PY' >"$VG/engine.pid"
import json, os, subprocess, sys
spec = json.load(open(sys.argv[1]))
env = os.environ | spec["env"]
cpus = os.environ.get("ENGINE_CPUS", "0-7")
log = open(sys.argv[2], "ab")
proc = subprocess.Popen(["taskset", "-c", cpus, *spec["argv"]], env=env, stdout=log,
                        stderr=subprocess.STDOUT, start_new_session=True)
print(proc.pid)
PY
  log "engine: started pid $(cat "$VG/engine.pid")"
}

step_gateway() {
  port_free gateway "$GATEWAY_PORT" || return 1
  (VOXTRAL_UPSTREAM_URLS="[\"http://127.0.0.1:$ENGINE_PORT\"]" \
    VOXTRAL_TOKENS_PER_AUDIO_SECOND=$TOKENS_PER_AUDIO_S VOXTRAL_LOG_LEVEL=WARNING \
    setsid taskset -c "$GATEWAY_CPUS" python3 -m voxtral_gateway.cli serve \
    --host 127.0.0.1 --port "$GATEWAY_PORT" >>"$RES/gateway.log" 2>&1 &
    echo $! >"$VG/gateway.pid")
  log "gateway: started pid $(cat "$VG/gateway.pid")"
}

wait_http() {  # wait_http URL SECONDS PIDFILE
  local deadline=$((SECONDS + $2))
  while ((SECONDS < deadline)); do
    get "$1" && return 0
    if [[ -n ${3:-} ]] && ! kill -0 "$(cat "$3")" 2>/dev/null; then return 2; fi
    sleep 0.5
  done
  return 1
}

step_wait() {
  if wait_http "http://127.0.0.1:$ENGINE_PORT/health" 480 "$VG/engine.pid"; then
    local ready; ready=$(python3 -c "print(round($(stamp)-$(cat "$VG/engine.t0"),1))")
    # Only the first wait after a start measures the cold start (later ones follow a
    # gateway restart).
    if [[ ! -f $VG/engine.ready ]]; then
      echo "$ready" >"$RES/engine_ready_s.txt"; touch "$VG/engine.ready"
      log "engine: ready after $ready s"
    fi
  else
    log "engine: not ready (exit or timeout)"; tail -40 "$RES/engine.log"; return 1
  fi
  if [[ -f $VG/gateway.pid ]]; then
    wait_http "http://127.0.0.1:$GATEWAY_PORT/health" 120 "$VG/gateway.pid" &&
      log "gateway: ready" || { log "gateway: not ready"; tail -30 "$RES/gateway.log"; }
  fi
  nvidia-smi --query-gpu=memory.used,memory.total --format=csv >"$RES/nvidia-smi-ready.csv" 2>&1 || true
}

step_clips() {
  python3 bench/gpu/clips.py build .gpu/p2/seed "$VG/corpus" >/dev/null && log "clips: built"
}

run_bench() {  # run_bench compare|run NAME KINDS CONCURRENCY REPEAT
  local mode=$1 name=$2 kinds=$3 conc=$4 repeat=${5:-1} args
  if [[ $mode == gateway ]]; then
    args=(run --url "http://127.0.0.1:$GATEWAY_PORT")
  elif [[ $mode == compare ]]; then
    args=(compare --gateway "http://127.0.0.1:$GATEWAY_PORT" --direct "http://127.0.0.1:$ENGINE_PORT"
      --direct-tokens-per-audio-s "$TOKENS_PER_AUDIO_S" --rounds 1)
  else
    args=(run --url "http://127.0.0.1:$ENGINE_PORT" --tokens-per-audio-s "$TOKENS_PER_AUDIO_S")
  fi
  mkdir -p "$RES/$name"
  get "http://127.0.0.1:$ENGINE_PORT/metrics" "$RES/$name/engine-metrics-before.txt"
  get "http://127.0.0.1:$GATEWAY_PORT/metrics" "$RES/$name/gateway-metrics-before.txt"
  local t0 first; t0=$(stamp)
  first=$(wc -l <"$RES/engine.log")
  taskset -c "$CLIENT_CPUS" python3 -m bench "${args[@]}" --corpus "$VG/corpus" --kinds "$kinds" \
    --concurrency "$conc" --repeat "$repeat" ${BENCH_EXTRA:-} --warmup 2 --timeout 300 --no-progress \
    --out "$RES/$name" --note "$GPU_NAME run, profile $PROFILE, engine cores $ENGINE_CPUS, gateway $GATEWAY_CPUS, client $CLIENT_CPUS" \
    >"$RES/$name.log" 2>&1
  local rc=$? wall
  wall=$(python3 -c "print(round($(stamp)-$t0,1))")
  # Engine step times (needs --enable-logging-iteration-details in ENGINE_EXTRA).
  python3 bench/gpu/iterations.py "$RES/engine.log" "$first" "$(wc -l <"$RES/engine.log")" \
    "$wall" >"$RES/$name/engine-steps.txt" 2>&1
  get "http://127.0.0.1:$ENGINE_PORT/metrics" "$RES/$name/engine-metrics-after.txt"
  get "http://127.0.0.1:$GATEWAY_PORT/metrics" "$RES/$name/gateway-metrics-after.txt"
  python3 bench/gpu/engine_metrics.py "$RES/$name/engine-metrics-after.txt" \
    "$RES/$name/engine-metrics-before.txt" >"$RES/$name/engine-phases.txt" 2>&1
  python3 bench/gpu/engine_metrics.py "$RES/$name/gateway-metrics-after.txt" \
    "$RES/$name/gateway-metrics-before.txt" >>"$RES/$name/engine-phases.txt" 2>&1
  log "bench $name ($mode $kinds c=$conc x$repeat ${BENCH_EXTRA:-}): rc=$rc in $wall s"
  grep -A12 '^| target' "$RES/$name/results.md" | grep '^|'
  cat "$RES/$name/engine-phases.txt" "$RES/$name/engine-steps.txt"
}

run_overhead() {  # run_overhead NAME PAIRS
  local t0; t0=$(stamp)
  taskset -c "$CLIENT_CPUS" python3 -m bench.overhead --gateway "http://127.0.0.1:$GATEWAY_PORT" \
    --direct "http://127.0.0.1:$ENGINE_PORT" --clip "$REPO/.gpu/p2/overhead-clip.wav" \
    --tokens-per-audio-s "$TOKENS_PER_AUDIO_S" --pairs "$2" --quiet --out "$RES/$1" \
    --note "$GPU_NAME run, profile $PROFILE, engine cores $ENGINE_CPUS, gateway $GATEWAY_CPUS, client $CLIENT_CPUS" \
    >"$RES/$1.log" 2>&1
  log "overhead $1: rc=$? in $(python3 -c "print(round($(stamp)-$t0,1))") s"
  grep -E 'vLLM directly|through the gateway|Overhead|Server-Timing' "$RES/$1/results.md"
}

run_overload() {  # run_overload NAME CAPACITY SECONDS
  local t0; t0=$(stamp)
  # gateway.pid is python itself (setsid does not fork outside a process-group leader and
  # taskset execs); bench.overload sums its process tree, so a wrapper would be counted too.
  taskset -c "$CLIENT_CPUS" python3 -m bench.overload --gateway "http://127.0.0.1:$GATEWAY_PORT" \
    --gateway-pid "$(cat "$VG/gateway.pid")" --clip "$REPO/.gpu/p2/overhead-clip.wav" \
    --capacity "$2" --seconds "$3" --out "$RES/$1" \
    --note "$GPU_NAME run, profile $PROFILE, engine cores $ENGINE_CPUS, gateway $GATEWAY_CPUS, client $CLIENT_CPUS, VOXTRAL_MAX_IN_FLIGHT_REQUESTS=${VOXTRAL_MAX_IN_FLIGHT_REQUESTS:-unset}" \
    >"$RES/$1.log" 2>&1
  log "overload $1: rc=$? in $(python3 -c "print(round($(stamp)-$t0,1))") s"
  grep -E '^OVERLOAD|Traceback|Error' "$RES/$1.log"
}

post() {  # post URL: HTTP POST with an empty body; fails unless 200
  python3 -c 'import sys, urllib.request as u
u.urlopen(u.Request(sys.argv[1], data=b"", method="POST"), timeout=600).read()' "$1"
}

run_profile() {  # run_profile NAME KINDS CONCURRENCY REPEAT: a few saturated steps, profiled
  local name=$1
  rm -rf "$RES/prof"
  run_bench run "$name" "$2" "$3" "${4:-1}" &
  local bench_pid=$!
  sleep "${PROFILE_AFTER_S:-8}"
  post "http://127.0.0.1:$ENGINE_PORT/start_profile" || log "profile: start failed"
  sleep "${PROFILE_FOR_S:-1.5}"
  post "http://127.0.0.1:$ENGINE_PORT/stop_profile" || log "profile: stop failed"
  wait "$bench_pid"
  python3 bench/gpu/profile_trace.py "$RES/prof" --out "$RES/$name/profile.txt" \
    --trim "$RES/$name/trace-trimmed.json.gz" | head -80
  log "profile $name: trimmed trace $(du -h "$RES/$name/trace-trimmed.json.gz" | cut -f1)"
  cp "$RES"/prof/profiler_out_0.txt "$RES/$name/" 2>/dev/null
  rm -rf "$RES/prof"  # the raw trace is too large to bring back
}

profiler_scopes() {
  # vLLM records its `gpu_model_runner: <phase>` annotations (what profile_trace.py's step
  # anatomy attributes time to) only with this in the engine's environment; step_engine's
  # Popen inherits this shell's. Only for a profiling engine: other runs stay as they were.
  if [[ ${ENGINE_EXTRA:-} == *--profiler-config* ]]; then
    [[ -z ${SCOPES_FOR_PROFILER:-} ]] && log "env VLLM_CUSTOM_SCOPES_FOR_PROFILING=1 (profiler)"
    export VLLM_CUSTOM_SCOPES_FOR_PROFILING=1 SCOPES_FOR_PROFILER=1
  elif [[ -n ${SCOPES_FOR_PROFILER:-} ]]; then  # set above for an earlier engine: not for this
    unset VLLM_CUSTOM_SCOPES_FOR_PROFILING SCOPES_FOR_PROFILER
  fi
}

run_realtime() {  # run_realtime load|bridge NAME LEVELS: bench/realtime_{load,bridge}.py
  local kind=$1 name=$2 levels=$3 t0 args extra
  t0=$(stamp)
  local gateway_ws="ws://127.0.0.1:$GATEWAY_PORT/v1/realtime?intent=transcription"
  if [[ $kind == load ]]; then
    read -ra extra <<<"${REALTIME_EXTRA:-}"
    args=(bench.realtime_load --url "$gateway_ws")
  else
    read -ra extra <<<"${RTBRIDGE_EXTRA:-}"
    args=(bench.realtime_bridge --gateway "$gateway_ws"
      --direct "ws://127.0.0.1:$ENGINE_PORT/v1/realtime")
  fi
  args+=("${extra[@]}")
  taskset -c "$CLIENT_CPUS" python3 -m "${args[@]}" --levels "$levels" \
    --seed-dir "$REPO/.gpu/p2/seed" --out "$RES/$name" \
    --note "$GPU_NAME run, profile $PROFILE, engine cores $ENGINE_CPUS, gateway $GATEWAY_CPUS, client $CLIENT_CPUS, VOXTRAL_WORKERS=${VOXTRAL_WORKERS:-unset}" \
    >"$RES/$name.log" 2>&1
  log "realtime $kind $name ($levels): rc=$? in $(python3 -c "print(round($(stamp)-$t0,1))") s"
  grep '^|' "$RES/$name/results.md" 2>/dev/null || tail -20 "$RES/$name.log"
}

step_metrics() {
  get "http://127.0.0.1:$ENGINE_PORT/metrics" "$RES/engine-metrics.txt"
  get "http://127.0.0.1:$GATEWAY_PORT/metrics" "$RES/gateway-metrics.txt"
  nvidia-smi >"$RES/nvidia-smi.txt"
  nvidia-smi --query-gpu=name,memory.used,memory.total,driver_version --format=csv >>"$RES/nvidia-smi.txt"
  python3 bench/gpu/engine_metrics.py "$RES/engine-metrics.txt" | tee "$RES/engine-metrics-summary.txt"
}

step_stopengine() {
  [[ -f $VG/engine.pid ]] && kill -TERM -- "-$(cat "$VG/engine.pid")" 2>/dev/null
  for _ in $(seq 60); do get "http://127.0.0.1:$ENGINE_PORT/health" || break; sleep 0.5; done
  sleep 5  # let the GPU memory go
  log "engine: stopped; $(nvidia-smi --query-gpu=memory.used --format=csv,noheader) in use"
}

step_stopgateway() {
  [[ -f $VG/gateway.pid ]] && kill -TERM -- "-$(cat "$VG/gateway.pid")" 2>/dev/null
  for _ in $(seq 60); do
    get "http://127.0.0.1:$GATEWAY_PORT/health" || { rm -f "$VG/gateway.pid"; log "gateway: stopped"; return 0; }
    sleep 0.5
  done
  log "gateway: still answering after 30 s"; return 1
}

step_components() {  # plain-PyTorch encoder / prefill / decode timings (needs a free GPU)
  python3 bench/gpu/components.py --out "$RES/components.txt" 2>&1 | tail -20
}

step_stop() {
  for f in "$VG/gateway.pid" "$VG/engine.pid"; do
    [[ -f $f ]] && kill -TERM -- "-$(cat "$f")" 2>/dev/null
  done
  sleep 3
  log "stopped"
}

step_out() {
  cp "$VG/engine.argv" "$RES/" 2>/dev/null
  {
    echo "date: $(date -u)"; nproc; free -g | head -2
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    uname -r; python3 -VV
  } >"$RES/machine.txt" 2>&1
  tar -C "$VG" -czf "$OUT/results-$(date -u +%H%M%S).tar.gz" results
  cp "$RES/steps.log" "$OUT/" 2>/dev/null
}

profiler_scopes  # ENGINE_EXTRA from the caller's environment
for spec in "$@"; do
  IFS=: read -r step a b c d <<<"$spec"
  case $step in
    bench) run_bench compare "$a" "$b" "$c" "${d:-1}" ;;
    direct) run_bench run "$a" "$b" "$c" "${d:-1}" ;;
    gwrun) run_bench gateway "$a" "$b" "$c" "${d:-1}" ;;
    profile) run_profile "$a" "$b" "$c" "${d:-1}" ;;
    overhead) run_overhead "$a" "${b:-200}" ;;
    overload) run_overload "$a" "${b:-8}" "${c:-60}" ;;
    realtime) run_realtime load "$a" "${b:-1,8,32,64}" ;;
    rtbridge) run_realtime bridge "$a" "${b:-1,8,32,64}" ;;
    env) export "${spec#env:}"; log "env ${spec#env:}"; profiler_scopes ;;
    *) "step_$step" || { log "step $step failed"; step_out; exit 1; } ;;
  esac
done
