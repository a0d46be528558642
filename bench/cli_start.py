"""CLI start-up: `concurrent --version`, `--help` and `dag validate` against importing its own libraries.

The reference is the least any Python CLI built on our libraries can cost: a fresh interpreter that imports
Click, rich, pydantic and PyYAML and exits (`python -c "import click, rich, pydantic, yaml"`). Each round runs
the reference and every command once, as fresh processes, in an order that rotates from round to round; a
command's ratio is taken against the reference of its own round, so a machine that speeds up or slows down
mid-run moves both sides of each ratio. The table gives medians (and min-max) of wall time and of the ratios.

`dag validate` reads a local DAG whose project node names a local MLproject (bench/projects/noop), so it
checks the entry point and parameters as it does for users.

Every process may cache compiled modules (in a temporary PYTHONPYCACHEPREFIX that the warm-up round
fills) as an installed Python does, even where PYTHONDONTWRITEBYTECODE is set; --no-bytecode-cache measures
without.

Usage: uv run python bench/cli_start.py [--rounds 10] [--smoke] [--src DIR] [--results bench/results.json]
  --smoke   2 rounds, to check that the bench still runs
  --src     run the CLI from another source tree (e.g. an older checkout's src/) to measure it the same way
Figures are merged into --results under cli_version_vs_imports, cli_help_vs_imports and
cli_dag_validate_vs_imports (ratios, medians in seconds, rounds, date).
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
from datetime import UTC, datetime
from pathlib import Path

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


def report(times: dict[str, list[float]], results: dict[str, dict[str, float | int | str]]) -> None:
    print(f"\n{len(times['reference'])} rounds, {os.cpu_count()} cores, {sys.executable}\n")
    print(f"{'command':<34}{'median s':>10}{'min-max s':>16}{'ratio':>8}{'min-max':>14}")
    for name, seconds in times.items():
        spread = f"{min(seconds):.3f}-{max(seconds):.3f}"
        row = results.get(name)
        ratio = f"{row['ratio_median']:>8.2f}{row['ratio_min']:>7.2f}-{row['ratio_max']:<6.2f}" if row else ""
        print(f"{name:<34}{statistics.median(seconds):>10.3f}{spread:>16}{ratio}")


def merge(path: Path, results: dict[str, dict[str, float | int | str]]) -> None:
    stored = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    stored.update(results)
    path.write_text(json.dumps(stored, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--smoke", action="store_true", help="2 rounds: check that the bench still runs.")
    parser.add_argument("--src", type=Path, default=None, help="Run the CLI from this source tree.")
    parser.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="Compile every module from source at each start (as with PYTHONDONTWRITEBYTECODE=1).",
    )
    parser.add_argument("--results", type=Path, default=HERE / "results.json")
    args = parser.parse_args()
    rounds = 2 if args.smoke else args.rounds
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        dag = Path(tmp) / "dag.yaml"
        dag.write_text(DAG.format(project=HERE / "projects" / "noop"), encoding="utf-8")
        env = {**os.environ, "CONCURRENT_HOME": str(Path(tmp) / "home"), "COLUMNS": "100"}
        if not args.no_bytecode_cache:  # as installed Python runs: modules compiled once (in the warm-up)
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        if args.src:
            env["PYTHONPATH"] = str(args.src.resolve())
        times = measure(commands(dag), rounds, env)
    results = summarise(times)
    report(times, results)
    merge(args.results, results)
    print(f"\nwritten to {args.results}")


if __name__ == "__main__":
    main()
