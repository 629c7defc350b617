"""PNG plots of a bench result: latency vs load, RTFx vs load, gateway/direct ratios."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers or in CI
import matplotlib.pyplot as plt  # noqa: E402


def _series(result: dict[str, Any], target: str, pick: Any) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for entry in result["levels"]:
        if entry["target"] != target:
            continue
        value = pick(entry["summary"])
        if value is not None:
            xs.append(entry["level"])
            ys.append(value)
    return xs, ys


def _pct(key: str, name: str) -> Any:
    return lambda summary: (summary.get(key) or {}).get(name)


def _axes_for_levels(ax: Any, result: dict[str, Any]) -> None:
    ax.set_xlabel(result["level_unit"])
    levels = sorted({entry["level"] for entry in result["levels"]})
    if len(levels) > 1 and levels[-1] / max(levels[0], 1e-9) >= 8:
        ax.set_xscale("log", base=2)
    ax.set_xticks(levels, [f"{level:g}" for level in levels])
    ax.grid(True, alpha=0.3)


def plot_latency(result: dict[str, Any], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for index, target in enumerate(result["targets"]):
        color = f"C{index}"  # one colour per target; line style tells the statistic
        for key, name, style in (
            ("latency_s", "p50", "-o"),
            ("latency_s", "p99", "--o"),
            ("ttft_s", "p50", ":s"),
        ):
            xs, ys = _series(result, target, _pct(key, name))
            if xs:
                label = f"{target} {'TTFT' if key == 'ttft_s' else 'latency'} {name}"
                ax.plot(xs, ys, style, color=color, label=label)
    _axes_for_levels(ax, result)
    ax.set_ylabel("seconds")
    ax.set_title("Latency vs load")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_rtfx(result: dict[str, Any], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for target in result["targets"]:
        xs, ys = _series(result, target, lambda s: s["rtfx"] if s["ok"] else None)
        if xs:
            ax.plot(xs, ys, "-o", label=target)
    _axes_for_levels(ax, result)
    ax.set_ylabel("RTFx (audio s / wall s)")
    ax.set_title("Throughput vs load")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_ratios(result: dict[str, Any], path: Path) -> Path:
    """Grouped bars of first-target / second-target ratios per level (1.0 = no difference)."""
    ratios = result.get("ratios") or []
    keys = (("rtfx", "RTFx"), ("latency_p50", "p50 latency"), ("latency_p99", "p99 latency"))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    width = 0.8 / len(keys)
    for k, (key, label) in enumerate(keys):
        xs = [i + k * width for i in range(len(ratios))]
        ys = [entry.get(key) or 0.0 for entry in ratios]
        ax.bar(xs, ys, width, label=label)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(
        [i + width * (len(keys) - 1) / 2 for i in range(len(ratios))],
        [f"{entry['level']:g}" for entry in ratios],
    )
    ax.set_xlabel(result["level_unit"])
    a, b = result["targets"][:2]
    ax.set_ylabel(f"{a} / {b}")
    ax.set_title(f"{a} vs {b} (same requests, interleaved)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_all(result: dict[str, Any], out_dir: Path) -> list[Path]:
    paths = [
        plot_latency(result, out_dir / "latency.png"),
        plot_rtfx(result, out_dir / "rtfx.png"),
    ]
    if result.get("ratios"):
        paths.append(plot_ratios(result, out_dir / "ratios.png"))
    return paths
