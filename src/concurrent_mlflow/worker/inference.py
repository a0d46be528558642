"""Built-in batch inference: score this partition's files in batches with an MLflow model.

CSV and Parquet inputs are read in record batches (pyarrow), so a file larger than memory still scores;
predictions are written as Parquet under the output dir, mirroring the input's relative path. Batches stay
in Arrow: only the feature columns become a pandas frame (pyfunc enforces the model's schema on pandas), and
the prediction is appended to the batch as one more column, every input column kept as it was read. Each
partition logs `rows_scored`, `scoring_seconds` and `rows_per_second` (model loading excluded).

The model is loaded once per stage where the local executor can: `preload`, called in a warm fork server
(executors/warm_models.py) before it forks the stage's tasks, puts it in `LOADED`, which every forked task
shares copy-on-write. A task that finds its model there skips the download, the flavour's imports and the
load; any other task loads it itself.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from concurrent_mlflow.errors import ConcurrentError
from concurrent_mlflow.manifest import InferenceSpec, Manifest

log = logging.getLogger("concurrent.worker")
SUFFIXES = (".csv", ".parquet", ".pq")
ROWS_METRIC, SECONDS_METRIC, RATE_METRIC = "rows_scored", "scoring_seconds", "rows_per_second"
LOADED: dict[str, Any] = {}  # model URI -> loaded pyfunc model, filled in a warm fork server only


def score_partition(spec: InferenceSpec, manifest: Manifest, input_dir: Path, output_dir: Path) -> list[Any]:
    """Score every CSV/Parquet input file; returns the metrics of it to log on the child run."""
    model = _model(spec.model)
    started, rows = time.perf_counter(), 0
    for name, items in sorted(manifest.inputs.items()):
        for item in items:
            if not item.relpath.lower().endswith(SUFFIXES):
                log.info("skipping %s: not CSV or Parquet", item.relpath)
                continue
            target = (
                output_dir / "predictions" / name / (str(Path(item.relpath).with_suffix("")) + ".parquet")
            )
            rows += _score_file(model, input_dir / name / item.relpath, target, spec)
    seconds = time.perf_counter() - started
    log.info("scored %d row(s) with %s in %.2f s", rows, spec.model, seconds)
    return scoring_metrics(rows, seconds)


def scoring_metrics(rows: int, seconds: float) -> list[Any]:
    """What a partition's scoring did, as MLflow metrics (the model's loading excluded): the parent run
    then shows their min, max and mean over partitions (run_summary.py)."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    rate = rows / seconds if seconds > 0 else 0.0
    figures = {ROWS_METRIC: rows, SECONDS_METRIC: seconds, RATE_METRIC: rate}
    return [Metric(key, float(value), now, 0) for key, value in figures.items()]


def _model(uri: str) -> Any:
    if uri in LOADED:
        log.info("model %s: loaded once for the stage, shared", uri)
        return LOADED[uri]
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(uri)


def preload(uri: str) -> Callable[[], None]:
    """In a warm fork server, before it serves: load the model at `uri` for every task forked after;
    returns what removes its downloaded copy once the server is done.

    Downloading a `runs:/` or `models:/` model starts MLflow's download threads, which must never run in a
    process that forks; so a child process downloads it, and this process only loads the local copy (kept
    while tasks run: a flavour may read its files lazily)."""
    if Path(uri).is_dir():
        _load(uri, uri)
        return lambda: None
    scratch = os.environ.get("CONCURRENT_SCRATCH")
    if scratch:
        Path(scratch).mkdir(parents=True, exist_ok=True)
    target = tempfile.mkdtemp(prefix="concurrent-model-", dir=scratch)
    try:
        _load(uri, _download_in_child(uri, target))
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return lambda: shutil.rmtree(target, ignore_errors=True)


def _load(uri: str, local: str) -> None:
    """Load the model and score its input example once, if it has one: the first `predict` imports
    what schema enforcement needs, which every forked task would otherwise import again."""
    import mlflow.pyfunc
    from mlflow.models import Model

    LOADED[uri] = model = mlflow.pyfunc.load_model(local)
    try:
        example = Model.load(local).load_input_example(local)
        if example is not None:
            model.predict(example)
    except Exception as exc:  # only a warm-up: a task that fails to score says why itself
        log.info("model %s did not score its input example: %s", uri, exc)


def _download_in_child(uri: str, target: str) -> str:
    path_read, path_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(path_read)
        code = 1
        try:
            import mlflow.artifacts

            local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=target)
            os.write(path_write, local.encode())
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(path_write)
    with os.fdopen(path_read, "rb") as reader:
        local = reader.read().decode()
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0 or not local:
        raise ConcurrentError(f"could not download model {uri} (see the traceback above)")
    return local


def _score_file(model: Any, source: Path, target: Path, spec: InferenceSpec) -> int:
    import pyarrow.parquet as pq

    target.parent.mkdir(parents=True, exist_ok=True)
    writer: pq.ParquetWriter | None = None
    rows = 0
    try:
        for batch in _batches(source, spec.batch_size):
            scored = _score_batch(model, batch, spec, source)
            writer = writer or pq.ParquetWriter(target, scored.schema)
            writer.write_batch(scored)
            rows += scored.num_rows
    finally:
        if writer is not None:
            writer.close()
    return rows


def _score_batch(model: Any, batch: Any, spec: InferenceSpec, source: Path) -> Any:
    """The batch with the prediction appended; only the feature columns go through pandas."""
    features = batch.select(list(spec.columns)) if spec.columns else batch
    try:
        prediction = _column(model.predict(features.to_pandas()), batch.num_rows)
        return batch.append_column(spec.prediction_column, prediction)
    except Exception as exc:
        raise ConcurrentError(f"model {spec.model} could not score {source.name}: {exc}") from exc


def _column(prediction: Any, rows: int) -> Any:
    """One Arrow column from what `predict` returned (an array, a Series or a one-column frame)."""
    import pandas as pd
    import pyarrow as pa

    if isinstance(prediction, pd.DataFrame):
        if prediction.shape[1] != 1:
            raise ValueError(f"predict returned {prediction.shape[1]} columns; one is written per row")
        prediction = prediction.iloc[:, 0]
    column = pa.Array.from_pandas(prediction) if isinstance(prediction, pd.Series) else pa.array(prediction)
    if len(column) != rows:
        raise ValueError(f"predict returned {len(column)} values for {rows} rows")
    return column


def _batches(path: Path, batch_size: int) -> Any:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if path.suffix.lower() == ".csv":
        reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 22))
        for batch in reader:
            yield from _rebatch(batch, batch_size)
    else:
        yield from pq.ParquetFile(path).iter_batches(batch_size=batch_size)


def _rebatch(batch: Any, size: int) -> Any:
    for start in range(0, batch.num_rows, size):
        yield batch.slice(start, size)
