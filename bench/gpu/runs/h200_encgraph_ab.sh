#!/usr/bin/env bash
# Issue 21, one device call (after bench/gpu/remote_receive.sh with .gpu/p1 carried; this one
# carries .gpu/p2): vLLM's own eager encoder vs serve/engine_plugins/encoder_cuda_graphs on ONE
# engine ($PROFILE, default voxtral-mini-3b-h200, which loads the plugin), switched by the
# plugin's pause file, so both sides share the engine, its compile and its GPU state, and the
# run needs one cold start.
# Order: eager bench + probes; graphs bench twice (the first includes the captures, one per B);
# probes three times (a B seen first runs eager, then is captured, then replays); eager bench
# again (drift check). Probes: one request at a time at temperature 0; texts must be identical.
# ~280 s: unpack+model ~20, cold engine ~140, each bench ~20, each probe set ~10.
# Results: /tmp/vg/results, packed into $OUT after the first eager part and at the end (take
# the newest results-*.tar.gz). Run of 2026-12-05 (on an H100):
# bench/results/h100/run8-encoder-graphs/.
set -u
BASE="--no-enable-prefix-caching --mm-processor-cache-gb 0 --enable-logging-iteration-details"
RES=/tmp/vg/results
R=${REPEAT:-128}  # each bench: the 4 distinct 30 s clips R times at c=256 (128: ~17 s on an H200)
PAUSE=/tmp/vg/encoder-graphs.paused
export VOXTRAL_ENGINE_ENCODER_GRAPHS_PAUSE_FILE=$PAUSE
CHECK=(env PYTHONPATH=/tmp/vg/site:$PWD python3 bench/gpu/encoder_graph_check.py)
probe() { "${CHECK[@]}" save --url http://127.0.0.1:8000 --corpus /tmp/vg/corpus --out "$RES/texts-$1.json"; }
run() { PROFILE=${PROFILE:-voxtral-mini-3b-h200} bash bench/gpu/remote_run.sh "$@"; }

mkdir -p /tmp/vg && touch "$PAUSE"
run "env:ENGINE_EXTRA=$BASE" unpack model clips engine wait direct:eager-c30hi:clip30:256:$R || exit 1
probe eager
run out
rm -f "$PAUSE"
run direct:graph-c30hi:clip30:256:$R direct:graph2-c30hi:clip30:256:$R
probe graphs-1 && probe graphs-2 && probe graphs-3
touch "$PAUSE"
run direct:eager2-c30hi:clip30:256:$R
{
  for pass in 1 2 3; do
    echo "encoder_cuda_graphs pass $pass against vLLM's own encoder (same engine, paused):"
    "${CHECK[@]}" compare "$RES/texts-eager.json" "$RES/texts-graphs-$pass.json"
  done
  echo "capture log summary (with pass 3):"
  "${CHECK[@]}" compare "$RES/texts-eager.json" "$RES/texts-graphs-3.json" --engine-log "$RES/engine.log"
} 2>&1 | tee "$RES/encoder-graph-check.txt"
run metrics out
