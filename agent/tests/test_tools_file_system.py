from __future__ import annotations

from pathlib import Path

import pytest

from tools.file_system import FileSystemTool


@pytest.fixture
def fs(allowed: Path) -> FileSystemTool:
    return FileSystemTool([allowed], max_read_chars=100)


def test_file_system_creates_first_allowed_dir_when_missing(tmp_path: Path) -> None:
    root = tmp_path / "not" / "yet"
    FileSystemTool([root])
    assert root.is_dir()


def test_file_system_write_then_read_relative_path(fs: FileSystemTool, allowed: Path) -> None:
    result = fs(operation="write", path="notes/todo.txt", content="buy milk\n")
    assert not result.startswith("ERROR"), result
    assert (allowed / "notes" / "todo.txt").read_text() == "buy milk\n"
    assert fs(operation="read", path="notes/todo.txt") == "buy milk\n"


def test_file_system_write_overwrites(fs: FileSystemTool, allowed: Path) -> None:
    (allowed / "a.txt").write_text("old")
    fs(operation="write", path="a.txt", content="new")
    assert (allowed / "a.txt").read_text() == "new"


def test_file_system_create_fails_if_file_exists(fs: FileSystemTool, allowed: Path) -> None:
    (allowed / "a.txt").write_text("keep me")
    result = fs(operation="create", path="a.txt", content="clobber")
    assert result.startswith("ERROR:") and "already exists" in result
    assert (allowed / "a.txt").read_text() == "keep me"


def test_file_system_create_makes_new_file(fs: FileSystemTool, allowed: Path) -> None:
    assert not fs(operation="create", path="new.txt", content="hi").startswith("ERROR")
    assert (allowed / "new.txt").read_text() == "hi"


def test_file_system_read_truncates_long_files_and_says_so(fs: FileSystemTool, allowed: Path) -> None:
    (allowed / "long.txt").write_text("x" * 500)
    result = fs(operation="read", path="long.txt")
    assert result.startswith("x" * 100)
    assert "x" * 101 not in result
    assert "truncated" in result


def test_file_system_read_refuses_binary_files(fs: FileSystemTool, allowed: Path) -> None:
    (allowed / "blob.bin").write_bytes(b"\x89PNG\x00\x00\x01")
    assert fs(operation="read", path="blob.bin").startswith("ERROR:")


@pytest.mark.parametrize("escape", ["../outside/secret.txt", "notes/../../outside/secret.txt"])
def test_file_system_refuses_dotdot_escape(fs: FileSystemTool, escape: str) -> None:
    result = fs(operation="read", path=escape)
    assert result.startswith("ERROR:") and "outside the allowed folders" in result
    assert "top secret" not in result


def test_file_system_refuses_absolute_path_outside(fs: FileSystemTool, allowed: Path) -> None:
    secret = allowed.parent / "outside" / "secret.txt"
    assert fs(operation="read", path=str(secret)).startswith("ERROR:")
    assert fs(operation="delete", path=str(secret)).startswith("ERROR:")
    assert secret.exists()


def test_file_system_refuses_writing_outside(fs: FileSystemTool, allowed: Path) -> None:
    target = allowed.parent / "outside" / "new.txt"
    assert fs(operation="write", path=str(target), content="x").startswith("ERROR:")
    assert fs(operation="write", path="../outside/new.txt", content="x").startswith("ERROR:")
    assert not target.exists()


def test_file_system_refuses_symlink_escape(fs: FileSystemTool, allowed: Path) -> None:
    outside = allowed.parent / "outside"
    (allowed / "link_dir").symlink_to(outside, target_is_directory=True)
    (allowed / "link_file").symlink_to(outside / "secret.txt")
    for path in ("link_file", "link_dir/secret.txt"):
        result = fs(operation="read", path=path)
        assert result.startswith("ERROR:") and "top secret" not in result
    # A new file under a symlinked folder would land outside: the parent's real path is checked too.
    assert fs(operation="write", path="link_dir/planted.txt", content="x").startswith("ERROR:")
    assert not (outside / "planted.txt").exists()
    assert fs(operation="list", path="link_dir").startswith("ERROR:")


def test_file_system_follows_symlink_that_stays_inside(fs: FileSystemTool, allowed: Path) -> None:
    (allowed / "real.txt").write_text("inside")
    (allowed / "alias.txt").symlink_to(allowed / "real.txt")
    assert fs(operation="read", path="alias.txt") == "inside"


def test_file_system_accepts_second_allowed_dir_by_absolute_path(tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    second.mkdir()
    (second / "b.txt").write_text("second")
    tool = FileSystemTool([first, second])
    assert tool(operation="read", path=str(second / "b.txt")) == "second"


def test_file_system_deletes_file_and_empty_folder(fs: FileSystemTool, allowed: Path) -> None:
    (allowed / "f.txt").write_text("x")
    (allowed / "empty").mkdir()
    assert not fs(operation="delete", path="f.txt").startswith("ERROR")
    assert not fs(operation="delete", path="empty").startswith("ERROR")
    assert not (allowed / "f.txt").exists() and not (allowed / "empty").exists()


def test_file_system_refuses_deleting_non_empty_folder(fs: FileSystemTool, allowed: Path) -> None:
    (allowed / "full").mkdir()
    (allowed / "full" / "keep.txt").write_text("x")
    result = fs(operation="delete", path="full")
    assert result.startswith("ERROR:") and "not empty" in result
    assert (allowed / "full" / "keep.txt").exists()


def test_file_system_refuses_deleting_the_allowed_folder_itself(fs: FileSystemTool, allowed: Path) -> None:
    assert fs(operation="delete", path=".").startswith("ERROR:")
    assert allowed.is_dir()


def test_file_system_delete_of_inside_symlink_removes_link_not_target(fs: FileSystemTool, allowed: Path) -> None:
    (allowed / "real.txt").write_text("keep")
    (allowed / "alias.txt").symlink_to(allowed / "real.txt")
    assert not fs(operation="delete", path="alias.txt").startswith("ERROR")
    assert not (allowed / "alias.txt").is_symlink()
    assert (allowed / "real.txt").read_text() == "keep"


def test_file_system_moves_and_renames(fs: FileSystemTool, allowed: Path) -> None:
    (allowed / "a.txt").write_text("payload")
    (allowed / "archive").mkdir()
    assert not fs(operation="move", path="a.txt", destination="b.txt").startswith("ERROR")
    assert (allowed / "b.txt").read_text() == "payload" and not (allowed / "a.txt").exists()
    assert not fs(operation="move", path="b.txt", destination="archive").startswith("ERROR")
    assert (allowed / "archive" / "b.txt").read_text() == "payload"


def test_file_system_move_refuses_destination_outside(fs: FileSystemTool, allowed: Path) -> None:
    (allowed / "a.txt").write_text("payload")
    assert fs(operation="move", path="a.txt", destination="../outside/a.txt").startswith("ERROR:")
    assert (allowed / "a.txt").exists()
    assert not (allowed.parent / "outside" / "a.txt").exists()


def test_file_system_move_refuses_overwriting(fs: FileSystemTool, allowed: Path) -> None:
    (allowed / "a.txt").write_text("a")
    (allowed / "b.txt").write_text("b")
    assert fs(operation="move", path="a.txt", destination="b.txt").startswith("ERROR:")
    assert (allowed / "b.txt").read_text() == "b"


def test_file_system_search_matches_glob_recursively(fs: FileSystemTool, allowed: Path) -> None:
    (allowed / "docs" / "deep").mkdir(parents=True)
    (allowed / "docs" / "a.pdf").write_bytes(b"%PDF")
    (allowed / "docs" / "deep" / "b.pdf").write_bytes(b"%PDF")
    (allowed / "docs" / "c.txt").write_text("x")
    result = fs(operation="search", path=".", pattern="**/*.pdf")
    assert "a.pdf" in result and "b.pdf" in result and "c.txt" not in result
    assert result.startswith("2 match")


def test_file_system_search_skips_hits_through_escaping_symlinks(fs: FileSystemTool, allowed: Path) -> None:
    (allowed / "link_dir").symlink_to(allowed.parent / "outside", target_is_directory=True)
    assert "secret.txt" not in fs(operation="search", path=".", pattern="**/*.txt")
    assert "secret.txt" not in fs(operation="search", path=".", pattern="../outside/*")


def test_file_system_lists_folder_with_markers(fs: FileSystemTool, allowed: Path) -> None:
    (allowed / "sub").mkdir()
    (allowed / "f.txt").write_text("12345")
    result = fs(operation="list")
    assert "sub/" in result and "f.txt  (5 B)" in result


def test_file_system_unknown_operation_and_missing_arguments_are_errors(fs: FileSystemTool) -> None:
    assert fs(operation="read", path="bad\x00name").startswith("ERROR:")
    assert fs(operation="chmod", path="x").startswith("ERROR:")
    assert fs(operation="write", path="x.txt").startswith("ERROR:")
    assert fs(operation="move", path="x.txt").startswith("ERROR:")
    assert fs(operation="search", path=".").startswith("ERROR:")
    assert fs(operation="read", path="missing.txt").startswith("ERROR:")


def test_file_system_refuses_protected_files_even_inside_an_allowed_folder(allowed: Path) -> None:
    # An owner who allows a folder holding the repository must still not expose .env.local or the database.
    env_local, database = allowed / ".env.local", allowed / "data" / "my-claw.db"
    database.parent.mkdir()
    env_local.write_text("CRON_SECRET=cron-secret-value-0123\n")
    database.write_bytes(b"SQLite format 3\x00rows")
    (allowed / "link").symlink_to(env_local)
    fs = FileSystemTool([allowed], protected=[env_local, database])
    attempts = [
        {"operation": "read", "path": ".env.local"},
        {"operation": "read", "path": str(env_local)},
        {"operation": "read", "path": "link"},
        {"operation": "read", "path": "data/../data/my-claw.db"},
        {"operation": "write", "path": ".env.local", "content": "AGENT_HOST=0.0.0.0\n"},
        {"operation": "delete", "path": "data/my-claw.db"},
        {"operation": "move", "path": ".env.local", "destination": "stolen.txt"},
        {"operation": "move", "path": "link", "destination": "data/my-claw.db"},
    ]
    for arguments in attempts:
        result = fs(**arguments)
        assert result.startswith("ERROR:") and "protected file" in result, (arguments, result)
    assert env_local.read_text() == "CRON_SECRET=cron-secret-value-0123\n"
    assert database.read_bytes() == b"SQLite format 3\x00rows"
    assert ".env.local" in fs(operation="list", path=".")
