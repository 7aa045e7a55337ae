"""What the change log and its follower cost (issue 26): a big import's time with and without the log, and the
delay from an edit's commit to the edit being searchable on a node under search load.

    python -m bench.follower --rows 100000
    python -m bench.follower --rows 100000 --database postgresql+psycopg://postgres@127.0.0.1:5432/bench_follower

Without the log means the same import with the log's rows not written (the function that appends them replaced by
one that does nothing, in the import's process only). Imports alternate, with and without, so noise on the machine
falls on both. Prints the figures and writes them as JSON. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, make_url, select, text

from bench.__main__ import REPO, free_port, percentile, query_mix, wait_ready, write_csv
from directory import create_app
from directory.models import Listing
from directory.search import sync

# Runs the CLI as `flask` would, in the import's process, with the log's append either replaced by nothing (without
# the log) or timed, its seconds written to the file named by the first argument.
IMPORT = """
import sys, time
from directory.search import change_log
seconds_file, mode = sys.argv[1], sys.argv[2]
append = change_log.append
def timed(session, actions):
    started = time.perf_counter()
    append(session, actions)
    with open(seconds_file, "a") as out:
        out.write(f"{time.perf_counter() - started}\\n")
change_log.append = timed if mode == "with" else (lambda session, actions: None)
from flask.cli import main
sys.argv = ["flask", "--app", "app", *sys.argv[3:]]
main()
"""


def _fresh(database: str | None, workdir: Path, name: str) -> dict[str, str]:
    """The environment of a new, empty world (its own database and index folder)."""
    folder = workdir / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    url = f"sqlite:///{folder / 'directory.sqlite3'}"
    if database:
        server = make_url(database)
        url = server.set(database=f"{server.database}_{name}").render_as_string(hide_password=False)
        with create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT").connect() as admin:
            admin.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
            admin.execute(text(f'CREATE DATABASE "{make_url(url).database}"'))
    return {**os.environ, "DATABASE_URL": url, "INDEX_DIR": str(folder / "indexes"),
            "INSTANCE_PATH": str(folder / "instance"), "LOAD_SAMPLE_DATA": "0", "SECRET_KEY": "bench"}


def _timed(env: dict[str, str], command: list[str]) -> float:
    started = time.monotonic()
    subprocess.run(command, cwd=REPO, env=env, check=True, capture_output=True, timeout=3600)
    return time.monotonic() - started


def imports(csv_path: Path, database: str | None, workdir: Path, rounds: int) -> dict[str, Any]:
    """Import the file into fresh worlds, with and without the log, alternating; seconds of each."""
    times: dict[str, list[float]] = {"with log": [], "without log": []}
    appending: list[float] = []
    for round_ in range(rounds):
        for label in times:
            env = _fresh(database, workdir, f"import_{round_}_{label.replace(' ', '_')}")
            _timed(env, [sys.executable, "-m", "flask", "--app", "app", "index", "check"])  # schema and index
            seconds_file = workdir / f"append_{round_}_{label.replace(' ', '_')}.txt"
            times[label].append(_timed(env, [sys.executable, "-c", IMPORT, str(seconds_file), label.split()[0],
                                             "import-csv", str(csv_path)]))
            if label == "with log":
                appending.append(sum(float(line) for line in seconds_file.read_text().split()))
            print(f"  import {round_ + 1}/{rounds} {label}: {times[label][-1]:.1f} s"
                  + (f", of which writing the log {appending[-1]:.2f} s" if label == "with log" else ""), flush=True)
    best = {label: min(values) for label, values in times.items()}
    return {"seconds": times, "append_seconds": appending, "best_with": best["with log"],
            "best_without": best["without log"], "cost": best["with log"] / best["without log"] - 1,
            "append_share": statistics.median(a / t for a, t in zip(appending, times["with log"], strict=True))}


def _edit_delays(app: Any, base: str, edits: int, through_follower: bool) -> list[float]:
    """Rename listings one at a time through `app` and time each until the server finds the new name."""
    factory = app.extensions["db"]
    if through_follower:
        # As a commit from another node: nothing but the change log tells this node.
        event.remove(factory, "after_commit", sync._after_commit)
    delays = []
    with factory() as session:
        ids = session.scalars(select(Listing.id).where(Listing.published).order_by(Listing.id).limit(edits)).all()
        for n, listing_id in enumerate(ids):
            word = f"Zqx{'follower' if through_follower else 'commit'}{n}x"
            session.get(Listing, listing_id).name = f"Benchmark {word}"
            session.commit()
            committed = time.perf_counter()
            url = f"{base}/api/v1/search?" + urllib.parse.urlencode({"q": word})
            while time.perf_counter() - committed < 30:
                with urllib.request.urlopen(url, timeout=30) as response:
                    if json.load(response)["total"] == 1:
                        break
                time.sleep(0.01)
            delays.append(time.perf_counter() - committed)
    if through_follower:
        event.listen(factory, "after_commit", sync._after_commit)
    return delays


def _searching(urls: list[str], connections: int, stop: threading.Event, answered: list[int]) -> list[threading.Thread]:
    """Threads that search, one request at a time each, until `stop` is set; `answered` counts the answers."""
    def worker(offset: int) -> None:
        i = offset
        while not stop.is_set():
            urllib.request.urlopen(urls[i % len(urls)], timeout=30).read()
            answered.append(1)
            i += connections

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(connections)]
    for thread in threads:
        thread.start()
    return threads


def edit_delays(env: dict[str, str], edits: int, connections: int) -> dict[str, Any]:
    """Under gunicorn (2 workers, follower on) with searches running, the delay from commit to searchable."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}", "app:app"],
                              cwd=REPO, env={**env, "INDEX_FOLLOWER": "1"}, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    app = create_app({"DATABASE_URL": env["DATABASE_URL"], "INDEX_DIR": env["INDEX_DIR"],
                      "INSTANCE_PATH": env["INSTANCE_PATH"], "LOAD_SAMPLE_DATA": False, "SECRET_KEY": "bench",
                      "INDEX_FOLLOWER": False})
    stop = threading.Event()
    try:
        wait_ready(base, 120)
        urls = [base + "/api/v1/search?" + urllib.parse.urlencode(args) for _, args in query_mix(7, 20)]
        result: dict[str, Any] = {}
        for through_follower in (False, True):
            label = "follower" if through_follower else "commit path"
            answered: list[int] = []
            stop.clear()
            threads = _searching(urls, connections, stop, answered)
            started = time.monotonic()
            delays = _edit_delays(app, base, edits, through_follower)
            stop.set()
            for thread in threads:
                thread.join(60)
            result[label] = {"p50_ms": statistics.median(delays) * 1000, "p99_ms": percentile(delays, 0.99) * 1000,
                             "max_ms": max(delays) * 1000, "edits": len(delays),
                             "searches_per_s": len(answered) / (time.monotonic() - started)}
            print(f"  {label}: p50 {result[label]['p50_ms']:.0f} ms, p99 {result[label]['p99_ms']:.0f} ms, "
                  f"max {result[label]['max_ms']:.0f} ms, {result[label]['searches_per_s']:.0f} searches/s beside",
                  flush=True)
        return result
    finally:
        stop.set()
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)


def main() -> None:
    """Measure the import cost and the edit delays, print them and write JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.follower", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2, help="imports with and without the log, each")
    parser.add_argument("--edits", type=int, default=100, help="edits timed, per path")
    parser.add_argument("--connections", type=int, default=2, help="searching clients during the edits")
    parser.add_argument("--database", help="a PostgreSQL URL to make databases beside (default: SQLite files)")
    parser.add_argument("--out", type=Path, help="write the figures here as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-follower-") as folder:
        workdir = Path(folder)
        csv_path = workdir / "listings.csv"
        write_csv(csv_path, args.rows)
        print(f"{args.rows:,} rows, on {'PostgreSQL' if args.database else 'SQLite'}", flush=True)
        result: dict[str, Any] = {"rows": args.rows, "database": "postgresql" if args.database else "sqlite",
                                  "imports": imports(csv_path, args.database, workdir, args.rounds)}
        print(f"import: best {result['imports']['best_with']:.1f} s with the log, "
              f"{result['imports']['best_without']:.1f} s without: {result['imports']['cost']:+.1%}; writing the "
              f"log took {result['imports']['append_share']:.1%} of an import (median)", flush=True)
        world = _fresh(args.database, workdir, "edits")
        subprocess.run([sys.executable, "-m", "flask", "--app", "app", "import-csv", str(csv_path)], cwd=REPO,
                       env=world, check=True, capture_output=True, timeout=3600)
        result["edits"] = edit_delays(world, args.edits, args.connections)
    if args.out:
        args.out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M"), **result}, indent=2))


if __name__ == "__main__":
    main()
