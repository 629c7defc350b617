"""RunPod load-balancing endpoint: the gateway itself is the worker's HTTP server.

RunPod sends client requests straight to `PORT` (so `/v1/audio/transcriptions`, streaming and
multipart uploads work as on any gateway) and polls `GET /ping` on `PORT_HEALTH`:
200 = ready for traffic, 204 = still starting (the engine is loading), anything else =
unhealthy, replace the worker. When the two ports differ a second, ping-only server runs.

    VOXTRAL_HOST=0.0.0.0 PORT=8001 PORT_HEALTH=8001 python runpod/lb.py

Gateway settings come from VOXTRAL_* variables as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from voxtral_gateway.app import create_app
from voxtral_gateway.runtime import Runtime
from voxtral_gateway.server import DrainingServer
from voxtral_gateway.settings import Settings

logger = logging.getLogger("voxtral_lb")


class PingState:
    """Readiness as RunPod's load balancer reads it, from the gateway's real engine probe."""

    def __init__(self) -> None:
        self.has_been_ready = False

    async def check(self, runtime: Runtime | None) -> Response:
        if runtime is None:
            return Response(status_code=204)  # gateway lifespan still starting
        # The gateway's own readiness cache: /ping and /ready share one probe.
        if await runtime.readiness.check():
            self.has_been_ready = True
            return JSONResponse({"status": "healthy"})
        if not self.has_been_ready:
            return Response(status_code=204)  # engine still loading: wait, don't replace
        # Worked before and stopped: let RunPod take this worker out.
        return JSONResponse({"status": "unhealthy"}, status_code=503)


def add_ping_route(app: FastAPI, state: PingState, runtime_source: FastAPI) -> None:
    """`GET /ping` on `app`, judged by the runtime that `runtime_source`'s lifespan opened."""

    async def ping(request: Request) -> Response:
        return await state.check(getattr(runtime_source.state, "runtime", None))

    app.add_api_route("/ping", ping, methods=["GET"], include_in_schema=False)


def create_lb_app(settings: Settings) -> tuple[FastAPI, PingState]:
    """The gateway app with `/ping` added, and left open to callers without a key."""
    app = create_app(settings, open_paths=frozenset({"/ping"}))
    state = PingState()
    add_ping_route(app, state, runtime_source=app)
    return app, state


class _ProbeServer(uvicorn.Server):
    """The PORT_HEALTH server: signals belong to the main server, which stops this one."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(settings: Settings, *, port: int, health_port: int) -> None:
    app, state = create_lb_app(settings)
    # Draining on SIGTERM: RunPod scales workers down with in-flight requests on them.
    main_server = DrainingServer(
        uvicorn.Config(app, host=settings.host, port=port, timeout_graceful_shutdown=5),
        drain_timeout_s=settings.drain_timeout_s,
    )
    if health_port == port:
        await main_server.serve()
        return
    health_app = FastAPI()
    add_ping_route(health_app, state, runtime_source=app)
    health_server = _ProbeServer(
        uvicorn.Config(health_app, host=settings.host, port=health_port, lifespan="off")
    )
    health_task = asyncio.create_task(health_server.serve())
    try:
        await main_server.serve()
    finally:
        health_server.should_exit = True
        await health_task


def main() -> None:
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(name)s: %(message)s"
    )
    # RunPod's own contract for load-balancing workers; the gateway's settings are the fallback.
    port = int(os.environ.get("PORT", settings.port))
    health_port = int(os.environ.get("PORT_HEALTH", port))
    asyncio.run(serve(settings, port=port, health_port=health_port))


if __name__ == "__main__":
    main()
