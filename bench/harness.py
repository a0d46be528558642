"""What every benchmark section of `make bench` (`python -m bench`) plugs into, and the helpers they share.

A section is a module of this package with one function:

    def section(ctx: BenchContext) -> Section

`bench/__main__.py` calls the sections named in `SECTIONS` (and `--only`), in that order, each once, with one
`BenchContext`; a module that is absent (e.g. bench/inference.py before it lands) is skipped. A section:

  - runs its contenders side by side, interleaved: round 1 runs A, B, C; round 2 runs A, B, C; ... (use
    `interleave`), never every round of A before B, because the machine's load drifts over minutes;
  - sizes itself from `ctx.smoke` (tiny sizes, no Prefect/PySpark: the test suite runs it) and `ctx.rounds`;
  - gets contender environments with `ctx.env("prefect" | "spark")` (bench/envs.py; never in smoke);
  - uses the bench's one MLflow server, `ctx.tracking_uri` (SQLite under the work dir, MLflow's job runner
    off; its access log is `ctx.mlflow_log`), and puts its files under `ctx.workdir / <section name>`;
  - returns a `Section`: `figures` are merged by key into bench/results.json (keys are the section's own and
    say what they compare, e.g. `p1_light_vs_multiprocessing`; a ratio is a dict from `ratio_figure`),
    `markdown` is its part of bench/RESULTS.md (a heading, how it was run, one table per job with the ratio
    column and median and min-max over rounds; `table` and `Spread` make them), and `plots` are the PNGs it
    drew into `ctx.out_dir` (with `plotting.lines`; they are linked under its markdown).
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import envs

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class BenchContext:
    workdir: Path
    out_dir: Path
    rounds: int
    smoke: bool
    tracking_uri: str
    mlflow_log: Path
    options: frozenset[str] = frozenset()  # opt-in slow contenders, e.g. "mlflow-run-loop"

    def env(self, name: str) -> Path:
        """The Python of contender env `name` ("prefect", "spark"), built on first use from bench/envs.py."""
        if self.smoke:
            raise RuntimeError(f"the smoke bench must not install contender env {name!r}")
        return envs.ensure(name, self.workdir)

    def dir(self, name: str) -> Path:
        path = self.workdir / name
        path.mkdir(parents=True, exist_ok=True)
        return path


@dataclass
class Section:
    name: str
    figures: dict[str, Any]
    markdown: str
    plots: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class Spread:
    """Median and min-max of one figure over rounds."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        return cls(statistics.median(values), min(values), max(values))

    def text(self, digits: int = 2, unit: str = "") -> str:
        return f"{self.median:.{digits}f}{unit} ({self.low:.{digits}f}-{self.high:.{digits}f})"


def interleave(contenders: Mapping[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Each contender's figure per round, run round-robin: A B C, A B C, ..."""
    figures: dict[str, list[float]] = {name: [] for name in contenders}
    for round_ in range(rounds):
        for name, measure in contenders.items():
            figures[name].append(measure())
            print(f"  round {round_ + 1}/{rounds} {name}: {figures[name][-1]:.2f}", flush=True)
    return figures


def ratios(numerators: Sequence[float], denominators: Sequence[float]) -> list[float]:
    """Round-by-round ratios, so each compares figures taken minutes apart, not a whole run apart."""
    return [a / b for a, b in zip(numerators, denominators, strict=True)]


def ratio_figure(values: Sequence[float], **extra: Any) -> dict[str, Any]:
    spread = Spread.of(values)
    return {
        "ratio_median": round(spread.median, 3),
        "ratio_min": round(spread.low, 3),
        "ratio_max": round(spread.high, 3),
        "rounds": len(values),
        "date": today(),
        **extra,
    }


def seconds_figure(values: Sequence[float]) -> dict[str, Any]:
    spread = Spread.of(values)
    return {
        "median_s": round(spread.median, 3),
        "min_s": round(spread.low, 3),
        "max_s": round(spread.high, 3),
    }


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table; columns after the first are right-aligned (they hold figures)."""
    lines = ["| " + " | ".join(headers) + " |", "| --- |" + " ---: |" * (len(headers) - 1)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def timed(argv: Sequence[str], env: Mapping[str, str], cwd: Path | None = None) -> float:
    """Wall seconds of one process, start to exit; its output is kept only if it fails."""
    started = time.perf_counter()
    done = subprocess.run(list(argv), env=dict(env), cwd=cwd, capture_output=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).decode(errors="replace")[-3000:]
        raise RuntimeError(f"{' '.join(map(str, argv[:4]))} ... exited {done.returncode}:\n{tail}")
    return seconds


def start_mlflow(root: Path, *, proxied: bool) -> tuple[subprocess.Popen[bytes], str, Path]:
    """A throwaway `mlflow server` (SQLite under `root`, job runner off) and its URL and access log."""
    from concurrent_mlflow.local_mlflow import _free_port, server_command, server_env

    port = _free_port()
    root.mkdir(parents=True, exist_ok=True)
    log = root / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            server_command(root, port, proxy_artifacts=proxied, workers=1),
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=server_env(),
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow server exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return process, url, log
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError("mlflow server did not become healthy")


def stop(process: subprocess.Popen[bytes]) -> None:
    """End a server started in a session of its own, with the workers it forked (its process group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
