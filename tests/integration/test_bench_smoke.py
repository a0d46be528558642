"""`make bench` at smoke size, so the benchmarks never rot: every section runs and writes its figures.

Tiny sizes, one round, no Prefect or PySpark (their envs are never built here); speed is not asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

# About 140 s on a quiet 2-core machine (two MLflow servers, eight `concurrent run`s); far more under load.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

REPO = Path(__file__).resolve().parents[2]
# The tables RESULTS.md must have, and figures each section writes at smoke size.
TABLES = [
    "## CLI start-up",
    "## MLflow REST calls per local task",
    "## P1: local fan-out",
    "## One partition vs MLflow's local backend",
    "## P2: batch inference",
    "## P3: control plane",
]
FIGURES = [
    "cli_version_vs_imports",
    "cli_help_vs_imports",
    "cli_dag_validate_vs_imports",
    "p3_mlflow_calls_per_task_direct",
    "p1_light_seconds",
    "p1_heavy_seconds",
    "p1_light_vs_multiprocessing",
    "p1_heavy_vs_multiprocessing",
    "p3_cost_vs_partitions",
    "p3_vs_bare_mlflow",
    "p2_inference_vs_limit",
    "p0_one_partition_vs_mlflow_run_local",
    "p0_async_submit_vs_local",
    "p2_limit_rows_per_s",
]


def numbers(figure: Any) -> list[float]:
    if isinstance(figure, bool):
        return []
    if isinstance(figure, int | float):
        return [float(figure)]
    if isinstance(figure, dict):
        return [n for value in figure.values() for n in numbers(value)]
    if isinstance(figure, list):
        return [n for value in figure for n in numbers(value)]
    return []


def test_the_smoke_bench_writes_every_sections_figures_and_tables(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text(json.dumps({"kept_from_an_earlier_run": {"ratio_median": 2.0}}))
    argv = [sys.executable, "-m", "bench", "--smoke", "--rounds", "1", "--only", "cli,p0,calls,p1,p2,p3"]
    argv += ["--workdir", str(tmp_path / "work"), "--out", str(out)]
    bench = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = bench.communicate(timeout=1100)
    except subprocess.TimeoutExpired:
        bench.terminate()  # SIGTERM: the bench stops its MLflow server on the way out
        output, _ = bench.communicate(timeout=60)
    assert bench.returncode == 0, output[-5000:]

    results = json.loads((out / "results.json").read_text())
    assert results["kept_from_an_earlier_run"] == {"ratio_median": 2.0}
    for name in FIGURES:
        found = numbers(results[name])
        assert found, name
        assert all(n >= 0 for n in found), (name, results[name])
    for name in ("cli_version_vs_imports", "p1_light_vs_multiprocessing", "p1_heavy_vs_multiprocessing"):
        assert results[name]["ratio_median"] > 0
    assert results["p3_vs_bare_mlflow"]["10"]["ratio_median"] > 0
    assert results["p3_cost_vs_partitions"]["10"]["server_peak_rss_mib"] > 0
    assert results["p3_mlflow_calls_per_task_direct"]["per_task"]["total"] > 0

    for plot in ("p3_cost_vs_partitions.png", "p2_rows_per_s_vs_partitions.png"):
        assert (out / plot).stat().st_size > 0  # matplotlib comes with MLflow

    markdown = (out / "RESULTS.md").read_text()
    assert "- machine: " in markdown
    for heading in TABLES:
        assert heading in markdown
    assert markdown.count("| --- |") >= 5  # cli, calls, p1 light and heavy, p3
