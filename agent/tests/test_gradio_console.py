"""The Gradio console, launched for real and driven through gradio_client against the fake Ollama."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from gradio_app import history_turns
from history import Turn
from tests.conftest import AGENT_DIR, free_port, service_env
from tests.fakes.ollama import FakeOllama
from tests.test_service import script


def test_history_keeps_messages_and_answers_but_not_step_panels() -> None:
    history = [
        {"role": "user", "content": "Bonjour"},
        {"role": "assistant", "content": "thinking", "metadata": {"title": "✍️ Model output"}},
        {"role": "assistant", "content": [{"type": "text", "text": "Salut !"}], "metadata": {}},
    ]
    assert history_turns(history) == [Turn("user", "Bonjour"), Turn("assistant", "Salut !")]


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory, fake_ollama: FakeOllama) -> Iterator[str]:
    tmp: Path = tmp_path_factory.mktemp("console")
    port = free_port()
    env = service_env(tmp, GRADIO_PORT=str(port), OLLAMA_BASE_URL=fake_ollama.url, AGENT_TOOLS="web_search")
    log = (tmp / "gradio.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "gradio_app.py"], cwd=AGENT_DIR, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert process.poll() is None, (tmp / "gradio.log").read_text()
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
    yield url
    process.terminate()
    process.wait(timeout=10)


def test_console_streams_steps_and_the_final_answer(console: str, fake_ollama: FakeOllama) -> None:
    script(
        fake_ollama,
        "Thought: compute.\n<code>\nprint(6 * 7)\n</code>",
        'Thought: answer.\n<code>\nfinal_answer("Il est midi.")\n</code>',
    )
    client = Client(console, verbose=False)
    messages = client.predict("Quelle heure est-il ?", "smart", api_name="/chat")
    titles = [m["metadata"].get("title", "") for m in messages if m.get("metadata")]
    assert any(t.startswith("🛠️ Step 1") for t in titles) and any(t.startswith("🛠️ Step 2") for t in titles)
    assert messages[-1]["content"] == "Il est midi." and not messages[-1]["metadata"]
    assert any("42" in m["content"] for m in messages if m["metadata"].get("title", "").startswith("🛠️ Step 1"))


def test_console_says_when_the_steps_ran_out(console: str, fake_ollama: FakeOllama) -> None:
    looping = 'Thought: again.\n<code>\nprint("page")\n</code>'
    script(fake_ollama, *[looping] * 6, "J'ai lu six pages sans trouver la réponse.")
    messages = Client(console, verbose=False).predict("Lis tout le site", "smart", api_name="/chat")
    assert messages[-1]["content"] == (
        "J'ai lu six pages sans trouver la réponse.\n\n⏹ Stopped after 6 steps, before finishing (step or time limit)."
    )


def test_console_shows_thinking_in_its_own_panel_never_in_the_answer(console: str, fake_ollama: FakeOllama) -> None:
    thought = "The owner asks why; the sky scatters blue light."
    httpx.post(
        f"{fake_ollama.url}/_fake/script",
        json={"answers": [{"text": 'Thought: ok.\n<code>\nfinal_answer("Diffusion.")\n</code>', "thinking": thought}]},
    ).raise_for_status()
    # `reason` thinks (on the local model when Z.ai has no key).
    messages = Client(console, verbose=False).predict("Pourquoi le ciel est bleu ?", "reason", api_name="/chat")
    panels = [m for m in messages if m["metadata"].get("title") == "💭 Thinking"]
    assert [p["content"] for p in panels] == [thought] and panels[0]["metadata"]["status"] == "done"
    assert messages[-1]["content"] == "Diffusion." and thought not in messages[-1]["content"]


def test_console_offers_detected_models_and_reports_missing_ones(console: str) -> None:
    client = Client(console, verbose=False)
    messages = client.predict("hi", "vision", api_name="/chat")
    assert messages[-1]["content"].startswith("Echo")  # the fake has a vision model installed
    with pytest.raises(AppError):
        client.predict("hi", "llama-not-there", api_name="/chat")  # not a dropdown choice: Gradio refuses it
