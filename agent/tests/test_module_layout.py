"""Which of the agent's own modules each entry point reaches: the console runs the agent without the web service."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import AGENT_DIR

WEB_PACKAGES = {"fastapi", "starlette", "uvicorn"}


def imports_of(path: Path) -> set[str]:
    """Top-level names of every module `path` imports, at any depth of its code."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def local_module(name: str) -> Path | None:
    for candidate in (AGENT_DIR / f"{name}.py", AGENT_DIR / name / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def reached_from(entry: str) -> tuple[dict[str, Path], set[str]]:
    """The agent's own modules `entry` imports, directly or through one another, and the outside ones they import."""
    local: dict[str, Path] = {}
    outside: set[str] = set()
    todo = [entry]
    while todo:
        name = todo.pop()
        path = local_module(name)
        if path is None:
            outside.add(name)
            continue
        if name in local:
            continue
        local[name] = path
        todo.extend(imports_of(path))
        if path.name == "__init__.py":
            todo.extend(f"{name}/{p.stem}" for p in path.parent.glob("*.py") if p.stem != "__init__")
    return local, outside


def test_the_console_imports_no_web_module() -> None:
    local, outside = reached_from("gradio_app")
    assert {"factory", "runner"} <= local.keys(), "the walk follows the console's real imports"
    assert "main" not in local
    # Gradio itself is built on FastAPI; none of the agent's own modules the console reaches may be.
    own_imports = set().union(*(imports_of(path) for name, path in local.items() if name != "gradio_app"))
    assert not own_imports & WEB_PACKAGES, own_imports & WEB_PACKAGES


def test_the_walk_sees_the_web_service_where_it_is() -> None:
    local, outside = reached_from("main")
    assert {"main", "factory", "runner"} <= local.keys()
    assert "fastapi" in outside
