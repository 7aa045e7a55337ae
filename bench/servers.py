"""How fast each way of serving answers the benchmark's search mix over HTTP (issue 25): Flask's development server
(what `make run` served with before), gunicorn with one worker, and `make run` as it is now.

    python -m bench --sizes 100000 --per-class 5 --serve-seconds 0 --keep --out bench/out
    python -m bench.servers bench/out/n100000

The three serve the same database and index at once. One client sends the mix's requests one at a time to each
server in turn, query by query, so that noise on the machine falls on all three alike; then each server alone takes
a few concurrent clients for a bounded time. Prints the figures and writes them as JSON. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from bench.__main__ import REPO, TEXT_CLASSES, free_port, percentile, python_load, query_mix, wait_ready

SERVERS = ("flask dev server", "gunicorn, 1 worker", "make run")


def _command(name: str, port: int) -> list[str]:
    if name == "flask dev server":
        return [sys.executable, "-m", "flask", "--app", "app", "run", "--host", "127.0.0.1", "--port", str(port)]
    if name == "gunicorn, 1 worker":
        return [sys.executable, "-m", "gunicorn", "-w", "1", "-b", f"127.0.0.1:{port}", "app:app"]
    return ["make", "run", "HOST=127.0.0.1", f"PORT={port}"]


def _timed_get(url: str) -> tuple[float, bool]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as response:
        response.read()
        ok = response.status == 200
    return time.perf_counter() - started, ok


def _summary(times: list[float]) -> dict[str, float]:
    return {"p50_ms": statistics.median(times) * 1000, "p95_ms": percentile(times, 0.95) * 1000,
            "requests": len(times)}


def measure(data: Path, per_class: int, seed: int, seconds: float, connections: int) -> dict[str, Any]:
    """Start the three servers on one data directory, time the mix on each, and stop them."""
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{data / 'directory.sqlite3'}", "INDEX_DIR": str(data / "indexes"),
           "INSTANCE_PATH": str(data / "instance"), "LOAD_SAMPLE_DATA": "0", "SECRET_KEY": "bench"}
    bases, processes = {}, []
    try:
        for name in SERVERS:
            port = free_port()
            processes.append(subprocess.Popen(_command(name, port), cwd=REPO, env=env, start_new_session=True,
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            bases[name] = f"http://127.0.0.1:{port}"
        for base in bases.values():
            wait_ready(base, 120)
        # Warm every worker on another seed's queries: each gunicorn worker has its own caches.
        for _, args in query_mix(seed + 1, 2) * 2:
            for base in bases.values():
                _timed_get(base + "/api/v1/search?" + urllib.parse.urlencode(args))
        mix = query_mix(seed, per_class)
        times: dict[str, dict[str, list[float]]] = {name: {} for name in SERVERS}
        failures = dict.fromkeys(SERVERS, 0)
        for turn, (kind, args) in enumerate(mix):
            path = "/api/v1/search?" + urllib.parse.urlencode(args)
            for name in SERVERS[turn % 3:] + SERVERS[:turn % 3]:
                took, ok = _timed_get(bases[name] + path)
                times[name].setdefault(kind, []).append(took)
                failures[name] += 0 if ok else 1
        result: dict[str, Any] = {}
        for name in SERVERS:
            by_class = times[name]
            result[name] = {
                "one_at_a_time": {
                    "all": _summary([t for ts in by_class.values() for t in ts]),
                    "without_text": _summary([t for k, ts in by_class.items() if k not in TEXT_CLASSES for t in ts]),
                    "text": _summary([t for k, ts in by_class.items() if k in TEXT_CLASSES for t in ts]),
                    "non_200": failures[name]},
                "concurrent": python_load([bases[name] + "/api/v1/search?" + urllib.parse.urlencode(args)
                                           for _, args in mix], seconds, connections)}
        return result
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            process.wait(30)


def main() -> None:
    """Measure the three ways of serving and print a table."""
    parser = argparse.ArgumentParser(prog="python -m bench.servers", description=__doc__.split("\n")[0])
    parser.add_argument("data", type=Path, help="a size's directory kept by `python -m bench --keep`")
    parser.add_argument("--per-class", type=int, default=40, help="queries per class, one at a time")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=15, help="concurrent load per server")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--out", type=Path, help="write the figures here as JSON")
    args = parser.parse_args()
    result = measure(args.data.resolve(), args.per_class, args.seed, args.seconds, args.connections)
    reference = result["gunicorn, 1 worker"]["one_at_a_time"]["all"]["p95_ms"]
    print(f"{'server':<20}{'p50':>8}{'p95':>8}{'/gunicorn':>10}{'no-text p95':>13}{'text p95':>10}{'non-200':>9}"
          f"   {args.connections} clients: req/s, p50, p95, p99, non-2xx")
    for name, row in result.items():
        one, load = row["one_at_a_time"], row["concurrent"]
        print(f"{name:<20}{one['all']['p50_ms']:>8.1f}{one['all']['p95_ms']:>8.1f}"
              f"{one['all']['p95_ms'] / reference:>10.2f}{one['without_text']['p95_ms']:>13.1f}"
              f"{one['text']['p95_ms']:>10.1f}{one['non_200']:>9}   {load['requests_per_s']:.0f}, "
              f"{load['p50_ms']:.1f}, {load['p95_ms']:.1f}, {load['p99_ms']:.1f}, {load['non_2xx']}")
    if args.out:
        args.out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M"), "servers": result}, indent=2))


if __name__ == "__main__":
    main()
