"""The task the agent receives: history within a token budget, the current message last."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from history import Turn, build_task, estimate_tokens, fit_history, history_budget


def test_keeps_the_most_recent_turns_that_fit_oldest_first() -> None:
    turns = [Turn("user", f"message number {i} " + "x" * 70) for i in range(10)]
    kept = fit_history(turns, budget_tokens=3 * (estimate_tokens(turns[0].content) + 4))
    assert [t.content for t in kept] == [t.content for t in turns[-3:]]


def test_no_budget_means_no_history() -> None:
    assert fit_history([Turn("user", "hello")], 0) == []


def test_budget_leaves_room_for_the_answer_and_the_prompt() -> None:
    assert history_budget(8192, 4000, "hi") == 8192 - 1024 - 4000 - estimate_tokens("hi")
    assert history_budget(4096, 5000, "hi") == 0


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
    assert sum(estimate_tokens(t.content) + 4 for t in kept) <= budget
