from __future__ import annotations

from voxtral_gateway.pipeline.transcribe import TokenBudget


def test_token_budget_scales_with_duration_within_bounds() -> None:
    budget = TokenBudget(tokens_per_audio_second=6.0, min_tokens=16, max_tokens=150)
    assert budget.for_duration(0.5) == 16
    assert budget.for_duration(10.0) == 60
    assert budget.for_duration(10.01) == 61
    assert budget.for_duration(600.0) == 150
    assert TokenBudget(5.0, 8).for_duration(30.0) == 150
