"""How a conversation's history becomes the task the agent receives, within the model's context window."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from context import MESSAGE_OVERHEAD_TOKENS, estimate_tokens


@dataclass(frozen=True)
class Turn:
    role: Literal["user", "assistant"]
    content: str


def fit_history(history: Sequence[Turn], budget_tokens: int) -> list[Turn]:
    """The most recent turns whose estimated size fits the budget, oldest first."""
    kept: list[Turn] = []
    used = 0
    for turn in reversed(history):
        cost = estimate_tokens(turn.content) + MESSAGE_OVERHEAD_TOKENS
        if used + cost > budget_tokens:
            break
        kept.append(turn)
        used += cost
    kept.reverse()
    return kept


def history_variants(history: Sequence[Turn], budget_tokens: int) -> list[list[Turn]]:
    """The history that fits the budget, then the same with one more of its oldest turns left out, down to none.

    The first goes into the task; the others are what a later step falls back to when its prompt would overflow.
    """
    kept = fit_history(history, budget_tokens)
    return [kept[dropped:] for dropped in range(len(kept) + 1)]


def build_task(
    message: str, history: Sequence[Turn], image_paths: Sequence[Path] = (), now: datetime | None = None
) -> str:
    """The task text: earlier turns as context, the date, then the current message, which always comes last.

    The date lives here rather than in the system prompt, whose every byte must stay the same between turns.
    """
    sections: list[str] = []
    if history:
        lines = [f"[{turn.role}] {turn.content}" for turn in history]
        sections.append(
            "Earlier in this conversation (oldest first, for context only; do not answer these again):\n"
            + "\n".join(lines)
        )
    if image_paths:
        listed = "\n".join(f"- {path}" for path in image_paths)
        sections.append(
            f"The owner attached images, saved at these paths (use analyze_image to look at them):\n{listed}"
        )
    if now is not None:
        sections.append(f"Now: {now:%A %d %B %Y, %H:%M} ({now.tzname()}).")
    sections.append(f"Current message from the owner:\n{message}")
    return "\n\n".join(sections)
