"""P1, local fan-out: the same job on every contender, side by side, each a whole process from start to exit.

The job hashes every file of a directory (10,000 files of 2 KiB): the light job once per file, the heavy
job `repeat` times per file, the repeat calibrated so that plain multiprocessing spends at least 30 s on it
here. Contenders (bench/fanout_jobs.py holds the others' code):

  multiprocessing       a Pool over the files, the limit of this machine
  concurrent            `concurrent run` of a DAG with one project node of 20 partitions
                        (bench/projects/hasher) against the bench's MLflow server
  prefect_chunks        Prefect `task.map` over 20 chunks, in Prefect's own venv (default engine)
  prefect_per_file      Prefect `task.map` per file (light job only), likewise
  mlflow_run_loop       a loop of 20 `mlflow run` (only with --mlflow-run-loop: minutes)

Figures: p1_{light,heavy}_seconds (per contender), p1_{light,heavy}_vs_multiprocessing,
p1_{light,heavy}_vs_prefect_chunks, p1_light_vs_prefect_per_file: our time over theirs, per round.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import (
    BenchContext,
    Section,
    Spread,
    interleave,
    ratio_figure,
    ratios,
    seconds_figure,
    table,
    timed,
)

HERE = Path(__file__).resolve().parent
HASHER = HERE / "projects" / "hasher"
HEAVY_SECONDS = 30.0  # of multiprocessing wall time: orchestration overhead must be small next to it
DAG = """name: bench-fanout
nodes:
  - {{id: files, kind: source, uri: '{data}'}}
  - {{id: hash, kind: project, project: '{project}', partitions: {partitions}}}
edges:
  - {{from: files, to: hash, input: files, partitioner: file}}
"""


@dataclass(frozen=True)
class Sizes:
    files: int
    partitions: int  # ours, Prefect's chunks and the mlflow-run loop's processes
    file_bytes: int = 2048


FULL, SMOKE = Sizes(files=10_000, partitions=20), Sizes(files=20, partitions=2)


def section(ctx: BenchContext) -> Section:
    sizes = SMOKE if ctx.smoke else FULL
    work = ctx.dir("p1")
    data = make_files(work / f"data-{sizes.files}", sizes)
    warm = make_files(work / "data-warm-up", Sizes(files=8, partitions=2))
    repeat = 3 if ctx.smoke else calibrate(data, sizes)
    runners = contenders(ctx, work, sizes)
    for run in [] if ctx.smoke else runners.values():  # caches, Prefect's database: not timed
        run(warm, 1)
    light = {name: runners[name] for name in runners}
    heavy = {name: run for name, run in runners.items() if name != "prefect_per_file"}
    print(f"P1 light: {sizes.files} files", flush=True)
    light_s = interleave({name: _bind(run, data, 1) for name, run in light.items()}, ctx.rounds)
    print(f"P1 heavy: repeat={repeat}", flush=True)
    heavy_s = interleave({name: _bind(run, data, repeat) for name, run in heavy.items()}, ctx.rounds)
    figures = {
        "p1_light_seconds": {name: seconds_figure(s) for name, s in light_s.items()},
        "p1_heavy_seconds": {name: seconds_figure(s) | {"repeat": repeat} for name, s in heavy_s.items()},
    }
    for job, times in (("light", light_s), ("heavy", heavy_s)):
        for other in ("multiprocessing", "prefect_chunks", "prefect_per_file"):
            if other in times:
                figures[f"p1_{job}_vs_{other}"] = ratio_figure(ratios(times["concurrent"], times[other]))
    return Section("p1", figures, markdown(sizes, repeat, light_s, heavy_s, ctx))


def contenders(ctx: BenchContext, work: Path, sizes: Sizes) -> dict[str, Callable[[Path, int], float]]:
    """Name -> run(data dir, repeat) -> wall seconds."""
    jobs = str(HERE / "fanout_jobs.py")
    found: dict[str, Callable[[Path, int], float]] = {
        "multiprocessing": lambda data, repeat: timed(
            [sys.executable, jobs, "multiprocessing", str(data), "--repeat", str(repeat)], os.environ
        ),
        "concurrent": lambda data, repeat: ours(ctx, work, sizes, data, repeat),
    }
    if not ctx.smoke:
        python = str(ctx.env("prefect"))
        env = {
            **os.environ,
            "PREFECT_HOME": str(work / "prefect-home"),
            # its temporary server starts in ~20 s at rest: more on a loaded machine
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "300",
        }
        found["prefect_chunks"] = lambda data, repeat: timed(
            [
                python,
                jobs,
                "prefect-chunks",
                str(data),
                "--repeat",
                str(repeat),
                "--chunks",
                str(sizes.partitions),
            ],
            env,
        )
        found["prefect_per_file"] = lambda data, repeat: timed(
            [python, jobs, "prefect-per-file", str(data), "--repeat", str(repeat)], env
        )
    if "mlflow-run-loop" in ctx.options:
        found["mlflow_run_loop"] = lambda data, repeat: mlflow_run_loop(ctx, sizes, data, repeat)
    return found


def ours(ctx: BenchContext, work: Path, sizes: Sizes, data: Path, repeat: int) -> float:
    dag = work / f"dag-{data.name}.yaml"
    dag.write_text(DAG.format(data=data, project=HASHER, partitions=sizes.partitions), encoding="utf-8")
    concurrent = str(Path(sys.executable).with_name("concurrent"))
    argv = [concurrent, "run", str(dag), "-P", f"hash.repeat={repeat}", "--no-progress"]
    return timed(argv, _env(ctx, work))


def mlflow_run_loop(ctx: BenchContext, sizes: Sizes, data: Path, repeat: int) -> float:
    """What users hand-roll today: one `mlflow run` per partition, one after the other."""
    started = time.perf_counter()
    for partition in range(sizes.partitions):
        params = [f"input_dir={data}", f"partition={partition}", f"partitions={sizes.partitions}"]
        argv = [sys.executable, "-m", "mlflow", "run", str(HASHER), "--env-manager", "local"]
        argv += ["--experiment-name", "bench-mlflow-run-loop", *[a for p in params for a in ("-P", p)]]
        argv += ["-P", f"repeat={repeat}"]
        timed(argv, {**_env(ctx, ctx.dir("p1")), "BENCH_OUT": str(ctx.dir("p1") / "loop-out")})
    return time.perf_counter() - started


def _env(ctx: BenchContext, work: Path) -> dict[str, str]:
    path = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"  # `python` in MLproject commands
    return {
        **os.environ,
        "MLFLOW_TRACKING_URI": ctx.tracking_uri,
        "CONCURRENT_HOME": str(work / "home"),
        "PATH": path,
    }


def _bind(run: Callable[[Path, int], float], data: Path, repeat: int) -> Callable[[], float]:
    return lambda: run(data, repeat)


def make_files(root: Path, sizes: Sizes) -> Path:
    """`files` random files in 50 shards, made once per work dir."""
    done = root / ".complete"
    if done.exists():
        return root
    for i in range(sizes.files):
        path = root / f"shard-{i % 50:02d}" / f"file-{i:06d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(sizes.file_bytes))
    done.touch()
    return root


def calibrate(data: Path, sizes: Sizes) -> int:
    """The repeat count that gives multiprocessing at least HEAVY_SECONDS of work on all cores here."""
    sys.path.insert(0, str(HASHER))
    from hashwork import digest

    sample = sorted(p for p in data.rglob("*.bin"))[:50]
    trial = 200
    started = time.process_time()
    for path in sample:
        digest(path, trial)
    per_hash = (time.process_time() - started) / (len(sample) * trial)
    cores = os.cpu_count() or 1
    return math.ceil(HEAVY_SECONDS * cores / (per_hash * sizes.files) / 50) * 50


def markdown(
    sizes: Sizes,
    repeat: int,
    light: dict[str, list[float]],
    heavy: dict[str, list[float]],
    ctx: BenchContext,
) -> str:
    parts = [
        "## P1: local fan-out (goal 4: light at most 10x multiprocessing, heavy at most 1.3x; both "
        "faster than Prefect with 20 chunks)\n",
        f"SHA-256 of {sizes.files:,} files of {sizes.file_bytes} B; light: each file once; heavy: each "
        f"file {repeat} times (calibrated for >= {HEAVY_SECONDS:.0f} s of multiprocessing here). Every "
        f"contender is a whole process, start to exit, run round-robin over {ctx.rounds} rounds after an "
        f"untimed warm-up on 8 files{' (not in smoke runs)' if ctx.smoke else ''}. `concurrent`: "
        f"`concurrent run` of one project node of {sizes.partitions} partitions, local executor, against "
        "the bench's MLflow server (SQLite, one worker). "
        "Prefect (its own venv, bench/envs.py) as a user runs it by default: the flow in the "
        "script's process, the default thread-pool task runner, and the temporary local API server "
        "Prefect starts itself. Ratio: our time over the contender's, per round; median (min-max).\n",
    ]
    for job, times in (("light", light), ("heavy", heavy)):
        rows: list[list[Any]] = []
        for name, seconds in times.items():
            ratio = Spread.of(ratios(times["concurrent"], seconds)).text(2, "x")
            rows.append([name, Spread.of(seconds).text(2), "-" if name == "concurrent" else ratio])
        parts += [f"### {job}\n", table(["contender", "wall s", "concurrent vs it"], rows) + "\n"]
    return "\n".join(parts)
