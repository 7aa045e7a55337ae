"""What ran on the cores during a benchmark: CPU seconds used by named process trees, PostgreSQL, the benchmark's
own process and its finished children, and the whole machine, read from /proc (Linux)."""

from __future__ import annotations

import os
import resource
from pathlib import Path

from bench.__main__ import _process_table, process_tree


def cpu_seconds(trees: dict[str, int]) -> dict[str, float]:
    """CPU seconds used so far: by each named process tree (name → its root's pid), PostgreSQL's processes (every
    database's), this process, its finished children, and the whole machine."""
    ticks, table = os.sysconf("SC_CLK_TCK"), _process_table()

    def read(pid: int, name: str) -> str:
        try:
            return Path(f"/proc/{pid}/{name}").read_text()
        except OSError:
            return ""  # ended since the table was read

    def used(pid: int) -> float:  # its own and its waited children's user and system time
        return sum(int(value) for value in read(pid, "stat").rsplit(")", 1)[-1].split()[11:15]) / ticks

    machine = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:9]]
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {**{name: sum(used(pid) for pid in process_tree(root, table)) for name, root in trees.items()},
            "postgresql": sum(used(pid) for pid in table if read(pid, "comm").strip() == "postgres"),
            "bench process": own.ru_utime + own.ru_stime, "import process": children.ru_utime + children.ru_stime,
            "machine busy": (sum(machine) - machine[3] - machine[4]) / ticks}


def cores_used(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    """Cores used on average between two `cpu_seconds` readings, by each part and by everything else on the machine."""
    used = {name: round((after[name] - before[name]) / seconds, 2) for name in before}
    used["others"] = round(used["machine busy"] - sum(v for k, v in used.items() if k != "machine busy"), 2)
    return used
