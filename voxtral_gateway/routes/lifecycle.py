"""An HTTP transcription request's life, shared by both dialects' routes (OpenAI's and
Mistral's): cancel the engine work when the client leaves, give the load back at the end,
and say where the time went."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

from fastapi import Request

from voxtral_gateway.admission import Ticket
from voxtral_gateway.metrics import RequestRecord
from voxtral_gateway.pipeline.prepared import PreparedAudio

logger = logging.getLogger(__name__)
T = TypeVar("T")


class ClientDisconnectedError(Exception):
    """The client went away; nothing is sent back."""


async def _until_disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def cancel_on_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Run `work`, cancelling it (and its upstream calls) if the client disconnects first."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_until_disconnect(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if not task.done():
        task.cancel()
        logger.info("[%s] client disconnected; upstream calls cancelled", request.state.request_id)
        raise ClientDisconnectedError
    return task.result()


def server_timing(phases: dict[str, float]) -> str:
    """W3C Server-Timing: where the request's time went, in ms (read = upload received and
    parsed; engine = the wait for the segments' calls after VAD, fan-out included; a head-start
    call began before VAD, which then ran beside it; speakers = the part of `engine` spent
    waiting for speaker embeddings after the last call; align = word timing summed over
    segments, inside the engine wait)."""
    return ", ".join(f"{name};dur={seconds * 1000:.2f}" for name, seconds in phases.items())


async def finish_request(
    request: Request, ticket: Ticket, prepared: PreparedAudio | None, record: RequestRecord
) -> None:
    """Give the request's load back, stop a head-start call nobody took, delete the upload."""
    ticket.release()
    record.finish(499)  # a stream that never ran: the client left before its first byte
    if prepared is not None:
        prepared.discard()
    await request.close()


async def until_client_leaves(request: Request, results: AsyncIterator[T]) -> AsyncIterator[T]:
    """Pass results through; if the client disconnects first, cancel the fan-out at once.

    Without this, a gone client is noticed only when the next event fails to send, which for
    a long segment can be a minute away, while the engine keeps working for nobody. One task
    drives the fan-out from start to end: its TaskGroup must live and die in one task.
    """
    queue: asyncio.Queue[T | Exception | None] = asyncio.Queue()

    async def _drive() -> None:
        try:
            async for result in results:
                queue.put_nowait(result)
        except Exception as exc:  # handed to the consumer, which raises it in its own task
            queue.put_nowait(exc)
        else:
            queue.put_nowait(None)

    driver = asyncio.ensure_future(_drive())
    watcher = asyncio.ensure_future(_until_disconnect(request))
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait({getter, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():
                getter.cancel()
                raise ClientDisconnectedError
            item = getter.result()
            if item is None:
                return
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        watcher.cancel()
        driver.cancel()  # cancels the fan-out's TaskGroup, hence every upstream call
        with contextlib.suppress(asyncio.CancelledError):
            await driver
