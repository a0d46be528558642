"""P2 batch inference: rows/s of an MLflow model over Parquet, this project against the machine's limit and
`mlflow.pyfunc.spark_udf`, side by side in one run (issue 14, goal 5).

Contenders, interleaved over rounds (medians and spread reported):
  - one plain Python process held to one core (sched_setaffinity): read each Parquet file, pyfunc predict,
    write Parquet; its rate (model load excluded) times the cores is the limit. The same process free to use
    every core (pyarrow's and BLAS's threads) and plain `multiprocessing` with one process per core, end to
    end, are reported too, for what they really achieve;
  - `concurrent run` of `source -> inference` with 2 ... 20 partitions, the whole process, against a running
    MLflow server;
  - `spark_udf` on local[cores] in its own env (bench/envs.py): read, withColumn(prediction), write; end to
    end (session start included, as a user runs it) and the job alone.

Run standalone: `uv run python bench/inference.py [--rows 10000000] [--rounds 3] [--smoke] [--no-spark]`;
`make bench` calls `section(ctx)`.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import BenchContext, Section, ratio_figure, ratios

FEATURES = [f"f{i}" for i in range(10)]
FILES = 40
PARTITIONS = (2, 5, 10, 20)
SPARK_JOB = """
import json, sys, time
started = time.perf_counter()
from pyspark.sql import SparkSession
from pyspark.sql.functions import struct
import mlflow.pyfunc
cores, model, source, target = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
spark = (SparkSession.builder.master(f"local[{cores}]").config("spark.ui.enabled", "false")
         .config("spark.sql.execution.arrow.pyspark.enabled", "true").getOrCreate())
session = time.perf_counter()
predict = mlflow.pyfunc.spark_udf(spark, model, result_type="double", env_manager="local")
frame = spark.read.parquet(source)
frame.withColumn("prediction", predict(struct(*sys.argv[5].split(",")))).write.mode(
    "overwrite").parquet(target)
done = time.perf_counter()
print(json.dumps({"session": session - started, "job": done - session}))
"""


# -- data and model -----------------------------------------------------------------------------------------
def make_data(root: Path, rows: int, files: int) -> Path:
    """`files` Parquet files of `rows` rows in all (10 float features), made once per size."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = root / f"rows-{rows}-files-{files}"
    if (data / ".done").exists():
        return data
    data.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(14)
    for i in range(files):
        count = rows // files + (1 if i < rows % files else 0)
        columns = {"id": pa.array(np.arange(count, dtype=np.int64) + i * (rows // files + 1))}
        columns.update({name: pa.array(rng.standard_normal(count)) for name in FEATURES})
        pq.write_table(pa.table(columns), data / f"part-{i:03d}.parquet")
    (data / ".done").write_text("")
    return data


def log_model(tracking_uri: str) -> str:
    """A LogisticRegression over the 10 features, logged as an MLflow model; its runs:/ URI."""
    import mlflow
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.standard_normal((5000, len(FEATURES))), columns=FEATURES)
    model = LogisticRegression().fit(x, (x["f0"] + x["f1"] > 0).astype(int))
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("bench-inference-model")
    with mlflow.start_run() as run:
        mlflow.sklearn.log_model(model, name="model", input_example=x.head(3))
    return f"runs:/{run.info.run_id}/model"


# -- contenders ---------------------------------------------------------------------------------------------
def one_process(model_uri: str, files: list[str], out: str) -> dict[str, float]:
    """The plain job in this process: its rows and the seconds they took (model load excluded)."""
    import mlflow.pyfunc
    import pyarrow as pa
    import pyarrow.parquet as pq

    model = mlflow.pyfunc.load_model(model_uri)
    started, rows = time.perf_counter(), 0
    for path in files:
        frame = pq.read_table(path).to_pandas()
        frame["prediction"] = model.predict(frame[FEATURES])
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), Path(out) / Path(path).name)
        rows += len(frame)
    return {"rows": rows, "seconds": time.perf_counter() - started}


def run_one_process(model_uri: str, files: list[Path], out: Path, uri: str, *, one_core: bool) -> float:
    """Rows/s of one fresh process over `files`; with `one_core`, held to one core."""
    out.mkdir(parents=True, exist_ok=True)
    flag = "--one-core" if one_core else "--one-process"
    done = _python([sys.executable, __file__, flag, model_uri, str(out), *map(str, files)], uri)
    result = json.loads(done.splitlines()[-1])
    return float(result["rows"]) / float(result["seconds"])


def run_multiprocessing(model_uri: str, files: list[Path], out: Path, uri: str, cores: int) -> float:
    """Seconds for `cores` processes over all files, end to end (start and model load included)."""
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    _python([sys.executable, __file__, "--pool", str(cores), model_uri, str(out), *map(str, files)], uri)
    return time.perf_counter() - started


def _pool(cores: int, model_uri: str, out: str, files: list[str]) -> None:
    chunks = [files[i::cores] for i in range(cores)]
    with multiprocessing.get_context("spawn").Pool(cores) as pool:
        pool.starmap(one_process, [(model_uri, chunk, out) for chunk in chunks if chunk])


def run_concurrent(
    data: Path, model_uri: str, partitions: int, workdir: Path, uri: str
) -> tuple[float, float]:
    """Seconds of `concurrent run` of source -> inference with `partitions` partitions, the whole process,
    and the stage's scoring rate (rows/s while its partitions scored, from their metrics)."""
    dag = workdir / f"inference-{partitions}.yaml"
    dag.write_text(
        "name: bench-inference\nnodes:\n"
        f"  - {{id: rows, kind: source, uri: '{data}', pattern: '*.parquet'}}\n"
        f"  - {{id: score, kind: inference, model: '{model_uri}', partitions: {partitions}, "
        f"columns: {json.dumps(FEATURES)}, batch_size: 100000}}\n"
        "edges:\n  - {from: rows, to: score, input: rows}\n"
    )
    started = time.perf_counter()
    out = _python(
        [sys.executable, "-m", "concurrent_mlflow.cli", "run", str(dag), "--no-progress"],
        uri,
        {"CONCURRENT_HOME": str(workdir / "concurrent-home")},
    )
    seconds = time.perf_counter() - started
    return seconds, scoring_rate(uri, re.findall(r"/runs/([0-9a-f]{32})", out)[-1])


def scoring_rate(uri: str, parent: str) -> float:
    """Rows/s of a run's inference stage from the first partition's start of scoring to the last one's
    end, as its partitions logged them (`rows_scored`, `scoring_seconds`, at the end of scoring)."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    children = client.search_runs(
        [client.get_run(parent).info.experiment_id], f"tags.mlflow.parentRunId = '{parent}'"
    )
    spans, rows = [], 0.0
    for child in children:
        if "rows_scored" not in child.data.metrics:
            continue
        seconds = client.get_metric_history(child.info.run_id, "scoring_seconds")[-1]
        end = seconds.timestamp / 1000
        spans.append((end - seconds.value, end))
        rows += child.data.metrics["rows_scored"]
    if not spans:
        raise RuntimeError(f"run {parent} has no child run with scoring metrics")
    return rows / (max(end for _, end in spans) - min(start for start, _ in spans))


def run_spark(
    python: Path, data: Path, model_uri: str, out: Path, uri: str, cores: int
) -> tuple[float, float]:
    """(end-to-end seconds of the spark_udf process, seconds of its job without the session start)."""
    started = time.perf_counter()
    done = _python(
        [str(python), "-c", SPARK_JOB, str(cores), model_uri, str(data), str(out), ",".join(FEATURES)],
        uri,
        {"PYSPARK_PYTHON": str(python)},  # Spark's Python workers: the env's, not the `python3` on PATH
    )
    total = time.perf_counter() - started
    return total, float(json.loads(done.strip().splitlines()[-1])["job"])


def _python(argv: list[str], uri: str, extra: dict[str, str] | None = None) -> str:
    root = str(Path(__file__).resolve().parent.parent)  # this file, run as a script, imports bench.harness
    path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PYTHONPATH": path, **(extra or {})}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{argv[:4]} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


# -- the section --------------------------------------------------------------------------------------------
def section(ctx: BenchContext) -> Section:
    rows = int(os.environ.get("BENCH_INFERENCE_ROWS") or (20_000 if ctx.smoke else 10_000_000))
    wanted = os.environ.get("BENCH_INFERENCE_PARTITIONS")
    partitions = tuple(map(int, wanted.split(","))) if wanted else (2,) if ctx.smoke else PARTITIONS
    cores = len(os.sched_getaffinity(0))
    work = ctx.workdir / "inference"
    data = make_data(work / "data", rows, FILES)
    files = sorted(data.glob("*.parquet"))
    model_uri = log_model(ctx.tracking_uri)
    spark = None if ctx.smoke or os.environ.get("BENCH_NO_SPARK") else _spark_python(ctx.workdir)
    samples: dict[str, list[float]] = {}
    for _ in range(max(1, ctx.rounds)):
        share = files[: max(1, len(files) // cores)]
        for name, one_core in (("one_core", True), ("one_process", False)):
            one = run_one_process(model_uri, share, work / "out-one", ctx.tracking_uri, one_core=one_core)
            samples.setdefault(f"{name}_rows_per_s", []).append(one)
        pool = run_multiprocessing(model_uri, files, work / "out-pool", ctx.tracking_uri, cores)
        samples.setdefault("multiprocessing_rows_per_s", []).append(rows / pool)
        for n in partitions:
            seconds, scoring = run_concurrent(data, model_uri, n, work, ctx.tracking_uri)
            samples.setdefault(f"concurrent_{n}p_rows_per_s", []).append(rows / seconds)
            samples.setdefault(f"concurrent_{n}p_scoring_rows_per_s", []).append(scoring)
        if spark is not None:
            try:
                total, job = run_spark(spark, data, model_uri, work / "out-spark", ctx.tracking_uri, cores)
            except RuntimeError as exc:  # a contender's failure is reported, not the end of the bench
                print(f"spark_udf failed: {exc}", file=sys.stderr)
                spark = None
                continue
            samples.setdefault("spark_udf_rows_per_s", []).append(rows / total)
            samples.setdefault("spark_udf_job_rows_per_s", []).append(rows / job)
    return _summarise(samples, rows, cores, partitions, ctx.out_dir)


def _spark_python(workdir: Path) -> Path:
    from bench.envs import ensure

    return ensure("spark", workdir)


def _summarise(
    samples: dict[str, list[float]], rows: int, cores: int, partitions: tuple[int, ...], out_dir: Path
) -> Section:
    median = {name: statistics.median(values) for name, values in samples.items()}
    figures: dict[str, Any] = {f"p2_{name}": value for name, value in median.items()}
    limit = cores * median["one_core_rows_per_s"]
    figures["p2_limit_rows_per_s"] = limit
    ours = samples[f"concurrent_{max(partitions)}p_rows_per_s"]  # ratios per round, then their spread
    limits = [cores * one for one in samples["one_core_rows_per_s"]]
    figures["p2_inference_vs_limit"] = ratio_figure(ratios(ours, limits), partitions=max(partitions))
    if 2 in partitions and 20 in partitions:  # time of 20 partitions over time of 2, for the same rows
        figures["p2_20_vs_2_partitions"] = ratio_figure(ratios(samples["concurrent_2p_rows_per_s"], ours))
    scoring = samples[f"concurrent_{max(partitions)}p_scoring_rows_per_s"]
    figures["p2_scoring_vs_limit"] = ratio_figure(ratios(scoring, limits), partitions=max(partitions))
    if "spark_udf_rows_per_s" in samples and len(samples["spark_udf_rows_per_s"]) == len(ours):
        figures["p2_inference_vs_spark_udf"] = ratio_figure(ratios(ours, samples["spark_udf_rows_per_s"]))
        figures["p2_scoring_vs_spark_udf_job"] = ratio_figure(
            ratios(scoring, samples["spark_udf_job_rows_per_s"])
        )
    lines = [
        f"{rows:,} rows x {len(FEATURES)} features in {FILES} Parquet files, sklearn LogisticRegression, "
        f"{cores} cores; median (min-max) of {len(next(iter(samples.values())))} interleaved round(s).",
        "",
        "| contender | rows/s | vs limit |",
        "|---|---|---|",
    ]
    for name, values in samples.items():
        lines.append(
            f"| {name.removesuffix('_rows_per_s').replace('_', ' ')} | {median[name]:,.0f} "
            f"({min(values):,.0f}-{max(values):,.0f}) | {median[name] / limit:.2f} |"
        )
    lines.append(f"| limit: {cores} x one core | {limit:,.0f} | 1.00 |")
    lines += [
        "",
        "`one core` and `one process` score their share of the files (1/cores) alone, model load excluded: "
        "the first held to one core, whose rate times the cores is the limit; the second free to use every "
        "core through pyarrow's and BLAS's threads. `multiprocessing`, `concurrent Np` and `spark udf` are "
        "whole processes, start to exit (Python start, imports, MLflow runs, model loading, outputs logged "
        "as MLflow artifacts). `concurrent Np scoring` is the same runs' stage while it scored, from the "
        "first partition's start to the last one's end (their `rows_scored` and `scoring_seconds` "
        "metrics), and `spark udf job` the Spark job without the session's start: the steady state.",
    ]
    plots = _plot(median, partitions, limit, out_dir)
    return Section(
        "p2",
        figures,
        "## P2: batch inference (goal 5: at least 0.8x the limit and 3x spark_udf; 20 partitions within "
        "1.2x of 2)\n\n" + "\n".join(lines),
        plots,
    )


def _plot(median: dict[str, float], partitions: tuple[int, ...], limit: float, out_dir: Path) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.plot(
        partitions, [median[f"concurrent_{n}p_rows_per_s"] for n in partitions], "o-", label="concurrent"
    )
    axes.plot(
        partitions,
        [median[f"concurrent_{n}p_scoring_rows_per_s"] for n in partitions],
        "s--",
        label="concurrent, while scoring",
    )
    axes.axhline(limit, linestyle="--", color="grey", label="limit (cores x one process)")
    axes.axhline(median["multiprocessing_rows_per_s"], linestyle="-.", color="green", label="multiprocessing")
    axes.set_xticks(partitions)
    if "spark_udf_rows_per_s" in median:
        axes.axhline(median["spark_udf_rows_per_s"], linestyle=":", color="red", label="spark_udf")
    axes.set_xlabel("partitions")
    axes.set_ylabel("rows/s")
    axes.legend()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "p2_rows_per_s_vs_partitions.png"
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)
    return [path]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in ("--one-process", "--one-core"):
        if sys.argv[1] == "--one-core":  # before any thread pool starts
            os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        print(json.dumps(one_process(sys.argv[2], sys.argv[4:], sys.argv[3])))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--pool":
        _pool(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:])
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--no-spark", action="store_true")
    parser.add_argument("--rows", type=int, help="default 10,000,000 (20,000 with --smoke)")
    parser.add_argument("--partitions", help="comma-separated, default 2,5,10,20")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "bench-inference")
    args = parser.parse_args()
    for flag, name in ((args.no_spark, "BENCH_NO_SPARK"), (args.rows, "BENCH_INFERENCE_ROWS")):
        if flag:
            os.environ[name] = str(int(flag))
    if args.partitions:
        os.environ["BENCH_INFERENCE_PARTITIONS"] = args.partitions
    from concurrent_mlflow.local_mlflow import ensure_server

    uri = os.environ.get("MLFLOW_TRACKING_URI") or ensure_server(args.workdir / "mlflow")
    log = args.workdir / "mlflow" / "server.log"
    done = section(BenchContext(args.workdir, args.workdir / "out", args.rounds, args.smoke, uri, log))
    print(done.markdown)
    print(json.dumps(done.figures, indent=1))


if __name__ == "__main__":
    main()
