"""The project against the PostGIS yardstick and the floor over HTTP (issue 33), on a data set kept by the benchmark.

    python -m bench --sizes 100000 --per-class 5 --serve-seconds 0 --keep --out bench/out
    python -m bench.versus bench/out/n100000 --per-class 60 --out bench/out/versus.json

Builds the database `bench_postgis` from the data set's listings (COPY and index build timed, bench/postgis.py),
records the project's answer to every query of the mix for the floor (bench/floor.py), then serves the three sides
with gunicorn, one worker of one thread each, and sends the mix one request at a time to each side in turn, who goes
first rotating every query, so that noise on the machine falls on all three alike. Prints p50/p95 per class, the
ratios, how many answers of the classes without text differ from the project's (total or page ids), and the
project's import time (the benchmark's results.json beside the data set) against COPY + index build. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from bench.__main__ import CLASSES, REPO, TEXT_CLASSES, free_port, percentile, query_mix, wait_ready
from bench.postgis import load, prepare
from directory import create_app
from directory.listings import all_listings

APPS = {"project": "app:app", "postgis": "bench.postgis:app", "floor": "bench.floor:app", "before": "app:app"}
DATABASE = "bench_postgis"  # the only database this creates or drops
TIMEOUT = 30  # seconds for any one request


def project_env(data: Path) -> dict[str, str]:
    """The environment the project serves a kept data set with. Nothing writes to it while the mix runs, so no side
    follows the change log or runs periodic jobs: with `--before`, two projects share one index folder, and only one
    of them would be elected its follower."""
    return {**os.environ, "DATABASE_URL": f"sqlite:///{data / 'directory.sqlite3'}", "INDEX_DIR": str(data / "indexes"),
            "INSTANCE_PATH": str(data / "instance"), "LOAD_SAMPLE_DATA": "0", "SECRET_KEY": "bench",
            "INDEX_FOLLOWER": "0", "TICK_SECONDS": "0"}


def build(data: Path, server: str, workdir: Path) -> dict[str, Any]:
    """A fresh `bench_postgis` database from the data set's listings: the COPY file written from the project's
    database (not timed), then COPY and the index build (timed)."""
    env = project_env(data)
    app = create_app({"DATABASE_URL": env["DATABASE_URL"], "INDEX_DIR": env["INDEX_DIR"],
                      "INSTANCE_PATH": env["INSTANCE_PATH"], "LOAD_SAMPLE_DATA": False, "SECRET_KEY": "bench"})
    path = workdir / "listings.copy.csv"
    started = time.monotonic()
    with app.test_request_context(), app.extensions["db"]() as session:
        rows = prepare(path, session.scalars(all_listings()))
    prepared = time.monotonic() - started
    try:
        admin = psycopg.connect(make_conninfo(server, dbname="postgres"), autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise SystemExit(f"no PostgreSQL server at {server!r} (--server): {exc}") from None
    with admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {DATABASE}")
    try:
        return {"rows": rows, "prepare_s": prepared, **load(make_conninfo(server, dbname=DATABASE), path)}
    finally:
        path.unlink(missing_ok=True)


def _get(url: str) -> tuple[float, int, bytes]:
    """(seconds, status, body) of one GET."""
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            body, status = response.read(), response.status
    except urllib.error.HTTPError as exc:
        body, status = exc.read(), exc.code
    return time.perf_counter() - started, status, body


def _start(side: str, env: dict[str, str], log: Path, checkout: Path = REPO) -> tuple[subprocess.Popen[bytes], str]:
    """One side under gunicorn, one worker of one thread, on a free loopback port, its code from `checkout`;
    (process, base URL)."""
    port = free_port()
    with log.open("ab") as errors:
        process = subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", "1", "--threads", "1", "-b",
                                    f"127.0.0.1:{port}", "--log-level", "warning", APPS[side]],
                                   cwd=checkout, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                                   stderr=errors)
    return process, f"http://127.0.0.1:{port}"


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def _path(args: dict[str, Any]) -> str:
    return "/api/v1/search?" + urllib.parse.urlencode(args)


def _answer(body: bytes) -> tuple[int, list[str]] | None:
    """(total, page ids) of a search answer; None when it is not one."""
    try:
        found = json.loads(body)
        return found["total"], [result["id"] for result in found["results"]]
    except (ValueError, KeyError, TypeError):
        return None


def _summary(times: list[float]) -> dict[str, float]:
    return {"p50_ms": statistics.median(times) * 1000, "p95_ms": percentile(times, 0.95) * 1000}


def _drive(bases: dict[str, str], mix: list[tuple[str, dict[str, Any]]], deadline: float) -> dict[str, Any]:
    """Send the mix one request at a time to each side in turn; timings, failures and id mismatches by class."""
    sides = tuple(bases)
    times: dict[str, dict[str, list[float]]] = {side: {name: [] for name in CLASSES} for side in sides}
    mismatches, failures = dict.fromkeys(CLASSES, 0), dict.fromkeys(sides, 0)
    examples: list[dict[str, Any]] = []
    for turn, (name, args) in enumerate(mix):
        if time.monotonic() > deadline:
            print(f"stopped at query {turn} of {len(mix)}: the time bound was reached", file=sys.stderr)
            break
        bodies = {}
        for side in sides[turn % len(sides):] + sides[:turn % len(sides)]:
            took, status, bodies[side] = _get(bases[side] + _path(args))
            times[side][name].append(took)
            failures[side] += status != 200
        if name in TEXT_CLASSES:
            continue
        ours, theirs = _answer(bodies["project"]), _answer(bodies["postgis"])
        if ours is None or ours != theirs:
            mismatches[name] += 1
            if len(examples) < 10:
                examples.append({"class": name, "path": _path(args), "project": ours, "postgis": theirs})
    return {"times": times, "mismatches": mismatches, "failures": failures, "examples": examples}


def _table(driven: dict[str, Any]) -> dict[str, Any]:
    """Per class: p50/p95 of each side, the p95 ratios and the id mismatches."""
    table = {}
    for name in CLASSES:
        row: dict[str, Any] = {"queries": len(driven["times"]["project"][name])}
        if not row["queries"]:
            continue
        for side in driven["times"]:
            row[side] = _summary(driven["times"][side][name])
        row["project_over_postgis_p95"] = row["project"]["p95_ms"] / row["postgis"]["p95_ms"]
        if "before" in row:
            row["project_over_before_p95"] = row["project"]["p95_ms"] / row["before"]["p95_ms"]
        row["project_over_floor_p95"] = row["project"]["p95_ms"] / row["floor"]["p95_ms"]
        row["id_mismatches"] = None if name in TEXT_CLASSES else driven["mismatches"][name]
        table[name] = row
    return table


def measure(data: Path, workdir: Path, server: str, per_class: int, seed: int, minutes: float,
            before: Path | None) -> dict[str, Any]:
    """Serve the three sides (four with `before`, the project from another checkout), record the floor, time the
    mix interleaved and stop every server."""
    mix, warm = query_mix(seed, per_class), query_mix(seed + 1, 2)
    env = {**project_env(data), "POSTGIS_DSN": make_conninfo(server, dbname=DATABASE)}
    processes: list[subprocess.Popen[bytes]] = []
    bases: dict[str, str] = {}
    try:
        for side in ("project", "postgis"):
            process, bases[side] = _start(side, env, workdir / f"{side}.log")
            processes.append(process)
        wait_ready(bases["project"], 120)
        wait_ready(bases["postgis"], 120, _path(mix[0][1]))
        # One pass over every query asked later: the project's answers are the floor's; postgis is warmed alike.
        recorded = {}
        for _, args in warm + mix:
            _, status, body = _get(bases["project"] + _path(args))
            if status != 200:
                raise SystemExit(f"the project answered {status} to {_path(args)}: {body[:300]!r}")
            recorded[_path(args)] = body.decode("utf-8")
            _get(bases["postgis"] + _path(args))
        floor_file = workdir / "floor.json"
        floor_file.write_text(json.dumps(recorded), encoding="utf-8")
        process, bases["floor"] = _start("floor", {**env, "FLOOR_FILE": str(floor_file)}, workdir / "floor.log")
        processes.append(process)
        wait_ready(bases["floor"], 120, _path(mix[0][1]))
        if before is not None:
            process, bases["before"] = _start("before", env, workdir / "before.log", before)
            processes.append(process)
            wait_ready(bases["before"], 120)
            for _, args in warm + mix:  # warmed as the project was, by the pass that recorded the floor
                _get(bases["before"] + _path(args))
        for _, args in warm * 2:
            _get(bases["floor"] + _path(args))
        driven = _drive(bases, mix, time.monotonic() + minutes * 60)
        return {"classes": _table(driven), "non_200": driven["failures"], "mismatch_examples": driven["examples"],
                "times_ms": {side: {name: [round(t * 1000, 2) for t in times] for name, times in by_class.items()}
                             for side, by_class in driven["times"].items()}}
    finally:
        _stop(processes)


def project_import(data: Path, results: Path) -> dict[str, Any] | None:
    """The project's import figures for this data set's size from the benchmark's results.json, or None."""
    if not results.is_file():
        return None
    sizes = json.loads(results.read_text())["sizes"]
    size = re.fullmatch(r"n(\d+)", data.name)
    found = [s for s in sizes if size and s["listings"] == int(size.group(1))] or sizes[-1:]
    return {"import_s": found[0]["import_s"], "rebuild_s": found[0].get("rebuild_s"), "from": str(results)} \
        if found else None


def print_report(result: dict[str, Any]) -> None:
    """The figures, for people."""
    print(f"\n== project vs PostGIS vs floor, {result['data']}: gunicorn -w 1 each, one request at a time, "
          f"interleaved ({result['per_class']} a class) ==")
    print(f"{'class':<20}{'proj p50':>9}{'p95':>7}{'pg p50':>8}{'p95':>7}{'floor p50':>10}{'p95':>6}"
          f"{'proj/pg':>9}{'proj/floor':>11}{'id diffs':>9}")
    for name, row in result["classes"].items():
        project, postgis, floor = row["project"], row["postgis"], row["floor"]
        diffs = "-" if row["id_mismatches"] is None else str(row["id_mismatches"])
        print(f"{name:<20}{project['p50_ms']:>9.1f}{project['p95_ms']:>7.1f}{postgis['p50_ms']:>8.1f}"
              f"{postgis['p95_ms']:>7.1f}{floor['p50_ms']:>10.1f}{floor['p95_ms']:>6.1f}"
              f"{row['project_over_postgis_p95']:>9.2f}{row['project_over_floor_p95']:>11.2f}{diffs:>9}")
    if any("before" in row for row in result["classes"].values()):
        print(f"{'class':<20}{'before p50':>11}{'p95':>7}{'now/before p95':>16}   (the project at {result['before']})")
        for name, row in result["classes"].items():
            print(f"{name:<20}{row['before']['p50_ms']:>11.1f}{row['before']['p95_ms']:>7.1f}"
                  f"{row['project_over_before_p95']:>16.2f}")
    print(f"non-200 answers: {result['non_200']}")
    pg, ours = result["postgis_import"], result["project_import"]
    yardstick = pg["copy_s"] + pg["indexes_s"]
    print(f"import of {pg['rows']:,} listings: PostGIS COPY {pg['copy_s']:.1f} s + order, indexes, VACUUM ANALYZE "
          f"{pg['indexes_s']:.1f} s = {yardstick:.1f} s (the COPY file took {pg['prepare_s']:.1f} s to write, "
          "not counted)")
    if ours is None:
        print("project import: unknown (no results.json beside the data set; --results names one)")
    else:
        print(f"project import-csv {ours['import_s']:.1f} s ({ours['import_s'] / yardstick:.1f}x the yardstick; "
              f"index rebuild alone {ours['rebuild_s']:.1f} s), from {ours['from']}")


def main() -> None:
    """Build the yardstick, measure the three sides and print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.versus", description=__doc__.split("\n")[0])
    parser.add_argument("data", type=Path, help="a size's directory kept by `python -m bench --keep`")
    parser.add_argument("--per-class", type=int, default=60, help="queries per class, one at a time")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--server", default="host=127.0.0.1 port=5432 user=postgres",
                        help="PostgreSQL 15 with PostGIS (libpq conninfo, without a database name)")
    parser.add_argument("--results", type=Path, help="the benchmark's results.json (default: beside the data set)")
    parser.add_argument("--minutes", type=float, default=30, help="bound on the timed run")
    parser.add_argument("--out", type=Path, help="write the figures here as JSON")
    parser.add_argument("--before", type=Path, help="also serve the project from this checkout (an earlier commit's "
                        "worktree), interleaved with the rest")
    args = parser.parse_args()
    data = args.data.resolve()
    workdir = data / "versus"
    workdir.mkdir(exist_ok=True)
    result: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M"), "data": str(data), "per_class": args.per_class,
                              "postgis_import": build(data, args.server, workdir),
                              "project_import": project_import(data, args.results or data.parent / "results.json"),
                              "before": str(args.before) if args.before else None}
    result.update(measure(data, workdir, args.server, args.per_class, args.seed, args.minutes, args.before))
    print_report(result)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
