#!/usr/bin/env bash
# One idempotent set-up step, from a clean clone or an existing checkout:
#   .venv         the gateway + dev tools   (pip install -e '.[dev]')
#   .venv-engine  the vLLM CPU engine        (serve/engine-requirements.txt)
#   espeak-ng, sox                          (apt, only if missing)
#   .cache/models the generated CPU test models (tiny Voxtral, tiny Voxtral Realtime, Whisper
#   tiny.en, Whisper base)
# Each venv keeps a stamp: the sha256 of what it was installed from. A matching stamp skips
# pip entirely; otherwise pip runs (a no-op in seconds when the venv is already complete,
# ~80 s and ~3.5 GB for a fresh engine venv; wheels come from pip's cache on a re-run).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
log() { printf '[setup] %s\n' "$*" >&2; }

stamp_of() {  # stamp_of FILE... -> one hash over the files' bytes and the interpreter version
  { cat "$@"; "$PYTHON" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1
}

ensure_venv() {  # ensure_venv DIR STAMP_FILES... -- PIP_ARGS...
  local dir=$1; shift
  local files=()
  while [[ $1 != -- ]]; do files+=("$1"); shift; done
  shift
  local want; want=$(stamp_of "${files[@]}")
  local stamp="$dir/.setup-stamp"
  if [[ -x $dir/bin/python && -f $stamp && $(cat "$stamp") == "$want" ]]; then
    log "$dir up to date"
    return
  fi
  if [[ ! -x $dir/bin/python ]]; then
    log "creating $dir"
    "$PYTHON" -m venv "$dir"
  fi
  log "installing into $dir: $*"
  local started=$SECONDS
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
  echo "$want" > "$stamp"
  log "$dir ready in $((SECONDS - started)) s"
}

ensure_apt() {  # ensure_apt COMMAND PACKAGE...
  local missing=()
  while (($#)); do
    command -v "$1" >/dev/null || missing+=("$2")
    shift 2
  done
  ((${#missing[@]})) || return 0
  log "apt-get install ${missing[*]}"
  local sudo=()
  [[ $(id -u) == 0 ]] || sudo=(sudo)
  # Only refresh the package lists when installing from the current ones fails.
  if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"; then
    "${sudo[@]}" apt-get update -q
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
  fi
}

# espeak-ng/sox make test speech; chromium runs the live page test; ip builds the SSRF test netns.
ensure_apt espeak-ng espeak-ng sox sox chromium chromium ip iproute2
# The two venvs install at the same time: pip keeps about one core busy, and from a clean clone
# each takes ~1.5 min. The engine venv installs in the background; its failure fails the wait.
ensure_venv .venv-engine serve/engine-requirements.txt -- -r serve/engine-requirements.txt &
engine_venv=$!
# The constraints file pins the CPU torch build; it is part of the stamp, so editing it re-runs pip.
ensure_venv .venv pyproject.toml serve/constraints-cpu.txt -- -c serve/constraints-cpu.txt -e '.[dev]'
# Build the CPU test models now rather than inside the first test (each takes seconds).
.venv/bin/python -m serve model cpu-tiny-voxtral >/dev/null
.venv/bin/python -m serve model cpu-tiny-voxtral-realtime >/dev/null
.venv/bin/python -m serve model cpu-whisper-tiny-en >/dev/null
.venv/bin/python -m serve model cpu-whisper-base >/dev/null
wait "$engine_venv"
log "done"
