"""send_file and the Outbox: which files may be sent back (confinement, size, count), what a run collects, what the
final event lists, and what GET /files/{id} may still serve (tests/test_service.py has the HTTP side)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from smolagents import ChatMessage, MessageRole, Model, TokenUsage

from events import ErrorEvent, FinalEvent, StepEvent, event_payload
from model_router import ModelRegistry, ResolvedModel
from outbox import MAX_CAPTION_CHARS, Attachment, Outbox
from runner import AgentRunner, PreparedRun, RunRequest
from settings import Settings
from tools import build_tools
from tools.run_context import RunContext, current_run, run_context
from tools.send_file import MAX_FILES_PER_ANSWER, NOT_IN_RUN, SendFileTool

PNG = bytes.fromhex("89504e470d0a1a0a") + b"\x00" * 60  # 68 bytes; only the name decides the mime
SECRET = "sk-live-send-file-0123456789"


class Folders:
    def __init__(self, root: Path) -> None:
        self.files, self.shots, self.media, self.outside = (root / n for n in ("files", "shots", "media", "outside"))
        for folder in (self.files, self.shots, self.media, self.outside):
            folder.mkdir()
        self.env = self.files / ".env.local"
        self.env.write_text("AGENT_API_KEY=x\n")
        (self.outside / "secret.txt").write_text("top secret")

    @property
    def readable(self) -> list[Path]:
        return [self.files, self.shots, self.media]


@pytest.fixture
def folders(tmp_path: Path) -> Folders:
    return Folders(tmp_path)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(
    folders: Folders, max_bytes: int = 1024, ttl_s: float = 60, clock: Clock | None = None
) -> tuple[SendFileTool, Outbox]:
    tool = SendFileTool(folders.readable, protected=[folders.env], max_bytes=max_bytes)
    outbox = Outbox(folders.readable, [folders.env], max_bytes=max_bytes, ttl_s=ttl_s, clock=clock or Clock())
    return tool, outbox


def send(tool: SendFileTool, context: RunContext, path: str | Path, caption: str | None = None) -> str:
    with run_context(context):
        return str(tool(path=str(path), caption=caption))


def attached_line(name: str, size: str) -> str:
    return f"Attached {name} ({size}); it is sent with your final answer. Now call final_answer with a short message."


def test_a_file_in_a_readable_folder_is_recorded_for_the_run_and_the_outbox(folders: Folders) -> None:
    tool, outbox = make(folders)
    shot = folders.shots / "shot.png"
    shot.write_bytes(PNG)
    run = RunContext(outbox=outbox)
    assert send(tool, run, shot, "  Your screen \n") == attached_line("shot.png", "68 bytes")
    [entry] = run.attachments
    assert entry.wire() == {
        "id": entry.id,
        "name": "shot.png",
        "mime": "image/png",
        "size": 68,
        "caption": "Your screen",
    }
    assert len(entry.id) == 24 and outbox.get(entry.id) is entry and entry.path == shot.resolve()
    assert current_run().outbox is None, "the run's context lasts for the call only"


def test_relative_paths_start_in_the_first_folder_and_unknown_kinds_are_octet_stream(folders: Folders) -> None:
    tool, outbox = make(folders, max_bytes=10 * 1024 * 1024)
    (folders.files / "notes").mkdir()
    (folders.files / "notes" / "data.xyz123").write_bytes(b"x" * 3000)
    run = RunContext(outbox=outbox)
    assert send(tool, run, "notes/data.xyz123") == attached_line("data.xyz123", "2.9 KB")
    assert run.attachments[0].mime == "application/octet-stream" and run.attachments[0].caption is None


@pytest.mark.parametrize(
    ("caption", "expected"), [(None, None), ("", None), ("   ", None), ("x" * 2000, "x" * MAX_CAPTION_CHARS)]
)
def test_captions_are_trimmed_capped_and_none_when_empty(
    folders: Folders, caption: str | None, expected: str | None
) -> None:
    tool, outbox = make(folders)
    (folders.files / "a.txt").write_text("a")
    run = RunContext(outbox=outbox)
    assert send(tool, run, "a.txt", caption).startswith("Attached a.txt (1 byte)")
    assert run.attachments[0].caption == expected


def test_files_outside_protected_or_reached_through_an_outward_symlink_are_refused(folders: Folders) -> None:
    tool, outbox = make(folders)
    (folders.files / "link.txt").symlink_to(folders.outside / "secret.txt")
    (folders.media / "up").symlink_to(folders.outside)
    run = RunContext(outbox=outbox)
    for path in (folders.outside / "secret.txt", "../outside/secret.txt", "link.txt", folders.media / "up/secret.txt"):
        result = send(tool, run, path)
        assert result.startswith("ERROR: ") and "outside the allowed folders" in result, path
    assert "protected file" in send(tool, run, folders.env)
    assert "protected file" in send(tool, run, ".env.local")
    assert run.attachments == [] and outbox._entries == {}


def test_a_folder_a_missing_an_empty_or_a_too_large_file_is_refused_with_the_reason(folders: Folders) -> None:
    tool, outbox = make(folders, max_bytes=10)
    (folders.files / "folder").mkdir()
    (folders.files / "empty.txt").write_bytes(b"")
    (folders.files / "big.bin").write_bytes(b"x" * 11)
    (folders.files / "ok.bin").write_bytes(b"x" * 10)
    run = RunContext(outbox=outbox)
    assert send(tool, run, "folder").startswith("ERROR: folder is not a file")
    assert send(tool, run, "nothing.txt").startswith("ERROR: nothing.txt does not exist")
    assert send(tool, run, "empty.txt") == "ERROR: empty.txt is empty; there is nothing to send."
    too_large = send(tool, run, "big.bin")
    assert too_large.startswith("ERROR: big.bin is 11 bytes, over the 10 bytes limit"), too_large
    assert run.attachments == []
    assert send(tool, run, "ok.bin").startswith("Attached ok.bin (10 bytes)"), "exactly the limit is fine"


def test_the_default_limit_is_whatsapps_and_sizes_read_humanly(folders: Folders) -> None:
    settings = Settings(_env_file=None, files_allowed_dirs=str(folders.files))  # type: ignore[call-arg]
    assert settings.agent_max_attachment_bytes == 100 * 1024 * 1024 and settings.agent_attachment_ttl_s == 3600
    tool, outbox = make(folders, max_bytes=settings.agent_max_attachment_bytes)
    with (folders.files / "huge.bin").open("wb") as sparse:
        sparse.truncate(settings.agent_max_attachment_bytes + 1)
    result = send(tool, RunContext(outbox=outbox), "huge.bin")
    assert result.startswith("ERROR: huge.bin is 100.0 MB, over the 100.0 MB limit"), result


def test_at_most_five_files_per_answer_and_the_same_file_twice_is_attached_once(folders: Folders) -> None:
    tool, outbox = make(folders)
    for n in range(MAX_FILES_PER_ANSWER + 1):
        (folders.files / f"f{n}.txt").write_text("x" * (n + 1))
    (folders.shots / "same.png").symlink_to(folders.files / "f0.txt")
    run = RunContext(outbox=outbox)
    first = send(tool, run, "f0.txt")
    assert first == attached_line("f0.txt", "1 byte")
    # The same real file, however it is named, is one attachment and the same answer.
    assert send(tool, run, folders.files / "f0.txt", "again") == first
    assert send(tool, run, folders.shots / "same.png") == first
    assert [a.name for a in run.attachments] == ["f0.txt"] and run.attachments[0].caption is None
    for n in range(1, MAX_FILES_PER_ANSWER):
        assert send(tool, run, f"f{n}.txt").startswith(f"Attached f{n}.txt")
    sixth = send(tool, run, f"f{MAX_FILES_PER_ANSWER}.txt")
    assert sixth.startswith("ERROR: at most 5 files per answer"), sixth
    assert len(run.attachments) == MAX_FILES_PER_ANSWER and len(outbox._entries) == MAX_FILES_PER_ANSWER
    assert send(tool, run, "f3.txt").startswith("Attached f3.txt"), "one already attached is still fine"
    # Another run has its own five.
    assert send(tool, RunContext(outbox=outbox), f"f{MAX_FILES_PER_ANSWER}.txt").startswith("Attached f5.txt")


def test_outside_a_run_nothing_is_attached(folders: Folders) -> None:
    tool, _ = make(folders)
    (folders.files / "a.txt").write_text("a")
    assert tool(path="a.txt") == NOT_IN_RUN
    assert send(tool, RunContext(reply_to="whatsapp:33600000000"), "a.txt") == NOT_IN_RUN
    assert NOT_IN_RUN.startswith("ERROR: files can only be sent from a run")


def test_the_call_log_has_metadata_only_and_reprs_show_no_path_name_or_caption(
    folders: Folders, caplog: pytest.LogCaptureFixture
) -> None:
    tool, outbox = make(folders)
    (folders.files / "diary-SECRETNAME.txt").write_text("SECRET-CONTENT")
    run = RunContext(outbox=outbox)
    with caplog.at_level(logging.DEBUG):
        send(tool, run, "diary-SECRETNAME.txt", "SECRET-CAPTION")
        send(tool, run, "SECRET-MISSING.txt")
    records = [r for r in caplog.records if r.getMessage() == "tool call"]
    assert [(r.tool, r.status, getattr(r, "size", None)) for r in records] == [
        ("send_file", "ok", 14),
        ("send_file", "error", None),
    ]
    assert "SECRET" not in caplog.text + repr([r.__dict__ for r in caplog.records])
    assert "SECRET" not in repr(run) + repr(run.attachments) + repr(outbox.get(run.attachments[0].id))


def test_the_outbox_forgets_expired_files(folders: Folders) -> None:
    clock = Clock()
    _, outbox = make(folders, ttl_s=60, clock=clock)
    (folders.files / "a.txt").write_text("a")
    old = outbox.add(folders.files / "a.txt", None)
    clock.now += 59
    assert outbox.get(old.id) is old and outbox.get("not-an-id") is None
    clock.now += 1
    assert outbox.get(old.id) is None
    another = outbox.add(folders.files / "a.txt", None)
    clock.now += 30
    outbox.add(folders.files / "a.txt", None)
    assert another.id != old.id and another.id in outbox._entries
    clock.now += 31
    outbox.add(folders.files / "a.txt", None)
    assert another.id not in outbox._entries and len(outbox._entries) == 2, "expired entries are pruned on add"


def opened_bytes(outbox: Outbox, entry: Attachment) -> bytes | None:
    opened = outbox.open(entry.id)
    if opened is None:
        return None
    _, file, size = opened
    with file:
        return file.read(size)


def test_the_outbox_serves_a_file_only_while_it_is_still_the_checked_kind_of_file(folders: Folders) -> None:
    _, outbox = make(folders, max_bytes=100)
    shot = folders.shots / "shot.png"
    shot.write_bytes(PNG)
    entry = outbox.add(shot, None)
    assert opened_bytes(outbox, entry) == PNG
    shot.write_bytes(PNG + b"more")
    assert opened_bytes(outbox, entry) == PNG + b"more", "a file changed in place is served as it is now"
    shot.write_bytes(b"x" * 101)
    assert opened_bytes(outbox, entry) is None, "grown over the limit"
    shot.write_bytes(b"")
    assert opened_bytes(outbox, entry) is None, "emptied"
    shot.unlink()
    assert opened_bytes(outbox, entry) is None, "gone"
    shot.symlink_to(folders.outside / "secret.txt")
    assert opened_bytes(outbox, entry) is None, "a symlink swapped in for it leaks nothing"
    shot.unlink()
    (folders.files / "inside.png").write_bytes(PNG)
    shot.symlink_to(folders.files / "inside.png")
    assert opened_bytes(outbox, entry) is None, "not even a file inside: the path must still be the real one"
    shot.unlink()
    shot.mkdir()
    assert opened_bytes(outbox, entry) is None, "a folder"


def test_the_outbox_refuses_a_folder_swapped_for_a_symlink_and_a_file_that_became_protected(folders: Folders) -> None:
    _, outbox = make(folders)
    (folders.media / "in").mkdir()
    (folders.media / "in" / "secret.txt").write_text("fine")
    entry = outbox.add(folders.media / "in" / "secret.txt", None)
    os.rename(folders.media / "in", folders.media / "was")
    (folders.media / "in").symlink_to(folders.outside)
    assert opened_bytes(outbox, entry) is None
    (folders.files / "db.sqlite").write_text("rows")
    db = outbox.add(folders.files / "db.sqlite", None)
    assert opened_bytes(outbox, db) == b"rows"
    outbox.protected.append(folders.files / "db.sqlite")
    assert opened_bytes(outbox, db) is None


# Through the real runner and CodeAgent, with a scripted model (as in tests/test_runner_scripted.py).


class ScriptedModel(Model):
    def __init__(self, replies: list[str | BaseException]) -> None:
        super().__init__(model_id="scripted")
        self.replies = replies
        self.calls = 0

    def generate(self, messages: list[Any], **kwargs: Any) -> ChatMessage:
        self.calls += 1
        reply = self.replies[min(self.calls, len(self.replies)) - 1]
        if isinstance(reply, BaseException):
            raise reply
        return ChatMessage(
            role=MessageRole.ASSISTANT, content=reply, token_usage=TokenUsage(input_tokens=10, output_tokens=5)
        )


def code(body: str) -> str:
    return f"Thought: go\n<code>\n{body}\n</code>"


@pytest.fixture
def make_runner(
    folders: Folders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[list[str | BaseException]], AgentRunner]:
    (tmp_path / "env").mkdir()
    monkeypatch.setenv("MY_CLAW_ENV_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("SEND_FILE_TEST_TOKEN", SECRET)
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        ollama_warm_up=False,
        agent_tools=["send_file"],
        files_allowed_dirs=str(folders.files),
        screenshot_dir=folders.shots,
        media_dir=folders.media,
    )

    def make_one(replies: list[str | BaseException]) -> AgentRunner:
        tools = build_tools(settings, lambda: "unused")
        return AgentRunner(
            settings, ModelRegistry(settings), tools, model_factory=lambda *a, **k: ScriptedModel(replies)
        )

    return make_one


def run(runner: AgentRunner) -> list[Any]:
    return list(runner.events(PreparedRun(RunRequest(message="Send it"), ResolvedModel("qwen3:8b", "ollama"))))


def test_a_run_that_sends_a_screenshot_lists_it_in_its_final_event(
    folders: Folders, make_runner: Callable[[list[str | BaseException]], AgentRunner]
) -> None:
    shot = folders.shots / "shot.png"
    shot.write_bytes(PNG)
    replies: list[str | BaseException] = [
        code(f'print(send_file(path="{shot}", caption="Your screen, key {SECRET}"))'),
        code('final_answer("Here it is.")'),
    ]
    runner = make_runner(replies)
    events = run(runner)
    step = next(e for e in events if isinstance(e, StepEvent))
    assert step.observation is not None and attached_line("shot.png", "68 bytes") in step.observation
    final = events[-1]
    assert isinstance(final, FinalEvent) and final.response == "Here it is."
    [file] = final.attachments
    assert file == {
        "id": file["id"],
        "name": "shot.png",
        "mime": "image/png",
        "size": 68,
        "caption": "Your screen, key [redacted]",
    }
    entry = runner.outbox.get(file["id"])
    assert entry is not None and entry.path == shot.resolve()
    assert event_payload(final)["attachments"] == [file]
    # Each run has its own list: the same file sent again is a new entry, and a run that sends nothing lists none.
    again = run(runner)[-1]
    assert isinstance(again, FinalEvent) and [a["name"] for a in again.attachments] == ["shot.png"]
    assert again.attachments[0]["id"] != file["id"]
    replies[:] = [code('final_answer("Nothing this time.")')]
    assert run(runner)[-1].attachments == []


def test_a_run_without_files_says_so_and_a_failed_run_carries_none(
    folders: Folders, make_runner: Callable[[list[str | BaseException]], AgentRunner]
) -> None:
    final = run(make_runner([code('final_answer("Nothing to send.")')]))[-1]
    assert isinstance(final, FinalEvent) and event_payload(final)["attachments"] == []
    (folders.files / "a.txt").write_text("a")
    failing = make_runner([code('print(send_file(path="a.txt"))'), RuntimeError("model broke")])
    error = run(failing)[-1]
    assert isinstance(error, ErrorEvent) and "attachments" not in event_payload(error)
