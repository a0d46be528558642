"""`make bench`: every benchmark section side by side against one throwaway MLflow server.

Usage: uv run python -m bench [--smoke] [--rounds 3] [--only cli,calls,p1,p2,p3] [--workdir .bench]
                              [--out bench] [--mlflow-run-loop]
Writes OUT/results.json (merged: figures of sections not run are kept), OUT/RESULTS.md and the sections' PNG
plots. Sections and their interface: bench/harness.py.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import time
from pathlib import Path
from types import ModuleType

from bench import report
from bench.harness import REPO, BenchContext, Section, start_mlflow, stop

# Section name -> module of this package; run in this order.
SECTIONS = {
    "cli": "cli_start",
    "p0": "one_partition",
    "calls": "mlflow_calls",
    "p1": "local_fanout",
    "p2": "inference",
    "p3": "control_plane",
}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--smoke", action="store_true", help="Tiny sizes, no Prefect/PySpark (the test suite)."
    )
    parser.add_argument("--rounds", type=int, default=3, help="Interleaved rounds per section [3].")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"Sections, of: {','.join(SECTIONS)}.")
    parser.add_argument(
        "--workdir", type=Path, default=REPO / ".bench", help="Data, envs, servers [.bench/]."
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench", help="results.json, RESULTS.md, plots.")
    parser.add_argument(
        "--mlflow-run-loop", action="store_true", help="P1 also times a loop of `mlflow run`."
    )
    args = parser.parse_args(argv)
    unknown = set(args.only.split(",")) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    return args


def sections(names: list[str]) -> dict[str, ModuleType]:
    """The section modules asked for that exist (bench/inference.py may not yet)."""
    found: dict[str, ModuleType] = {}
    for name in names:
        module = SECTIONS[name]
        if (REPO / "bench" / f"{module}.py").exists():
            found[name] = importlib.import_module(f"bench.{module}")
        else:
            print(f"skipping section {name}: bench/{module}.py is absent", file=sys.stderr)
    return found


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the servers as on Ctrl-C
    load_before = os.getloadavg()
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # a line per run: 10,000 in P3
    args.workdir = args.workdir.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    modules = sections([name for name in SECTIONS if name in args.only.split(",")])
    server, url, log = start_mlflow(args.workdir / "mlflow", proxied=False)
    done: list[Section] = []
    try:
        ctx = BenchContext(
            workdir=args.workdir,
            out_dir=args.out.resolve(),
            rounds=args.rounds,
            smoke=args.smoke,
            tracking_uri=url,
            mlflow_log=log,
            options=frozenset({"mlflow-run-loop"} if args.mlflow_run_loop else ()),
        )
        for name, module in modules.items():
            started = time.perf_counter()
            print(f"== {name} ({module.__name__})", flush=True)
            done.append(module.section(ctx))
            print(f"== {name} done in {time.perf_counter() - started:.0f} s", flush=True)
    finally:
        stop(server)
        if done:  # what finished is kept even if a later section failed
            report.merge_json(args.out / "results.json", done)
            report.merge_markdown(args.out / "RESULTS.md", done, list(SECTIONS), report.machine(load_before))
            print(f"written: {args.out / 'results.json'}, {args.out / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
