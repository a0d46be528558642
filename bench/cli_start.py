"""CLI start-up: `concurrent --version`, `--help` and `dag validate` against importing its own libraries.

The reference is the least any Python CLI built on our libraries can cost: a fresh interpreter that imports
Click, rich, pydantic and PyYAML and exits (`python -c "import click, rich, pydantic, yaml"`). Each round runs
the reference and every command once, as fresh processes, in an order that rotates from round to round; a
command's ratio is taken against the reference of its own round, so a machine that speeds up or slows down
mid-run moves both sides of each ratio. The table gives medians (and min-max) of wall time and of the ratios.

`dag validate` reads a local DAG whose project node names a local MLproject (bench/projects/noop), so it
checks the entry point and parameters as it does for users.

Every process may cache compiled modules (in a PYTHONPYCACHEPREFIX that the warm-up round fills) as an
installed Python does, even where PYTHONDONTWRITEBYTECODE is set.

A section of `make bench` (bench/harness.py); figures: cli_version_vs_imports, cli_help_vs_imports and
cli_dag_validate_vs_imports (ratios, medians in seconds, rounds, date).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.harness import BenchContext, Section, Spread, ratios, table

HERE = Path(__file__).resolve().parent
REFERENCE = "import click, rich, pydantic, yaml"
DAG = """
name: bench-validate
nodes:
  - {{id: files, kind: source, uri: data}}
  - {{id: noop, kind: project, project: "{project}", entry_point: main, partitions: 4}}
edges:
  - {{from: files, to: noop, input: data, partitioner: file}}
"""


def commands(dag: Path) -> dict[str, list[str]]:
    """Result name -> argv; the console script sits beside this interpreter."""
    script = str(Path(sys.executable).with_name("concurrent"))
    return {
        "cli_version_vs_imports": [script, "--version"],
        "cli_help_vs_imports": [script, "--help"],
        "cli_dag_validate_vs_imports": [script, "dag", "validate", str(dag)],
    }


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def measure(named: dict[str, list[str]], rounds: int, env: dict[str, str]) -> dict[str, list[float]]:
    """Wall seconds of every command per round (REFERENCE under "reference"), after one untimed round."""
    argvs = {"reference": [sys.executable, "-c", REFERENCE], **named}
    order = list(argvs)
    for argv in argvs.values():
        timed(argv, env)
    times: dict[str, list[float]] = {name: [] for name in argvs}
    for round_ in range(rounds):
        shift = round_ % len(order)
        for name in order[shift:] + order[:shift]:
            times[name].append(timed(argvs[name], env))
    return times


def summarise(times: dict[str, list[float]]) -> dict[str, dict[str, float | int | str]]:
    reference = times["reference"]
    results: dict[str, dict[str, float | int | str]] = {}
    for name, seconds in times.items():
        if name == "reference":
            continue
        ratios = [s / r for s, r in zip(seconds, reference, strict=True)]
        results[name] = {
            "ratio_median": round(statistics.median(ratios), 3),
            "ratio_min": round(min(ratios), 3),
            "ratio_max": round(max(ratios), 3),
            "median_s": round(statistics.median(seconds), 4),
            "reference_median_s": round(statistics.median(reference), 4),
            "rounds": len(seconds),
            "reference": f'python -c "{REFERENCE}"',
            "date": datetime.now(UTC).date().isoformat(),
        }
    return results


def section(ctx: BenchContext) -> Section:
    rounds = ctx.rounds if ctx.smoke else max(10, ctx.rounds)  # 0.1 s commands: cheap rounds, more of them
    work = ctx.dir("cli")
    dag = work / "dag.yaml"
    dag.write_text(DAG.format(project=HERE / "projects" / "noop"), encoding="utf-8")
    env = {**os.environ, "CONCURRENT_HOME": str(work / "home"), "COLUMNS": "100"}
    env.pop(
        "PYTHONDONTWRITEBYTECODE", None
    )  # as installed Python runs: modules compiled once (in the warm-up)
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    times = measure(commands(dag), rounds, env)
    results = summarise(times)
    rows = [
        [
            "`concurrent " + " ".join(a for a in commands(dag)[name][1:3] if not a.endswith(".yaml")) + "`",
            Spread.of(times[name]).text(3),
            Spread.of(ratios(times[name], times["reference"])).text(2, "x"),
        ]
        for name in results
    ]
    rows.insert(0, [f'`python -c "{REFERENCE}"`', Spread.of(times["reference"]).text(3), "1x"])
    markdown = (
        "## CLI start-up (goal 1: at most 2x the reference)\n\n"
        f"Fresh processes, {rounds} rounds in rotating order after a warm-up round, compiled modules "
        "cached; `dag validate` reads a local DAG with a local MLproject. Seconds and the ratio to the "
        "reference of the same round: median (min-max).\n\n"
        + table(["command", "wall s", "vs reference"], rows)
    )
    return Section("cli", results, markdown)
