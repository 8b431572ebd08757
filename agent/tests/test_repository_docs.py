"""Repository-level promises: README's configuration table is the one .env.example generates."""

from __future__ import annotations

import subprocess
import sys

from settings import REPO_ROOT


def test_readme_configuration_table_matches_env_example() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "env_table.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
