"""The benchmark: import, rebuild, search and serving at several sizes, against an FTS5 baseline in the same run.

    python -m bench --sizes 10000,100000,1000000

Prints a table per size and writes every figure to bench/out/results.json. Not a test: it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from werkzeug.datastructures import MultiDict

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.baseline import Baseline, build  # noqa: E402
from directory import create_app  # noqa: E402
from directory.geo import postcodes  # noqa: E402
from directory.imports.csv_writing import listing_row  # noqa: E402
from directory.imports.row_rules import COLUMNS  # noqa: E402
from directory.listings import all_listings, published_by_ids  # noqa: E402
from directory.models import Listing  # noqa: E402
from directory.sample import METROS, generate  # noqa: E402
from directory.search.request import parse  # noqa: E402
from directory.search.results import find  # noqa: E402
from directory.web.app_state import current_index, fresh_window  # noqa: E402
from directory.web.presenters import RESULT_COLUMNS  # noqa: E402

CLASSES = ("r5", "r25", "r100", "modality", "mod_spec_accepting", "text_near", "text_national", "telehealth_region",
           "page10", "age_community", "fee_sliding")
TEXT_CLASSES = {"text_near", "text_national"}
# Since issue 24, "couples", "family", "relationship" and "teens" typed alone are filter words (a client type, an
# age), answered as that filter: the text classes ask phrases of the same themes instead, so that they still measure
# free text.
WORDS = ["depression", "anxiety", "attachment", "painful patterns", "trauma", "grief", "emotionally focused",
         "loneliness", "insecure attachment", "family conflict", "relationship issues", "perfectionism", "self-esteem",
         "hard transitions", "evening"]
# The page class: GET / (HTML) near a metro with two of the filters issue 24 added, timed in the server process.
PAGE_CLASSES = ("page_two_new_filters",)
NEW_FILTERS: dict[str, list[str]] = {
    "age": ["teens", "children", "older-adults"], "client_type": ["couples", "families"],
    "community": ["lgbtq-affirming", "trans-affirming", "veterans", "bipoc-centered"], "gender": ["woman", "man"],
    "max_fee": ["100", "120", "150"], "sliding_scale": ["1"],
}


def query_mix(seed: int, per_class: int) -> list[tuple[str, dict[str, Any]]]:
    """A fixed, seeded list of (class, query-string arguments), interleaved across classes."""
    rng = random.Random(seed)
    centres = [code for code, _ in METROS]
    mix = []
    for _ in range(per_class):
        for name in CLASSES:
            postcode = rng.choice(centres)
            args: dict[str, Any] = {"postcode": postcode}
            if name in ("r5", "r25", "r100"):
                args["radius"] = int(name[1:])
            elif name == "modality":
                args["modality"] = rng.choice(["eft", "cbt", "attachment-based", "emdr"])
            elif name == "mod_spec_accepting":
                args.update(modality=rng.choice(["eft", "cbt", "relational"]),
                            specialty=rng.choice(["depression", "anxiety", "insecure-attachment"]), accepting="1")
            elif name == "text_near":
                args["q"] = rng.choice(WORDS)
            elif name == "text_national":
                args = {"q": rng.choice(WORDS)}
            elif name == "telehealth_region":
                args["format"] = "telehealth"
            elif name == "page10":
                args.update(radius=100, page=10)
            elif name == "age_community":
                args.update(age=rng.choice(["teens", "children", "older-adults"]),
                            community=rng.choice(["lgbtq-affirming", "trans-affirming", "veterans"]))
            elif name == "fee_sliding":
                args.update(max_fee=rng.choice([100, 120, 150]), sliding_scale="1")
            mix.append((name, args))
    return mix


def page_mix(seed: int, per_class: int) -> list[tuple[str, dict[str, Any]]]:
    """A fixed, seeded list of (page class, query-string arguments) for GET /: a metro's postcode and two of the new
    filters, drawn from every pair of them."""
    rng = random.Random(seed)
    centres = [code for code, _ in METROS]
    mix = []
    for _ in range(per_class):
        for name in PAGE_CLASSES:
            first, second = rng.sample(sorted(NEW_FILTERS), 2)
            mix.append((name, {"location": rng.choice(centres), first: rng.choice(NEW_FILTERS[first]),
                               second: rng.choice(NEW_FILTERS[second])}))
    return mix


def _args(args: dict[str, Any]) -> MultiDict[str, str]:
    return MultiDict([(k, str(v)) for k, v in args.items()])


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank q-quantile of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _process_table() -> dict[int, tuple[int, float]]:
    """pid → (parent pid, resident MB) of every process on the machine."""
    table = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        parent = re.search(r"^PPid:\s+(\d+)", text, re.M)
        rss = re.search(r"^VmRSS:\s+(\d+)", text, re.M)
        if parent:
            table[int(status.parent.name)] = (int(parent.group(1)), int(rss.group(1)) / 1024 if rss else 0.0)
    return table


def process_tree(root: int, table: dict[int, tuple[int, float]]) -> list[int]:
    """A process and its descendants in `table` (index workers start under a forkserver child)."""
    tree, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        if pid in table:
            tree.append(pid)
        frontier += [child for child, (parent, _rss) in table.items() if parent == pid]
    return tree


def _tree_rss_mb(root: int) -> list[float]:
    """Resident MB of a process and of each of its descendants."""
    table = _process_table()
    return [table[pid][1] for pid in process_tree(root, table)]


def _flask(env: dict[str, str], *args: str) -> tuple[float, float, float]:
    """Run a flask command; returns (seconds, peak RSS in MB of its largest process, peak RSS in MB of all its
    processes together), sampled every 0.2 s."""
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", *args], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peaks = [0.0, 0.0]

    def sample() -> None:
        while process.poll() is None:
            sizes = _tree_rss_mb(process.pid)
            if sizes:
                peaks[0], peaks[1] = max(peaks[0], max(sizes)), max(peaks[1], sum(sizes))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    assert process.stdout is not None
    output = process.stdout.read()
    process.wait()
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f"flask {' '.join(args)} failed:\n{output}")
    return time.monotonic() - started, peaks[0], peaks[1]


def _dir_size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1024 / 1024


def write_csv(path: Path, count: int) -> None:
    """The sample generator's N listings as an import file (the same format admins upload)."""
    import csv

    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(COLUMNS)
        for fields in generate(count, today=dt.date.today()):
            writer.writerow(listing_row(Listing(**{k: v for k, v in fields.items() if k != "slug"})))


def run_queries(app: Any, baseline: Baseline, mix: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Time each query through the project's search (as the API calls it) and the baseline, interleaved."""
    timings: dict[str, dict[str, list[float]]] = {c: {"project": [], "baseline": []} for c in CLASSES}
    mismatches: dict[str, int] = {c: 0 for c in CLASSES}
    with app.app_context():
        from directory import db

        for _, warm_args in mix[: len(CLASSES)]:
            find(current_index(), db.session(), parse(_args(warm_args), fresh_window()))
        for name, args in mix:
            # Parsing resolves the postcode, so it is timed with the search, as the baseline times its lookup.
            started = time.perf_counter()
            request = parse(_args(args), fresh_window())
            found = find(current_index(), db.session(), request, RESULT_COLUMNS)  # what the API loads
            timings[name]["project"].append(time.perf_counter() - started)
            started = time.perf_counter()
            origin = postcodes.lookup(args["postcode"]) if args.get("postcode") else None
            total, ids = baseline.search(request, origin)
            published_by_ids(db.session(), ids)
            timings[name]["baseline"].append(time.perf_counter() - started)
            shown = [result.listing.id for result in found.results]
            if name not in TEXT_CLASSES and (total != found.total or ids != shown):
                mismatches[name] += 1
            db.session().expire_all()
    summary = {}
    for name in CLASSES:
        project, base = timings[name]["project"], timings[name]["baseline"]
        summary[name] = {
            "project_p50_ms": statistics.median(project) * 1000, "project_p95_ms": percentile(project, 0.95) * 1000,
            "baseline_p50_ms": statistics.median(base) * 1000, "baseline_p95_ms": percentile(base, 0.95) * 1000,
            "ratio_p95": percentile(project, 0.95) / max(percentile(base, 0.95), 1e-9),
            "queries": len(project), "id_mismatches": None if name in TEXT_CLASSES else mismatches[name],
        }
    return summary


def run_pages(app: Any, mix: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Time each page request in the server process (Flask's test client: the whole view, the template and the
    response body, without a socket), after one warm-up request per class."""
    client = app.test_client()
    timings: dict[str, list[float]] = {name: [] for name in PAGE_CLASSES}
    failures = dict.fromkeys(PAGE_CLASSES, 0)
    for _, warm_args in mix[: len(PAGE_CLASSES)]:
        client.get("/", query_string=warm_args)
    for name, args in mix:
        started = time.perf_counter()
        response = client.get("/", query_string=args)
        body = response.get_data()
        timings[name].append(time.perf_counter() - started)
        if response.status_code != 200 or not body:
            failures[name] += 1
    return {name: {"p50_ms": statistics.median(times) * 1000, "p95_ms": percentile(times, 0.95) * 1000,
                   "queries": len(times), "non_200": failures[name]} for name, times in timings.items()}


def free_port() -> int:
    """A loopback port free at the moment of asking."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(base: str, seconds: float, path: str = "/api/v1/vocabulary") -> None:
    """Return once the app at `base` answers `path` with a 2xx, or stop the benchmark after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(base + path, timeout=2).read()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{base} did not answer within {seconds:.0f} s")


def python_load(urls: list[str], seconds: float, connections: int,
                stop: threading.Event | None = None) -> dict[str, Any]:
    """Closed-loop load: each of `connections` threads requests the next URL as soon as its last answered, for
    `seconds` or until `stop` is set."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    began = time.monotonic()
    deadline = began + seconds

    def worker(offset: int) -> None:
        nonlocal errors
        i = offset
        while time.monotonic() < deadline and not (stop and stop.is_set()):
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(urls[i % len(urls)], timeout=10) as response:
                    response.read()
                    ok = 200 <= response.status < 300
            except Exception:
                ok = False
            with lock:
                latencies.append(time.perf_counter() - started)
                errors += 0 if ok else 1
            i += connections

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = min(seconds, time.monotonic() - began)  # shorter when stopped
    return {"tool": "python", "requests_per_s": len(latencies) / seconds, "p50_ms": percentile(latencies, 0.5) * 1000,
            "p95_ms": percentile(latencies, 0.95) * 1000, "p99_ms": percentile(latencies, 0.99) * 1000,
            "non_2xx": errors, "requests": len(latencies)}


def _wrk_load(base: str, paths: list[str], seconds: float, connections: int, workdir: Path) -> dict[str, Any]:
    script = workdir / "mix.lua"
    script.write_text("paths = {" + ",".join(json.dumps(p) for p in paths) + "}\ni = 0\n"
                      "request = function()\n  i = i + 1\n  return wrk.format(nil, paths[(i % #paths) + 1])\nend\n")
    command = ["wrk", "-t2", f"-c{connections}", f"-d{max(1, int(seconds))}s", "--latency", "-s", str(script), base]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=True)
    out = done.stdout

    def ms(label: str) -> float:
        value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]

    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {"tool": "wrk", "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
            "p50_ms": ms("50%"), "p99_ms": ms("99%"), "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
            "socket_errors": socket_errors.group(1) if socket_errors else "", "requests": int(
                re.search(r"(\d+) requests in", out).group(1))}  # type: ignore[union-attr]


def serve(env: dict[str, str], mix: list[tuple[str, dict[str, Any]]], seconds: float, workers: int,
          workdir: Path) -> dict[str, Any]:
    """Run the app under gunicorn on loopback and drive the query mix over HTTP for a bounded time."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", f"127.0.0.1:{port}", "--log-level", "warning",
         "app:app"],
        cwd=REPO, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, 60)
        paths = ["/api/v1/search?" + urllib.parse.urlencode(args) for _, args in mix]
        for path in paths[: len(CLASSES) * 2]:
            urllib.request.urlopen(base + path, timeout=30).read()  # warm every worker's caches a little
        if shutil.which("wrk"):
            result = _wrk_load(base, paths, seconds, 8, workdir)
        else:
            result = python_load([base + p for p in paths], seconds, 4)
        result["workers"] = workers
        result["worker_rss_mb"] = _worker_rss_mb(server.pid)
        return result
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)


def _worker_rss_mb(master: int) -> list[float]:
    return sorted(rss for parent, rss in _process_table().values() if parent == master)


def run_size(count: int, args: argparse.Namespace) -> dict[str, Any]:
    """Every figure for one data-set size."""
    workdir = args.out / f"n{count}"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{workdir / 'directory.sqlite3'}",
           "INDEX_DIR": str(workdir / "indexes"), "INSTANCE_PATH": str(workdir / "instance"), "LOAD_SAMPLE_DATA": "0",
           "SECRET_KEY": "bench"}
    result: dict[str, Any] = {"listings": count}
    csv_path = workdir / "listings.csv"
    started = time.monotonic()
    write_csv(csv_path, count)
    result["generate_s"] = time.monotonic() - started
    _flask(env, "index", "check")  # creates the empty database and index outside the timed import
    seconds, result["import_peak_rss_mb"], result["import_peak_total_rss_mb"] = _flask(env, "import-csv", str(csv_path))
    result["import_s"] = seconds
    result["import_rows_per_s"] = count / seconds
    rebuilt = _flask(env, "index", "rebuild")
    result["rebuild_s"], result["rebuild_peak_rss_mb"], result["rebuild_peak_total_rss_mb"] = rebuilt
    result["index_mb"] = _dir_size_mb(Path(env["INDEX_DIR"]) / os.readlink(Path(env["INDEX_DIR"]) / "current"))
    result["database_mb"] = (workdir / "directory.sqlite3").stat().st_size / 1024 / 1024

    app = create_app({"DATABASE_URL": env["DATABASE_URL"], "INDEX_DIR": env["INDEX_DIR"],
                      "INSTANCE_PATH": env["INSTANCE_PATH"], "LOAD_SAMPLE_DATA": False, "SECRET_KEY": "bench"})
    started = time.monotonic()
    with app.extensions["db"]() as session:
        build(workdir / "baseline.sqlite3", session.scalars(all_listings()))
    result["baseline_build_s"] = time.monotonic() - started
    baseline = Baseline(workdir / "baseline.sqlite3")
    mix = query_mix(args.seed, args.per_class)
    result["search"] = run_queries(app, baseline, mix)
    result["pages"] = run_pages(app, page_mix(args.seed, args.per_class))
    if args.serve_seconds > 0:
        result["serving"] = serve(env, mix, args.serve_seconds, args.workers, workdir)
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def print_table(result: dict[str, Any]) -> None:
    """The figures of one size, for people."""
    print(f"\n== {result['listings']:,} listings ==")
    print(f"import {result['import_s']:.1f} s ({result['import_rows_per_s']:,.0f} rows/s, peak RSS "
          f"{result['import_peak_rss_mb']:.0f} MB, all processes {result['import_peak_total_rss_mb']:.0f} MB) · "
          f"rebuild {result['rebuild_s']:.1f} s (peak RSS {result['rebuild_peak_rss_mb']:.0f} MB, all processes "
          f"{result['rebuild_peak_total_rss_mb']:.0f} MB) · index {result['index_mb']:.1f} MB"
          f" · baseline build {result['baseline_build_s']:.1f} s")
    print(f"{'class':<20}{'proj p50':>10}{'proj p95':>10}{'base p50':>10}{'base p95':>10}{'ratio':>8}{'id diffs':>10}")
    for name, row in result["search"].items():
        diffs = "-" if row["id_mismatches"] is None else str(row["id_mismatches"])
        print(f"{name:<20}{row['project_p50_ms']:>10.1f}{row['project_p95_ms']:>10.1f}{row['baseline_p50_ms']:>10.1f}"
              f"{row['baseline_p95_ms']:>10.1f}{row['ratio_p95']:>8.2f}{diffs:>10}")
    for name, row in result.get("pages", {}).items():
        print(f"{name:<20}{row['p50_ms']:>10.1f}{row['p95_ms']:>10.1f}  (GET /, HTML, server time; non-200 "
              f"{row['non_200']})")
    serving = result.get("serving")
    if serving:
        print(f"serving ({serving['tool']}, {serving['workers']} workers): {serving['requests_per_s']:.0f} req/s, "
              f"p50 {serving['p50_ms']:.1f} ms, p99 {serving['p99_ms']:.1f} ms, non-2xx {serving['non_2xx']}, "
              f"worker RSS {', '.join(f'{r:.0f}' for r in serving['worker_rss_mb'])} MB")


def main() -> None:
    """Run the benchmark at each size and write the JSON results."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--per-class", type=int, default=40, help="queries per class")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--serve-seconds", type=float, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out")
    parser.add_argument("--keep", action="store_true", help="keep each size's database and index")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": {
        "cpus": os.cpu_count(), "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(), "platform": platform.platform()}, "sizes": []}
    for count in (int(s) for s in args.sizes.split(",")):
        result = run_size(count, args)
        results["sizes"].append(result)
        print_table(result)
        (args.out / "results.json").write_text(json.dumps(results, indent=2))
    print(f"\nwrote {args.out / 'results.json'}")


if __name__ == "__main__":
    main()
