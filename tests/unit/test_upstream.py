"""The one-piece multipart body we send upstream, read back by a parser we did not write."""

from __future__ import annotations

import email
import email.policy
import io

import numpy as np
import soundfile as sf

from voxtral_gateway.engine_wire import encode_multipart, encode_wav


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


def test_pcm16_upload_reaches_the_engine_bit_for_bit() -> None:
    rng = np.random.default_rng(3)
    pcm = rng.integers(-32768, 32768, 16_000, dtype=np.int16)
    pcm[:2] = [-32768, 32767]
    upload = io.BytesIO()
    sf.write(upload, pcm, 16_000, format="WAV", subtype="PCM_16")
    samples, _ = sf.read(io.BytesIO(upload.getvalue()), dtype="float32")  # as decode reads it
    sent, rate = sf.read(io.BytesIO(encode_wav(samples)), dtype="int16")
    assert rate == 16_000 and np.array_equal(sent, pcm)


def test_out_of_range_samples_clip_instead_of_wrapping() -> None:
    sent, _ = sf.read(io.BytesIO(encode_wav(np.array([1.5, -2.0, 0.5], np.float32))), dtype="int16")
    assert sent.tolist() == [32767, -32768, 16384]
