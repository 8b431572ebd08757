from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest
from PIL import Image

from settings import ALL_TOOLS, Settings
from tools import TOOL_SUMMARIES, build_tools


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


def test_build_tools_returns_every_tool_by_default(tmp_path: Path) -> None:
    tools = build_tools(make_settings(tmp_path), lambda: "qwen3-vl:2b")
    assert [tool.name for tool in tools] == list(ALL_TOOLS)


def test_build_tools_returns_only_the_configured_tools(tmp_path: Path) -> None:
    tools = build_tools(make_settings(tmp_path, agent_tools="os_exec,web_search"), lambda: "unused")
    assert [tool.name for tool in tools] == ["os_exec", "web_search"]


def test_every_tool_has_a_summary_and_a_manual_with_examples(tmp_path: Path) -> None:
    assert set(TOOL_SUMMARIES) == set(ALL_TOOLS)
    for tool in build_tools(make_settings(tmp_path), lambda: "unused"):
        assert f"{tool.name}(" in tool.description, tool.name


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
