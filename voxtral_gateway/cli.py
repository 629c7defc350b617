"""`voxtral-gateway serve` runs the gateway; `voxtral-gateway transcribe` and `translate`
(English text) are clients for it."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import httpx
from tqdm import tqdm

from voxtral_gateway.server import serve
from voxtral_gateway.settings import Settings

logger = logging.getLogger(__name__)


def _serve(args: argparse.Namespace) -> int:
    settings = Settings()
    if args.host:
        settings.host = args.host
    if args.port:
        settings.port = args.port
    if args.workers:
        settings.workers = args.workers
    return serve(settings)


def _is_remote(source: str) -> bool:
    return source.startswith(("https://", "http://"))


def _transcribe(args: argparse.Namespace) -> int:
    # translate has no dialect or language option: OpenAI's translations only.
    is_mistral = getattr(args, "dialect", "openai") == "mistral"
    endpoint = "translations" if args.command == "translate" else "transcriptions"
    prefix = "/mistral" if is_mistral else ""
    url = args.server.rstrip("/") + prefix + f"/v1/audio/{endpoint}"
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    fields: dict[str, str] = {"model": args.model, "response_format": args.format}
    if is_mistral:
        if args.format not in ("json", "text"):
            print("error: --dialect mistral answers json or text", file=sys.stderr)
            return 2
        # Mistral's body (text, segments, usage) is its json; it has no response_format.
        fields = {"model": args.model, "timestamp_granularities": "segment"}
    if getattr(args, "language", None):
        fields["language"] = args.language
    if getattr(args, "speakers", False):
        fields["diarize" if is_mistral else "speakers"] = "true"
    words = getattr(args, "words", False)
    if words and is_mistral:
        fields["timestamp_granularities"] = "word"  # Mistral's segments: one chunk per word
    elif words:
        # Word timings travel in verbose_json; srt/vtt then get word-timed cues (or a 400).
        if args.format in ("json", "text"):
            fields["response_format"] = "verbose_json"
        fields["timestamp_granularities[]"] = "word"
    files = None
    if _is_remote(args.source):
        fields["file_url"] = args.source
    else:
        path = Path(args.source)
        if not path.is_file():
            print(f"error: no such file: {path}", file=sys.stderr)
            return 2
        files = {"file": (path.name, path.read_bytes())}
    timeout = httpx.Timeout(args.timeout, connect=10.0)
    # Streaming gives a live progress bar; the subtitle formats need the whole answer at once.
    if args.format in ("json", "text") and not args.no_progress and not is_mistral and not words:
        text, segments = _stream_with_progress(url, fields, files, headers, timeout)
        if args.format == "json":
            output = json.dumps({"text": text, **({"segments": segments} if segments else {})})
        elif segments:
            output = "".join(f"{s['speaker']}: {s['text']}\n" for s in segments)
        else:
            output = text + "\n"
    else:
        response = httpx.post(url, data=fields, files=files, headers=headers, timeout=timeout)
        if response.status_code != 200:
            print(f"error: HTTP {response.status_code}: {response.text}", file=sys.stderr)
            return 1
        output = response.text
        if is_mistral and args.format == "text":
            output = response.json()["text"] + "\n"
    if args.output:
        Path(args.output).write_text(output, encoding="utf-8")
    else:
        sys.stdout.write(output)
    return 0


def _stream_with_progress(url, fields, files, headers, timeout) -> tuple[str, list[dict]]:  # noqa: ANN001
    """The done text and, with speakers, each segment (printed to stderr as it completes)."""
    fields = {**fields, "stream": "true"}
    done_text = ""
    segments: list[dict] = []
    live = ""  # the last words received, shown live beside the bar (token deltas stream)
    with (
        httpx.stream(
            "POST", url, data=fields, files=files, headers=headers, timeout=timeout
        ) as response,
        tqdm(unit="seg", desc="segments", file=sys.stderr) as bar,
    ):
        if response.status_code != 200:
            response.read()
            raise SystemExit(f"error: HTTP {response.status_code}: {response.text}")
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[len("data: ") :])
            if event["type"] == "transcript.text.delta":
                segment = event.get("segment") or {}
                bar.total = segment.get("count")
                bar.n = segment.get("index", bar.n) + 1
                live = (live + event.get("delta", ""))[-40:]
                bar.set_postfix(audio_s=segment.get("end"), text=live)
                bar.refresh()
            elif event["type"] == "transcript.text.segment":
                segments.append({k: event[k] for k in ("speaker", "start", "end", "text")})
                bar.write(f"{event['speaker']}: {event['text']}", file=sys.stderr)
            elif event["type"] == "transcript.text.done":
                done_text = event["text"]
            elif event["type"] == "error":
                raise SystemExit(f"error: {event['error']['message']}")
    return done_text, segments


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voxtral-gateway")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gateway (settings from VOXTRAL_* env vars)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, help="processes sharing the port")
    serve.set_defaults(handler=_serve)
    for name, help_text in (
        ("transcribe", "transcribe a file or URL through a gateway"),
        ("translate", "translate a file or URL into English text through a gateway"),
    ):
        client = commands.add_parser(name, help=help_text)
        client.add_argument("source", help="audio file path or https URL")
        client.add_argument("--server", default="http://127.0.0.1:8001")
        client.add_argument(
            "--format",
            default="text",
            choices=["json", "text", "srt", "vtt", "verbose_json"]
            + (["diarized_json"] if name == "transcribe" else []),
        )
        client.add_argument("--model", default="voxtral")
        if name == "transcribe":
            client.add_argument(
                "--dialect",
                default="openai",
                choices=["openai", "mistral"],
                help="mistral: Mistral's request and response (json: text, segments, token usage)",
            )
            client.add_argument("--language")
            client.add_argument(
                "--speakers",
                action="store_true",
                help="label who spoke (server needs the [speakers] extra); shown as segments "
                "complete",
            )
            client.add_argument(
                "--words",
                action="store_true",
                help="word timestamps (verbose_json words; word-timed srt/vtt cues); needs the "
                "gateway's align extra",
            )
        client.add_argument("--api-key")
        client.add_argument("--output", "-o", help="write here instead of stdout")
        client.add_argument("--timeout", type=float, default=3600.0, help="seconds")
        client.add_argument("--no-progress", action="store_true")
        client.set_defaults(handler=_transcribe)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
