"""Several nodes on one PostgreSQL database (issue 29): how long an edit made on node A takes to be searchable on
node B while both serve searches, what the edits cost those searches, and how long B takes to take in a big import
made through A, with edits made on A meanwhile.

    python -m bench.nodes --rows 100000 --out bench/nodes-2026-12-06.json
    python -m bench.nodes --rows 5000 --edit-seconds 10 --import-rows 5000      # a quick try

A node is a gunicorn master with 2 workers and an index folder of its own; both share one new database (made
beside --database, dropped at the end). Each node follows the change log: woken by PostgreSQL's NOTIFY, polling
besides. The edits are made in this process with the admin edit form's code (`listing_edits.save_edit`) over the
same database, with an index folder of its own, so that both nodes learn of them through the change log alone.
Prints the figures as a markdown table (`python -m bench.report FILE` prints it again) and writes them as JSON.
Asserts nothing about time.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import csv
import functools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import unittest.mock
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, func, make_url, select, text

from bench.__main__ import REPO, free_port, percentile, python_load, query_mix, wait_ready, write_csv
from bench.cores import cores_used, cpu_seconds
from bench.follower import _fresh, _timed
from bench.report import nodes_markdown, nodes_targets
from directory import create_app
from directory.imports.csv_writing import listing_values
from directory.listing_edits import save_edit
from directory.models import Listing, ListingChange
from directory.search import change_log

EDIT_GIVE_UP = 30.0  # seconds after its commit an edit not found on B counts as a miss
IMPORT_GIVE_UP = 1800.0  # the same for an edit made behind an import, which B applies after the import's rows
NEW_ROWS_WORD = "zqnewrowx"  # in every imported row's bio: B's total for it counts the rows it has taken in
IMPORT_PREFIX = "nodes-import-"  # of the imported rows' external ids, which the world's lack
PROBLEMS = ("ERROR", "CRITICAL", "Traceback", "TIMEOUT", "WARNING")  # in a node's output, something went wrong


def _flask(*args: str) -> list[str]:
    return [sys.executable, "-m", "flask", "--app", "app", *args]


def _word(kind: str, n: int) -> str:
    """A word no listing has, the n-th of its kind: letters only, ending in x, which no stemming rule touches."""
    return "zq" + kind + "".join(chr(97 + n // 26**i % 26) for i in range(4)) + "x"


def _total(base: str, q: str) -> tuple[int, list[str]]:
    """The total of a national search for `q` on a node, and the ids of its first page."""
    with urllib.request.urlopen(f"{base}/api/v1/search?" + urllib.parse.urlencode({"q": q, "per_page": 5}),
                                timeout=30) as response:
        found = json.load(response)
    return found["total"], [result["id"] for result in found["results"]]


def _until(check: Callable[[], bool], every: float, seconds: float) -> float | None:
    """Poll `check` every `every` s for at most `seconds`; the time (perf_counter) it first held, or None."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return time.perf_counter()
        time.sleep(every)
    return None


def _in_threads(calls: dict[str, Callable[[], Any]]) -> Callable[[], dict[str, Any]]:
    """Start each call in a thread of its own; returns a function that waits for them all and gives their results
    by name (or raises the first one's exception)."""
    pool = concurrent.futures.ThreadPoolExecutor(len(calls))
    futures = {name: pool.submit(call) for name, call in calls.items()}
    pool.shutdown(wait=False)  # the threads end with their calls
    return lambda: {name: future.result() for name, future in futures.items()}


@dataclass
class Edit:
    """One edit: its word, the listing, when it committed and how long the edit call took, when B found it."""

    word: str
    listing: str
    committed: float  # time.perf_counter()
    call_s: float
    found: float | None = None


class Watcher(threading.Thread):
    """Searches node B for each edit's word, oldest first, until found or given up on. Edits reach B in commit
    order, so only the oldest is polled, and once it is found the next is asked at once: an edit is timed when its
    own search found it, up to a request late per edit B took in the same write. Polled every 20 ms, or every 2%
    of the edit's age when more (an edit waiting behind an import)."""

    def __init__(self, base: str, give_up: float) -> None:
        super().__init__(daemon=True)
        self.base, self.give_up = base, give_up
        self.pending: collections.deque[Edit] = collections.deque()
        self.closed = threading.Event()
        self.errors = 0
        self.requests: list[float] = []

    def run(self) -> None:
        """Poll until closed with nothing pending (each edit bounded by give_up)."""
        while self.pending or not self.closed.is_set():
            if not self.pending:
                time.sleep(0.01)
                continue
            edit, started = self.pending[0], time.perf_counter()
            try:
                total, ids = _total(self.base, edit.word)
            except OSError:
                total, ids = 0, []
                self.errors += 1
            self.requests.append(time.perf_counter() - started)
            age = time.perf_counter() - edit.committed
            if total == 1 and ids == [edit.listing]:
                edit.found = time.perf_counter()
            if edit.found or age > self.give_up:
                self.pending.popleft()
            else:
                time.sleep(max(0.02, age / 50))

    def stop(self) -> dict[str, Any]:
        """Wait for the pending edits (each bounded), then the searches it made."""
        self.closed.set()
        self.join(self.give_up + 60)
        return {"watcher_requests": len(self.requests), "watcher_errors": self.errors,
                "watcher_request_p50_ms": statistics.median(self.requests) * 1000 if self.requests else None}


class Editor:
    """Edits published listings one at a time as the admin edit form does, each putting a new word in a bio."""

    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.app = create_app({"DATABASE_URL": env["DATABASE_URL"], "INDEX_DIR": str(folder / "indexes"),
                               "INSTANCE_PATH": str(folder / "instance"), "SECRET_KEY": "bench",
                               "LOAD_SAMPLE_DATA": False, "INDEX_FOLLOWER": False, "TICK_SECONDS": 0})
        self.factory = self.app.extensions["db"]
        self._committed = 0.0
        # First among the after-commit hooks: the database has committed; this process's index write comes after.
        event.listen(self.factory, "after_commit", self._stamp, insert=True)
        with self.factory() as session:
            self._ids = iter(session.scalars(select(Listing.id).where(Listing.published).order_by(Listing.id)).all())

    def _stamp(self, _session: Any) -> None:
        self._committed = time.perf_counter()

    def edit(self, word: str) -> Edit:
        """Append `word` to the next listing's bio through `save_edit`; the edit, stamped at its commit."""
        started = time.perf_counter()
        with self.app.app_context(), self.factory() as session:
            listing = session.get(Listing, next(self._ids))
            assert listing is not None
            external_id, form = listing.external_id, listing_values(listing)
            form["bio"] = f"{form['bio']} {word}"
            outcome = save_edit(session, listing, form, photo=None, actor="bench")
            if outcome.problems:
                raise RuntimeError(f"the edit of {external_id} was refused: {outcome.problems}")
        return Edit(word, external_id, self._committed, time.perf_counter() - started)

    def edit_at(self, rate: float, count: int, kind: str, watcher: Watcher, stop: threading.Event) -> list[Edit]:
        """Make up to `count` edits, `rate` a second on schedule, until `stop`; each handed to `watcher`."""
        edits: list[Edit] = []
        started = time.monotonic()
        for n in range(count):
            if stop.wait(max(0.0, started + n / rate - time.monotonic())) or (
                    time.monotonic() > started + count / rate + 5):
                break  # stopped, or so far behind the schedule that the rate is not kept
            edits.append(self.edit(_word(kind, n)))
            watcher.pending.append(edits[-1])
        return edits


def _delays(edits: list[Edit]) -> dict[str, Any]:
    """Propagation of edits to B: p50, p99, max in ms, misses, and the slowest edit call on A."""
    delays = [edit.found - edit.committed for edit in edits if edit.found is not None]
    return {"edits": len(edits), "misses": len(edits) - len(delays),
            "p50_ms": statistics.median(delays) * 1000 if delays else None,
            "p99_ms": percentile(delays, 0.99) * 1000 if delays else None,
            "max_ms": max(delays) * 1000 if delays else None,
            "edit_call_max_ms": max(edit.call_s for edit in edits) * 1000 if edits else None,
            "missed": [f"{edit.word} in {edit.listing}" for edit in edits if edit.found is None][:10]}


@dataclass
class Cluster:
    """The two nodes as the modes use them: their addresses, each one's search mix, the editor, a CPU reading."""

    bases: dict[str, str]
    urls: dict[str, list[str]]
    editor: Editor
    cpu: Callable[[], dict[str, float]]

    def searching(self, seconds: float, stop: threading.Event) -> dict[str, Callable[[], Any]]:
        """One search client per node, running the mix without pause."""
        return {node: functools.partial(python_load, urls, seconds, 1, stop) for node, urls in self.urls.items()}

    def measured(self, call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """What `call` returns, with each search client's figures in "search" and the cores used meanwhile."""
        before, began = self.cpu(), time.monotonic()
        result = call()
        search = {node: result.pop(node) for node in self.urls}
        return {**result, "search": search, "cores_used": cores_used(before, self.cpu(), time.monotonic() - began)}


def edits_on_a(cluster: Cluster, rate: float, seconds: float) -> dict[str, Any]:
    """Edits on A at `rate` for `seconds` with a search client per node, then the same searches without edits, then
    with edits that the nodes never hear of (a diagnosis: what the edits' own work costs the shared machine)."""
    never = threading.Event()

    def edits(kind: str) -> dict[str, Any]:
        watcher = Watcher(cluster.bases["B"], EDIT_GIVE_UP)
        if kind == "e":
            watcher.start()
        done = _in_threads({**cluster.searching(seconds, never),
                            "edits": lambda: cluster.editor.edit_at(rate, int(rate * seconds), kind, watcher, never)})()
        edits, watched = done.pop("edits"), watcher.stop() if kind == "e" else {}  # it waits for the last edits
        return {**done, **watched, "edits_made_per_s": len(edits) / seconds, "propagation": _delays(edits)}

    result = {"with_edits": cluster.measured(lambda: edits("e")),
              "without_edits": cluster.measured(lambda: _in_threads(cluster.searching(seconds, never))())}
    # The change log's append made a no-op in this process: the same edits, the nodes write nothing of them.
    with unittest.mock.patch.object(change_log, "append", lambda _session, _actions: None):
        result["unlogged_edits"] = cluster.measured(lambda: edits("u"))
    result["p95_ratio"] = {node: result["with_edits"]["search"][node]["p95_ms"] / load["p95_ms"]
                           for node, load in result["without_edits"]["search"].items()}
    return result


def _import_csv(source_csv: Path, path: Path) -> None:
    """The file's rows as new listings: other external ids, and NEW_ROWS_WORD in every bio."""
    with source_csv.open(encoding="utf-8", newline="") as source, path.open("w", encoding="utf-8", newline="") as out:
        rows = csv.DictReader(source)
        writer = csv.DictWriter(out, fieldnames=list(rows.fieldnames or ()), lineterminator="\r\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "external_id": IMPORT_PREFIX + row["external_id"],
                             "bio": f"{row['bio']} {NEW_ROWS_WORD}"})


def _import(cluster: Cluster, env: dict[str, str], csv_path: Path, log: Path) -> dict[str, Any]:
    """Run the import CLI on A's environment; when its rows were committed (polled every 20 ms), when the process
    ended, and how many of its rows search should find."""
    first, started = f"{IMPORT_PREFIX}sample-0000001", time.perf_counter()
    with log.open("w") as out:
        importing = subprocess.Popen(_flask("import-csv", str(csv_path)), cwd=REPO, env=env, stdout=out,
                                     stderr=subprocess.STDOUT)
    with cluster.editor.factory() as session:
        def committed() -> bool:
            session.rollback()  # a new snapshot each time
            return importing.poll() is not None or bool(session.scalar(
                select(func.count()).select_from(Listing).where(Listing.external_id == first)))

        commit = _until(committed, 0.02, 3600)
        importing.wait(3600)
        exited = time.perf_counter()
        imported = Listing.external_id.startswith(IMPORT_PREFIX)
        published = session.scalar(select(func.count()).select_from(Listing).where(imported, Listing.published))
        first = session.scalar(select(func.min(ListingChange.seq)).join(Listing, ListingChange.listing_id == Listing.id)
                               .where(imported))
    if importing.returncode != 0 or commit is None:
        raise SystemExit(f"the import failed:\n{log.read_text()[-3000:]}")
    return {"started": started, "commit": commit, "exited": exited, "published_new_rows": published,
            "first_seq": first, "cli_said": [line for line in log.read_text().splitlines() if "Import of" in line]}


def _b_takes_them(bases: dict[str, str], commit: float) -> dict[str, Any]:
    """Wait until B's search counts every imported row that A's counts, probing B's /ready meanwhile."""
    on_a, not_ready, probes = _total(bases["A"], NEW_ROWS_WORD)[0], [], [0]

    def b_has_them() -> bool:
        probes[0] += 1
        try:
            urllib.request.urlopen(bases["B"] + "/ready", timeout=30).read()
        except urllib.error.HTTPError:
            not_ready.append(time.perf_counter() - commit)
        return _total(bases["B"], NEW_ROWS_WORD)[0] >= on_a

    on_b = _until(b_has_them, 0.2, 1800)
    return {"total_on_a": on_a, "on_b": on_b, "b_probes": probes[0], "b_not_ready": {
        "probes": len(not_ready), "first_s": min(not_ready, default=None), "last_s": max(not_ready, default=None)}}


def import_through_a(cluster: Cluster, env: dict[str, str], csv_path: Path, log: Path) -> dict[str, Any]:
    """Import the file with the CLI on A's environment while both nodes serve and A gets an edit a second: when the
    import committed, when B's search counts all its rows, and the edits' propagation meanwhile."""
    watcher, stop = Watcher(cluster.bases["B"], IMPORT_GIVE_UP), threading.Event()
    watcher.start()
    running = _in_threads({**cluster.searching(3 * 3600, stop),
                           "edits": lambda: cluster.editor.edit_at(1, 3 * 3600, "i", watcher, stop)})
    try:
        times = _import(cluster, env, csv_path, log)
        caught_up = _b_takes_them(cluster.bases, times["commit"])
    finally:
        stop.set()  # the search clients and the editor, also when the import failed
    done = running()
    edits, watched = done.pop("edits"), watcher.stop()
    commit, exited, on_b = times["commit"], times["exited"], caught_up.pop("on_b")
    # Which edits B applies before the import's rows and which after, by their numbers in the change log: an edit
    # that waited on the log's lock while the import committed is numbered after it, whatever its clock says.
    with cluster.editor.factory() as session:
        seqs = dict(session.execute(select(Listing.external_id, ListingChange.seq).join(
            ListingChange, ListingChange.listing_id == Listing.id).where(
            Listing.external_id.in_([e.listing for e in edits])).order_by(ListingChange.seq)).all())  # the newest
    first = times["first_seq"]
    behind = [e for e in edits if seqs[e.listing] > first]
    return {**done, **watched, **caught_up, "import_s": commit - times["started"], "commit_to_exit_s": exited - commit,
            "published_new_rows": times["published_new_rows"], "cli_said": times["cli_said"],
            "commit_to_b_s": on_b and on_b - commit, "exit_to_b_s": on_b and on_b - exited,
            "edits_before_the_import": _delays([e for e in edits if seqs[e.listing] < first]),
            "edits_while_b_applies": _delays([e for e in behind if on_b is None or e.committed < on_b]),
            "edits_after": _delays([e for e in behind if on_b is not None and e.committed >= on_b])}


def _environments(database: str, workdir: Path) -> dict[str, dict[str, str]]:
    """Node A's and node B's: one new database, an index and instance folder each, no Redis, the follower's writes
    logged, periodic jobs left to cron (a node's first tick would email every listing due a confirmation)."""
    a = {key: value for key, value in _fresh(database, workdir, "nodes").items()
         if key not in ("REDIS_URL", "RATELIMIT_STORAGE_URI")}
    a.update(TICK_SECONDS="0", LOG_LEVEL="INFO")
    return {"A": a, "B": {**a, "INDEX_DIR": str(workdir / "nodes" / "b-indexes"),
                          "INSTANCE_PATH": str(workdir / "nodes" / "b-instance")}}


def _fill(args: argparse.Namespace, workdir: Path, envs: dict[str, dict[str, str]]) -> dict[str, Any]:
    """The world imported through A's CLI, B's index built as `make run` builds it, and the file to import later."""
    world_csv = workdir / "world.csv"
    write_csv(world_csv, args.rows)
    setup = {"world_rows": args.rows, "edit_seconds": args.edit_seconds, "import_rows": args.import_rows,
             "world_import_s": _timed(envs["A"], _flask("import-csv", str(world_csv))),
             "b_prepare_s": _timed(envs["B"], _flask("prepare"))}
    if args.import_rows:
        if args.import_rows != args.rows:
            write_csv(world_csv, args.import_rows)
        _import_csv(world_csv, workdir / "import.csv")
    return setup


def _start(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A node: gunicorn with 2 workers on a free loopback port, its output in `log`; the process and its address."""
    port = free_port()
    with log.open("wb") as out:
        node = subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}", "app:app"],
                                cwd=REPO, env=env, start_new_session=True, stdout=out, stderr=subprocess.STDOUT)
    return node, f"http://127.0.0.1:{port}"


def _stop(node: subprocess.Popen[bytes]) -> None:
    os.killpg(node.pid, signal.SIGTERM)
    try:
        node.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(node.pid, signal.SIGKILL)
        node.wait(10)


def _serve(args: argparse.Namespace, workdir: Path, envs: dict[str, dict[str, str]], editor: Editor,
           result: dict[str, Any]) -> None:
    """Start both nodes, wait for /ready, run each mode, and stop them."""
    started = time.monotonic()
    nodes = {name: _start(env, workdir / f"node-{name}.log") for name, env in envs.items()}
    try:
        bases = {name: base for name, (_node, base) in nodes.items()}
        for name, base in bases.items():
            wait_ready(base, 300, "/ready")
            result["setup"][f"{name}_ready_after_s"] = time.monotonic() - started
        urls = {name: [base + "/api/v1/search?" + urllib.parse.urlencode(query) for _, query in
                       query_mix(args.seed, 20)] for name, base in bases.items()}
        for url in [url for node in urls.values() for url in node[:44]]:
            urllib.request.urlopen(url, timeout=30).read()  # warm each node's workers a little
        pids = {f"node {name}": node.pid for name, (node, _base) in nodes.items()}
        cluster = Cluster(bases, urls, editor, lambda: cpu_seconds(pids))
        result["edits"] = edits_on_a(cluster, args.edit_rate, args.edit_seconds)
        if args.import_rows:
            result["import"] = cluster.measured(lambda: import_through_a(cluster, envs["A"], workdir / "import.csv",
                                                                         workdir / "import.log"))
    finally:
        for node, _base in nodes.values():
            _stop(node)
        result["node_log_problems"] = {name: [line for line in (workdir / f"node-{name}.log").read_text().splitlines()
                                              if any(word in line for word in PROBLEMS)] for name in nodes}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every figure of one run, on a database made for it and dropped after."""
    result: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": {
        "cores": os.cpu_count(), "load_before": os.getloadavg()}, "code": subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True).stdout.strip()}
    with tempfile.TemporaryDirectory(prefix="bench-nodes-") as folder:
        workdir = args.workdir or Path(folder)
        envs = _environments(args.database, workdir)
        try:
            result["setup"] = _fill(args, workdir, envs)
            began = time.monotonic()
            editor = Editor(envs["A"], workdir / "editor")
            result["setup"]["editor_start_s"] = time.monotonic() - began
            _serve(args, workdir, envs, editor, result)
            editor.factory.kw["bind"].dispose()
        finally:
            engine = create_engine(make_url(args.database).set(database="postgres"), isolation_level="AUTOCOMMIT")
            with engine.connect() as admin:
                admin.execute(text(f'DROP DATABASE IF EXISTS "{make_url(envs["A"]["DATABASE_URL"]).database}" '
                                   "WITH (FORCE)"))
            engine.dispose()
    result["machine"]["load_after"] = os.getloadavg()
    return result


def main() -> None:
    """Run both modes, print the figures and write them as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.nodes", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="listings in the world before the nodes start")
    parser.add_argument("--edit-rate", type=float, default=10, help="edits a second on A")
    parser.add_argument("--edit-seconds", type=float, default=60)
    parser.add_argument("--import-rows", type=int, default=100_000, help="rows of the import through A (0: none)")
    parser.add_argument("--seed", type=int, default=7, help="of the search mix")
    parser.add_argument("--database", default="postgresql+psycopg://postgres@127.0.0.1:5432/bench",
                        help="a PostgreSQL URL; the run's database is made beside it, named NAME_nodes")
    parser.add_argument("--workdir", type=Path, help="keep the run's files here (the nodes' output, the CSV files)")
    parser.add_argument("--out", type=Path, help="write the figures here as JSON")
    args = parser.parse_args()
    result = run(args)
    result["targets"] = nodes_targets(result)
    print(nodes_markdown(result))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
