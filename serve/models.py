"""Model folders that profiles generate on demand (`generated_model`), cached in the repo.

`.cache/models/<name>` (git-ignored) is built once by `serve.fixtures` and reused while its
stamp matches `generator_stamp(name)`; a build goes to a temporary folder first and is
renamed into place, so a crash or a second process never sees a half-written model.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
from pathlib import Path

from serve.profiles import MODEL_CACHE_DIR, GeneratedModel, Profile

logger = logging.getLogger(__name__)

# Bump when an input the stamp does not hash changes a model (e.g. mistral-common's bundled
# vocab); an edit to a generator's own source rebuilds its model without a bump.
GENERATOR_VERSION = "1"
_STAMP = ".generated"
_FIXTURES = Path(__file__).parent / "fixtures"
_GENERATOR_SOURCES: dict[GeneratedModel, tuple[Path, ...]] = {
    "tiny-voxtral": (_FIXTURES / "voxtral.py", _FIXTURES / "tekken.py"),
    "tiny-voxtral-realtime": (
        _FIXTURES / "voxtral_realtime.py",
        _FIXTURES / "voxtral.py",
        _FIXTURES / "tekken.py",
    ),
    "whisper-tiny-en": (_FIXTURES / "whisper_ct2.py",),
    "whisper-base": (_FIXTURES / "whisper_ct2.py",),
}


def generator_stamp(name: GeneratedModel) -> str:
    """GENERATOR_VERSION plus a digest of the code that builds `name` (this file included).

    A hand-bumped version alone was easy to forget, and then dev machines kept serving a
    model that CI's clean clone no longer builds.
    """
    digest = hashlib.sha256()
    for source in (Path(__file__), *_GENERATOR_SOURCES[name]):
        digest.update(source.read_bytes())
    return f"{GENERATOR_VERSION}-{digest.hexdigest()[:16]}"


def _generate(name: GeneratedModel, out_dir: Path) -> None:
    # Imported here: torch and safetensors load only when a model is actually built.
    from serve.fixtures import (
        REALTIME_SHAPES,
        SHAPES,
        convert_whisper_ct2,
        generate_voxtral,
        generate_voxtral_realtime,
    )
    from voxtral_gateway.whisper_ct2 import ct2_model_dir

    if name == "tiny-voxtral":
        generate_voxtral(out_dir, shape=SHAPES["tiny"], seed=0)
    elif name == "tiny-voxtral-realtime":
        generate_voxtral_realtime(out_dir, shape=REALTIME_SHAPES["tiny"], seed=0)
    else:
        ct2_name = "base" if name == "whisper-base" else "tiny.en"
        convert_whisper_ct2(ct2_model_dir(ct2_name, out_dir.parent), out_dir)


def ensure_generated_model(name: GeneratedModel, cache_dir: Path = MODEL_CACHE_DIR) -> Path:
    """Return `cache_dir/name`, generating it first if missing or stale."""
    target = cache_dir / name
    stamp = target / _STAMP
    version = generator_stamp(name)
    if stamp.is_file() and stamp.read_text(encoding="utf-8").strip() == version:
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    logger.info("generating model %s into %s", name, target)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=cache_dir))
    try:
        _generate(name, staging)
        (staging / _STAMP).write_text(version + "\n", encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        try:
            staging.rename(target)
        except OSError:
            if not stamp.is_file():
                raise
            logger.info("another process generated %s first; using it", name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def prepare_model(profile: Profile) -> str:
    """Make the profile's model available locally if we build it; return `vllm serve`'s model."""
    if profile.generated_model is not None:
        ensure_generated_model(profile.generated_model)
    return profile.model_path()
