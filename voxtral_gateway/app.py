"""create_app(settings) -> FastAPI. The lifespan owns the HTTP pool and the VAD model."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import aiohttp
from fastapi import FastAPI

from voxtral_gateway import __version__
from voxtral_gateway.errors import install_error_handlers
from voxtral_gateway.middleware import (
    ApiKeyMiddleware,
    BodySizeLimitMiddleware,
    RateLimitMiddleware,
    RequestIdMiddleware,
)
from voxtral_gateway.mistral import routes as mistral_routes
from voxtral_gateway.pipeline.vad import SpeechDetector
from voxtral_gateway.ratelimit import RateLimiter
from voxtral_gateway.ratelimit_shared import SharedAccounts
from voxtral_gateway.realtime.router import router as realtime_router
from voxtral_gateway.routes import health, transcriptions, translations
from voxtral_gateway.runtime import open_runtime
from voxtral_gateway.settings import Settings
from voxtral_gateway.worker_group import WorkerGroup

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    *,
    http_client: aiohttp.ClientSession | None = None,
    detector: SpeechDetector | None = None,
    open_paths: frozenset[str] = frozenset(),
    worker_group: WorkerGroup | None = None,
) -> FastAPI:
    """Build the gateway. Tests may pass their own HTTP client or VAD detector; a host
    platform wrapper (runpod/lb.py) names its own probe paths in `open_paths`, left open to
    callers without a key. `worker_group`: set by server.py when several workers share the
    port."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_runtime(
            settings, http_client=http_client, detector=detector, worker_group=worker_group
        ) as runtime:
            app.state.runtime = runtime
            logger.info("gateway ready; engines: %s", ", ".join(settings.upstream_urls))
            yield

    app = FastAPI(title="voxtral-gateway", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(transcriptions.router)
    app.include_router(mistral_routes.router)  # Mistral's dialect under /mistral (its server_url)
    app.include_router(translations.router)
    app.include_router(health.router)
    app.include_router(realtime_router)  # /v1/realtime WebSocket and the browser page at /
    if settings.admin_port is None:
        app.include_router(health.metrics_router)  # else only on the admin port
    # Outermost first: ids on every response, then auth, then per-key rate limits, then the
    # byte cap before any parsing.
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.limits.max_upload_bytes,
        max_inline_bytes=settings.limits.max_inline_bytes,
    )
    app.add_middleware(RateLimitMiddleware, limiter=_rate_limiter(settings, worker_group))
    app.add_middleware(
        ApiKeyMiddleware,
        keys=[k.get_secret_value() for k in settings.api_keys],
        open_paths=open_paths,
    )
    app.add_middleware(RequestIdMiddleware)
    return app


def _rate_limiter(settings: Settings, worker_group: WorkerGroup | None) -> RateLimiter:
    """Buckets in this process, or, with several workers, in a store they all share."""
    limiter = RateLimiter(settings.rate_limits)
    if worker_group is None or not limiter.is_enabled:
        return limiter
    shared = SharedAccounts(worker_group.rate_limits_path, settings.rate_limits)
    return RateLimiter(settings.rate_limits, accounts=shared)


def create_admin_app(public: FastAPI) -> FastAPI:
    """`/metrics` for the admin port (`settings.admin_port`), reading the public app's runtime.

    Run it in the same event loop as `public`, after or alongside it: the runtime exists once
    the public app's lifespan has started.
    """
    admin = FastAPI(title="voxtral-gateway admin", version=__version__, openapi_url=None)
    admin.state = public.state  # same settings and runtime objects
    admin.include_router(health.metrics_router)
    return admin
