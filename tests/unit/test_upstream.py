"""The one-piece multipart body we send upstream, read back by a parser we did not write."""

from __future__ import annotations

import email
import email.policy
import io

import numpy as np
import soundfile as sf

from voxtral_gateway.upstream import encode_multipart, encode_wav


def test_multipart_body_parses_back_to_fields_and_wav() -> None:
    samples = (np.sin(np.arange(16_000) / 10) * 0.3).astype(np.float32)
    wav = encode_wav(samples)
    fields = {"model": "m", "max_completion_tokens": "42", "prompt": "Zoë says\r\nhello"}
    body, content_type = encode_multipart(fields, wav)
    message = email.message_from_bytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body, policy=email.policy.HTTP
    )
    parts = {
        part.get_param("name", header="content-disposition"): part for part in message.iter_parts()
    }
    assert set(parts) == {"model", "max_completion_tokens", "prompt", "file"}
    assert parts["max_completion_tokens"].get_content() == "42"
    assert parts["prompt"].get_payload(decode=True).decode() == "Zoë says\r\nhello"
    assert parts["file"].get_filename() == "segment.wav"
    decoded, rate = sf.read(io.BytesIO(parts["file"].get_payload(decode=True)), dtype="float32")
    assert rate == 16_000 and np.allclose(decoded, samples, atol=1e-4)
