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


def _edits(figures: dict[str, Any]) -> str:
    if not figures["edits"]:
        return "no edits made"
    if figures["p50_ms"] is None:
        return f"none found: {figures['misses']} misses of {figures['edits']}"
    return (f"{figures['p50_ms']:,.0f} / {figures['p99_ms']:,.0f} / {figures['max_ms']:,.0f} ms; {figures['misses']} "
            f"misses of {figures['edits']}; slowest edit call on A {figures['edit_call_max_ms']:,.0f} ms")


def _searches(search: dict[str, Any]) -> str:
    return " / ".join(f"{load['p95_ms']:.0f} ms ({load['requests']:,} requests, {load['non_2xx']} non-2xx)"
                      for load in search.values())


def _cores(used: dict[str, float]) -> str:
    return ", ".join(f"{name} {cores:.2f}" for name, cores in used.items())


def nodes_targets(result: dict[str, Any]) -> dict[str, bool | None]:
    """Issue 29's targets, each met or not (None: not measured), from a `python -m bench.nodes` result."""
    edits, imported = result["edits"], result.get("import")
    propagation, applying = edits["with_edits"]["propagation"], imported and imported["edits_while_b_applies"]
    loads = [*edits["with_edits"]["search"].values(), *edits["without_edits"]["search"].values(),
             *(imported["search"].values() if imported else ())]
    errors = sum(load["non_2xx"] for load in loads) + edits["with_edits"]["watcher_errors"] + (
        imported["watcher_errors"] if imported else 0)
    return {"edit propagation to B p99 < 2 s (no import)": propagation["misses"] == 0
            and propagation["p99_ms"] is not None and propagation["p99_ms"] < 2000,
            "edits made while B applies an import: p99 < 5 s": applying["misses"] == 0 and applying["p99_ms"] < 5000
            if applying and applying["p99_ms"] is not None else None,
            "search p95 during edits within 1.2x of without, each node": max(edits["p95_ratio"].values()) <= 1.2,
            "0 non-2xx (search clients and the watcher)": errors == 0}


def nodes_markdown(result: dict[str, Any]) -> str:
    """The figures of a `python -m bench.nodes` result as one table."""
    machine, setup, with_edits, without = (result["machine"], result["setup"], result["edits"]["with_edits"],
                                           result["edits"]["without_edits"])
    rows = [("machine", f"{machine['cores']} cores; load average (1, 5, 15 min) "
                        f"{', '.join(f'{x:.2f}' for x in machine['load_before'])} before, "
                        f"{', '.join(f'{x:.2f}' for x in machine['load_after'])} after; code {result['code']}"),
            ("on the cores", "2 nodes (each a gunicorn master, 2 workers, one index follower), PostgreSQL 15, the "
                             "bench process (a search client per node without pause, the editor, the watcher on B), "
                             "the import CLI in mode 2; \"others\" is the rest of the machine"),
            ("world", f"{setup['world_rows']:,} listings imported through A's CLI in {setup['world_import_s']:.0f} s; "
                      f"B's index built by `flask prepare` in {setup['b_prepare_s']:.0f} s; /ready 200 on A after "
                      f"{setup['A_ready_after_s']:.1f} s, on B after {setup['B_ready_after_s']:.1f} s"),
            ("edits", "`listing_edits.save_edit` (the admin edit form's code) in the bench process, its own index "
                      "folder, a new word appended to a bio each time: both nodes learn of them from the change log"),
            (f"edits on A, {with_edits['edits_made_per_s']:.1f}/s for {setup['edit_seconds']:.0f} s: commit to "
             "found on B, p50 / p99 / max", _edits(with_edits["propagation"])),
            ("watcher's searches on B", f"{with_edits['watcher_requests']:,}, p50 "
                                        f"{with_edits['watcher_request_p50_ms']:.0f} ms, "
                                        f"{with_edits['watcher_errors']} failed"),
            ("search p95 with edits, A / B", _searches(with_edits["search"])),
            ("search p95 without edits, A / B", _searches(without["search"])),
            ("p95 with / without edits, A / B", " / ".join(f"{r:.2f}" for r in result["edits"]["p95_ratio"].values())),
            ("cores used with edits", _cores(with_edits["cores_used"])),
            ("cores used without edits", _cores(without["cores_used"]))]
    unlogged = result["edits"].get("unlogged_edits")
    if unlogged:
        rows += [(f"diagnosis: edits at {unlogged['edits_made_per_s']:.1f}/s that the nodes never hear of (the change "
                  "log's append a no-op in the bench process): search p95, A / B", _searches(unlogged["search"])),
                 ("cores used with unlogged edits", _cores(unlogged["cores_used"]))]
    imported = result.get("import")
    if imported:
        rows += [(f"import of {setup['import_rows']:,} rows through A's CLI ({imported['published_new_rows']:,} "
                  "published)", f"committed after {imported['import_s']:.0f} s, the process ended "
                  f"{imported['commit_to_exit_s']:.1f} s later; B counted all {imported['total_on_a']:,} that A "
                  "counts " + ("never" if imported["commit_to_b_s"] is None else
                               f"{imported['commit_to_b_s']:.1f} s after the commit ({imported['exit_to_b_s']:.1f} s "
                               "after the process ended)")),
                 ("B's /ready while it applies the import", f"503 on {imported['b_not_ready']['probes']} of "
                  f"{imported['b_probes']} probes (every 0.2 s and a search)" + (
                      f", from {imported['b_not_ready']['first_s']:.1f} s to {imported['b_not_ready']['last_s']:.1f} s"
                      " after the commit" if imported["b_not_ready"]["probes"] else "")),
                 ("edits (1/s) numbered before the import's rows (made during its transaction)",
                  _edits(imported["edits_before_the_import"])),
                 ("edits (1/s) numbered after them, made before B had the import", _edits(
                     imported["edits_while_b_applies"])),
                 ("search p95 during the import, A / B", _searches(imported["search"])),
                 ("cores used during the import", _cores(imported["cores_used"]))]
    rows += [(f"target: {name}", {True: "met", False: "**not met**", None: "not measured"}[met])
             for name, met in result["targets"].items()]
    rows += [(f"node {name}'s log", f"{len(lines)} lines of warnings or errors" + (f"; first: `{lines[0]}`" if lines
                                                                                      else ""))
             for name, lines in result["node_log_problems"].items()]
    return "| figure | value |\n| --- | --- |\n" + "".join(f"| {label} | {value} |\n" for label, value in rows)


def main() -> None:
    """Print the tables for a results file (of `python -m bench`, or of `python -m bench.nodes`)."""
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "out" / "results.json"
    results = json.loads(path.read_text())
    sys.stdout.write(nodes_markdown(results) if "edits" in results else markdown(results))


if __name__ == "__main__":
    main()
