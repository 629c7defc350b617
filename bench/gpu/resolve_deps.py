"""Resolve which cp312 manylinux wheels the H100 image lacks for `vllm serve` + the gateway.

pip's resolver cannot be told "these are installed elsewhere", so packages the device image
already has (torch, numba, ...) and heavy kernel packages Voxtral on Hopper never imports
(flashinfer, cutlass-dsl, ...) are offered to it as empty stub wheels of the pinned version.
The dry-run report then lists every package; we keep those not in the image's package list.

Usage: python bench/gpu/resolve_deps.py OUT_REQUIREMENTS_TXT  (run with a pip >= 23 for --report)
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

# What `vllm serve` (Voxtral) and the gateway + bench need on the device machine.
REQUIREMENTS = [
    "vllm==0.26.0",
    "mistral_common[audio]",
    # vLLM 0.26 pins apache-tvm-ffi 0.1.10; the newest xgrammar wants a newer tvm-ffi.
    "xgrammar==0.2.7",
    "apache-tvm-ffi==0.1.10",
    # Gateway (pyproject dependencies minus torch/av/silero-vad, see pack.sh).
    "fastapi",
    "uvicorn[standard]",
    "python-multipart",
    "pydantic-settings",
    "soundfile",
    "soxr",
    # bench/ (word error rate); silero-vad is packed stripped by pack.sh.
    "jiwer",
]

# Pinned by vLLM 0.26 and present in the image, or never imported for Voxtral on Hopper
# (flashinfer sampler off via VLLM_USE_FLASHINFER_SAMPLER=0; PyAV: 16 kHz WAV needs no decoder).
STUBS = {
    "torch": "2.11.0",
    "torchaudio": "2.11.0",
    "torchvision": "0.26.0",
    "numba": "0.65.0",
    "flashinfer-python": "0.6.14",
    "torchcodec": "0.14.0",
    "pynvvideocodec": "2.0.4",
    "tilelang": "0.1.9",
    "nvidia-cudnn-frontend": "1.19.1",
    "fastsafetensors": "0.3.2",
    "nvidia-cutlass-dsl": "4.6.0",
    "quack-kernels": "0.4.0",
    "tokenspeed-mla": "0.1.8",
    "humming-kernels": "0.1.10",
    "opencv-python-headless": "4.13.0",
}

PLATFORMS = [f"manylinux_2_{n}_x86_64" for n in (5, 12, 17, 24, 27, 28, 31, 34, 35)] + [
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
    "linux_x86_64",
]


def normalize(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def write_stub(directory: Path, name: str, version: str) -> None:
    """An empty wheel whose only content is metadata: enough for the resolver."""
    # "+stub" sorts above the real release, so pip picks the stub over PyPI's wheel.
    version = f"{version}+stub"
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    path = directory / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(
            f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        )
        wheel.writestr(
            f"{info}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: stub\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        wheel.writestr(f"{info}/RECORD", "")


def image_packages() -> set[str]:
    lines = (HERE / "image_packages.txt").read_text().splitlines()
    return {normalize(line) for line in lines if line and not line.startswith("#")}


def main() -> None:
    out = Path(sys.argv[1])
    with tempfile.TemporaryDirectory() as tmp:
        stubs = Path(tmp) / "stubs"
        stubs.mkdir()
        for name, version in STUBS.items():
            write_stub(stubs, name, version)
        report = Path(tmp) / "report.json"
        pins = [f"{name}=={version}" for name, version in STUBS.items()]
        command = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--report",
            str(report),
            "--only-binary=:all:",
            "--python-version",
            "3.12",
            "--implementation",
            "cp",
            "--target",
            str(Path(tmp) / "target"),
            "--find-links",
            str(stubs),
        ]
        for platform in PLATFORMS:
            command += ["--platform", platform]
        subprocess.run(command + REQUIREMENTS + pins, check=True)
        installs = json.loads(report.read_text())["install"]
    skip = image_packages() | {normalize(name) for name in STUBS}
    keep = sorted(
        f"{item['metadata']['name']}=={item['metadata']['version']}"
        for item in installs
        if normalize(item["metadata"]["name"]) not in skip
    )
    out.write_text("\n".join(keep) + "\n")
    # What the image is trusted to provide (for a local import test with these versions).
    provided = sorted(
        f"{item['metadata']['name']}=={item['metadata']['version']}"
        for item in installs
        if normalize(item["metadata"]["name"]) in image_packages()
    )
    out.with_suffix(".image.txt").write_text("\n".join(provided) + "\n")
    print(f"{len(keep)} packages to carry -> {out}")


if __name__ == "__main__":
    main()
