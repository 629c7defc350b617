"""`Annotated` dependency aliases: a handler's signature lists what it needs."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from voxtral_gateway.runtime import Runtime
from voxtral_gateway.settings import Settings


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime


SettingsDep = Annotated[Settings, Depends(_settings)]
RuntimeDep = Annotated[Runtime, Depends(_runtime)]
