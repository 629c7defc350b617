#!/usr/bin/env bash
# Device call 1 of 2 (carry .gpu/p1): keep piece 1 in /tmp, which survives ~30 s after the
# call, and print what the image has. Must return within seconds: call 2 follows at once.
set -euo pipefail
mkdir -p /tmp/vg
cp .gpu/p1/site.tar.xz.part1 /tmp/vg/
ls -l /tmp/vg
nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv
python3 - <<'PY'
import importlib.metadata as md, platform, os
names = ["torch", "torchaudio", "torchvision", "triton", "transformers", "tokenizers",
         "huggingface-hub", "typing-extensions", "numpy", "protobuf", "anyio", "httpx",
         "onnxruntime", "safetensors", "numba", "uvloop", "prometheus-client", "pyyaml"]
print("python", platform.python_version(), "cpus", os.cpu_count())
for n in names:
    try:
        print(n, md.version(n))
    except md.PackageNotFoundError:
        print(n, "MISSING")
PY
