"""Gateway errors and the one mapping from any failure to OpenAI's error JSON.

GatewayError                      any failure we report on purpose
├── InvalidRequestError (400)     a parameter is wrong
│   ├── UnsupportedAudioError     the bytes are not audio we can decode
│   └── AudioLimitError (413)     too many bytes / seconds / channels
├── AuthenticationError (401)
├── UrlRejectedError (400)        a file_url the fetcher refuses (SSRF guard)
├── FetchError (400)              a permitted URL that could not be fetched
├── OverloadedError (429)         admission refused, retry later
└── UpstreamError (502)           the engine answered badly
    ├── UpstreamUnavailableError (503)  the engine cannot be reached
    └── UpstreamTimeoutError (504)      the engine did not answer in time
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

# Starlette's, not FastAPI's subclass: Starlette itself raises it (e.g. request.form() on
# broken multipart), and a handler for the subclass would let those out as {"detail": ...}.
from starlette.exceptions import HTTPException

from voxtral_gateway.protocol import ErrorInfo, ErrorResponse

logger = logging.getLogger(__name__)


class GatewayError(Exception):
    """Base of every error reported to clients in OpenAI's shape."""

    status_code: int = 500
    error_type: str = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.headers = headers or {}
        if code is not None:
            self.code = code


class InvalidRequestError(GatewayError):
    """Raised when a request parameter is missing or wrong."""

    status_code = 400
    error_type = "invalid_request_error"


class UnsupportedAudioError(InvalidRequestError):
    """Raised when the uploaded bytes cannot be decoded as audio."""

    code = "invalid_audio"


class AudioLimitError(InvalidRequestError):
    """Raised when input exceeds a configured size, duration or shape limit."""

    status_code = 413
    code = "audio_too_large"


class AuthenticationError(GatewayError):
    """Raised when an API key is missing or unknown."""

    status_code = 401
    error_type = "authentication_error"
    code = "invalid_api_key"


class UrlRejectedError(InvalidRequestError):
    """Raised when a file_url is refused by policy before any connection is made."""

    code = "url_not_allowed"


class FetchError(InvalidRequestError):
    """Raised when a permitted URL could not be fetched (timeout, bad status, too large)."""

    code = "fetch_failed"


class OverloadedError(GatewayError):
    """Raised when admission control refuses a request; the client should retry later."""

    status_code = 429
    error_type = "rate_limit_error"
    code = "overloaded"


class UpstreamError(GatewayError):
    """Raised when the engine answers with an unexpected status or body."""

    status_code = 502
    error_type = "upstream_error"
    code = "bad_gateway"


class UpstreamUnavailableError(UpstreamError):
    """Raised when no engine can be connected to."""

    status_code = 503
    code = "upstream_unavailable"


class UpstreamTimeoutError(UpstreamError):
    """Raised when the engine does not answer within the segment deadline."""

    status_code = 504
    code = "upstream_timeout"


def error_body(
    message: str, error_type: str, *, param: str | None = None, code: str | None = None
) -> dict:
    """OpenAI's nested error JSON as a plain dict (also used for SSE error events)."""
    return ErrorResponse(
        error=ErrorInfo(message=message, type=error_type, param=param, code=code)
    ).model_dump()


def gateway_error_body(exc: GatewayError) -> dict:
    return error_body(exc.message, exc.error_type, param=exc.param, code=exc.code)


def describe_validation_errors(errors: Sequence[Mapping[str, Any]]) -> tuple[str, str | None]:
    """pydantic's errors -> (message, parameter) for one 400, shared by the form routes and
    FastAPI's own body validation: the most specific error, named by its parameter and rule,
    never echoing the client's value."""
    if not errors:
        return "Invalid request.", None
    first = _most_specific(errors)
    param = ".".join(str(p) for p in _parameter_path(first)) or None
    rule = str(first.get("msg", "invalid value")).removeprefix("Value error, ").rstrip(".")
    if first.get("type", "") == "extra_forbidden":
        return f"Unknown parameter {param!r}.", param
    if param is None:  # a rule across parameters (a model validator) names none
        return f"Invalid request: {rule}.", None
    return f"Invalid parameter {param!r}: {rule}.", param


def _most_specific(errors: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The first error, or where a union tried several branches of the same parameter, the
    branch that got furthest (e.g. a server_vad object's bad `threshold`, not "not 'auto'")."""
    key = _parameter_path(errors[0])[:1]
    same = [e for e in errors if _parameter_path(e)[:1] == key]
    return max(same, key=lambda e: len(e.get("loc", ())))


def _parameter_path(error: Mapping[str, Any]) -> list[object]:
    return [p for p in error.get("loc", ()) if not _is_location_noise(p)]


def _is_location_noise(part: object) -> bool:
    """Parts of a location that are not the client's parameter: FastAPI's source (`body`,
    `query`, `form`) and pydantic's union branch tags (`literal['auto']`, a model's class
    name); our field names are snake_case."""
    if part in ("body", "query", "form"):
        return True
    return isinstance(part, str) and (part[:1].isupper() or "[" in part)


def _request_id(request: Request) -> str:
    return getattr(request.state, "request_id", "-")


def install_error_handlers(app: FastAPI) -> None:
    """Map every failure to `{"error": {...}}` with the right status; never send a traceback."""

    @app.exception_handler(GatewayError)
    async def _gateway(request: Request, exc: GatewayError) -> JSONResponse:
        if exc.status_code >= 500:
            logger.warning("[%s] %s: %s", _request_id(request), type(exc).__name__, exc.message)
        return JSONResponse(gateway_error_body(exc), exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = describe_validation_errors(exc.errors())
        body = error_body(message, "invalid_request_error", param=param, code="invalid_parameter")
        return JSONResponse(body, 400)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        error_type = "invalid_request_error" if exc.status_code < 500 else "server_error"
        body = error_body(str(exc.detail), error_type)
        return JSONResponse(body, exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("[%s] unhandled error", _request_id(request))
        body = error_body("Internal server error", "server_error", code="internal_error")
        return JSONResponse(body, 500)
