from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from redact import Redactor
from tools.os_exec import OsExecTool

pytestmark = pytest.mark.skipif(os.name == "nt", reason="commands below are bash")


def test_os_exec_returns_stdout_stderr_and_return_code(allowed: Path) -> None:
    result = OsExecTool([allowed])(command="echo out; echo err >&2; exit 3")
    assert result.startswith("return code: 3")
    assert "--- stdout ---\nout\n" in result
    assert "--- stderr ---\nerr\n" in result


def test_os_exec_runs_in_first_allowed_dir_by_default(allowed: Path) -> None:
    result = OsExecTool([allowed])(command="pwd")
    assert str(allowed.resolve()) in result


def test_os_exec_runs_in_requested_cwd_inside(allowed: Path) -> None:
    (allowed / "sub").mkdir()
    result = OsExecTool([allowed])(command="pwd", cwd="sub")
    assert str((allowed / "sub").resolve()) in result


@pytest.mark.parametrize("cwd", ["..", "/", "sub/../.."])
def test_os_exec_refuses_cwd_outside_allowed_dirs(allowed: Path, cwd: str) -> None:
    result = OsExecTool([allowed])(command="touch ran.txt", cwd=cwd)
    assert result.startswith("ERROR:") and "outside the allowed folders" in result
    assert not (allowed.parent / "ran.txt").exists()


def test_os_exec_timeout_kills_the_whole_process_group(allowed: Path, tmp_path: Path) -> None:
    marker = tmp_path / "survivor.txt"
    # The background child would write the marker after 3 s if the group kill missed it.
    command = f"(sleep 3 && echo alive > {marker}) & sleep 30"
    started = time.monotonic()
    result = OsExecTool([allowed], timeout_s=1)(command=command)
    assert result.startswith("ERROR:") and "timed out" in result
    assert time.monotonic() - started < 20
    time.sleep(4)
    assert not marker.exists()


def test_os_exec_timeout_keeps_output_printed_so_far(allowed: Path) -> None:
    result = OsExecTool([allowed], timeout_s=1)(command="echo started; sleep 30")
    assert "timed out" in result and "started" in result


def test_os_exec_caps_output_and_says_so(allowed: Path) -> None:
    result = OsExecTool([allowed], max_output=200)(command="yes abcdefghij | head -c 100000")
    assert result.startswith("return code: 0")
    assert "[output truncated to 200 characters" in result
    assert result.count("abcdefghij") <= 20


def test_os_exec_output_cap_keeps_room_for_stderr(allowed: Path) -> None:
    result = OsExecTool([allowed], max_output=200)(command="yes x | head -c 5000; echo IMPORTANT >&2")
    assert "IMPORTANT" in result


def test_os_exec_short_output_is_not_marked_truncated(allowed: Path) -> None:
    assert "truncated" not in OsExecTool([allowed], max_output=200)(command="echo hi")


def test_os_exec_refuses_empty_command(allowed: Path) -> None:
    assert OsExecTool([allowed])(command="   ").startswith("ERROR:")


def test_os_exec_runs_without_secret_variables(allowed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBCHAT_TOKEN", "webchat-token-value-0123")
    monkeypatch.setenv("MY_SERVICE_PASSWORD", "hunter2-hunter2")
    monkeypatch.setenv("SOME_URL", "https://me:known-secret-99@example.org")
    monkeypatch.setenv("PLAIN_SETTING", "kept")
    tool = OsExecTool([allowed], secrets=Redactor(["known-secret-99"]))
    result = tool(command="env")
    assert "PLAIN_SETTING=kept" in result
    for gone in ("WEBCHAT_TOKEN", "webchat-token-value", "MY_SERVICE_PASSWORD", "hunter2", "SOME_URL"):
        assert gone not in result


@pytest.mark.parametrize(
    "command",
    [
        "cat .env.local",
        "cat ../../.env",
        "cat {env_local}",
        "grep KEY '{env_local}'",
        "head -c 100 /srv/my-claw/.env*",
        "sqlite3 {database} .dump",
        "cp gateway/data/my-claw.db-wal /tmp/x",
        "tail settings-link",
        "wc --files0-from={link}",
    ],
)
def test_os_exec_refuses_commands_naming_protected_files(allowed: Path, tmp_path: Path, command: str) -> None:
    env_local, database = tmp_path / "repo" / ".env.local", tmp_path / "repo" / "gateway" / "data" / "my-claw.db"
    database.parent.mkdir(parents=True)
    env_local.write_text("CRON_SECRET=x\n")
    # A link planted in the allowed folder under an innocent name: judged by where it lands.
    link = allowed / "settings-link"
    link.symlink_to(env_local)
    protected = [env_local.with_name(".env"), env_local, database, database.with_name("my-claw.db-wal")]
    marker = allowed / "ran"
    result = OsExecTool([allowed], protected=protected)(
        command=command.format(env_local=env_local, database=database, link=link) + f"; touch {marker}"
    )
    assert result.startswith("ERROR:") and "refused" in result
    assert not marker.exists()


@pytest.mark.parametrize("command", ["cat .env.example", "ls my.env", "python3 -m venv .venv", "echo environment"])
def test_os_exec_allows_names_that_only_look_alike(allowed: Path, tmp_path: Path, command: str) -> None:
    protected = [tmp_path / ".env", tmp_path / ".env.local", tmp_path / "my-claw.db"]
    assert "refused" not in OsExecTool([allowed], protected=protected, timeout_s=5)(command=command)
