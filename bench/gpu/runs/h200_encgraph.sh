#!/usr/bin/env bash
# Issue 21, one device call (after bench/gpu/remote_receive.sh with .gpu/p1 carried; this one
# carries .gpu/p2): voxtral-mini-3b-h200 vs voxtral-mini-3b-h200-encgraph (the same engine plus
# serve/engine_plugins/encoder_cuda_graphs), vLLM alone on 30 s clips at c=256, twice each (the
# first graph run includes the captures, one per batch size), then the same probes, one request
# at a time at temperature 0, against both engines: texts must be identical. ~400 s:
# unpack+model ~20, cold engine ~140, restart ~100, each bench ~20, each probe set ~10,
# the graph engine's profile ~40 (last, after the second `out`: optional).
# Results: /tmp/vg/results, packed into $OUT after the unpatched engine's part, after the
# checks, and after the profile (take the newest results-*.tar.gz).
set -u
BASE="--no-enable-prefix-caching --mm-processor-cache-gb 0 --enable-logging-iteration-details"
PROF='--profiler-config {"profiler":"torch","torch_profiler_dir":"/tmp/vg/results/prof","torch_profiler_with_stack":false,"ignore_frontend":true}'
RES=/tmp/vg/results
CHECK=(env PYTHONPATH=/tmp/vg/site:$PWD python3 bench/gpu/encoder_graph_check.py)
probe() { "${CHECK[@]}" save --url http://127.0.0.1:8000 --corpus /tmp/vg/corpus --out "$RES/texts-$1.json"; }

PROFILE=voxtral-mini-3b-h200 bash bench/gpu/remote_run.sh "env:ENGINE_EXTRA=$BASE $PROF" \
  unpack model clips engine wait direct:base-c30hi:clip30:256:128 || exit 1
probe base && probe base-again
PROFILE=voxtral-mini-3b-h200 bash bench/gpu/remote_run.sh out stopengine
PROFILE=voxtral-mini-3b-h200-encgraph bash bench/gpu/remote_run.sh "env:ENGINE_EXTRA=$BASE $PROF" \
  engine wait direct:graph-c30hi:clip30:256:128 direct:graph2-c30hi:clip30:256:128 || exit 1
# Three passes: a B seen for the first time runs eager, the second time captures (and returns
# the eager result), later replays; by pass 3 every B <= 48 of the probes replays a graph.
probe graphs-1 && probe graphs-2 && probe graphs-3
{
  echo "control (unpatched engine against itself):"
  "${CHECK[@]}" compare "$RES/texts-base.json" "$RES/texts-base-again.json"
  for pass in 1 2 3; do
    echo "encoder_cuda_graphs pass $pass against the unpatched engine:"
    "${CHECK[@]}" compare "$RES/texts-base.json" "$RES/texts-graphs-$pass.json"
  done
  echo "capture log summary (with pass 3):"
  "${CHECK[@]}" compare "$RES/texts-base.json" "$RES/texts-graphs-3.json" --engine-log "$RES/engine.log"
} 2>&1 | tee "$RES/encoder-graph-check.txt"
grep -E "encoder_cuda_graphs registered|encoder CUDA graph" "$RES/engine.log" | tail -60
PROFILE=voxtral-mini-3b-h200-encgraph bash bench/gpu/remote_run.sh metrics out \
  profile:p-graph-c30hi:clip30:256:96 out
