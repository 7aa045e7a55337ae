"""Render bench results (results.json) as the Markdown tables of bench/RESULTS.md.

    python -m bench.report bench/out/results.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _size_label(count: int) -> str:
    return f"{count // 1_000_000}M" if count >= 1_000_000 else f"{count // 1000}k"


def _total(size: dict[str, Any], command: str) -> str:
    # Runs before 2026-11-23 measured only the largest process.
    total = size.get(f"{command}_peak_total_rss_mb")
    return "-" if total is None else f"{total:.0f}"


def markdown(results: dict[str, Any]) -> str:
    """The tables: import and serving per size, then search per class and size, then pages per class and size."""
    sizes = results["sizes"]
    lines = [f"Run of {results['date']} on {results['machine']['cpus']} CPUs, {results['machine']['memory_gb']} GB, "
             f"Python {results['machine']['python']}.", "",
             "| listings | import s | rows/s | import peak RSS MB (largest process / all) | rebuild s "
             "| rebuild peak RSS MB (largest process / all) | index MB "
             "| baseline build s | serve req/s | serve p50 ms | serve p99 ms | non-2xx | worker RSS MB |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for size in sizes:
        serving = size.get("serving") or {}
        lines.append(
            f"| {size['listings']:,} | {size['import_s']:.1f} | {size['import_rows_per_s']:,.0f} "
            f"| {size['import_peak_rss_mb']:.0f} / {_total(size, 'import')} | {size['rebuild_s']:.1f} "
            f"| {size['rebuild_peak_rss_mb']:.0f} / {_total(size, 'rebuild')} "
            f"| {size['index_mb']:.1f} "
            f"| {size['baseline_build_s']:.1f} | {serving.get('requests_per_s', 0):.0f} "
            f"| {serving.get('p50_ms', 0):.1f} "
            f"| {serving.get('p99_ms', 0):.1f} | {serving.get('non_2xx', '-')} "
            f"| {', '.join(f'{r:.0f}' for r in serving.get('worker_rss_mb', []))} |")
    lines += ["", "| class | " + " | ".join(
        f"{_size_label(s['listings'])} p50 / p95 ms (baseline p95) | ratio" for s in sizes) + " | id diffs |",
        "| --- | " + " | ".join("---: | ---:" for _ in sizes) + " | ---: |"]
    for name in sizes[0]["search"]:
        cells = []
        for size in sizes:
            row = size["search"][name]
            cells.append(f"{row['project_p50_ms']:.1f} / {row['project_p95_ms']:.1f} ({row['baseline_p95_ms']:.1f}) "
                         f"| {row['ratio_p95']:.2f}")
        diffs = {size["search"][name]["id_mismatches"] for size in sizes}
        shown_diffs = "-" if diffs == {None} else max(d or 0 for d in diffs)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {shown_diffs} |")
    if "pages" in sizes[0]:  # runs before 2026-12-06 timed no page
        lines += ["", "| page class (GET /, HTML, server time) | " + " | ".join(
            f"{_size_label(s['listings'])} p50 / p95 ms" for s in sizes) + " | non-200 |",
            "| --- | " + " | ".join("---:" for _ in sizes) + " | ---: |"]
        for name in sizes[0]["pages"]:
            rows = [size["pages"][name] for size in sizes]
            lines.append(f"| {name} | " + " | ".join(f"{row['p50_ms']:.1f} / {row['p95_ms']:.1f}" for row in rows)
                         + f" | {sum(row['non_200'] for row in rows)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Print the tables for a results file."""
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "out" / "results.json"
    sys.stdout.write(markdown(json.loads(path.read_text())))


if __name__ == "__main__":
    main()
