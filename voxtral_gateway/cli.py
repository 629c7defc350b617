"""`voxtral-gateway serve` runs the gateway; `voxtral-gateway transcribe` is a client for it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import httpx
import uvicorn
from tqdm import tqdm

from voxtral_gateway.settings import Settings

logger = logging.getLogger(__name__)


class DrainingServer(uvicorn.Server):
    """On the first SIGTERM/SIGINT: answer new requests 503, let in-flight ones finish, exit.

    Plain uvicorn closes its socket at once, so new clients see connection errors instead of
    a 503 with Retry-After that a load balancer or SDK retry understands.
    """

    def __init__(self, config: uvicorn.Config, *, drain_timeout_s: float) -> None:
        super().__init__(config)
        self.drain_timeout_s = drain_timeout_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain_started = False

    async def serve(self, sockets: list | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._drain_started or self._loop is None or not self.started:
            super().handle_exit(sig, frame)  # a second signal forces the exit
            return
        self._drain_started = True
        self._loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._drain()))

    async def _drain(self) -> None:
        admission = self.config.app.state.runtime.admission
        logger.info(
            "draining: up to %.0f s for %d requests",
            self.drain_timeout_s,
            admission.in_flight_requests,
        )
        finished = await admission.drain(self.drain_timeout_s)
        logger.info("drain %s; exiting", "complete" if finished else "timed out")
        self.should_exit = True


class AdminServer(uvicorn.Server):
    """The admin port's server: leaves signals to the public server, which stops it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _serve_with_admin(server: DrainingServer, admin: AdminServer) -> None:
    admin_task = asyncio.create_task(admin.serve())
    try:
        await server.serve()
    finally:
        admin.should_exit = True
        await admin_task


def _serve(args: argparse.Namespace) -> int:
    from voxtral_gateway.app import create_admin_app, create_app

    settings = Settings()
    if args.host:
        settings.host = args.host
    if args.port:
        settings.port = args.port
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=5,
    )
    server = DrainingServer(config, drain_timeout_s=settings.drain_timeout_s)
    if settings.admin_port is None:
        server.run()
        return 0
    admin = AdminServer(
        uvicorn.Config(
            create_admin_app(app),
            host=settings.host,
            port=settings.admin_port,
            log_level=settings.log_level.lower(),
            lifespan="off",
        )
    )
    asyncio.run(_serve_with_admin(server, admin))
    return 0


def _is_remote(source: str) -> bool:
    return source.startswith(("https://", "http://"))


def _transcribe(args: argparse.Namespace) -> int:
    url = args.server.rstrip("/") + "/v1/audio/transcriptions"
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    fields: dict[str, str] = {"model": args.model, "response_format": args.format}
    if args.language:
        fields["language"] = args.language
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
    if args.format in ("json", "text") and not args.no_progress:
        text = _stream_with_progress(url, fields, files, headers, timeout)
        output = json.dumps({"text": text}) if args.format == "json" else text + "\n"
    else:
        response = httpx.post(url, data=fields, files=files, headers=headers, timeout=timeout)
        if response.status_code != 200:
            print(f"error: HTTP {response.status_code}: {response.text}", file=sys.stderr)
            return 1
        output = response.text
    if args.output:
        Path(args.output).write_text(output, encoding="utf-8")
    else:
        sys.stdout.write(output)
    return 0


def _stream_with_progress(url, fields, files, headers, timeout) -> str:  # noqa: ANN001
    fields = {**fields, "stream": "true"}
    done_text = ""
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
                bar.set_postfix(audio_s=segment.get("end"))
                bar.refresh()
            elif event["type"] == "transcript.text.done":
                done_text = event["text"]
            elif event["type"] == "error":
                raise SystemExit(f"error: {event['error']['message']}")
    return done_text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voxtral-gateway")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gateway (settings from VOXTRAL_* env vars)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(handler=_serve)
    client = commands.add_parser("transcribe", help="transcribe a file or URL through a gateway")
    client.add_argument("source", help="audio file path or https URL")
    client.add_argument("--server", default="http://127.0.0.1:8001")
    client.add_argument(
        "--format", default="text", choices=["json", "text", "srt", "vtt", "verbose_json"]
    )
    client.add_argument("--model", default="voxtral")
    client.add_argument("--language")
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
