"""`Annotated` dependency aliases: a handler's signature lists what it needs."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from voxtral_gateway.ratelimit import AudioCharge
from voxtral_gateway.runtime import Runtime
from voxtral_gateway.settings import Settings


# `async def`: FastAPI runs a plain `def` dependency in its thread pool, two thread hops per
# request (~0.2 ms) for an attribute read.
async def _settings(request: Request) -> Settings:
    return request.app.state.settings


async def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime


async def _audio_charge(request: Request) -> AudioCharge | None:
    # Set by RateLimitMiddleware when the client is rate limited by audio seconds.
    return getattr(request.state, "audio_charge", None)


SettingsDep = Annotated[Settings, Depends(_settings)]
AudioChargeDep = Annotated[AudioCharge | None, Depends(_audio_charge)]
RuntimeDep = Annotated[Runtime, Depends(_runtime)]
