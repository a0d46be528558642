"""Built-in batch inference: load an MLflow model once per task and score this partition's files in batches.

CSV and Parquet inputs are read in record batches (pyarrow), so a file larger than memory still scores;
predictions are written as Parquet under the output dir, mirroring the input's relative path.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from concurrent_mlflow.errors import ConcurrentError
from concurrent_mlflow.manifest import InferenceSpec, Manifest

log = logging.getLogger("concurrent.worker")
SUFFIXES = (".csv", ".parquet", ".pq")


def score_partition(spec: InferenceSpec, manifest: Manifest, input_dir: Path, output_dir: Path) -> int:
    """Score every CSV/Parquet input file; returns the number of rows scored."""
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(spec.model)
    rows = 0
    for name, items in sorted(manifest.inputs.items()):
        for item in items:
            if not item.relpath.lower().endswith(SUFFIXES):
                log.info("skipping %s: not CSV or Parquet", item.relpath)
                continue
            target = (
                output_dir / "predictions" / name / (str(Path(item.relpath).with_suffix("")) + ".parquet")
            )
            rows += _score_file(model, input_dir / name / item.relpath, target, spec)
    log.info("scored %d row(s) with %s", rows, spec.model)
    return rows


def _score_file(model: Any, source: Path, target: Path, spec: InferenceSpec) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    target.parent.mkdir(parents=True, exist_ok=True)
    writer: pq.ParquetWriter | None = None
    rows = 0
    try:
        for batch in _batches(source, spec.batch_size):
            frame = batch.to_pandas()
            features = frame[list(spec.columns)] if spec.columns else frame
            try:
                frame[spec.prediction_column] = model.predict(features)
            except Exception as exc:
                raise ConcurrentError(f"model {spec.model} could not score {source.name}: {exc}") from exc
            table = pa.Table.from_pandas(frame, preserve_index=False)
            writer = writer or pq.ParquetWriter(target, table.schema)
            writer.write_table(table)
            rows += len(frame)
    finally:
        if writer is not None:
            writer.close()
    return rows


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
