"""Import a script from runpod/ by path: it is a folder of scripts, not a package, because
`import runpod` must stay the RunPod SDK."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

RUNPOD_DIR = Path(__file__).resolve().parents[1] / "runpod"


def load_runpod_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"voxtral_runpod_{name}", RUNPOD_DIR / f"{name}.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
