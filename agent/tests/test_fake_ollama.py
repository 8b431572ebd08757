"""The fake Ollama behaves like the real server for a qwen3 model: thinking, context, output cap, loading, KV cache,
speeds, images, fences, errors, usage and its records. Raw HTTP against the fake, as the agent and the gateway see it."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.fakes.ollama import FakeOllama
from tests.fakes.ollama_sim import DEFAULT_NUM_CTX, encode

AGENT_DIR = Path(__file__).resolve().parents[1]
MODELS = ("qwen3:8b", "qwen3-vl:2b", "llama3.2:3b")
TASK = "Current message from the owner:\nWhat is the capital of France?"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOllama]:
    server = FakeOllama(models=MODELS).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _reset(fake: FakeOllama) -> None:
    httpx.post(f"{fake.url}/_fake/reset").raise_for_status()


def chat(fake: FakeOllama, messages: list[dict[str, Any]] | None = None, **body: Any) -> httpx.Response:
    payload = {"model": "qwen3:8b", "messages": [{"role": "user", "content": TASK}] if messages is None else messages}
    return httpx.post(f"{fake.url}/api/chat", json={**payload, **body}, timeout=10)


def lines(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.headers["content-type"] == "application/x-ndjson"
    return [json.loads(line) for line in response.text.splitlines() if line]


def streamed(response: httpx.Response) -> tuple[str, str, dict[str, Any]]:
    """(thinking, content, final line) of an NDJSON /api/chat answer."""
    parts = lines(response)
    thinking = "".join(p["message"].get("thinking", "") for p in parts)
    content = "".join(p["message"]["content"] for p in parts)
    assert parts[-1]["done"] is True and all(not p["done"] for p in parts[:-1])
    return thinking, content, parts[-1]


def last_sim(fake: FakeOllama) -> dict[str, Any]:
    return httpx.get(f"{fake.url}/_fake/requests").json()[-1]["body"]["_sim"]


def script(fake: FakeOllama, **body: Any) -> httpx.Response:
    return httpx.post(f"{fake.url}/_fake/script", json=body)


def png(width: int, height: int) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "red").save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


# 1. Thinking


def test_qwen3_thinks_unless_told_not_to_and_others_cannot(fake: FakeOllama) -> None:
    thinking, content, done = streamed(chat(fake))
    assert len(encode(thinking)) > 100 and "Echo: What is the capital of France?" in content
    assert done["eval_count"] == len(encode(thinking)) + len(encode(content))
    assert last_sim(fake)["think"] is True and last_sim(fake)["thinking_tokens"] == len(encode(thinking))

    thinking, content, done = streamed(chat(fake, think=False))
    assert thinking == "" and "Echo: What is the capital of France?" in content
    assert last_sim(fake)["thinking_tokens"] == 0

    refused = chat(fake, model="llama3.2:3b", think=True)
    assert refused.status_code == 400 and refused.json() == {"error": '"llama3.2:3b" does not support thinking'}
    _, content, _ = streamed(chat(fake, model="llama3.2:3b"))
    assert "Echo:" in content and last_sim(fake)["think"] is False


def test_a_stop_string_written_while_thinking_ends_the_call_with_empty_content(fake: FakeOllama) -> None:
    script(fake, answers=[{"thinking": "I will write </code> and then Observation: done"}])
    thinking, content, done = streamed(chat(fake, options={"stop": ["Observation:", "</code>"]}))
    assert thinking == "I will write " and content == "" and done["done_reason"] == "stop"
    # Without thinking the same stop only cuts the content.
    _, content, _ = streamed(chat(fake, think=False, options={"stop": ["</code>"]}))
    assert content.endswith('<code>\nfinal_answer("Echo: What is the capital of France?")\n')


# 2. Context


def test_overflowing_prompt_drops_the_oldest_non_system_messages_and_keeps_the_last(fake: FakeOllama) -> None:
    filler = "The weather report for every town in the valley, hour by hour. " * 12
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Current message from the owner:\nOLDEST " + filler},
        {"role": "assistant", "content": "Noted."},
        {"role": "user", "content": "Current message from the owner:\nMIDDLE " + filler},
        {"role": "user", "content": TASK + " " + filler},
    ]
    # Rendered sizes: system 11 tokens, OLDEST 182, "Noted." 8, MIDDLE 182, last 187, assistant prompt 3 (573).
    _, content, _ = streamed(chat(fake, messages, think=False, options={"num_ctx": 250}))
    sim = last_sim(fake)
    assert sim["num_ctx"] == 250 and sim["truncated_messages"] == 3
    assert sim["prompt_tokens_before_truncation"] == 573 and sim["prompt_tokens"] == 11 + 187 + 3
    assert "What is the capital of France?" in content  # the echo read only what was kept: the last message

    chat(fake, messages, think=False, options={"num_ctx": 385})  # whole messages: "Noted." goes with OLDEST
    assert last_sim(fake)["truncated_messages"] == 2 and last_sim(fake)["prompt_tokens"] == 11 + 182 + 187 + 3
    chat(fake, messages, think=False, options={"num_ctx": 500})
    assert last_sim(fake)["truncated_messages"] == 1 and last_sim(fake)["prompt_tokens"] == 573 - 182

    chat(fake, messages[-1:], think=False, options={"num_ctx": 50})
    assert last_sim(fake)["truncated_messages"] == 0 and last_sim(fake)["prompt_tokens"] > 50  # never dropped

    chat(fake, messages, think=False)
    assert last_sim(fake)["num_ctx"] == DEFAULT_NUM_CTX and last_sim(fake)["truncated_messages"] == 0


# 3. Output cap


def test_num_predict_caps_thinking_plus_content(fake: FakeOllama) -> None:
    thinking, content, done = streamed(chat(fake, options={"num_predict": 30}))
    assert done["done_reason"] == "length" and done["eval_count"] == 30 and content == ""
    assert len(encode(thinking)) == 30
    thinking, content, done = streamed(chat(fake, think=False, options={"num_predict": 5}))
    assert done["done_reason"] == "length" and done["eval_count"] == 5 and content.startswith("Thought")
    _, content, done = streamed(chat(fake, think=False, options={"num_predict": -1}))
    assert done["done_reason"] == "stop" and content.endswith("</code>")


# 4. Loading


def test_loading_keep_alive_and_num_ctx_changes(fake: FakeOllama) -> None:
    chat(fake, think=False)
    assert last_sim(fake)["loaded"] is True and last_sim(fake)["keep_alive"] == 300
    chat(fake, think=False)
    assert last_sim(fake)["loaded"] is False
    assert httpx.post(f"{fake.url}/_fake/clock", json={"advance_s": 301}).json()["clock_s"] > 301
    assert httpx.post(f"{fake.url}/_fake/clock", json={"advance_s": "1h"}).status_code == 400
    chat(fake, think=False, keep_alive="30m")
    assert last_sim(fake)["loaded"] is True and last_sim(fake)["keep_alive"] == 1800
    httpx.post(f"{fake.url}/_fake/clock", json={"advance_s": 1700})
    chat(fake, think=False, keep_alive=-1)
    assert last_sim(fake)["loaded"] is False and last_sim(fake)["keep_alive"] is None
    httpx.post(f"{fake.url}/_fake/clock", json={"advance_s": 10**7})
    chat(fake, think=False, options={"num_ctx": 8192})
    assert last_sim(fake)["loaded"] is True  # never unloaded, but another context size is a reload
    chat(fake, think=False, options={"num_ctx": 8192}, keep_alive=0)
    assert last_sim(fake)["loaded"] is False
    chat(fake, think=False, options={"num_ctx": 8192})
    assert last_sim(fake)["loaded"] is True  # keep_alive 0 unloaded it after the previous answer

    refused = chat(fake, keep_alive="300")
    assert refused.status_code == 400 and refused.json() == {"error": 'time: missing unit in duration "300"'}

    load = chat(fake, [], model="qwen3-vl:2b", keep_alive="1h")
    assert load.json()["done_reason"] == "load" and last_sim(fake)["loaded"] is True
    assert chat(fake, [], model="qwen3-vl:2b").json()["done_reason"] == "load"
    assert last_sim(fake)["loaded"] is False
    assert chat(fake, [], model="qwen3-vl:2b", keep_alive=0).json()["done_reason"] == "unload"
    stats = httpx.get(f"{fake.url}/_fake/stats").json()
    assert "qwen3-vl:2b" not in stats["loaded_models"] and stats["loads"] == 5


# 5. KV prefix cache


def test_a_shared_prefix_is_read_once_and_a_reload_empties_the_cache(fake: FakeOllama) -> None:
    first = [{"role": "system", "content": "You are a helpful assistant. " * 20}, {"role": "user", "content": TASK}]
    chat(fake, first, think=False)
    one = last_sim(fake)
    assert one["cached_tokens"] == 0 and one["evaluated_tokens"] == one["prompt_tokens"]
    second = [*first, {"role": "assistant", "content": "Paris."}, {"role": "user", "content": "And Italy?"}]
    chat(fake, second, think=False)
    two = last_sim(fake)
    assert two["cached_tokens"] == one["prompt_tokens"]
    assert two["evaluated_tokens"] == two["prompt_tokens"] - one["prompt_tokens"] < 20
    chat(fake, second, think=False)
    assert last_sim(fake)["evaluated_tokens"] == 1  # all cached: only the last token is read again
    changed = [{"role": "system", "content": "Today is Monday. " + first[0]["content"]}, *second[1:]]
    chat(fake, changed, think=False)
    assert last_sim(fake)["cached_tokens"] < 10  # a change near the start costs the whole prompt again
    chat(fake, changed, think=False, options={"num_ctx": 8192})
    assert last_sim(fake)["loaded"] is True and last_sim(fake)["cached_tokens"] == 0


# 6. Profiles and images


def test_cpu_and_gpu_profiles_price_the_same_request_differently(fake: FakeOllama) -> None:
    chat(fake, think=False)
    cpu = last_sim(fake)
    assert cpu["profile"] == "cpu"
    expected = 8 + cpu["evaluated_tokens"] / 50 + cpu["output_tokens"] / 8
    assert cpu["sim_seconds"] == pytest.approx(expected)
    httpx.post(f"{fake.url}/_fake/reset")
    assert script(fake, profile="gpu").status_code == 200
    chat(fake, think=False)
    gpu = last_sim(fake)
    assert gpu["profile"] == "gpu" and gpu["evaluated_tokens"] == cpu["evaluated_tokens"]
    assert gpu["sim_seconds"] == pytest.approx(3 + gpu["evaluated_tokens"] / 1500 + gpu["output_tokens"] / 50)
    assert cpu["sim_seconds"] / gpu["sim_seconds"] > 2.5
    assert script(fake, profile="tpu").status_code == 400
    gpu_fake = FakeOllama(profile="gpu").start()
    try:
        chat(gpu_fake, think=False)
        assert last_sim(gpu_fake)["profile"] == "gpu"
    finally:
        gpu_fake.stop()


def test_image_tokens_come_from_the_decoded_size(fake: FakeOllama) -> None:
    body = {"model": "qwen3-vl:2b", "prompt": "What is this?", "images": [png(1920, 1080)], "stream": False}
    answer = httpx.post(f"{fake.url}/api/generate", json=body, timeout=10).json()
    assert answer["response"] == "A red square on a white background." and answer["thinking"]
    sim = last_sim(fake)
    assert sim["image_tokens"] == 69 * 39
    assert sim["evaluated_tokens"] == sim["prompt_tokens"] > 69 * 39
    assert answer["prompt_eval_count"] == sim["evaluated_tokens"]
    stream = httpx.post(f"{fake.url}/api/generate", json={**body, "stream": True}, timeout=10)
    parts = lines(stream)
    assert "".join(p["response"] for p in parts) == "A red square on a white background."
    assert "".join(p.get("thinking", "") for p in parts) == answer["thinking"]
    assert parts[-1]["done"] is True and last_sim(fake)["cached_tokens"] > 69 * 39  # the same image, cached
    messages = [{"role": "user", "content": "What is this?", "images": [png(10, 10)]}]
    chat(fake, messages, model="qwen3-vl:2b", think=False)
    assert last_sim(fake)["image_tokens"] == 64  # the minimum
    assert last_sim(fake)["cached_tokens"] < 5  # another image: the one slot is read again


# 7. Fences


def test_fenced_answers_and_two_block_answers(fake: FakeOllama) -> None:
    _, content, _ = streamed(chat(fake, think=False))
    assert "<code>" in content and "```" not in content
    script(fake, fence_rate=1)
    _, content, _ = streamed(chat(fake, think=False))
    assert content.startswith("Thought:") and '```python\nfinal_answer("Echo: What' in content
    script(fake, fence_rate=0.5)
    fenced = ["```python" in streamed(chat(fake, think=False))[1] for _ in range(4)]
    assert fenced.count(True) == 2
    script(
        fake,
        answers=[
            {"blocks": ["results = web_search('capital of France')\nprint(results)", "final_answer('Paris')"]},
            "Thought: plain\n<code>\nfinal_answer('plain')\n</code>",
            {"fences": False},
        ],
    )
    _, two, _ = streamed(chat(fake, think=False, options={"stop": ["</code>", "Observation:"]}))
    assert two.count("```python\n") == 2 and "final_answer('Paris')\n```" in two  # no stop between the blocks
    assert streamed(chat(fake, think=False))[1] == "Thought: plain\n<code>\nfinal_answer('plain')\n</code>"
    assert "<code>" in streamed(chat(fake, think=False))[1]
    assert script(fake, fence_rate=2).status_code == 400


# 8. Errors


def test_scripted_failure_carries_the_scripted_reason(fake: FakeOllama) -> None:
    reason = "model requires more system memory (9.6 GiB) than is available (4.1 GiB)"
    script(fake, fail_status=500, fail_error=reason)
    failed = chat(fake)
    assert failed.status_code == 500 and failed.json() == {"error": reason}
    assert last_sim(fake)["status"] == 500 and last_sim(fake)["error"] == reason
    httpx.post(f"{fake.url}/_fake/reset")
    script(fake, fail_status=429)
    assert chat(fake).json() == {"error": "scripted failure"}
    httpx.post(f"{fake.url}/_fake/reset")
    assert chat(fake, model="nope:1b").status_code == 404
    script(fake, answers=[{"text": "Thought: half", "stream_error": "llama runner process has terminated"}])
    parts = lines(chat(fake, think=False))
    assert parts[-1] == {"error": "llama runner process has terminated"}


# 9. Usage


def test_usage_counts_and_durations_follow_the_simulation(fake: FakeOllama) -> None:
    answer = chat(fake, stream=False).json()
    sim = last_sim(fake)
    assert answer["message"]["thinking"] and answer["message"]["content"].startswith("Thought")
    assert answer["prompt_eval_count"] == sim["evaluated_tokens"]
    assert answer["eval_count"] == sim["output_tokens"] == sim["thinking_tokens"] + sim["content_tokens"]
    assert answer["load_duration"] == 8_000_000_000
    assert answer["prompt_eval_duration"] == round(sim["evaluated_tokens"] / 50 * 1e9)
    assert answer["eval_duration"] == round(sim["output_tokens"] / 8 * 1e9)
    assert answer["total_duration"] == round(sim["sim_seconds"] * 1e9)
    again = chat(fake, stream=False).json()
    assert again["load_duration"] == 0 and again["prompt_eval_count"] == 1


# 10. Records and stats


def test_records_carry_the_simulation_and_stats_add_it_up(fake: FakeOllama) -> None:
    chat(fake)
    chat(fake, think=False, options={"num_ctx": 8192})
    chat(fake, keep_alive="300")
    records = httpx.get(f"{fake.url}/_fake/requests").json()
    assert [r["path"] for r in records] == ["/api/chat"] * 3
    keys = {
        "prompt_tokens",
        "prompt_tokens_before_truncation",
        "cached_tokens",
        "evaluated_tokens",
        "image_tokens",
        "thinking_tokens",
        "output_tokens",
        "loaded",
        "truncated_messages",
        "done_reason",
        "sim_seconds",
        "profile",
        "num_ctx",
        "think",
        "keep_alive",
    }
    assert all(keys <= r["body"]["_sim"].keys() for r in records)
    assert all("_model_ms" in r["body"] for r in records[:2])
    stats = httpx.get(f"{fake.url}/_fake/stats").json()
    sims = [r["body"]["_sim"] for r in records[:2]]
    assert stats["requests"] == 2 and stats["errors"] == 1 and stats["loads"] == 2
    assert stats["sim_seconds"] == pytest.approx(sum(s["sim_seconds"] for s in sims))
    assert stats["clock_s"] == pytest.approx(stats["sim_seconds"])
    assert stats["output_tokens"] == sum(s["output_tokens"] for s in sims)
    assert stats["loaded_models"]["qwen3:8b"]["num_ctx"] == 8192
    httpx.post(f"{fake.url}/_fake/reset")
    stats = httpx.get(f"{fake.url}/_fake/stats").json()
    assert stats["requests"] == 0 and stats["clock_s"] == 0 and stats["loaded_models"] == {}


def test_command_line_takes_a_profile() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.ollama", "--port", "0", "--profile", "gpu", "--models", "qwen3:8b"],
        cwd=AGENT_DIR,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = f"http://127.0.0.1:{process.stdout.readline().split()[1]}"
        assert httpx.get(f"{url}/_fake/stats").json()["profile"] == "gpu"
        assert httpx.get(f"{url}/api/tags").json()["models"][0]["name"] == "qwen3:8b"
    finally:
        process.kill()
        process.wait()
