"""Small ASGI middlewares that act before any body is parsed.

Decisions use the ASGI scope's path, never a URL rebuilt from the Host header.
"""

from __future__ import annotations

import hmac
import json
import logging
import uuid
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from voxtral_gateway.errors import AudioLimitError, OverloadedError, error_body, gateway_error_body
from voxtral_gateway.mistral.protocol import MISTRAL_PREFIX, mistral_error_body
from voxtral_gateway.pipeline.inline import inline_too_large
from voxtral_gateway.ratelimit import RateLimiter, client_identity

logger = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/health", "/ready", "/"})
# The browser page's own files hold no data; the page then sends the key with each call.
OPEN_PREFIXES = ("/static/",)
# Browsers cannot set headers on a WebSocket: OpenAI's convention carries the key as a subprotocol.
_WS_KEY_PROTOCOL = b"openai-insecure-api-key."
RATE_LIMITED_PREFIXES = ("/v1/audio/", f"{MISTRAL_PREFIX}/v1/audio/")


async def _send_json(
    send: Send,
    status: int,
    body: dict,
    headers: Iterable[tuple[bytes, bytes]] = (),
    *,
    scope: Scope | None = None,
) -> None:
    """Send a JSON error; on Mistral's routes in Mistral's flat shape, as its SDK expects."""
    if scope is not None and scope.get("path", "").startswith(f"{MISTRAL_PREFIX}/"):
        error = body["error"]
        body = mistral_error_body(
            error["message"], error["type"], param=error["param"], code=error["code"]
        )
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class RequestIdMiddleware:
    """Give every request an id (the client's `X-Request-ID` if sane) for logs and responses."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = (
            given
            if given.isascii() and 0 < len(given) <= 64 and given.isprintable()
            else uuid.uuid4().hex
        )
        scope.setdefault("state", {})["request_id"] = request_id

        async def _send(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        await self.app(scope, receive, _send)


class ApiKeyMiddleware:
    """Require `Authorization: Bearer <key>` on every path but the probes, when keys are set.

    `open_paths` adds a host platform's own probes (RunPod's `/ping`, from runpod/lb.py)."""

    def __init__(
        self, app: ASGIApp, *, keys: list[str], open_paths: frozenset[str] = frozenset()
    ) -> None:
        self.app = app
        self._keys = [k.encode() for k in keys]
        self._open_paths = OPEN_PATHS | open_paths

    def _is_known(self, presented: bytes) -> bool:
        # Compare against every key without stopping early: timing reveals nothing.
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(presented, key)
        return matched

    def _presented_keys(self, scope: Scope) -> list[bytes]:
        headers = dict(scope["headers"])
        scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
        keys = [token.strip()] if scheme.lower() == b"bearer" else []
        if scope["type"] == "websocket":
            for protocol in headers.get(b"sec-websocket-protocol", b"").split(b","):
                protocol = protocol.strip()
                if protocol.startswith(_WS_KEY_PROTOCOL):
                    keys.append(protocol[len(_WS_KEY_PROTOCOL) :])
        return keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] not in ("http", "websocket")
            or not self._keys
            or path in self._open_paths
            or path.startswith(OPEN_PREFIXES)
        ):
            await self.app(scope, receive, send)
            return
        if any(self._is_known(key) for key in self._presented_keys(scope)):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = error_body(
            "Invalid or missing API key.", "authentication_error", code="invalid_api_key"
        )
        await _send_json(send, 401, body, [(b"www-authenticate", b"Bearer")], scope=scope)


class BodySizeLimitMiddleware:
    """413 before parsing when Content-Length is too big; count streamed bytes otherwise.

    Only a multipart body can carry a file, which is spooled to disk; any other body (JSON,
    form-encoded) is parsed in memory, so it gets the lower `max_inline_bytes`.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, max_inline_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_inline_bytes = max_inline_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if content_type == b"multipart/form-data":
            max_bytes = self.max_bytes
            too_large = AudioLimitError(
                f"Request body exceeds the {max_bytes} byte limit.",
                param="file",
                code="request_too_large",
            )
        else:
            max_bytes = self.max_inline_bytes
            too_large = inline_too_large(max_bytes)
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            await _send_json(send, 413, gateway_error_body(too_large), scope=scope)
            return
        received = 0

        async def _counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise too_large
            return message

        await self.app(scope, _counting_receive, send)


class RateLimitMiddleware:
    """Per-key request and audio-seconds limits on the transcription routes (429 + Retry-After).

    Sits inside ApiKeyMiddleware, so only known keys spend tokens; decided before any body
    is read. Audio seconds are charged later, when admission learns the decoded length: the
    charge goes on the request as `request.state.audio_charge` (see deps.AudioChargeDep).
    """

    def __init__(self, app: ASGIApp, *, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or not self.limiter.is_enabled
            or not scope["path"].startswith(RATE_LIMITED_PREFIXES)
        ):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        identity = client_identity(
            dict(scope["headers"]).get(b"authorization", b""), client[0] if client else None
        )
        try:
            charge = self.limiter.admit(identity)
        except OverloadedError as exc:
            await _send_json(
                send,
                exc.status_code,
                gateway_error_body(exc),
                [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()],
                scope=scope,
            )
            return
        scope.setdefault("state", {})["audio_charge"] = charge
        await self.app(scope, receive, send)
