"""Goal 2: one partition of a no-op project through us against MLflow's own local backend, side by side.

Two pairs of contenders, against one running MLflow server (SQLite, MLflow's job runner off), interleaved
round by round, medians over rounds with min-max; each ratio is taken within its round:

  (a) whole processes, start to exit: `mlflow run -b local --env-manager local` of the no-op entry point
      (bench/projects/noop) vs `concurrent run` of a DAG with one project node of one partition, same
      project and entry point (`p0_one_partition_vs_mlflow_run_local`, goal: at most 1.0x);
  (b) in a fresh Python that has imported MLflow: how long `mlflow.projects.run(uri,
      backend="concurrent", synchronous=False)` takes to return vs `backend="local"` (the run is then
      waited for, untimed, so rounds never overlap) (`p0_async_submit_vs_local`, goal: at most 1.5x).

`concurrent` keeps one CONCURRENT_HOME (store, caches) across rounds, as a user's machine does; an untimed
warm-up round of every contender fills caches (compiled modules, the project's) first.

Usage: uv run python bench/one_partition.py [--rounds 5] [--smoke] [--tracking-uri URI]
Without --tracking-uri it starts its own MLflow server under a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.harness import BenchContext, Section, interleave, ratio_figure, ratios, start_mlflow, stop

HERE = Path(__file__).resolve().parent
PROJECT = HERE / "projects" / "noop"
BIN = Path(sys.executable).parent
DAG = """
name: bench-one-partition
nodes:
  - {{id: noop, kind: project, project: "{project}", entry_point: main, env_manager: local}}
"""
# In a fresh interpreter: import MLflow (untimed), time projects.run until it returns, then wait untimed.
SUBMIT = """
import sys, time, mlflow.projects
started = time.perf_counter()
submitted = mlflow.projects.run(sys.argv[1], entry_point="main", parameters={}, backend=sys.argv[2],
                                env_manager="local", synchronous=False)
print("submit_seconds", time.perf_counter() - started, flush=True)
sys.exit(0 if submitted.wait() else 1)
"""
CONTENDERS = {
    "mlflow run -b local": "whole_mlflow_run_local",
    "concurrent run (1 partition)": "whole_concurrent_run",
    'projects.run(backend="local")': "submit_local",
    'projects.run(backend="concurrent")': "submit_concurrent",
}


def run_process(argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(argv), env=dict(env), cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
        )
    return done


def whole(argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> Callable[[], float]:
    def measure() -> float:
        started = time.perf_counter()
        run_process(argv, env, cwd)
        return time.perf_counter() - started

    return measure


def submit(backend: str, env: Mapping[str, str], cwd: Path) -> Callable[[], float]:
    def measure() -> float:
        done = run_process([sys.executable, "-c", SUBMIT, str(PROJECT), backend], env, cwd)
        return submit_seconds(done.stdout)

    return measure


def submit_seconds(stdout: str) -> float:
    """The figure SUBMIT printed (the run's own output, e.g. MLflow's links, may follow it)."""
    return next(float(line.split()[1]) for line in stdout.splitlines() if line.startswith("submit_seconds "))


def contenders(work: Path, tracking_uri: str) -> dict[str, Callable[[], float]]:
    dag = work / "dag.yaml"
    dag.write_text(DAG.format(project=PROJECT), encoding="utf-8")
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking_uri,
        "CONCURRENT_HOME": str(work / "home"),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # the local backend starts `mlflow run`
    }
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as an installed Python runs: modules compiled once
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    mlflow_run = [
        str(BIN / "mlflow"),
        "run",
        str(PROJECT),
        "-e",
        "main",
        "-b",
        "local",
        "--env-manager",
        "local",
    ]
    return {
        "mlflow run -b local": whole(mlflow_run, env, work),
        "concurrent run (1 partition)": whole(
            [str(BIN / "concurrent"), "run", str(dag), "--no-progress"], env, work
        ),
        'projects.run(backend="local")': submit("local", env, work),
        'projects.run(backend="concurrent")': submit("concurrent", env, work),
    }


def warmed_interleave(
    measures: Mapping[str, Callable[[], float]], rounds: int, warm_up: bool = True
) -> dict[str, list[float]]:
    """One untimed warm-up round (caches, compiled modules), then the harness's interleaved rounds."""
    for measure in measures.values() if warm_up else ():
        measure()
    return interleave(measures, rounds)


def spread(values: Sequence[float], digits: int = 2, unit: str = "") -> str:
    return f"{statistics.median(values):.{digits}f}{unit} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def goal_figure(ours: Sequence[float], theirs: Sequence[float], goal: float) -> dict[str, Any]:
    """The harness's ratio figure of our time over MLflow's, with both medians and the goal."""
    return ratio_figure(
        ratios(ours, theirs),
        median_s=round(statistics.median(ours), 3),
        reference_median_s=round(statistics.median(theirs), 3),
        goal=goal,
    )


def section(ctx: BenchContext) -> Section:
    work = ctx.workdir / "one_partition"
    work.mkdir(parents=True, exist_ok=True)
    times = warmed_interleave(
        contenders(work, ctx.tracking_uri), 1 if ctx.smoke else ctx.rounds, warm_up=not ctx.smoke
    )
    t = {CONTENDERS[name]: values for name, values in times.items()}
    figures = {
        "p0_one_partition_vs_mlflow_run_local": goal_figure(
            t["whole_concurrent_run"], t["whole_mlflow_run_local"], 1.0
        ),
        "p0_async_submit_vs_local": goal_figure(t["submit_concurrent"], t["submit_local"], 1.5),
    }
    pairs = [
        ("mlflow run -b local", "concurrent run (1 partition)"),
        ('projects.run(backend="local")', 'projects.run(backend="concurrent")'),
    ]
    rows = []
    for reference, ours in pairs:
        per_round = ratios(times[ours], times[reference])
        rows.append(f"| `{reference}` | {spread(times[reference])} | 1x |")
        rows.append(f"| `{ours}` | {spread(times[ours])} | {spread(per_round, 2, 'x')} |")
    markdown = (
        "## One partition vs MLflow's local backend (goal 2)\n\n"
        f"No-op entry point (bench/projects/noop), one MLflow server, {len(t['submit_local'])} interleaved "
        "round(s) after a warm-up. Whole processes start to exit (goal: at most 1.0x), and the time "
        "`mlflow.projects.run(..., synchronous=False)` takes to return in a Python that imported MLflow "
        "(goal: at most 1.5x). Seconds and ratio within the round: median (min-max).\n\n"
        "| contender | s | vs MLflow |\n| --- | ---: | ---: |\n" + "\n".join(rows)
    )
    return Section("p0", figures, markdown)


@contextmanager
def tracking(uri: str | None, root: Path) -> Iterator[str]:
    """`uri` if given, else a throwaway server of the harness's own under `root`."""
    if uri:
        yield uri
        return
    process, url, _ = start_mlflow(root, proxied=False)
    try:
        yield url
    finally:
        stop(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-one-partition-") as tmp:
        workdir = args.workdir or Path(tmp)
        with tracking(args.tracking_uri, workdir / "mlflow") as uri:
            done = section(
                BenchContext(
                    workdir, workdir, args.rounds, args.smoke, uri, workdir / "mlflow" / "server.log"
                )
            )
    print(done.markdown)
    print(json.dumps(done.figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(done.figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
