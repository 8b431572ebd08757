"""How a conversation's history becomes the task the agent receives, within the model's context window."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

# Local models' tokenizers differ; 3.5 characters a token errs on the side of sending less.
CHARS_PER_TOKEN = 3.5
# Room kept for the model's answer (a thought, a code block and the final answer).
ANSWER_RESERVE_TOKENS = 1024


@dataclass(frozen=True)
class Turn:
    role: Literal["user", "assistant"]
    content: str


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def fit_history(history: Sequence[Turn], budget_tokens: int) -> list[Turn]:
    """The most recent turns whose estimated size fits the budget, oldest first."""
    kept: list[Turn] = []
    used = 0
    for turn in reversed(history):
        cost = estimate_tokens(turn.content) + 4
        if used + cost > budget_tokens:
            break
        kept.append(turn)
        used += cost
    kept.reverse()
    return kept


def history_budget(num_ctx: int, fixed_prompt_tokens: int, message: str) -> int:
    """Tokens left for history once the system prompt, the message and the answer are counted."""
    return max(0, num_ctx - ANSWER_RESERVE_TOKENS - fixed_prompt_tokens - estimate_tokens(message))


def build_task(message: str, history: Sequence[Turn], image_paths: Sequence[Path] = ()) -> str:
    """The task text: earlier turns as context, then the current message, which always comes last."""
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
    sections.append(f"Current message from the owner:\n{message}")
    return "\n\n".join(sections)
