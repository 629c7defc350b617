"""Probes, metrics and the model list."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from voxtral_gateway.deps import RuntimeDep
from voxtral_gateway.errors import GatewayError, UpstreamUnavailableError
from voxtral_gateway.protocol import ModelCard, ModelList

router = APIRouter()
# Its own router: with `admin_port` set it is mounted on the admin app instead (app.py).
metrics_router = APIRouter()


@router.get("/health")
async def health() -> dict[str, str]:
    """The process is up; says nothing about the engines."""
    return {"status": "ok"}


@router.get("/ready")
async def ready(runtime: RuntimeDep) -> JSONResponse:
    """200 only if at least one engine completes a real (one-token) transcription."""
    is_ready = await runtime.readiness.check()
    body = {"status": "ready" if is_ready else "unavailable", "engines": runtime.readiness.engines}
    return JSONResponse(body, status_code=200 if is_ready else 503)


@metrics_router.get("/metrics")
async def metrics(runtime: RuntimeDep) -> Response:
    return Response(runtime.metrics.render(), media_type="text/plain; version=0.0.4")


@router.get("/v1/models", response_model=ModelList)
async def list_models(runtime: RuntimeDep) -> ModelList:
    """The engine's model, under the name the gateway forwards."""
    cards: dict[str, ModelCard] = {}
    for engine in runtime.upstream.engines:
        try:
            name = await runtime.upstream.model_name(engine)
            created = await runtime.upstream.model_created(engine)
        except GatewayError:
            continue
        if name not in cards:
            cards[name] = ModelCard(id=name, created=created)
    if not cards:
        raise UpstreamUnavailableError("No speech engine is reachable.")
    return ModelList(data=list(cards.values()))
