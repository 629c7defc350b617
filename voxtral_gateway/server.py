"""Run the gateway: one process, or several sharing the port, each draining on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import uvicorn

from voxtral_gateway.settings import Settings
from voxtral_gateway.worker_group import (
    WorkerGroup,
    create_run_dir,
    forget_worker,
    remove_run_dir,
)

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


async def _serve_with_admin(
    server: DrainingServer,
    admin: AdminServer,
    sockets: list[socket.socket] | None,
    admin_sockets: list[socket.socket] | None,
) -> None:
    admin_task = asyncio.create_task(admin.serve(admin_sockets))
    try:
        await server.serve(sockets)
    finally:
        admin.should_exit = True
        await admin_task


def bind_shared_port(host: str, port: int) -> socket.socket:
    """A listening socket with SO_REUSEPORT: the kernel spreads connections over the workers."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s",
    )


def serve_one(settings: Settings, *, worker_group: WorkerGroup | None = None) -> int:
    """One gateway process; with `worker_group` it binds next to its sibling workers and
    shares metrics and admission load with them."""
    from voxtral_gateway.app import create_admin_app, create_app

    _configure_logging(settings)
    app = create_app(settings, worker_group=worker_group)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=5,
    )
    server = DrainingServer(config, drain_timeout_s=settings.drain_timeout_s)
    sockets = None if worker_group is None else [bind_shared_port(settings.host, settings.port)]
    if settings.admin_port is None:
        server.run(sockets=sockets)
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
    # Workers share the admin port too: any of them answers /metrics with the totals.
    admin_sockets = (
        None if worker_group is None else [bind_shared_port(settings.host, settings.admin_port)]
    )
    asyncio.run(_serve_with_admin(server, admin, sockets, admin_sockets))
    return 0


def _worker_main(overrides: dict[str, object], worker_group: WorkerGroup) -> None:
    # Settings are read again from the inherited environment: secrets never travel in pickles.
    settings = Settings().model_copy(update=overrides)
    raise SystemExit(serve_one(settings, worker_group=worker_group))


def serve(settings: Settings) -> int:
    """Run `settings.workers` processes; SIGTERM/SIGINT are passed on and each one drains.

    Several processes lift the ceiling of one Python process (decode and VAD share one GIL),
    which bounds a single gateway long before a GPU engine saturates. They share a fresh run
    folder (worker_group.py) for /metrics totals and gateway-wide admission limits, removed
    when the last one exits.
    """
    if settings.workers == 1:
        return serve_one(settings)
    _configure_logging(settings)
    run_dir = create_run_dir(settings.workers)
    try:
        return _run_workers(settings, run_dir)
    finally:
        remove_run_dir(run_dir)


def _run_workers(settings: Settings, run_dir: Path) -> int:
    context = multiprocessing.get_context("spawn")
    overrides = {"host": settings.host, "port": settings.port}
    workers = [
        context.Process(
            target=_worker_main,
            args=(overrides, WorkerGroup(run_dir, index, settings.workers)),
            name=f"gateway-{index}",
        )
        for index in range(settings.workers)
    ]
    for worker in workers:
        worker.start()

    def _forward(sig: int, frame: FrameType | None) -> None:
        for worker in workers:
            if worker.is_alive() and worker.pid is not None:
                os.kill(worker.pid, sig)

    signal.signal(signal.SIGTERM, _forward)
    signal.signal(signal.SIGINT, _forward)
    running = dict(enumerate(workers))
    while running:
        exited = multiprocessing.connection.wait([w.sentinel for w in running.values()])
        for index, worker in list(running.items()):
            if worker.sentinel in exited:
                worker.join()
                del running[index]
                # A worker that died with requests in flight must not hold their share.
                forget_worker(run_dir, index, worker.pid)
                logger.log(
                    logging.INFO if worker.exitcode == 0 else logging.ERROR,
                    "worker %d exited (%s); its admission load is released",
                    index,
                    worker.exitcode,
                )
    return 0 if all(worker.exitcode == 0 for worker in workers) else 1
