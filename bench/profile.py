"""Where a search's time goes, class by class: cProfile over the benchmark's query mix, in-process, on a data set
kept by `python -m bench --keep`.

    python -m bench.profile bench/out/n100000 --per-class 40 --top 12

For each class prints the functions with the most time of their own and the most cumulative time. Asserts nothing.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
from pathlib import Path

from werkzeug.datastructures import MultiDict

from bench.__main__ import CLASSES, query_mix
from directory import create_app, db
from directory.search.request import parse
from directory.search.results import find
from directory.web.presenters import RESULT_COLUMNS, results_dict
from directory.web.app_state import current_index, fresh_window


def profile_class(app: object, queries: list[dict[str, object]]) -> cProfile.Profile:
    """Profile the API's work (parse, search, load the page, build the JSON) for each of `queries`."""
    profiler = cProfile.Profile()
    with app.test_request_context("/api/v1/search"):  # type: ignore[attr-defined]
        for args in queries:
            request = MultiDict([(k, str(v)) for k, v in args.items()])
            profiler.enable()
            results_dict(find(current_index(), db.session(), parse(request, fresh_window()), RESULT_COLUMNS))
            profiler.disable()
            db.session().expire_all()
    return profiler


def main() -> None:
    """Profile each class of the mix and print its top functions."""
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n")[0])
    parser.add_argument("data", type=Path, help="a size's folder kept by python -m bench --keep")
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--classes", default=",".join(CLASSES))
    args = parser.parse_args()
    app = create_app({"DATABASE_URL": f"sqlite:///{args.data / 'directory.sqlite3'}",
                      "INDEX_DIR": str(args.data / "indexes"), "INSTANCE_PATH": str(args.data / "instance"),
                      "LOAD_SAMPLE_DATA": False, "SECRET_KEY": "bench"})
    mix = query_mix(args.seed, args.per_class)
    with app.app_context():  # the first search of a process opens the index and fills its caches
        for _, warm in mix[: len(CLASSES)]:
            find(current_index(), db.session(), parse(MultiDict([(k, str(v)) for k, v in warm.items()]),
                                                      fresh_window()))
    for name in args.classes.split(","):
        stats = pstats.Stats(profile_class(app, [a for kind, a in mix if kind == name]))
        per_query = stats.total_tt / args.per_class * 1000  # type: ignore[attr-defined]
        print(f"\n=== {name}: {per_query:.2f} ms a query under the profiler ===")
        stats.sort_stats("tottime").print_stats(args.top)
        stats.sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    main()
