"""First-principles floor for Voxtral-Mini-3B transcription on one H100 or H200, with arithmetic.

    python bench/gpu/bound.py [--gpu h100|h200] [--tokens-per-audio-s 4] [--batch 256]

Counts matrix FLOPs of the Whisper encoder + adapter + decoder prefill for one 30 s window
(vLLM pads every clip to 30 s), the decoder's per-token FLOPs, and the bytes one decode step
must read (weights once per step, each sequence's KV cache). Rates are the ones measured on this
workplace's machines (KINDS.md): H100 (nvidia-h100-x1) 798 TFLOP/s bf16 matrix product, 3.0 TB/s
copy; H200 (nvidia-h200, 2026-10-28 and 11-04) 788 TFLOP/s, 4.3 TB/s.
Prints a table; nothing here is a measurement of the server.
"""

from __future__ import annotations

import argparse

# (bf16 8192^3 matrix product FLOP/s, device-to-device copy bytes read + written per s)
RATES = {"h100": (798e12, 3.0e12), "h200": (788e12, 4.3e12)}  # KINDS.md readings
BF16 = 2

# Voxtral-Mini-3B-2507 (serve/fixtures/voxtral.py SHAPES["voxtral-mini-3b"]).
D, LAYERS, HEAD, HIDDEN, HEADS, KV_HEADS, VOCAB = 3072, 30, 128, 8192, 32, 8, 131_072
E, E_LAYERS, E_HIDDEN, E_HEADS, E_HEAD, MELS = 1280, 32, 5120, 20, 64, 128
WINDOW_S, ENC_POSITIONS, DOWNSAMPLE, TEXT_TOKENS = 30.0, 1500, 4, 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens-per-audio-s", type=float, default=4.0)
    parser.add_argument("--batch", type=int, default=256, help="sequences per decode step")
    parser.add_argument("--gpu", choices=sorted(RATES), default="h100")
    args = parser.parse_args()
    MATMUL_FLOPS, COPY_BYTES_S = RATES[args.gpu]  # noqa: N806 (the module's old constants)

    q, kv = HEADS * HEAD, KV_HEADS * HEAD
    dec_layer = D * q + 2 * D * kv + q * D + 3 * D * HIDDEN
    dec_body = LAYERS * dec_layer
    enc_layer = 4 * E * E_HEADS * E_HEAD + 2 * E * E_HIDDEN
    adapter = D * E * DOWNSAMPLE + D * D
    conv = E * MELS * 3 + E * E * 3
    total = dec_body + 2 * VOCAB * D + E_LAYERS * enc_layer + adapter + conv
    rows: list[tuple[str, str]] = [
        ("parameters (matrices only)", f"{total / 1e9:.3f} B  (generator: 4.674 B with norms)"),
    ]

    # One 30 s window: 3000 mel frames -> conv stride 2 -> 1500 encoder positions.
    enc_linear = 2 * E_LAYERS * enc_layer * ENC_POSITIONS
    enc_attn = E_LAYERS * 4 * ENC_POSITIONS**2 * E_HEADS * E_HEAD  # QK^T + AV, bidirectional
    conv_flops = 2 * (E * MELS * 3 * 3000 + E * E * 3 * ENC_POSITIONS)
    audio_tokens = ENC_POSITIONS // DOWNSAMPLE
    adapter_flops = 2 * adapter * audio_tokens
    prompt = audio_tokens + TEXT_TOKENS
    prefill_linear = 2 * dec_body * prompt + 2 * VOCAB * D  # logits for the last position only
    prefill_attn = LAYERS * 4 * prompt**2 * q / 2  # causal
    window_flops = (
        enc_linear + enc_attn + conv_flops + adapter_flops + prefill_linear + prefill_attn
    )
    rows += [
        ("encoder linear, 1500 pos x 32 layers", f"{enc_linear / 1e12:.3f} TFLOP"),
        ("encoder attention", f"{enc_attn / 1e12:.3f} TFLOP"),
        ("conv front end + adapter", f"{(conv_flops + adapter_flops) / 1e12:.3f} TFLOP"),
        (
            f"decoder prefill, {prompt} tokens",
            f"{(prefill_linear + prefill_attn) / 1e12:.3f} TFLOP",
        ),
        ("= per 30 s window", f"{window_flops / 1e12:.3f} TFLOP"),
    ]
    prefill_s_per_audio_s = window_flops / WINDOW_S / MATMUL_FLOPS

    # Decode: per token 2 FLOPs per decoder weight (+ output head); per step all weights read
    # once, plus each sequence's KV cache (prompt + half the output on average).
    out_tokens = args.tokens_per_audio_s * WINDOW_S
    dec_flops_token = 2 * (dec_body + VOCAB * D)
    weight_bytes = (dec_body + VOCAB * D) * BF16
    kv_bytes_token = LAYERS * 2 * kv * BF16
    kv_bytes_seq = kv_bytes_token * (prompt + out_tokens / 2)
    step_bytes = weight_bytes + args.batch * kv_bytes_seq
    step_s = max(step_bytes / COPY_BYTES_S, args.batch * dec_flops_token / MATMUL_FLOPS)
    audio_s_per_step = args.batch / args.tokens_per_audio_s
    decode_s_per_audio_s = step_s / audio_s_per_step
    rows += [
        ("decode weights read per step", f"{weight_bytes / 1e9:.2f} GB"),
        ("KV cache per token (30 layers x K,V x 1024 x bf16)", f"{kv_bytes_token / 1024:.0f} KiB"),
        (
            f"decode step at batch {args.batch}",
            f"{step_bytes / 1e9:.2f} GB -> {step_s * 1e3:.2f} ms",
        ),
        ("batch-1 decode step (weights only)", f"{weight_bytes / COPY_BYTES_S * 1e3:.2f} ms/token"),
        ("encoder+prefill floor", f"{1 / prefill_s_per_audio_s:,.0f} audio-s/s"),
        (f"decode floor at batch {args.batch}", f"{1 / decode_s_per_audio_s:,.0f} audio-s/s"),
        (
            "both, run one after the other",
            f"{1 / (prefill_s_per_audio_s + decode_s_per_audio_s):,.0f} audio-s/s",
        ),
    ]
    five_s = window_flops / MATMUL_FLOPS + 5 * args.tokens_per_audio_s * weight_bytes / COPY_BYTES_S
    rows.append(("5 s clip alone, padded to 30 s", f"{five_s * 1e3:.1f} ms"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
