"""Routes: the `/v1/realtime` WebSocket and the browser page at `/` (with its two scripts)."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, HTTPException, WebSocket
from fastapi.responses import FileResponse

from voxtral_gateway.realtime.connection import serve_realtime

router = APIRouter()

# The page's files, by name: nothing else under the package is ever served.
_STATIC_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "pcm16-worklet.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}


def _static(name: str) -> FileResponse:
    path = resources.files("voxtral_gateway.static").joinpath(name)
    return FileResponse(str(path), media_type=_STATIC_FILES[name])


@router.websocket("/v1/realtime")
async def realtime(websocket: WebSocket) -> None:
    """OpenAI Realtime transcription session (`?intent=transcription`; other intents too)."""
    await serve_realtime(websocket)


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    return _static("index.html")


@router.get("/static/{name}", include_in_schema=False)
async def static_file(name: str) -> FileResponse:
    if name not in _STATIC_FILES:
        raise HTTPException(404, "No such file.")
    return _static(name)
