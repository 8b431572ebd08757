"""Run one shell command on the owner's machine, with a time limit, bounded output and no secrets in its environment.

Not a sandbox: the command runs as the owner. The refusal of commands that name the env files or the gateway's
database is best effort (a shell can spell a file name in endless ways); the real guards are file_system's allowed
folders, the environment scrubbed of secrets, the redaction of every output, and AGENT_TOOLS to switch this off.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from smolagents import Tool

from redact import Redactor, scrubbed_environ
from tools.common import log_outcome
from tools.paths import PathRefusedError, resolve_inside

logger = logging.getLogger(__name__)

IS_WINDOWS = sys.platform == "win32"
SHELL_NAME = "PowerShell" if IS_WINDOWS else "bash"
_READ_CHUNK = 65536
_NEW_GROUP_FLAGS: int = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0) if IS_WINDOWS else 0


class OsExecTool(Tool):
    name = "os_exec"
    description = f"""Run one {SHELL_NAME} command as the owner; returns the return code, stdout and stderr.
Only run what the owner asked for. It is time-limited and long output is cut: print little (| head, | tail).
No interactive programs. Return code not 0: the command failed, read stderr.
Example: os_exec(command="df -h", cwd="projects")"""
    inputs = {
        "command": {"type": "string", "description": f"The {SHELL_NAME} command line."},
        "cwd": {
            "type": "string",
            "description": "Folder to run in, inside the allowed folders. Default: the first one.",
            "nullable": True,
        },
    }
    output_type = "string"

    def __init__(
        self,
        allowed_dirs: list[Path],
        timeout_s: float = 30,
        max_output: int = 10_000,
        protected: Sequence[Path] = (),
        secrets: Redactor | None = None,
    ) -> None:
        super().__init__()
        if not allowed_dirs:
            raise ValueError("OsExecTool needs at least one allowed folder")
        self.allowed_dirs = [Path(d) for d in allowed_dirs]
        self.timeout_s = timeout_s
        self.max_output = max_output
        self.secrets = secrets or Redactor(())
        self._protected = {os.path.realpath(path) for path in protected}
        self._protected_names = _file_name_pattern(protected)

    def forward(self, command: str, cwd: str | None = None) -> str:
        started = time.monotonic()
        return log_outcome(logger, self.name, started, self._run(command, cwd))

    def _run(self, command: str, cwd: str | None) -> str:
        if not command or not command.strip():
            return 'ERROR: empty command. Pass the command line to run, e.g. command="ls -la".'
        try:
            workdir = resolve_inside(cwd or ".", self.allowed_dirs)
        except PathRefusedError as exc:
            return str(exc)
        if self._names_protected(command, workdir):
            return (
                "ERROR: the command names a protected file (the services' .env files or the gateway's database); "
                "refused. These files hold the owner's secrets and messages: do not read or change them, "
                "in any other way either."
            )
        if not workdir.is_dir():
            if workdir == self.allowed_dirs[0].resolve():
                workdir.mkdir(parents=True, exist_ok=True)
            else:
                return (
                    f"ERROR: working folder {workdir} does not exist. Create it with file_system or pick another cwd."
                )
        try:
            proc = subprocess.Popen(
                _shell_argv(command),
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=scrubbed_environ(os.environ, self.secrets),
                # Own process group / session, so a timeout can kill the command and everything it spawned.
                creationflags=_NEW_GROUP_FLAGS,
                start_new_session=not IS_WINDOWS,
            )
        except OSError as exc:
            return f"ERROR: could not start {SHELL_NAME}: {exc}. Is it installed and on PATH?"

        # Readers drain the pipes while the command runs (a full pipe would block it) and keep only
        # what can be shown, so a command printing gigabytes cannot exhaust memory.
        out, err = _Capture(proc.stdout, self.max_output), _Capture(proc.stderr, self.max_output)
        try:
            returncode: int | None = proc.wait(timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            _kill_tree(proc)
            returncode = None
        out.join()
        err.join()
        report = _format(out, err, self.max_output)
        if returncode is None:
            return (
                f"ERROR: the command timed out after {self.timeout_s:g} s and was killed, with every process it started. "
                f"Split the work into shorter steps or make the command faster.\n{report}"
            )
        return f"return code: {returncode}\n{report}"

    def _names_protected(self, command: str, workdir: Path) -> bool:
        """Best effort: a protected file's name in the command, or a word that leads to one (a planted link)."""
        if not self._protected:
            return False
        if self._protected_names is not None and self._protected_names.search(command):
            return True
        for word in _words(command):
            for candidate in (word, word.partition("=")[2]):
                try:
                    if candidate and os.path.realpath(workdir / os.path.expanduser(candidate)) in self._protected:
                        return True
                except ValueError:  # a NUL byte: no such file
                    continue
        return False


class _Capture:
    def __init__(self, stream: IO[bytes] | None, limit: int) -> None:
        # limit * 4 bytes always decodes to at least `limit` characters, whatever the UTF-8 mix.
        self._limit_bytes = limit * 4
        self._data = bytearray()
        self.total = 0
        self._thread = threading.Thread(target=self._drain, args=(stream,), daemon=True)
        self._thread.start()

    def _drain(self, stream: IO[bytes] | None) -> None:
        if stream is None:
            return
        with stream:
            while chunk := stream.read1(_READ_CHUNK):  # type: ignore[attr-defined]
                room = self._limit_bytes - len(self._data)
                if room > 0:
                    self._data += chunk[:room]
                self.total += len(chunk)

    def join(self) -> None:
        # A daemon that escaped the process group may hold the pipe open forever; don't wait on it.
        self._thread.join(timeout=2)

    @property
    def truncated(self) -> bool:
        return self.total > len(self._data)

    def text(self) -> str:
        return bytes(self._data).decode("utf-8", errors="replace")


def _words(command: str) -> list[str]:
    """The command's words as the shell would split them, with `;`, `|`, `&&`, `<`, `>` as separate words."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        return list(lexer)
    except ValueError:  # unbalanced quotes: the shell will refuse it anyway
        return command.split()


def _file_name_pattern(protected: Sequence[Path]) -> re.Pattern[str] | None:
    """The protected files' names (as given and as their links resolve) as whole words of a command line."""
    names = {name for path in protected for name in (path.name, Path(os.path.realpath(path)).name) if name}
    if not names:
        return None
    # `.env` but not `.env.example` nor `my.env`; `my-claw.db` also as `my-claw.db*` or `"my-claw.db"`.
    alternatives = "|".join(re.escape(name) for name in sorted(names, key=len, reverse=True))
    return re.compile(rf"(?<![\w.-])(?:{alternatives})(?![\w.-])", re.IGNORECASE)


def _shell_argv(command: str) -> list[str]:
    if IS_WINDOWS:
        return ["powershell", "-NoProfile", "-NonInteractive", "-Command", command]
    return ["bash", "-c", command]


def _kill_tree(proc: subprocess.Popen[bytes]) -> None:
    try:
        if IS_WINDOWS:
            subprocess.run(["taskkill", "/F", "/T", "/PID", str(proc.pid)], capture_output=True, check=False)
        else:
            os.killpg(proc.pid, signal.SIGKILL)
    except (OSError, subprocess.SubprocessError):
        proc.kill()
    proc.wait()


def _format(out: _Capture, err: _Capture, budget: int) -> str:
    """Fit stdout and stderr into `budget` characters; when both are long each gets half."""
    stdout, stderr = out.text(), err.text()
    cut = out.truncated or err.truncated or len(stdout) + len(stderr) > budget
    stderr = stderr[: max(budget - len(stdout), budget // 2)]
    stdout = stdout[: budget - len(stderr)]
    notice = (
        f"\n[output truncated to {budget} characters; the command printed {out.total + err.total} bytes. "
        "Narrow it down with grep, head or tail.]"
        if cut
        else ""
    )
    return f"--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}{notice}"
