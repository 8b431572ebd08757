"""AgentRunner in-process against the fake Ollama over real HTTP: what each model call carries, the one-block cut,
the context budget over a whole run, the honest end when steps run out, and the prompt's fixed prefix."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from claw_agent import NO_CODE_ERROR, SUMMARY_MAX_TOKENS
from context import estimate_tokens
from events import ErrorEvent, FinalEvent, StepEvent, ThinkingEvent
from history import Turn
from llm import output_cap
from model_router import ModelRegistry
from runner import AgentRunner, RunRequest
from settings import ALL_TOOLS, Settings
from tests.fakes.ollama import FakeOllama
from tests.fakes.tokens import count_tokens
from tools import build_tools

Runner = Callable[..., AgentRunner]


@pytest.fixture
def ollama() -> Iterator[FakeOllama]:
    server = FakeOllama().start()
    yield server
    server.stop()


@pytest.fixture
def make_runner(ollama: FakeOllama, tmp_path: Path) -> Runner:
    (tmp_path / "files").mkdir()

    def make(**overrides: Any) -> AgentRunner:
        values: dict[str, Any] = {
            "ollama_base_url": ollama.url,
            "agent_tools": ["file_system"],
            "files_allowed_dirs": [str(tmp_path / "files")],
            "ollama_warm_up": False,
            **overrides,
        }
        settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
        registry = ModelRegistry(settings)
        return AgentRunner(settings, registry, build_tools(settings, registry.vision_model))

    return make


def script(ollama: FakeOllama, *answers: str) -> None:
    httpx.post(f"{ollama.url}/_fake/script", json={"answers": list(answers)}).raise_for_status()


def chats(ollama: FakeOllama) -> list[dict[str, Any]]:
    return [r["body"] for r in httpx.get(f"{ollama.url}/_fake/requests").json() if r["path"] == "/api/chat"]


def run(runner: AgentRunner, message: str, history: tuple[Turn, ...] = (), persona: str | None = None) -> list[Any]:
    prepared = runner.prepare(RunRequest(message=message, history=history, system_prompt=persona))
    return list(runner.events(prepared))


def final(events: list[Any]) -> FinalEvent:
    found = [e for e in events if isinstance(e, FinalEvent)]
    assert found, [e for e in events if isinstance(e, ErrorEvent)]
    return found[0]


def texts(body: dict[str, Any]) -> list[str]:
    return [str(m.get("content", "")) for m in body["messages"]]


def prompt_estimate(body: dict[str, Any]) -> int:
    return sum(estimate_tokens(text) + 8 for text in texts(body))


def test_every_ollama_call_sends_think_false_keep_alive_and_the_output_cap(
    make_runner: Runner, ollama: FakeOllama
) -> None:
    script(
        ollama, "Thought: look.\n<code>\nprint(6 * 7)\n</code>", 'Thought: done.\n<code>\nfinal_answer("42")\n</code>'
    )
    assert final(run(make_runner(), "6 fois 7 ?")).response == "42"
    bodies = chats(ollama)
    assert len(bodies) == 2
    for body in bodies:
        assert body["think"] is False
        assert body["keep_alive"] == "30m"
        assert body["options"]["num_predict"] == 1024
        assert body["options"]["num_ctx"] == 8192


def test_owner_settings_for_keep_alive_and_output_cap_reach_ollama(make_runner: Runner, ollama: FakeOllama) -> None:
    run(make_runner(ollama_keep_alive="600", agent_max_output_tokens=300, ollama_num_ctx=4096), "Bonjour")
    body = chats(ollama)[-1]
    assert body["keep_alive"] == 600, "a number of seconds goes as a number: Ollama rejects a numeric string"
    assert body["options"]["num_predict"] == 300 and body["options"]["num_ctx"] == 4096


def test_only_the_first_fenced_block_runs_and_a_guessed_answer_after_it_does_not(
    make_runner: Runner, ollama: FakeOllama
) -> None:
    script(
        ollama,
        "Thought: compute first.\n```python\nprint(17 * 23)\n```\nThen:\n```python\nfinal_answer('a guess')\n```",
        "Thought: I saw it.\n```python\nfinal_answer('391')\n```",
    )
    events = run(make_runner(), "Combien font 17 fois 23 ?")
    assert final(events).response == "391"
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert steps[0].observation is not None and "391" in steps[0].observation
    second = "\n".join(texts(chats(ollama)[1]))
    assert "a guess" not in second, "the text after the first block is not kept in memory either"
    assert "<code>\nprint(17 * 23)\n</code>" in second


def test_a_reply_without_code_is_a_short_error_not_a_finished_step(make_runner: Runner, ollama: FakeOllama) -> None:
    script(
        ollama, "Bonjour ! Comment puis-je vous aider ?", "", 'Thought: ok\n<code>\nfinal_answer("Bonjour !")\n</code>'
    )
    events = run(make_runner(), "Bonjour")
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert [s.error for s in steps[:2]] == [NO_CODE_ERROR, NO_CODE_ERROR]
    assert final(events).response == "Bonjour !"
    third = "\n".join(texts(chats(ollama)[2]))
    assert NO_CODE_ERROR in third
    assert "regex pattern" not in third, "smolagents' long error quotes the whole reply again"


def test_out_of_steps_ends_honestly_in_the_owners_words_and_keeps_the_prompt_prefix(
    make_runner: Runner, ollama: FakeOllama
) -> None:
    looping = 'Thought: again.\n<code>\nprint("page 1")\n</code>'
    summary = "Je me suis arrêté après 2 étapes sans finir ; j'ai seulement lu la page 1."
    script(ollama, looping, looping, summary)
    events = run(make_runner(agent_max_steps=2), "Lis tout le site")
    result = final(events)
    assert result.finished is False
    assert result.response == summary
    assert result.steps == 2
    bodies = chats(ollama)
    assert len(bodies) == 3
    assert texts(bodies[2])[:2] == texts(bodies[0])[:2], "same system prompt and task: Ollama's cache is reused"
    assert "ran out after 2 steps." in texts(bodies[2])[-1]
    assert [b["options"]["num_predict"] for b in bodies] == [1024, 1024, SUMMARY_MAX_TOKENS], "a summary, not a step"


def test_out_of_steps_summary_written_as_code_still_reaches_the_owner_as_text(
    make_runner: Runner, ollama: FakeOllama
) -> None:
    looping = 'Thought: again.\n<code>\nprint("x")\n</code>'
    script(ollama, looping, 'Thought: I stop.\n<code>\nfinal_answer("Arrêté avant la fin : x trouvé.")\n</code>')
    result = final(run(make_runner(agent_max_steps=1), "Cherche"))
    assert result.finished is False and result.response == "Arrêté avant la fin : x trouvé."


def test_a_finished_run_says_so(make_runner: Runner, ollama: FakeOllama) -> None:
    assert final(run(make_runner(), "Bonjour")).finished is True


def test_a_300kb_file_printed_whole_is_capped_and_the_next_prompt_still_fits_with_the_task(
    make_runner: Runner, ollama: FakeOllama, tmp_path: Path
) -> None:
    big = tmp_path / "files" / "big.txt"
    big.write_text("ligne de journal numéro 12345 : tout va bien\n" * 7000)
    assert big.stat().st_size > 300_000
    script(
        ollama,
        f'Thought: read it.\n<code>\ntext = file_system(operation="read", path="{big}")\nprint(text)\n</code>',
        'Thought: done.\n<code>\nfinal_answer("Tout va bien.")\n</code>',
    )
    runner = make_runner(ollama_num_ctx=8192)
    events = run(runner, "Résume le fichier big.txt")
    assert final(events).response == "Tout va bien."
    second = chats(ollama)[1]
    assert prompt_estimate(second) + 1024 <= 8192
    joined = "\n".join(texts(second))
    assert "print(text[4000:8000])" in joined
    assert "Current message from the owner:\nRésume le fichier big.txt" in joined
    # The count is the printed value's real length (file_system's 20,000 characters and its note), and the tool's
    # own note, which says the file is larger still, survives the cap.
    total = int(re.search(r"more characters left out of (\d+)\.", joined).group(1))  # type: ignore[union-attr]
    assert 20_000 < total < 20_400
    assert f"[truncated: showed the first 20000 characters of a {big.stat().st_size}-byte file." in joined
    assert "This content has been truncated" not in joined


def test_every_step_of_a_long_run_fits_num_ctx_shortening_old_observations_then_old_history(
    make_runner: Runner, ollama: FakeOllama
) -> None:
    history = tuple(Turn("user" if i % 2 == 0 else "assistant", f"échange {i} " + "détail " * 150) for i in range(12))
    step = 'Thought: more.\n<code>\nprint("résultat " * 700)\n</code>'
    script(ollama, step, step, step, step, 'Thought: done.\n<code>\nfinal_answer("fini")\n</code>')
    runner = make_runner(ollama_num_ctx=4096, agent_max_output_tokens=512, agent_max_steps=6)
    result = final(run(runner, "Analyse tout", history))
    assert result.response == "fini"
    bodies = chats(ollama)
    assert len(bodies) == 5
    for body in bodies:
        assert prompt_estimate(body) + 512 <= 4096
        assert "Current message from the owner:\nAnalyse tout" in texts(body)[1]
        real = sum(count_tokens(text) + 4 for text in texts(body))
        assert real + 512 <= 4096, "the real Qwen count fits too"
    first_task, last_task = texts(bodies[0])[1], texts(bodies[-1])[1]
    assert "échange 11" in first_task
    assert len(last_task) <= len(first_task)
    last = "\n".join(texts(bodies[-1]))
    assert "old observation left out" in last


def test_a_json_page_read_with_a_small_context_is_shortened_to_fit_not_refused(
    make_runner: Runner, ollama: FakeOllama, tmp_path: Path
) -> None:
    prices = tmp_path / "files" / "prices.json"
    prices.write_text(json.dumps([{"id": i, "price": i * 7.31, "ts": 1_700_000_000 + i} for i in range(2000)]))
    script(
        ollama,
        f'Thought: read.\n<code>\nprint(file_system(operation="read", path="{prices}"))\n</code>',
        'Thought: done.\n<code>\nfinal_answer("Environ 7 300.")\n</code>',
    )
    runner = make_runner(ollama_num_ctx=4096, agent_tools=["web_search", "file_system", "os_exec"])
    assert final(run(runner, "Quel est le prix moyen dans prices.json ?")).response == "Environ 7 300."
    second = chats(ollama)[1]
    assert sum(count_tokens(text) + 4 for text in texts(second)) + 1024 <= 4096, "the real Qwen count fits"
    observation = texts(second)[-1]
    assert '[{"id": 0, "price": 0.0' in observation and "left out to fit the context window" in observation


def test_a_message_too_long_for_the_context_is_refused_before_any_model_call(
    make_runner: Runner, ollama: FakeOllama
) -> None:
    runner = make_runner(ollama_num_ctx=4096)
    with pytest.raises(Exception) as caught:
        runner.prepare(RunRequest(message="é" * 5000))
    assert getattr(caught.value, "status", None) == 413 and "OLLAMA_NUM_CTX" in str(caught.value)
    assert chats(ollama) == []


def test_the_system_prompt_is_byte_identical_across_turns_and_steps(make_runner: Runner, ollama: FakeOllama) -> None:
    runner = make_runner()
    script(ollama, "Thought: a\n<code>\nprint(1)\n</code>", 'Thought: b\n<code>\nfinal_answer("1")\n</code>')
    run(runner, "premier", persona="Tu es Zorglub.")
    run(runner, "second", (Turn("user", "premier"), Turn("assistant", "1")), persona="Tu es Zorglub.")
    systems = [texts(body)[0] for body in chats(ollama)]
    assert len(systems) == 3 and len(set(systems)) == 1
    assert systems[0].endswith("Tu es Zorglub.")
    fixed = runner.system_prompt(None)
    assert systems[0].startswith(fixed), "the warm-up's prompt is a prefix of every turn's"
    assert datetime.now().strftime("%Y") not in fixed, "nothing that changes lives in the fixed part"
    tasks = [texts(body)[1] for body in chats(ollama)]
    assert tasks[0] == tasks[1], "steps of one run share the task too"


def test_the_system_prompt_with_every_tool_costs_at_most_2000_tokens(
    make_runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISPLAY", ":99")
    runner = make_runner(agent_tools=["all"])
    assert len(runner.tools) == len(ALL_TOOLS)
    prompt = runner.system_prompt("Tu es l'assistant de Camille. Réponds en français, brièvement.")
    assert count_tokens(prompt) <= 2000, count_tokens(prompt)
    for tool in runner.tools:
        assert f"def {tool.name}(" in prompt


def test_the_warm_up_loads_the_model_with_the_fixed_prompt_so_the_first_turn_reads_only_its_own_tokens(
    make_runner: Runner, ollama: FakeOllama
) -> None:
    from warmup import Warmer

    runner = make_runner(ollama_warm_up=True)
    warmer = Warmer(runner.settings, runner.registry, runner.system_prompt)
    runner.on_model_used = warmer.used
    assert warmer.warm()
    run(runner, "Bonjour")
    warm, turn = (r["body"] for r in httpx.get(f"{ollama.url}/_fake/requests").json() if r["path"] == "/api/chat")
    assert [m["role"] for m in warm["messages"]] == ["system"]
    assert warm["options"]["num_ctx"] == turn["options"]["num_ctx"] and warm["keep_alive"] == turn["keep_alive"]
    assert turn["messages"][0]["content"].startswith(warm["messages"][0]["content"])
    assert warm["_sim"]["loaded"] is True and turn["_sim"]["loaded"] is False
    fixed = count_tokens(runner.system_prompt(None))
    assert turn["_sim"]["cached_tokens"] >= fixed, "the system prompt was already read"
    assert turn["_sim"]["evaluated_tokens"] < 200
    remaining = warmer.until_unloaded()
    assert remaining is not None and 1790 < remaining <= 1805, "the next warm-up is due when keep-alive runs out"


def test_the_warm_up_comes_again_once_the_model_would_have_been_unloaded_and_a_turn_puts_it_off(
    make_runner: Runner, ollama: FakeOllama, monkeypatch: pytest.MonkeyPatch
) -> None:
    import warmup

    monkeypatch.setattr(warmup, "UNLOAD_MARGIN_S", 0.2)
    runner = make_runner(ollama_warm_up=True, ollama_keep_alive="2s")
    warmer = warmup.Warmer(runner.settings, runner.registry, runner.system_prompt)

    def warm_ups() -> list[dict[str, Any]]:
        requests = httpx.get(f"{ollama.url}/_fake/requests").json()
        return [r for r in requests if r["path"] == "/api/chat" and r["body"]["options"].get("num_predict") == 1]

    warmer.start()  # warms now, then 2.2 s after the model was last used
    deadline = time.monotonic() + 15
    while len(warm_ups()) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(warm_ups()) == 2, "loaded again once keep_alive had run out"
    assert all(w["body"]["keep_alive"] == "2s" for w in warm_ups())
    time.sleep(1.5)
    warmer.used(None)  # a turn used the model: Ollama's timer started again, and so does ours
    time.sleep(1.5)  # past when the next warm-up was due before that turn, before it is due now
    assert len(warm_ups()) == 2, "no warm-up while the model is still loaded"
    while len(warm_ups()) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(warm_ups()) == 3


def test_thinking_is_off_by_default_and_relayed_apart_from_the_answer_when_the_owner_turns_it_on(
    make_runner: Runner, ollama: FakeOllama
) -> None:
    events = run(make_runner(), "Bonjour")
    assert not [e for e in events if isinstance(e, ThinkingEvent)]
    assert chats(ollama)[-1]["_sim"]["thinking_tokens"] == 0
    events = run(make_runner(ollama_think=True), "Bonjour")
    thoughts = "".join(e.text for e in events if isinstance(e, ThinkingEvent))
    assert chats(ollama)[-1]["think"] is True and "owner sent a new message" in thoughts
    # The thinking gets room of its own: with the answer's 1,024 alone, a long thought would leave no answer.
    assert chats(ollama)[-1]["options"]["num_predict"] == 1024 + 2048
    assert chats(ollama)[0]["options"]["num_predict"] == 1024, "no thinking, no extra room"
    assert "owner sent a new message" not in final(events).response
    prepared = make_runner().prepare(RunRequest(message="Pourquoi ?", model="reason"))
    assert prepared.resolved.think is True, "the reason category may think (locally when Z.ai has no key)"
    small = make_runner(ollama_num_ctx=4096).prepare(RunRequest(message="Pourquoi ?", model="reason"))
    assert output_cap(small.resolved, make_runner(ollama_num_ctx=4096).settings) == 2048, "at most half the window"
