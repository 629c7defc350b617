"""Inline audio (JSON, form-encoded, a multipart text field) has its own, lower byte cap.

Such a body is held in memory and then decoded, unlike an uploaded file spooled to disk, so the
gateway must refuse it while it streams in, not after buffering it whole. The app runs in this
process behind httpx's ASGI transport, which pulls the request body one chunk per `receive()`:
the count of chunks pulled is exactly what the gateway read before answering.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx

from tests.fixtures.gateway import free_port
from voxtral_gateway.app import create_app
from voxtral_gateway.settings import LimitSettings, Settings

CAP = 256 * 1024
CHUNK = 16 * 1024
BODY = 64 * CAP  # the 84 MB case, scaled down: far past the cap


def _settings() -> Settings:
    # The engine is a closed port: nothing here gets past ingestion.
    return Settings(
        upstream_urls=[f"http://127.0.0.1:{free_port()}"],
        limits=LimitSettings(max_inline_bytes=CAP),
    )


async def _post_streamed(content_type: str, head: bytes, filler: bytes) -> tuple[int, dict, int]:
    """POST `head` + filler chunks (no Content-Length); returns status, error, bytes read."""
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        sent += len(head)
        yield head
        while sent < BODY:
            sent += len(filler)
            yield filler

    app = create_app(_settings())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            response = await client.post(
                "/v1/audio/transcriptions", content=body(), headers={"content-type": content_type}
            )
    return response.status_code, response.json()["error"], sent


def test_json_body_past_the_inline_cap_is_refused_while_it_streams() -> None:
    status, error, read = asyncio.run(
        _post_streamed("application/json", b'{"model": "w", "audio": "', b"A" * CHUNK)
    )
    assert status == 413
    assert error["code"] == "inline_audio_too_large" and error["type"] == "invalid_request_error"
    assert error["param"] == "audio" and "multipart 'file'" in error["message"]
    assert read <= CAP + CHUNK < BODY


def test_multipart_text_field_past_the_inline_cap_is_refused_while_it_streams() -> None:
    boundary = "b0undary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nw\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="audio"\r\n\r\n'
    ).encode()
    status, error, read = asyncio.run(
        _post_streamed(f"multipart/form-data; boundary={boundary}", head, b"A" * CHUNK)
    )
    assert status == 413 and error["code"] == "inline_audio_too_large"
    assert read <= CAP + 2 * CHUNK < BODY


def test_declared_length_past_the_inline_cap_is_refused_unread() -> None:
    async def post() -> httpx.Response:
        app = create_app(_settings())
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
                return await client.post(
                    "/v1/audio/transcriptions", json={"model": "w", "audio": "A" * (CAP + 1)}
                )

    response = asyncio.run(post())
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "inline_audio_too_large"
