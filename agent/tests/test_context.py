"""The context budget: a token estimate that never undercounts, capped observations, prompts that always fit."""

from __future__ import annotations

import base64
import json
import os

import pytest
from smolagents import ChatMessage, MessageRole

from context import ContextBudget, ContextOverflowError, cap_text, estimate_messages, estimate_tokens, message_text
from tests.fakes.tokens import count_tokens

SAMPLES = {
    "french": "Bonjour ! Peux-tu me dire quelle température il fera demain à Lyon, et réserver une table ? Merci, c’est très gentil.",
    # The project's own Python, frozen (runner.py's first 6,000 characters before it was split), so that editing a
    # module does not change what is measured.
    "code": open(os.path.join(os.path.dirname(__file__), "samples", "code.txt"), encoding="utf-8").read(),
    "json": json.dumps([{"id": i, "price": i * 1.37, "name": f"item-{i}"} for i in range(200)]),
    "numbers": " ".join(str(n * 7919) for n in range(1000)),
    "base64": base64.b64encode(os.urandom(3000)).decode(),
    "cjk": "我们明天在东京见面吧，天气很好。" * 20,
    "emoji": "🙂🚀✨ ok " * 100,
    "whitespace": "    \n\t  " * 300,
    "prose": "The quick brown fox jumps over the lazy dog, then naps until noon. " * 40,
    "csv": "\n".join(f"2026-11-{d:02d},Lyon,{d * 3.5:.1f},OK" for d in range(1, 31)),
}


@pytest.mark.parametrize("name", sorted(set(SAMPLES) - {"base64"}))
def test_estimate_never_undercounts_qwen_tokens(name: str) -> None:
    text = SAMPLES[name]
    assert estimate_tokens(text) >= count_tokens(text), name


def test_random_base64_is_within_the_margin_the_output_cap_leaves() -> None:
    # The one kind of text a BPE cuts finer than any cheap rule: within 10%, which an unused output cap absorbs.
    assert estimate_tokens(SAMPLES["base64"]) >= 0.9 * count_tokens(SAMPLES["base64"])


def test_estimate_is_not_wildly_pessimistic_for_prose_and_code() -> None:
    for name in ("french", "code"):
        assert estimate_tokens(SAMPLES[name]) <= 2 * count_tokens(SAMPLES[name]), name


def test_cap_keeps_the_start_and_says_how_much_was_left_out_and_how_to_read_more() -> None:
    text = "a" * 10_000
    capped = cap_text(text, 4000)
    assert capped.startswith("a" * 4000) and not capped.startswith("a" * 4001)
    assert "6000 more characters left out of 10000" in capped
    assert "print(text[4000:8000])" in capped
    assert cap_text("short", 4000) == "short"


def test_cap_keeps_a_tools_closing_note() -> None:
    note = "[truncated: showed the first 20000 characters of a 300090-byte file. Use os_exec to read further.]"
    printed = "Execution logs:\n" + "b" * 20_000 + "\n\n" + note + "\nLast output from code snippet:\nNone"
    capped = cap_text(printed, 4000)
    assert capped.endswith("\n" + note)
    assert f"{len(printed) - 4000} more characters left out of {len(printed)}." in capped
    assert cap_text("c" * 5000 + "\n[1, 2, 3]\n", 4000).endswith("instead of printing it whole.]"), "data is no note"


def _msg(role: MessageRole, text: str) -> ChatMessage:
    return ChatMessage(role=role, content=[{"type": "text", "text": text}])


def _run(
    observations: list[str], task: str = "New task:\nCurrent message from the owner:\nRésume ce fichier"
) -> list[ChatMessage]:
    messages = [_msg(MessageRole.SYSTEM, "You are the assistant." * 20), _msg(MessageRole.USER, task)]
    for index, observation in enumerate(observations):
        messages.append(_msg(MessageRole.ASSISTANT, f"Thought: step {index}\n<code>\nprint(x)\n</code>"))
        messages.append(_msg(MessageRole.TOOL_RESPONSE, f"Observation:\n{observation}"))
    return messages


def test_a_prompt_that_fits_is_sent_unchanged() -> None:
    messages = _run(["short result"])
    assert ContextBudget(10_000).fit(messages) == messages


def test_oldest_observations_are_shortened_first_and_the_latest_is_kept_whole() -> None:
    messages = _run(["A" * 4000, "B" * 4000, "C" * 4000])
    budget = estimate_messages(messages) - 1000
    fitted = ContextBudget(budget).fit(messages)
    texts = [message_text(m) for m in fitted]
    assert estimate_messages(fitted) <= budget
    assert "characters of this old observation left out" in texts[3]
    assert texts[-1] == message_text(messages[-1])
    assert texts[:3] == [message_text(m) for m in messages[:3]], "system prompt, task and first reply untouched"
    assert texts[5] == message_text(messages[5]), "only as much as needed is shortened"


def test_history_goes_only_after_every_older_observation() -> None:
    long_task = (
        "New task:\nEarlier in this conversation:\n[user] "
        + "h" * 6000
        + "\n\nCurrent message from the owner:\nEt maintenant ?"
    )
    short_task = "Current message from the owner:\nEt maintenant ?"
    messages = _run(["A" * 3000, "B" * 3000], task=long_task)
    budget = estimate_messages(messages) - 2500
    fitted = ContextBudget(budget, task_variants=(short_task,)).fit(messages)
    assert estimate_messages(fitted) <= budget
    assert message_text(fitted[1]) == "New task:\n" + short_task
    assert "left out" in message_text(fitted[3])


def test_overflow_that_nothing_can_fix_is_an_error_not_a_silent_truncation() -> None:
    messages = _run(["x" * 20_000])
    system_prompt = estimate_messages(messages[:1])
    with pytest.raises(ContextOverflowError):
        ContextBudget(system_prompt + 50).fit(messages)


def test_the_latest_observation_alone_too_long_keeps_what_fits_with_a_note() -> None:
    # A small num_ctx (4096, less the output cap) and one printed page of JSON, after a shortened older one.
    page = '{"id": 12345, "name": "Élodie", "tags": ["a", "b"]},\n' * 80
    messages = _run(["older " * 400, page])
    budget = estimate_messages(messages) - estimate_tokens(page) // 2
    fitted = ContextBudget(budget).fit(messages)
    assert estimate_messages(fitted) <= budget
    latest = message_text(fitted[-1])
    assert latest.startswith(message_text(messages[-1])[:500]), "its start is kept"
    assert "more characters of this observation left out to fit the context window" in latest
    assert estimate_messages(fitted) > budget - 100, "it keeps as much as fits, not a few lines"
    assert "old observation left out" in message_text(fitted[3]), "older observations went first"


def test_long_earlier_replies_go_last_when_nothing_else_is_left() -> None:
    messages = _run(["ok", "ok"])
    messages[2] = _msg(MessageRole.ASSISTANT, "Thought: " + "blabla " * 800)
    budget = estimate_messages(messages) - 500
    fitted = ContextBudget(budget).fit(messages)
    assert estimate_messages(fitted) <= budget
    assert "characters of this earlier reply left out" in message_text(fitted[2])
    assert message_text(fitted[-2]) == message_text(messages[-2]), "the latest reply stays whole"
