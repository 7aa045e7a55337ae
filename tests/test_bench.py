"""The benchmark runs end to end at a tiny size (its figures are not judged here, only that it produces them)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO, on_postgresql


@pytest.mark.skipif(on_postgresql(), reason="the benchmark builds its own SQLite world and baseline; it never uses "
                                             "the test database, so the SQLite half covers it")
def test_benchmark_runs_and_agrees_with_its_baseline(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--sizes", "2000", "--per-class", "5", "--serve-seconds", "2",
         "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = json.loads((tmp_path / "results.json").read_text())
    size = results["sizes"][0]
    assert size["listings"] == 2000 and size["import_rows_per_s"] > 0 and size["index_mb"] > 0
    for name, row in size["search"].items():
        assert row["queries"] == 5
        # Without free text, project and baseline must return the same ids in the same order.
        assert row["id_mismatches"] in (0, None), name
    assert {"age_community", "fee_sliding"} <= set(size["search"])  # issue 24's filters, checked against SQL too
    for name, row in size["pages"].items():
        assert row["queries"] == 5 and row["non_200"] == 0 and row["p95_ms"] > 0, name
    assert size["serving"]["requests"] > 0 and size["serving"]["non_2xx"] == 0
    assert "2,000 listings" in done.stdout
