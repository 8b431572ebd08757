"""Confinement of paths to a set of allowed folders, judged on real paths (symlinks followed)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


class PathRefusedError(ValueError):
    """The path is unusable or resolves outside every allowed folder; str() is a message for the LLM."""


def real_roots(roots: list[Path]) -> list[Path]:
    return [Path(os.path.realpath(root)) for root in roots]


def is_inside(path: Path, roots: list[Path]) -> bool:
    real = Path(os.path.realpath(path))
    return any(real.is_relative_to(root) for root in real_roots(roots))


def resolve_inside(raw: str, roots: list[Path], *, follow_last: bool = True, protected: Sequence[Path] = ()) -> Path:
    """Absolute path for `raw` (relative ones start at roots[0]) if it stays inside the roots.

    realpath follows every symlink that exists, so `..`, absolute paths and links that point away
    are all judged by where they really land; a missing tail (a file about to be created) is joined
    onto its parent's real path. With follow_last=False the last component is kept as written, so
    delete and move act on a symlink itself rather than on its target, which must still be inside.
    A path landing on one of the `protected` files (the env files, the gateway's database) is refused even
    inside the roots, for an owner who allowed a folder that contains them.
    """
    if not raw or not raw.strip():
        raise PathRefusedError("ERROR: no path given. Pass a path inside the allowed folders.")
    try:
        path = Path(raw.strip()).expanduser()
        if not path.is_absolute():
            path = roots[0] / path
        inside = is_inside(path, roots)
        real = Path(os.path.realpath(path))
        if not follow_last and path.is_symlink():
            real = Path(os.path.realpath(path.parent)) / path.name
    except (ValueError, OSError, RuntimeError) as exc:  # NUL bytes, over-long names, no home directory for ~
        raise PathRefusedError(f"ERROR: '{raw}' is not a usable path ({exc}). Pass a plain file path.") from exc
    if not inside:
        raise PathRefusedError(outside_message(raw, roots))
    if is_protected(real, protected):
        raise PathRefusedError(protected_message(raw))
    return real


def is_protected(path: Path, protected: Sequence[Path]) -> bool:
    real = os.path.realpath(path)
    return any(real == os.path.realpath(p) for p in protected)


def protected_message(raw: str) -> str:
    return (
        f"ERROR: '{raw}' is a protected file (the services' secrets or the gateway's database); access refused. "
        "Do not try to read or change it another way."
    )


def outside_message(raw: str, roots: list[Path]) -> str:
    allowed = ", ".join(str(root) for root in real_roots(roots))
    return (
        f"ERROR: '{raw}' is outside the allowed folders ({allowed}); access refused. "
        "Use a path inside one of them (relative paths start in the first one)."
    )
