#!/usr/bin/env bash
# Pack vLLM 0.26.0 + what `vllm serve`, the gateway and bench/ need on the H100 test machine
# (Python 3.12, torch 2.11.0, no network, transfers of at most 64 MiB each) into two pieces:
#   .gpu/p1/site.tar.xz.part1   (carried by the first `run` call, copied to /tmp there)
#   .gpu/p2/site.tar.xz.part2   (carried by the second call, which joins, unpacks, runs)
#   .gpu/p2/seed/               (espeak-ng speech that bench/gpu/clips.py tiles into the corpus)
# Facts behind every choice: ../shared/notes/vllm-on-h100.md. Nothing here goes into git
# (.gpu/ is ignored). Usage: bash bench/gpu/pack.sh   (from the repo root; ~3 min on 2 cores)
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"

PY312=${PY312:-/root/.pyenv/versions/3.12.1/bin/python}
PIECE_BYTES=$((52 * 1024 * 1024))  # piece 1 <= 52 MiB: room for the tree (~7 MiB) in a 64 MiB call
GPU=.gpu
mkdir -p "$GPU"

# A Python 3.12 pip (>= 23, for --report) to resolve and unpack cp312 wheels.
if [[ ! -x $GPU/venv312/bin/pip ]]; then
  "$PY312" -m venv "$GPU/venv312"
  "$GPU/venv312/bin/pip" install -q -U pip
fi
PIP="$GPU/venv312/bin/pip"
PLATFORMS=()
for n in 5 12 17 24 27 28 31 34 35; do PLATFORMS+=(--platform "manylinux_2_${n}_x86_64"); done
PLATFORMS+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform linux_x86_64)
download() {  # download DIR SPEC... : cp312 manylinux wheels, no dependencies
  local dir=$1
  shift
  "$PIP" download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${PLATFORMS[@]}" -d "$dir" "$@"
}

# 1. Which packages the image lacks (committed result: bench/gpu/requirements-device.txt).
if [[ ! -s bench/gpu/requirements-device.txt ]]; then
  "$GPU/venv312/bin/python" bench/gpu/resolve_deps.py bench/gpu/requirements-device.txt
fi

# 2. Wheels.
download "$GPU/dl/wheels" -r bench/gpu/requirements-device.txt
download "$GPU/dl/extra" silero-vad==6.2.3

# 3. Unpack every wheel into one folder, as `pip install --no-deps --target` does.
SITE=$GPU/site
rm -rf "$SITE"
"$PIP" install -q --no-deps --no-compile --no-index --target "$SITE" "$GPU"/dl/wheels/*.whl

# 4. Leave out what Voxtral on Hopper never loads.
rm -f "$SITE/vllm/vllm_flash_attn/_vllm_fa2_C.abi3.so"  # FA2; Hopper runs FA3
rm -f "$SITE/vllm/_moe_C_stable_libtorch.abi3.so"       # MoE kernels; Voxtral is dense
rm -f "$SITE/vllm/vllm-rs"                               # Rust front end, not used by `serve`
rm -rf "$SITE/vllm/third_party/fmha_sm100"               # Blackwell attention
find "$SITE/vllm/third_party/deep_gemm" -name '_C.cpython-3*.so' ! -name '*-312-*' -delete
rm -f "$SITE/mistral_common/data/tekken_240911.json"     # only mistral-common's v3 test tokenizer
rm -rf "$SITE/pycountry/locales"                         # translations of country names
rm -rf "$SITE/bin"                                       # console scripts with this machine's shebang
find "$SITE" -name __pycache__ -type d -prune -exec rm -rf {} +

# silero-vad: the gateway imports the package and reads data/silero_vad.{jit,onnx} only.
unzip -q -o "$GPU"/dl/extra/silero_vad-6.2.3-py3-none-any.whl -d "$SITE" \
  'silero_vad/*.py' 'silero_vad/data/silero_vad.jit' \
  'silero_vad/data/silero_vad.onnx' 'silero_vad-6.2.3.dist-info/*'

# 5. One xz stream, cut in two pieces, each in its own carried folder.
mkdir -p "$GPU/stage"
tar -C "$SITE" --sort=name --owner=0 --group=0 --numeric-owner -cf - . \
  | xz -6 -T2 >"$GPU/stage/site.tar.xz"
rm -rf "$GPU/p1" "$GPU/p2"
mkdir -p "$GPU/p1" "$GPU/p2"
head -c "$PIECE_BYTES" "$GPU/stage/site.tar.xz" >"$GPU/p1/site.tar.xz.part1"
tail -c +$((PIECE_BYTES + 1)) "$GPU/stage/site.tar.xz" >"$GPU/p2/site.tar.xz.part2"
(cd "$GPU/stage" && sha256sum site.tar.xz) >"$GPU/p2/site.tar.xz.sha256"

# 6. Check: the pieces join to the archive, it decompresses, and the key files are in it.
cat "$GPU/p1/site.tar.xz.part1" "$GPU/p2/site.tar.xz.part2" | sha256sum \
  | grep -q "$(cut -d' ' -f1 "$GPU/p2/site.tar.xz.sha256")"
cat "$GPU/p1/site.tar.xz.part1" "$GPU/p2/site.tar.xz.part2" | xz -dc | tar -tf - >"$GPU/stage/files.txt"
for must in ./vllm/vllm_flash_attn/_vllm_fa3_C.abi3.so ./vllm/_C_stable_libtorch.abi3.so \
  ./vllm/entrypoints/openai/api_server.py ./mistral_common/data/tekken_240718.json \
  ./silero_vad/data/silero_vad.jit ./fastapi/__init__.py ./uvicorn/__init__.py; do
  grep -qxF "$must" "$GPU/stage/files.txt" || { echo "missing $must" >&2; exit 1; }
done
# 7. Speech the device tiles into 5 s / 30 s / 10 min clips (espeak-ng exists only here).
[[ -s $GPU/p2/seed/seed.json ]] || .venv/bin/python bench/gpu/clips.py seed "$GPU/p2/seed"
ls -l "$GPU/p1" "$GPU/p2"
echo "files: $(wc -l <"$GPU/stage/files.txt"), unpacked: $(du -sh "$SITE" | cut -f1)"
# 8. Each call also carries the working tree: both calls must stay under 64 MiB.
bash bench/gpu/carry_size.sh "$GPU"
