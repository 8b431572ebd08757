"""The task the agent receives: history within a token budget, the current message last."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from context import MESSAGE_OVERHEAD_TOKENS, estimate_tokens
from history import Turn, build_task, fit_history, history_variants


def test_keeps_the_most_recent_turns_that_fit_oldest_first() -> None:
    turns = [Turn("user", f"message number {i} " + "x" * 70) for i in range(10)]
    kept = fit_history(turns, budget_tokens=3 * (estimate_tokens(turns[0].content) + MESSAGE_OVERHEAD_TOKENS))
    assert [t.content for t in kept] == [t.content for t in turns[-3:]]


def test_no_budget_means_no_history() -> None:
    assert fit_history([Turn("user", "hello")], 0) == []


def test_history_variants_leave_out_one_more_oldest_turn_each_down_to_none() -> None:
    turns = [Turn("user", f"turn {i}") for i in range(4)]
    variants = history_variants(turns, budget_tokens=10_000)
    assert variants == [turns, turns[1:], turns[2:], turns[3:], []]


def test_the_date_comes_just_before_the_current_message() -> None:
    now = datetime(2026, 12, 3, 9, 15, tzinfo=UTC)
    task = build_task("Quel jour sommes-nous ?", [Turn("user", "Bonjour")], (), now)
    assert task.index("[user] Bonjour") < task.index("Thursday 03 December 2026, 09:15") < task.index("Quel jour")


def test_current_message_comes_last_after_the_history() -> None:
    task = build_task("What now?", [Turn("user", "First"), Turn("assistant", "Second")])
    assert task.index("[user] First") < task.index("[assistant] Second") < task.index("What now?")
    assert task.endswith("What now?")


def test_image_paths_are_listed_before_the_message() -> None:
    task = build_task("Describe it", [], [Path("/data/media/a.png")])
    assert "- /data/media/a.png" in task and "analyze_image" in task
    assert task.endswith("Describe it")


turn = st.builds(Turn, st.sampled_from(["user", "assistant"]), st.text(max_size=300))


@given(st.lists(turn, max_size=40), st.integers(min_value=0, max_value=4000))
def test_fitted_history_is_a_recent_suffix_within_budget(history: list[Turn], budget: int) -> None:
    kept = fit_history(history, budget)
    assert kept == history[len(history) - len(kept) :]
    assert sum(estimate_tokens(t.content) + MESSAGE_OVERHEAD_TOKENS for t in kept) <= budget
