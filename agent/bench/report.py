"""Turn the JSON figures in bench/results/ into bench/REPORT.md."""

from __future__ import annotations

import json
import logging
import platform
from datetime import UTC, datetime
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parents[2] / "bench" / "results"
REPORT = RESULTS_DIR.parent / "REPORT.md"


def flatten(figures: dict[str, object], prefix: str = "") -> dict[str, object]:
    """Nested figures as dotted keys (turns.overhead_ms.p50), so each is one row of the table."""
    rows: dict[str, object] = {}
    for key, value in figures.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows.update(flatten(value, f"{name}."))
        else:
            rows[name] = value
    return rows


def render() -> str:
    lines = [
        "# Benchmark report",
        "",
        f"Written by `make bench` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC "
        f"({platform.machine()}, Python {platform.python_version()}). Fake model servers: the figures measure "
        "my-claw's own overhead, not a model's speed.",
    ]
    for path in sorted(RESULTS_DIR.glob("*.json")):
        figures = json.loads(path.read_text())
        lines += ["", f"## {path.stem}", "", "| figure | value |", "| --- | --- |"]
        lines += [f"| {key} | {value} |" for key, value in flatten(figures).items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    REPORT.write_text(render())
    logging.getLogger("bench.report").info("wrote %s", REPORT)


if __name__ == "__main__":
    main()
