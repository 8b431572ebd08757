"""Cleaning of GLM's code tags, and the streaming model wrapper against a fake OpenAI-compatible server."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from smolagents import ChatMessage, MessageRole
from smolagents.utils import parse_code_blobs

from llm import AgentModel, RunCancelled, clean_model_text, first_code_block
from model_router import ResolvedModel
from settings import Settings
from tests.fakes.ollama import FakeOllama
from tests.fakes.openai_compat import FakeOpenAI

TAGS = ("<code>", "</code>")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('Thought: x\n<code>\nfinal_answer("a")\n</code', 'Thought: x\n<code>\nfinal_answer("a")'),
        ("<code>\nprint(1)\n</code></s>", "<code>\nprint(1)\n</code>"),
        ("<code>\nprint(1)\n</s>", "<code>\nprint(1)"),
        ("</code>Thought: x\n<code>\nprint(1)\n</code>\n</code>", "Thought: x\n<code>\nprint(1)\n</code>\n"),
        ("Thought: fine\n<code>\nprint(1)\n</code>", "Thought: fine\n<code>\nprint(1)\n</code>"),
    ],
)
def test_clean_model_text_repairs_glm_endings(raw: str, expected: str) -> None:
    assert clean_model_text(raw) == expected


def test_cleaned_glm_output_parses_after_smolagents_closes_the_block() -> None:
    cleaned = clean_model_text('Thought: x\n<code>\nfinal_answer("a")\n</code')
    assert parse_code_blobs(cleaned + "</code>", TAGS) == 'final_answer("a")'


code_line = st.text(alphabet=st.characters(blacklist_characters="<>"), max_size=40)


@given(code_line, st.sampled_from(["</code", "</s>", "</code></s>", "", "\n</code"]))
def test_any_glm_ending_leaves_a_parsable_block(code: str, ending: str) -> None:
    raw = f"Thought: t\n<code>\nx = {code!r}\n{ending}"
    cleaned = clean_model_text(raw)
    assert "</code</code>" not in cleaned + "</code>"
    assert (
        parse_code_blobs(cleaned + "</code>" if not cleaned.endswith("</code>") else cleaned, TAGS) == f"x = {code!r}"
    )
    assert clean_model_text(cleaned) == cleaned


@pytest.fixture
def zai() -> FakeOpenAI:
    server = FakeOpenAI("test-key").start()
    yield server
    server.stop()


def model_for(server: FakeOpenAI, **kwargs: object) -> AgentModel:
    settings = Settings(_env_file=None, zai_api_key="test-key", zai_base_url=f"{server.url}/v4")  # type: ignore[call-arg]
    return AgentModel(ResolvedModel("glm-4.7", "zai"), settings, **kwargs)  # type: ignore[arg-type]


def test_generate_streams_deltas_and_returns_cleaned_text_with_usage(zai: FakeOpenAI) -> None:
    httpx.post(f"{zai.url}/_fake/script", json={"answers": ['Thought: t\n<code>\nfinal_answer("ok")\n</code']})
    seen: list[str] = []
    message = model_for(zai, on_delta=seen.append).generate([ChatMessage(role=MessageRole.USER, content="hi")])
    assert "".join(seen) == 'Thought: t\n<code>\nfinal_answer("ok")\n</code'
    assert len(seen) > 1, "the answer arrives in several deltas"
    assert message.content == 'Thought: t\n<code>\nfinal_answer("ok")'
    assert message.token_usage is not None and message.token_usage.output_tokens > 0
    assert httpx.get(f"{zai.url}/_fake/requests").json()[-1]["body"]["stream"] is True


def test_generate_stops_between_deltas_once_cancelled(zai: FakeOpenAI) -> None:
    cancel = threading.Event()
    seen: list[str] = []

    def on_delta(text: str) -> None:
        seen.append(text)
        cancel.set()

    with pytest.raises(RunCancelled):
        model_for(zai, on_delta=on_delta, cancel=cancel).generate([ChatMessage(role=MessageRole.USER, content="hi")])
    assert len(seen) == 1


model_text = st.lists(
    st.sampled_from(["<code>", "</code>", "</code", "</s>", "\n", " ", "x", "code", "<", ">", "/"]), max_size=20
).map("".join)


@given(model_text)
def test_cleaning_is_idempotent_and_never_leaves_a_doubled_close_tag(raw: str) -> None:
    cleaned = clean_model_text(raw)
    assert clean_model_text(cleaned) == cleaned
    appended = cleaned if cleaned.endswith("</code>") else cleaned + "</code>"
    assert "</code</code>" not in appended


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            "Thought: a\n```python\nprint(1)\n```\nThen\n```python\nfinal_answer(2)\n```",
            "Thought: a\n<code>\nprint(1)\n</code>",
        ),
        (
            "Thought: a\n<code>\nprint(1)\n</code>\n<code>\nfinal_answer(2)\n</code>",
            "Thought: a\n<code>\nprint(1)\n</code>",
        ),
        ("Thought: a\n```py\nx = 1\n```", "Thought: a\n<code>\nx = 1\n</code>"),
        ("Thought: still writing\n<code>\nprint(1)\n", "Thought: still writing\n<code>\nprint(1)\n"),
        ("Just prose, no code.", "Just prose, no code."),
        ("Here is output:\n```\nnot python\n```", "Here is output:\n```\nnot python\n```"),
        # Labels small models write: smolagents alone would run "3\nx = 1" for python3 and miss Python.
        ("T\n```python3\nx = 1\n```\n```python3\nfinal_answer(x)\n```", "T\n<code>\nx = 1\n</code>"),
        ("T\n```Python\nx = 1\n```", "T\n<code>\nx = 1\n</code>"),
        # A bare fence is code when it parses as Python; output the model expects is skipped.
        (
            "T\n```\nprint(web_search(query='x'))\n```\nThen\n```\nfinal_answer('y')\n```",
            "T\n<code>\nprint(web_search(query='x'))\n</code>",
        ),
        (
            "Expected:\n```\n1. Some result ...\n```\n```py\nx = 2\n```",
            "Expected:\n```\n1. Some result ...\n```\n<code>\nx = 2\n</code>",
        ),
    ],
)
def test_first_code_block_keeps_only_the_first_complete_block(raw: str, expected: str) -> None:
    assert first_code_block(raw) == expected


def test_the_kept_block_parses_as_smolagents_expects() -> None:
    kept = first_code_block("T\n```python\nprint('a')\n```\n```python\nfinal_answer('b')\n```")
    assert parse_code_blobs(kept, TAGS) == "print('a')"


def test_generate_stops_reading_at_stop_at_and_returns_what_was_written(fake_ollama: FakeOllama) -> None:
    """The out-of-steps summary must end before the run's deadline: what the model wrote by then is the reply."""
    httpx.post(
        f"{fake_ollama.url}/_fake/script",
        json={"answers": ["J'ai lu la première page. " * 40], "delta_delay_s": 0.05},
    ).raise_for_status()
    settings = Settings(_env_file=None, ollama_base_url=fake_ollama.url, ollama_warm_up=False)  # type: ignore[call-arg]
    model = AgentModel(ResolvedModel("qwen3:8b", "ollama"), settings)
    started = time.monotonic()
    hi = ChatMessage(role=MessageRole.USER, content=[{"type": "text", "text": "hi"}])
    reply = model.generate([hi], stop_at=started + 0.6)
    assert time.monotonic() - started < 1.5
    text = str(reply.content)
    assert text.startswith("J'ai lu la première page.") and len(text) < len("J'ai lu la première page. " * 40) - 100
