"""A protocol double of vLLM's `/v1/realtime` for CPU dry runs of bench/realtime_bridge.py.

    python -m bench.realtime_echo_engine --port 19510

Speaks vLLM's realtime protocol (vllm/entrypoints/speech_to_text/realtime/connection.py):
`session.created` on connect, `session.update {model}`, `input_audio_buffer.commit` starts a
generation, appends carry 16 kHz PCM16, `commit {final: true}` ends it. It "transcribes" the
way Voxtral Realtime paces its output, one token per 80 ms of audio, by answering each 80 ms
received with a `transcription.delta` at once, and `transcription.done` after the final
commit. No model time at all: behind the gateway's bridge, what it shows is the relay's own
cost per delta. It is not an engine; GPU figures come from a real one.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json

from websockets.asyncio.server import ServerConnection, serve

SAMPLES_PER_TOKEN = 1280  # 80 ms at 16 kHz: Voxtral Realtime's 12.5 audio tokens per second


async def _handle(connection: ServerConnection) -> None:
    await connection.send(json.dumps({"type": "session.created", "id": "sess-echo"}))
    received: int | None = None  # samples in the running generation; None when none runs
    text = ""
    async for raw in connection:
        event = json.loads(raw)
        kind = event.get("type")
        if kind == "input_audio_buffer.commit" and not event.get("final"):
            received, text = 0, ""
        elif kind == "input_audio_buffer.append" and received is not None:
            before = received // SAMPLES_PER_TOKEN
            received += len(base64.b64decode(event["audio"])) // 2
            for token in range(before, received // SAMPLES_PER_TOKEN):
                delta = f" w{token}"
                text += delta
                await connection.send(json.dumps({"type": "transcription.delta", "delta": delta}))
        elif kind == "input_audio_buffer.commit" and received is not None:
            await connection.send(json.dumps({"type": "transcription.done", "text": text}))
            received = None


async def serve_forever(port: int) -> None:
    async with serve(_handle, "127.0.0.1", port, max_size=None):
        await asyncio.Future()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(serve_forever(parser.parse_args().port))


if __name__ == "__main__":
    main()
