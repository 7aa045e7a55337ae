"""Jobs for the job tests, importable by a worker process (tests/ is on its PYTHONPATH): each attempt is written down
in a file, so the test sees how many ran and when."""

from __future__ import annotations

import time
from pathlib import Path


def refuse_then_succeed(path: str, refusals: int) -> None:
    """Record this attempt's time in `path`; fail while there have been `refusals` attempts or fewer."""
    attempts = Path(path)
    with attempts.open("a") as log:
        log.write(f"{time.time()}\n")
    count = len(attempts.read_text().splitlines())
    if count <= refusals:
        raise ConnectionRefusedError(f"attempt {count} refused")


def attempt_times(path: Path) -> list[float]:
    """When each attempt recorded in `path` ran."""
    return [float(line) for line in path.read_text().splitlines()] if path.exists() else []
