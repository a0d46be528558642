"""The built-in inference node on the local executor: the model is loaded once per stage and shared by its
partitions; a model whose loading starts a thread still scores every row, loaded by each task."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from tests.integration.conftest import RunDag

pytestmark = pytest.mark.integration
MODEL_CODE = Path(__file__).resolve().parents[1] / "fixtures" / "counting_model.py"


def _log_model(loads: Path, *, thread: bool) -> str:
    import mlflow

    mlflow.set_experiment("inference-test-models")
    with mlflow.start_run() as run:
        mlflow.pyfunc.log_model(
            name="model", python_model=str(MODEL_CODE), model_config={"loads": str(loads), "thread": thread}
        )
    loads.unlink(missing_ok=True)  # logging may load it once to check it
    Path(f"{loads}.threads").unlink(missing_ok=True)
    return f"runs:/{run.info.run_id}/model"


@pytest.mark.filterwarnings("ignore:.*Add type hints to the `predict` method")  # the schema is not the point
def test_a_stage_loads_its_model_once_and_a_model_that_starts_a_thread_still_scores(
    run_dag: RunDag, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = tmp_path / "data"
    data.mkdir()
    for i in range(6):
        table = pa.table({"id": pa.array(range(i * 5, i * 5 + 5), pa.int32()), "x": [float(i)] * 5})
        pq.write_table(table, data / f"part-{i}.parquet")
    once, threaded = tmp_path / "once.txt", tmp_path / "threaded.txt"
    caplog.set_level(logging.WARNING, logger="concurrent.executor")

    done = run_dag(f"""
name: scoring-once
nodes:
  - {{id: rows, kind: source, uri: data}}
  - {{id: once, kind: inference, model: "{_log_model(once, thread=False)}", partitions: 6, columns: [x]}}
  - {{id: threaded, kind: inference, model: "{_log_model(threaded, thread=True)}", partitions: 2}}
edges:
  - {{from: rows, to: once, input: rows}}
  - {{from: rows, to: threaded, input: rows}}
""")
    assert done.state == "succeeded", done.view
    assert len(once.read_text().splitlines()) == 1  # six partitions, one load
    assert len(threaded.read_text().splitlines()) >= 2  # each of its tasks loaded it
    assert "is not kept loaded for the stage" in caplog.text and "threads" in caplog.text
    for node in ("once", "threaded"):
        frames = []
        for child in done.children(node):
            target = tmp_path / child.info.run_id
            local = Path(
                done.client.download_artifacts(child.info.run_id, "outputs/predictions", str(target))
            )
            frames += [pq.read_table(p) for p in local.rglob("*.parquet")]
        table = pa.concat_tables(frames).sort_by("id")
        assert table.schema.names == ["id", "x", "prediction"]
        assert table.schema.field("id").type == pa.int32()  # input columns are kept as they were read
        frame: pd.DataFrame = table.to_pandas()
        assert frame["id"].tolist() == list(range(30))
        assert frame["prediction"].tolist() == (frame["x"] * 2.0 + 1.0).tolist()
        # Each partition says what it scored; the parent run sums the stage up.
        scored = [child.data.metrics for child in done.children(node)]
        assert sum(m["rows_scored"] for m in scored) == 30
        assert all(m["rows_per_second"] > 0 and m["scoring_seconds"] >= 0 for m in scored)
        assert done.parent.data.metrics[f"{node}/rows_scored/max"] == max(m["rows_scored"] for m in scored)
    # Two tasks at once split the cores: neither BLAS nor Arrow starts a thread per core in each, whether the
    # task was forked beside a model loaded for the stage or loaded it itself.
    share = max(1, len(os.sched_getaffinity(0)) // 2)
    for seen in (once, threaded):
        counts = [json.loads(line) for line in Path(f"{seen}.threads").read_text().splitlines()]
        assert counts and all(c["arrow"] == share and set(c["blas"]) <= {share} for c in counts), counts
