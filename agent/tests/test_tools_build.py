from __future__ import annotations

import ast
import logging
import re
import socket
import sys
from pathlib import Path

import pytest
from PIL import Image
from smolagents import Tool

from settings import ALL_TOOLS, Settings
from tests.fakes.tokens import count_tokens
from tools import GUI_TOOLS, TOOL_SUMMARIES, build_tools, tool_availability
from tools.analyze_image import AnalyzeImageTool
from tools.file_system import OPERATIONS
from tools.mouse_keyboard import ACTIONS

# Every token of the tool descriptions is read again on each step; on a CPU an 8B model reads ~50 tokens/s.
# Nine tools: 1,200 tokens with send_file (58); clipboard lost its accents hint (mouse_keyboard's `type` gives it) and
# 30 tokens to make room. Eight tools: 1,172 with schedule_message (125), 1,047 before it.
PROMPT_TOKEN_BUDGET = 1200
# The values of each tool's first argument that the description must name, so that a later cut cannot drop one.
CHOICES: dict[str, tuple[str, ...]] = {
    "file_system": OPERATIONS,
    "mouse_keyboard": ACTIONS,
    "clipboard": ("read", "write"),
}
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="DISPLAY decides only on Linux")


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    values: dict[str, object] = {
        "files_allowed_dirs": str(tmp_path / "files"),
        "screenshot_dir": tmp_path / "shots",
        "media_dir": tmp_path / "media",
        "ollama_base_url": f"http://127.0.0.1:{closed_port}",
        "searxng_url": f"http://127.0.0.1:{closed_port}",
    }
    return Settings(_env_file=None, **{**values, **overrides})


@pytest.fixture
def with_display(monkeypatch: pytest.MonkeyPatch) -> None:
    # Building a tool never connects to the display, so a made-up one is enough.
    monkeypatch.setenv("DISPLAY", ":4242")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)


@pytest.fixture
def without_display(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)


def all_tools(tmp_path: Path) -> list[Tool]:
    return build_tools(make_settings(tmp_path), lambda: "qwen3-vl:2b")


def test_build_tools_returns_every_tool_by_default(tmp_path: Path, with_display: None) -> None:
    assert [tool.name for tool in all_tools(tmp_path)] == list(ALL_TOOLS)


@linux_only
def test_build_tools_leaves_out_gui_tools_without_a_display(
    tmp_path: Path, without_display: None, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path)
    with caplog.at_level(logging.INFO, logger="tools"):
        tools = build_tools(settings, lambda: "unused")
    assert [tool.name for tool in tools] == [name for name in ALL_TOOLS if name not in GUI_TOOLS]
    assert tool_availability(settings) == dict.fromkeys(("clipboard", "screenshot", "mouse_keyboard"), "no display")
    [record] = [r for r in caplog.records if r.getMessage() == "tools_unavailable"]
    assert sorted(record.tools) == sorted(GUI_TOOLS) and record.reason == "no display"


@linux_only
def test_tool_availability_names_only_configured_tools(tmp_path: Path, without_display: None) -> None:
    settings = make_settings(tmp_path, agent_tools="os_exec,clipboard")
    assert tool_availability(settings) == {"clipboard": "no display"}
    assert [tool.name for tool in build_tools(settings, lambda: "unused")] == ["os_exec"]


def test_a_wayland_session_counts_as_a_display(
    tmp_path: Path, without_display: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    assert tool_availability(make_settings(tmp_path)) == {}
    assert [tool.name for tool in all_tools(tmp_path)] == list(ALL_TOOLS)


def test_build_tools_logs_nothing_when_every_tool_works(
    tmp_path: Path, with_display: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="tools"):
        all_tools(tmp_path)
    assert tool_availability(make_settings(tmp_path)) == {}
    assert "tools_unavailable" not in [r.getMessage() for r in caplog.records]


def test_build_tools_returns_only_the_configured_tools(tmp_path: Path) -> None:
    tools = build_tools(make_settings(tmp_path, agent_tools="os_exec,web_search"), lambda: "unused")
    assert [tool.name for tool in tools] == ["os_exec", "web_search"]


def test_every_tool_has_a_summary(tmp_path: Path) -> None:
    assert set(TOOL_SUMMARIES) == set(ALL_TOOLS)


def test_tool_descriptions_fit_the_prompt_budget(tmp_path: Path, with_display: None) -> None:
    tools = all_tools(tmp_path)
    assert len(tools) == len(ALL_TOOLS)
    counts = {tool.name: count_tokens(tool.to_code_prompt()) for tool in tools}
    assert sum(counts.values()) <= PROMPT_TOKEN_BUDGET, counts


def test_tool_descriptions_name_every_argument_and_action(tmp_path: Path, with_display: None) -> None:
    for tool in all_tools(tmp_path):
        for argument, schema in tool.inputs.items():
            assert re.search(rf"\b{argument}\b", tool.description), (tool.name, argument)
            assert schema["description"].strip(), (tool.name, argument)
        for choice in CHOICES.get(tool.name, ()):
            assert re.search(rf"\b{choice}\b", tool.description), (tool.name, choice)
            assert choice in next(iter(tool.inputs.values()))["description"], (tool.name, choice)


def test_each_tool_has_one_example_that_calls_it_right(tmp_path: Path, with_display: None) -> None:
    for tool in all_tools(tmp_path):
        examples = [line for line in tool.description.splitlines() if line.startswith("Example: ")]
        assert len(examples) == 1, tool.name
        call = ast.parse(examples[0].removeprefix("Example: "), mode="eval").body
        assert isinstance(call, ast.Call) and isinstance(call.func, ast.Name), examples[0]
        assert call.func.id == tool.name and not call.args, examples[0]
        given = {keyword.arg: ast.literal_eval(keyword.value) for keyword in call.keywords}
        assert set(given) <= set(tool.inputs), (tool.name, given)
        required = {name for name, schema in tool.inputs.items() if not schema.get("nullable")}
        assert required <= set(given), (tool.name, given)
        kinds = {"string": str, "integer": int}
        for name, value in given.items():
            assert isinstance(value, kinds[tool.inputs[name]["type"]]), (tool.name, name)
        if tool.name in CHOICES:
            first = next(iter(tool.inputs))
            assert given[first] in CHOICES[tool.name], (tool.name, given)


def test_build_tools_applies_os_exec_settings(tmp_path: Path) -> None:
    [os_exec] = build_tools(make_settings(tmp_path, agent_tools="os_exec", os_exec_max_output=100), lambda: "unused")
    assert "[output truncated to 100 characters" in os_exec(command="yes | head -c 1000")


def test_analyze_image_from_settings_reads_screenshot_and_media_dirs(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, agent_tools="analyze_image")
    [analyze] = build_tools(settings, lambda: "qwen3-vl:2b")
    for folder in (settings.screenshot_dir, settings.media_dir):
        folder.mkdir(parents=True)
        Image.new("RGB", (4, 4)).save(folder / "x.png")
        # Ollama is deliberately down: reaching that error proves the path itself was accepted.
        assert "Ollama is not reachable" in analyze(image_path=str(folder / "x.png"))
    outside = tmp_path / "elsewhere.png"
    Image.new("RGB", (4, 4)).save(outside)
    assert "outside the allowed folders" in analyze(image_path=str(outside))


def test_analyze_image_from_settings_caps_its_answer_at_agent_max_output_tokens(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, agent_tools="analyze_image", agent_max_output_tokens=333)
    [analyze] = build_tools(settings, lambda: "qwen3-vl:2b")
    assert isinstance(analyze, AnalyzeImageTool) and analyze.max_output_tokens == 333


def test_tool_logs_carry_metadata_but_never_content(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    [file_system, os_exec] = build_tools(make_settings(tmp_path, agent_tools="file_system,os_exec"), lambda: "unused")
    with caplog.at_level(logging.INFO, logger="tools"):
        file_system(operation="write", path="diary.txt", content="SECRET-DIARY-TEXT")
        os_exec(command="echo SECRET-COMMAND-OUTPUT; exit 1")
        file_system(operation="read", path="../escape")
    records = [r for r in caplog.records if r.name.startswith("tools.")]
    assert [(r.tool, r.status) for r in records] == [("file_system", "ok"), ("os_exec", "ok"), ("file_system", "error")]
    assert all(isinstance(r.duration_ms, int) for r in records)
    assert "SECRET" not in caplog.text and "SECRET" not in str([r.__dict__ for r in records])
