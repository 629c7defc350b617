"""Time Voxtral-Mini-3B's three kinds of work in plain PyTorch on the GPU, one at a time.

    python bench/gpu/components.py [--out FILE]

Same shapes as the served model (bench/gpu/bound.py), random bf16 weights, distinct per layer:
- encoder: 32 Whisper layers over 1500 positions per 30 s window (bidirectional attention)
- prefill: 30 decoder layers over 380 prompt tokens per window (causal, GQA 32/8)
- decode:  one decoder step for a batch of sequences with 440 cached tokens each, + LM head
Timed with CUDA events (median of repeats after warm-up); decode also replayed as a CUDA graph.
These are the costs of the computation with PyTorch's kernels (SDPA, cuBLAS), not of vLLM's:
they split the work the engine's metrics lump into "prefill" and show what the GPU can do.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import torch
import torch.nn.functional as F  # noqa: N812

DT = torch.bfloat16
E, E_LAYERS, E_HIDDEN, E_HEADS, WINDOW = 1280, 32, 5120, 20, 1500
D, LAYERS, HIDDEN, HEADS, KV_HEADS, HEAD, VOCAB = 3072, 30, 8192, 32, 8, 128, 131_072
PROMPT, CONTEXT = 380, 440


def weights(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, device="cuda", dtype=DT) * 0.02


def time_ms(fn: Callable[[], object], repeats: int = 10) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


class Encoder:
    def __init__(self) -> None:
        self.layers = [
            {
                "qkv": weights(3 * E, E),
                "bqkv": weights(3 * E),
                "o": weights(E, E),
                "w1": weights(E_HIDDEN, E),
                "w2": weights(E, E_HIDDEN),
            }
            for _ in range(E_LAYERS)
        ]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0] // WINDOW
        for w in self.layers:
            h = F.layer_norm(x, (E,))
            q, k, v = F.linear(h, w["qkv"], w["bqkv"]).split(E, dim=-1)
            q, k, v = (t.view(batch, WINDOW, E_HEADS, -1).transpose(1, 2) for t in (q, k, v))
            a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(-1, E)
            x = x + F.linear(a, w["o"])
            x = x + F.linear(F.gelu(F.linear(F.layer_norm(x, (E,)), w["w1"])), w["w2"])
        return x


class Decoder:
    def __init__(self) -> None:
        q, kv = HEADS * HEAD, KV_HEADS * HEAD
        self.layers = [
            {
                "qkv": weights(q + 2 * kv, D),
                "o": weights(D, q),
                "w13": weights(2 * HIDDEN, D),
                "w2": weights(D, HIDDEN),
            }
            for _ in range(LAYERS)
        ]
        self.head = weights(VOCAB, D)

    def mlp(self, x: torch.Tensor, w: dict[str, torch.Tensor]) -> torch.Tensor:
        gate, up = F.linear(F.rms_norm(x, (D,)), w["w13"]).chunk(2, dim=-1)
        return x + F.linear(F.silu(gate) * up, w["w2"])

    def prefill(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0] // PROMPT
        for w in self.layers:
            q, k, v = F.linear(F.rms_norm(x, (D,)), w["qkv"]).split(
                [HEADS * HEAD, KV_HEADS * HEAD, KV_HEADS * HEAD], dim=-1
            )
            q = q.view(batch, PROMPT, HEADS, HEAD).transpose(1, 2)
            k, v = (t.view(batch, PROMPT, KV_HEADS, HEAD).transpose(1, 2) for t in (k, v))
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
            x = x + F.linear(a.transpose(1, 2).reshape(-1, HEADS * HEAD), w["o"])
            x = self.mlp(x, w)
        return F.linear(x.view(batch, PROMPT, D)[:, -1], self.head)

    def decode(
        self, x: torch.Tensor, cache: list[tuple[torch.Tensor, torch.Tensor]]
    ) -> torch.Tensor:
        batch = x.shape[0]
        for w, (k_cache, v_cache) in zip(self.layers, cache, strict=True):
            q, _k, _v = F.linear(F.rms_norm(x, (D,)), w["qkv"]).split(
                [HEADS * HEAD, KV_HEADS * HEAD, KV_HEADS * HEAD], dim=-1
            )
            q = q.view(batch, 1, HEADS, HEAD).transpose(1, 2)
            a = F.scaled_dot_product_attention(q, k_cache, v_cache, enable_gqa=True)
            x = x + F.linear(a.transpose(1, 2).reshape(batch, HEADS * HEAD), w["o"])
            x = self.mlp(x, w)
        return F.linear(x, self.head)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    rows: list[str] = [f"{torch.cuda.get_device_name()}, torch {torch.__version__}"]

    def report(name: str, ms: float, flops: float, nbytes: float, audio_s: float) -> None:
        rows.append(
            f"{name:<28}{ms:>9.2f} ms{flops / ms / 1e9:>8.0f} TFLOP/s{nbytes / ms / 1e6:>8.0f} GB/s"
            f"{ms / audio_s:>9.3f} ms/audio-s"
        )

    with torch.inference_mode():
        encoder = Encoder()
        enc_flops = (
            2 * E_LAYERS * (4 * E * E + 2 * E * E_HIDDEN) * WINDOW + E_LAYERS * 4 * WINDOW**2 * E
        )
        for batch in (1, 8, 32):
            x = torch.randn(batch * WINDOW, E, device="cuda", dtype=DT)
            report(
                f"encoder, {batch} x 30 s",
                time_ms(lambda x=x, enc=encoder: enc(x)),
                batch * enc_flops,
                E_LAYERS * 2 * (4 * E * E + 2 * E * E_HIDDEN),
                batch * 30.0,
            )
        del encoder
        decoder = Decoder()
        body = LAYERS * (D * (HEADS + 2 * KV_HEADS) * HEAD + HEADS * HEAD * D + 3 * D * HIDDEN)
        for batch in (1, 8, 32):
            x = torch.randn(batch * PROMPT, D, device="cuda", dtype=DT)
            flops = batch * (2 * body * PROMPT + LAYERS * 2 * PROMPT**2 * HEADS * HEAD)
            report(
                f"prefill, {batch} x {PROMPT} tok",
                time_ms(lambda x=x: decoder.prefill(x)),
                flops,
                2 * (body + VOCAB * D),
                batch * 30.0,
            )
        for batch in (1, 64, 256):
            cache = [
                (
                    torch.randn(batch, KV_HEADS, CONTEXT, HEAD, device="cuda", dtype=DT),
                    torch.randn(batch, KV_HEADS, CONTEXT, HEAD, device="cuda", dtype=DT),
                )
                for _ in range(LAYERS)
            ]
            x = torch.randn(batch, D, device="cuda", dtype=DT)
            kv_bytes = LAYERS * 2 * batch * KV_HEADS * CONTEXT * HEAD * 2
            nbytes, flops = 2 * (body + VOCAB * D) + kv_bytes, batch * 2 * (body + VOCAB * D)
            audio_s = batch / 4.0  # 4 tokens per audio second
            report(
                f"decode step, batch {batch}",
                time_ms(lambda x=x, c=cache: decoder.decode(x, c)),
                flops,
                nbytes,
                audio_s,
            )
            graph = torch.cuda.CUDAGraph()
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                decoder.decode(x, cache)
            torch.cuda.current_stream().wait_stream(stream)
            with torch.cuda.graph(graph):
                decoder.decode(x, cache)
            report(f"  as CUDA graph, batch {batch}", time_ms(graph.replay), flops, nbytes, audio_s)
            del cache, graph
    text = "\n".join(rows)
    print(text)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
