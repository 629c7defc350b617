"""One markdown table of every `python -m bench` result under a run folder, gateway next to direct.

python bench/gpu/summarize.py bench/results/h100/RUN [--prefix n-]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--prefix", default="", help="only bench folders starting with this")
    args = parser.parse_args()
    rows = []
    for path in sorted(args.run_dir.glob(f"{args.prefix}*/results.json")):
        result = json.loads(path.read_text())
        kinds = ",".join(sorted({k for lv in result["levels"] for k in lv["summary"]["by_kind"]}))
        by_key = {(lv["target"], lv["level"]): lv["summary"] for lv in result["levels"]}
        for level in sorted({lv["level"] for lv in result["levels"]}):
            cells = []
            for target in ("direct", "gateway", "target"):
                s = by_key.get((target, level))
                if s is None:
                    continue
                latency, ttft = s["latency_s"] or {}, s["ttft_s"] or {}
                cells.append(
                    f"{target}: {fmt(s['rtfx'], 4)} / {fmt(latency.get('p50'))} / "
                    f"{fmt(latency.get('p99'))} / {fmt(ttft.get('p50'))} / {s['errors']}"
                )
            rows.append((kinds, level, path.parent.name, " | ".join(cells)))
    print("| clips | concurrency | bench | RTFx / p50 s / p99 s / TTFT p50 s / errors |")
    print("|---|---|---|---|")
    for kinds, level, name, cells in sorted(rows):
        print(f"| {kinds} | {level:g} | {name} | {cells} |")


if __name__ == "__main__":
    main()
