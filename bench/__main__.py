"""Load generator and side-by-side comparison for OpenAI-compatible transcription servers.

    python -m bench run --url URL [--url-direct URL] --mode closed --concurrency 1,8,32
    python -m bench run --url URL --mode open --rate 0.5,1,2 --duration 60
    python -m bench compare --gateway URL --direct URL --concurrency 1,4 --name NAME

Build the corpus first: ``python -m bench.corpus``. Results (results.json, requests.jsonl,
PNG plots, results.md with this command and the machine) go to ``--out``, or to
``bench/results/NAME`` with ``--name``, else to ``.cache/bench/``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from bench.client import Job, Target, TokenBudget, api_base, discover_model
from bench.corpus import DEFAULT_OUT_DIR, load_manifest
from bench.report import describe_machine, write_result
from bench.runner import Plan, execute, utc_now

DEFAULT_KINDS = "clean,pauses,noisy"
RESULTS_DIR = Path(__file__).parent / "results"


def _floats(value: str) -> list[float]:
    return [float(part) for part in value.split(",") if part.strip()]


def _key_value(value: str) -> tuple[str, str]:
    key, sep, val = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {value!r}")
    return key, val


def _add_common(parser: argparse.ArgumentParser) -> None:
    corpus = parser.add_argument_group("corpus")
    corpus.add_argument("--corpus", type=Path, default=DEFAULT_OUT_DIR, help="built corpus dir")
    corpus.add_argument("--kinds", default=DEFAULT_KINDS, help="comma list; 'long' for long-form")
    corpus.add_argument("--items", default="", help="comma list of item ids (overrides --kinds)")
    corpus.add_argument("--limit", type=int, default=0, help="first N selected items")
    corpus.add_argument("--repeat", type=int, default=1, help="send the selection N times a block")
    load = parser.add_argument_group("load")
    load.add_argument("--mode", choices=("closed", "open"), default="closed")
    load.add_argument("--concurrency", type=_floats, default=[1.0], help="closed: e.g. 1,8,32")
    load.add_argument("--rate", type=_floats, default=[1.0], help="open: requests/s, e.g. 0.5,1")
    load.add_argument("--duration", type=float, default=60.0, help="open: seconds per level")
    load.add_argument("--warmup", type=int, default=1, help="unrecorded requests per target")
    load.add_argument("--seed", type=int, default=0)
    load.add_argument("--timeout", type=float, default=600.0, help="per request, seconds")
    req = parser.add_argument_group("request")
    req.add_argument("--model", default=None, help="default: first of /v1/models")
    req.add_argument("--stream", action="store_true", help="stream=true; records TTFT")
    req.add_argument("--max-tokens", type=int, default=None, help="sends max_completion_tokens")
    req.add_argument(
        "--tokens-per-audio-s",
        type=float,
        default=None,
        help="max_completion_tokens = max(--min-tokens, ceil(audio_s * X)) per request",
    )
    req.add_argument("--min-tokens", type=int, default=16)
    req.add_argument("--param", type=_key_value, action="append", default=[], help="KEY=VALUE")
    req.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY"), help="$OPENAI_API_KEY")
    out = parser.add_argument_group("output")
    out.add_argument("--name", default=None, help="writes bench/results/NAME/")
    out.add_argument("--out", type=Path, default=None, help="output dir (overrides --name)")
    out.add_argument("--note", action="append", default=[], help="line for results.md")
    out.add_argument("--no-progress", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="measure one server (or two, one after the other)")
    run.add_argument("--url", required=True)
    run.add_argument("--url-direct", default=None, help="a second server, e.g. vLLM itself")
    run.add_argument("--rounds", type=int, default=1)
    _add_common(run)
    compare = commands.add_parser("compare", help="gateway vs direct, interleaved, with ratios")
    compare.add_argument("--gateway", required=True)
    compare.add_argument("--direct", required=True)
    compare.add_argument("--gateway-model", default=None)
    compare.add_argument("--direct-model", default=None)
    compare.add_argument("--gateway-param", type=_key_value, action="append", default=[])
    compare.add_argument("--direct-param", type=_key_value, action="append", default=[])
    compare.add_argument(
        "--direct-tokens-per-audio-s",
        type=float,
        default=None,
        help="direct only: token budget per audio second (the gateway budgets its own)",
    )
    compare.add_argument("--rounds", type=int, default=2, help="A/B then B/A blocks; even is fair")
    _add_common(compare)
    return parser


def select_jobs(args: argparse.Namespace) -> list[Job]:
    items = load_manifest(args.corpus)
    if args.items:
        wanted = [part for part in args.items.split(",") if part]
        by_id = {item.id: item for item in items}
        missing = [item_id for item_id in wanted if item_id not in by_id]
        if missing:
            raise SystemExit(f"not in {args.corpus}: {', '.join(missing)}")
        items = [by_id[item_id] for item_id in wanted]
    else:
        kinds = set(args.kinds.split(","))
        items = [item for item in items if item.kind in kinds]
    if args.limit:
        items = items[: args.limit]
    if not items:
        raise SystemExit("no corpus items selected")
    jobs = [
        Job(item.id, item.kind, args.corpus / item.path, item.duration_s, item.text)
        for item in items
    ]
    return jobs * max(1, args.repeat)


async def _target(
    name: str,
    url: str,
    model: str | None,
    form: Mapping[str, str],
    args: argparse.Namespace,
    tokens_per_audio_s: float | None = None,
) -> Target:
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    if model is None:
        async with httpx.AsyncClient(timeout=30) as client:
            model = await discover_model(client, url, headers)
    rate = tokens_per_audio_s or args.tokens_per_audio_s
    budget = TokenBudget(rate, args.min_tokens) if rate else None
    return Target(name, api_base(url), model, dict(form), headers, args.stream, budget)


def _form(args: argparse.Namespace, extra: Sequence[tuple[str, str]] = ()) -> dict[str, str]:
    form = dict(args.param)
    if args.max_tokens is not None:
        form["max_completion_tokens"] = str(args.max_tokens)
    form.update(dict(extra))
    return form


async def _targets(args: argparse.Namespace) -> list[Target]:
    if args.command == "compare":
        return [
            await _target(
                "gateway",
                args.gateway,
                args.gateway_model or args.model,
                _form(args, args.gateway_param),
                args,
            ),
            await _target(
                "direct",
                args.direct,
                args.direct_model or args.model,
                _form(args, args.direct_param),
                args,
                args.direct_tokens_per_audio_s,
            ),
        ]
    targets = [await _target("target", args.url, args.model, _form(args), args)]
    if args.url_direct:
        targets.append(await _target("direct", args.url_direct, args.model, _form(args), args))
    return targets


def _out_dir(args: argparse.Namespace, created: str) -> tuple[str, Path]:
    name = args.name or f"{args.command}-{created.replace(':', '')}"
    if args.out is not None:
        return name, args.out
    return name, (RESULTS_DIR / name if args.name else Path(".cache/bench") / name)


def _redact(argv: Sequence[str]) -> list[str]:
    """The command as recorded: an API key given on the command line is not written out."""
    out = list(argv)
    for i, arg in enumerate(out):
        if arg == "--api-key" and i + 1 < len(out):
            out[i + 1] = "***"
        elif arg.startswith("--api-key="):
            out[i] = "--api-key=***"
    return out


async def main_async(argv: Sequence[str]) -> Path:
    args = build_parser().parse_args(argv)
    jobs = select_jobs(args)
    targets = await _targets(args)
    plan = Plan(
        mode=args.mode,
        levels=args.concurrency if args.mode == "closed" else args.rate,
        jobs=jobs,
        rounds=args.rounds,
        duration_s=args.duration,
        warmup_requests=args.warmup,
        seed=args.seed,
        timeout_s=args.timeout,
        show_progress=not args.no_progress,
    )
    created = utc_now()
    result, records = await execute(targets, plan)
    name, out_dir = _out_dir(args, created)
    kinds = sorted({job.kind for job in jobs})
    result = {
        "name": name,
        "created_utc": created,
        "command": "python -m bench " + shlex.join(_redact(argv)),
        "machine": describe_machine(),
        "corpus": {
            "dir": str(args.corpus),
            "files": len({job.item_id for job in jobs}),
            "audio_s": sum(job.audio_s for job in jobs),
            "kinds": kinds,
        },
        "notes": args.note,
        **result,
    }
    for path in write_result(result, records, out_dir):
        print(path)
    return out_dir


def main(argv: Sequence[str] | None = None) -> None:
    asyncio.run(main_async(sys.argv[1:] if argv is None else list(argv)))


if __name__ == "__main__":
    main()
