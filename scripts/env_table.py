"""Write README's configuration table from .env.example, so the two always agree.

`python3 scripts/env_table.py` rewrites the table between the markers in README.md;
`--check` exits 1 when README is out of date (agent/tests/test_repository_docs.py runs it).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- env-table:begin -->", "<!-- env-table:end -->"
VARIABLE = re.compile(r"^(?:# )?([A-Z][A-Z0-9_]+)=(.*)$")


def rows(example: str) -> list[str]:
    table = ["| variable | default | what it does |", "| --- | --- | --- |"]
    comment: list[str] = []
    for line in example.splitlines():
        if line.startswith("# ----------"):
            table.append(f"| **{line.strip('# -')}** | | |")
            comment = []
        elif match := VARIABLE.match(line):
            name, default = match.groups()
            value = f"`{default}`" if default else "unset"
            table.append(f"| `{name}` | {value} | {' '.join(comment).replace('|', '/')} |")
            comment = []
        elif line.startswith("#"):
            comment.append(line.lstrip("#").strip())
        else:
            comment = []
    return table


def render(readme: str, example: str) -> str:
    start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    return readme[:start] + "\n" + "\n".join(rows(example)) + "\n" + readme[end:]


def main() -> int:
    readme_path = ROOT / "README.md"
    readme = readme_path.read_text()
    wanted = render(readme, (ROOT / ".env.example").read_text())
    if "--check" in sys.argv:
        if wanted != readme:
            sys.stderr.write("README.md's configuration table differs from .env.example: run python3 scripts/env_table.py\n")
            return 1
        return 0
    readme_path.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
