"""Read, write and organise files, confined to the owner's allowed folders."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from smolagents import Tool

from tools.common import log_outcome
from tools.paths import PathRefusedError, is_inside, resolve_inside

logger = logging.getLogger(__name__)

OPERATIONS = ("read", "write", "create", "delete", "list", "move", "search")
MAX_LISTED = 200


class FileSystemTool(Tool):
    name = "file_system"
    description = """Files and folders, only inside the allowed folders. Relative paths start in the first one.
Operations:
- read: a text file's content
- write: save `content` to the file (overwrites)
- create: like write, but fails if the file exists
- delete: a file or an empty folder
- list: a folder's entries
- move: move or rename `path` to `destination`
- search: files matching glob `pattern` under folder `path`
Example: file_system(operation="search", path=".", pattern="**/*.pdf")"""
    inputs = {
        "operation": {"type": "string", "description": f"One of: {', '.join(OPERATIONS)}."},
        "path": {"type": "string", "description": 'File or folder. Default: ".".', "nullable": True},
        "content": {"type": "string", "description": "Text, for write and create.", "nullable": True},
        "destination": {"type": "string", "description": "New path, for move.", "nullable": True},
        "pattern": {"type": "string", "description": 'Glob, for search, e.g. "*.txt".', "nullable": True},
    }
    output_type = "string"

    def __init__(self, allowed_dirs: list[Path], max_read_chars: int = 20_000, protected: Sequence[Path] = ()) -> None:
        super().__init__()
        if not allowed_dirs:
            raise ValueError("FileSystemTool needs at least one allowed folder")
        self.allowed_dirs = [Path(d) for d in allowed_dirs]
        self.protected = list(protected)
        self.max_read_chars = max_read_chars
        self.allowed_dirs[0].mkdir(parents=True, exist_ok=True)

    def forward(
        self,
        operation: str,
        path: str | None = None,
        content: str | None = None,
        destination: str | None = None,
        pattern: str | None = None,
    ) -> str:
        started = time.monotonic()
        operation = (operation or "").strip().lower()
        try:
            result = self._dispatch(operation, path or ".", content, destination, pattern)
        except PathRefusedError as exc:
            result = str(exc)
        except OSError as exc:
            # Permissions, full disk, races with other programs: report, don't crash the agent step.
            result = f"ERROR: {operation} failed: {exc.strerror or exc}. Check the path and try again."
        known = operation if operation in OPERATIONS else "unknown"
        return log_outcome(logger, self.name, started, result, operation=known)

    def _dispatch(self, op: str, path: str, content: str | None, destination: str | None, pattern: str | None) -> str:
        if op == "read":
            return self._read(self._resolve(path))
        if op in ("write", "create"):
            if content is None:
                return f'ERROR: {op} needs `content` (the text to save). Pass content="...".'
            return self._write(self._resolve(path), content, overwrite=op == "write")
        if op == "delete":
            return self._delete(self._resolve(path, follow_last=False))
        if op == "list":
            return self._list(self._resolve(path))
        if op == "move":
            if not destination:
                return 'ERROR: move needs `destination` (the new path). Pass destination="...".'
            source = self._resolve(path, follow_last=False)
            return self._move(source, self._resolve(destination))
        if op == "search":
            if not pattern:
                return 'ERROR: search needs a glob `pattern`, e.g. pattern="**/*.txt".'
            return self._search(self._resolve(path), pattern)
        return f"ERROR: unknown operation '{op}'. Use one of: {', '.join(OPERATIONS)}."

    def _resolve(self, raw: str, *, follow_last: bool = True) -> Path:
        return resolve_inside(raw, self.allowed_dirs, follow_last=follow_last, protected=self.protected)

    def _read(self, target: Path) -> str:
        if not target.exists():
            return f'ERROR: {target} does not exist. Use operation="list" or "search" to find the right name.'
        if target.is_dir():
            return f'ERROR: {target} is a folder. Use operation="list" to see what it contains.'
        size = target.stat().st_size
        with target.open("rb") as handle:
            # Bounded read: the cap protects memory too, not only the LLM's context.
            head = handle.read(self.max_read_chars * 4 + 4)
        if b"\x00" in head[:8192]:
            return (
                f"ERROR: {target} is a binary file ({size} bytes), not text. "
                "For images use analyze_image; for other formats try os_exec with a converter."
            )
        text = head.decode("utf-8", errors="replace")
        if len(text) <= self.max_read_chars and len(head) == size:
            return text
        return (
            f"{text[: self.max_read_chars]}\n\n[truncated: showed the first {self.max_read_chars} characters "
            f"of a {size}-byte file. Use os_exec (e.g. `sed -n 200,400p`) to read further parts.]"
        )

    def _write(self, target: Path, content: str, *, overwrite: bool) -> str:
        if target.is_dir():
            return f"ERROR: {target} is a folder; give a file name inside it."
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            # Mode "x" makes "fails if it exists" atomic instead of a check-then-write race.
            with target.open("w" if overwrite else "x", encoding="utf-8") as handle:
                handle.write(content)
        except FileExistsError:
            return f'ERROR: {target} already exists. Use operation="write" to overwrite it, or choose another name.'
        return f"Saved {len(content)} characters to {target}."

    def _is_allowed_root(self, target: Path) -> bool:
        return any(target == root.resolve() for root in self.allowed_dirs)

    def _delete(self, target: Path) -> str:
        if self._is_allowed_root(target):
            return f"ERROR: {target} is an allowed folder itself and cannot be deleted."
        if not target.exists() and not target.is_symlink():
            return f"ERROR: {target} does not exist; nothing was deleted."
        if target.is_dir() and not target.is_symlink():
            if any(target.iterdir()):
                return (
                    f"ERROR: folder {target} is not empty; refusing to delete it. "
                    "Delete the files inside it one by one first (list it to see them)."
                )
            target.rmdir()
            return f"Deleted empty folder {target}."
        target.unlink()
        return f"Deleted {target}."

    def _list(self, target: Path) -> str:
        if not target.is_dir():
            return f"ERROR: {target} is not an existing folder. List its parent folder to see what exists."
        entries = sorted(target.iterdir(), key=lambda p: p.name.lower())
        if not entries:
            return f"{target} is empty."
        lines = [f"{target}:"]
        for entry in entries[:MAX_LISTED]:
            lines.append(f"  {entry.name}/" if entry.is_dir() else f"  {entry.name}  ({_size(entry)})")
        if len(entries) > MAX_LISTED:
            lines.append(f"[{len(entries) - MAX_LISTED} more entries not shown; use search with a pattern]")
        return "\n".join(lines)

    def _move(self, source: Path, destination: Path) -> str:
        if not source.exists() and not source.is_symlink():
            return f"ERROR: {source} does not exist; nothing was moved."
        if self._is_allowed_root(source):
            return f"ERROR: {source} is an allowed folder itself and cannot be moved."
        if destination.is_dir():
            destination = destination / source.name
        if destination.exists():
            return f"ERROR: {destination} already exists. Delete it first or choose another destination."
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(source), str(destination))
        return f"Moved {source} to {destination}."

    def _search(self, base: Path, pattern: str) -> str:
        if not base.is_dir():
            return f"ERROR: {base} is not an existing folder to search in."
        try:
            # glob follows symlinked folders, so each hit is checked again against the allowed folders.
            matches = sorted(str(hit) for hit in base.glob(pattern) if is_inside(hit, self.allowed_dirs))
        except (ValueError, NotImplementedError) as exc:
            return f"ERROR: invalid pattern '{pattern}' ({exc}). Use a relative glob such as '*.txt' or '**/*.md'."
        if not matches:
            return f"No files match '{pattern}' under {base}."
        shown = "\n".join(matches[:MAX_LISTED])
        more = (
            f"\n[{len(matches) - MAX_LISTED} more matches not shown; narrow the pattern]"
            if len(matches) > MAX_LISTED
            else ""
        )
        return f"{len(matches)} match(es) for '{pattern}' under {base}:\n{shown}{more}"


def _size(path: Path) -> str:
    try:
        size = float(path.stat().st_size)
    except OSError:
        return "unreadable"
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"
