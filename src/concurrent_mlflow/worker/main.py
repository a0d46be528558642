"""The task process: `python -m concurrent_mlflow.worker --parent-run P --child-run C --node N --partition I`,
or, in a pod of an Indexed Job, `--from-job` (which partition and child run it is comes from the Job's table).

It takes the stage spec and its own manifest from stdin when the local executor hands them over
(`--task-on-stdin`, a `TaskFile`), else reads them from the parent run; fetches only its partition's
inputs, runs the node, logs its parameters (once, in one batch), the output dir and an output index to the
child run, and only then marks the child run FINISHED. Its exit code is the executor's verdict: 0 (the
child run is FINISHED: the engine takes that as the run's status without reading it back), the entry
point's own code when that failed, or 1 when the worker itself could not do its part.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import json
import logging
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from concurrent_mlflow import sources, task
from concurrent_mlflow.errors import ConcurrentError
from concurrent_mlflow.executors.jobspec import TABLE_CHUNK, table_chunk
from concurrent_mlflow.manifest import InferenceSpec, Manifest, ProjectSpec, TaskSpec
from concurrent_mlflow.project import as_logged
from concurrent_mlflow.taskfile import TaskFile
from concurrent_mlflow.tracking import (
    OUTPUT_INDEX,
    OUTPUTS_DIR,
    TAG_PREFIX,
    Tracking,
    partition_params,
)

log = logging.getLogger("concurrent.worker")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="concurrent worker")
    for flag in ("--parent-run", "--child-run", "--node"):
        parser.add_argument(flag)
    parser.add_argument("--partition", type=int)
    parser.add_argument(
        "--from-job", action="store_true", help="a pod of an Indexed Job: find the task from the environment"
    )
    parser.add_argument(
        "--task-on-stdin", action="store_true", help="the spec and manifest come on stdin (a TaskFile)"
    )
    args = parser.parse_args(argv)
    faulthandler.enable(all_threads=True)  # a native crash leaves the Python stack in the task's log
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    tracking = Tracking(os.environ["MLFLOW_TRACKING_URI"])
    if args.from_job:
        args.parent_run, args.node, args.partition, args.child_run = _task_of_pod(tracking)
    elif None in (args.parent_run, args.child_run, args.node, args.partition):
        parser.error("--parent-run, --child-run, --node and --partition are required without --from-job")
    scratch = Path(os.environ.get("CONCURRENT_SCRATCH", "/tmp/concurrent-scratch")) / args.child_run
    try:
        given = _given_task() if args.task_on_stdin else None
        code = run_task(tracking, args.parent_run, args.child_run, args.node, args.partition, scratch, given)
    except Exception:
        log.exception("task %s[%d] failed", args.node, args.partition)
        code = 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if code != 0:
        tracking.terminate(args.child_run, "FAILED")
    return code


def _given_task() -> TaskFile:
    """The task the local executor put on stdin (read from the open descriptor: a task user could not
    open the file by its name)."""
    with os.fdopen(0, "rb", closefd=False) as stdin:
        return TaskFile.loads(stdin.read().decode("utf-8"))


def _task_of_pod(tracking: Tracking) -> tuple[str, str, int, str]:
    """Which partition and child run this pod is, from its Job's table on the parent run.

    A retried pod (Kubernetes' per-index retry) reuses the partition's child run: it is opened again, and
    the control plane keeps the log of every pod the partition took."""
    parent, node = os.environ["CONCURRENT_PARENT_RUN"], os.environ["CONCURRENT_NODE"]
    index = int(os.environ["JOB_COMPLETION_INDEX"])
    size = int(os.environ.get("CONCURRENT_TABLE_CHUNK") or TABLE_CHUNK)
    table_file = f"{os.environ['CONCURRENT_JOB_TABLE']}/{table_chunk(index, size)}"
    rows = _wait_for_table(tracking, parent, table_file)
    partition, child = int(rows["partitions"][index % size]), str(rows["children"][index % size])
    tries = int(os.environ.get("CONCURRENT_INDEX_FAILURES") or 0) + 1
    pod = os.environ.get("CONCURRENT_POD", "")
    log.info("pod %s: %s[%d], try %d, child run %s", pod, node, partition, tries, child)
    if tries > 1:
        tracking.reopen(child)
    tracking.set_tags(child, {f"{TAG_PREFIX}pod": pod, f"{TAG_PREFIX}pod_try": str(tries)})
    termination_log = os.environ.get("CONCURRENT_TERMINATION_LOG")
    if termination_log:
        with contextlib.suppress(OSError):  # only a convenience for `kubectl describe pod`
            Path(termination_log).write_text(f"child run {child}\n", encoding="utf-8")
    return parent, node, partition, child


def _wait_for_table(tracking: Tracking, parent: str, table_file: str) -> dict[str, Any]:
    """The Job starts before the engine has stored every chunk of its table: wait for ours, a while."""
    deadline = time.monotonic() + float(os.environ.get("CONCURRENT_TABLE_WAIT", "900"))
    delay = 1.0
    while True:
        try:
            return dict(json.loads(tracking.read_text(parent, table_file)))
        except (ConcurrentError, ValueError) as exc:  # not stored yet, or caught mid-upload
            if time.monotonic() + delay > deadline:
                raise ConcurrentError(f"this pod's task table {table_file} never appeared: {exc}") from exc
            log.info("waiting for the task table %s (%s)", table_file, type(exc).__name__)
        time.sleep(delay)
        delay = min(delay * 2, 15.0)


def run_task(
    tracking: Tracking,
    parent: str,
    child: str,
    node: str,
    partition: int,
    scratch: Path,
    given: TaskFile | None = None,
) -> int:
    """The task from its inputs to its logged outputs; returns the exit code for the executor: 0 only once
    the child run is FINISHED, so the engine need not read its status back."""
    if given is None:
        spec = tracking.read_spec(parent, node)
        manifest = tracking.read_manifest(parent, node, partition, spec)
        experiment_id = None
    else:
        spec, manifest, experiment_id = given.spec, given.manifest, given.experiment_id
        if given.artifact_uri:
            tracking.remember_artifact_uri(child, given.artifact_uri)
    input_dir, output_dir = scratch / "input", scratch / "output"
    output_dir.mkdir(parents=True)
    for name, items in manifest.inputs.items():
        (input_dir / name).mkdir(parents=True, exist_ok=True)
        sources.fetch(items, input_dir / name)
    log.info(
        "%s[%d/%d]: %d input file(s), %d bytes",
        node,
        partition,
        manifest.partitions,
        sum(len(i) for i in manifest.inputs.values()),
        manifest.input_bytes(),
    )
    (scratch / "manifest.json").write_text(manifest.dumps(), encoding="utf-8")
    parameters = {**(spec.parameters if isinstance(spec, ProjectSpec) else {}), **manifest.parameters}
    # Logged while the entry point runs (one MLflow round trip less on the task's path), awaited before the
    # run ends: a failure to log them still fails the task. An entry point that logs one of these keys itself
    # with another value now races with us; either way MLflow refuses the second value and the task fails.
    params = {**partition_params(partition, manifest.partitions), **as_logged(parameters)}
    with ThreadPoolExecutor(1, thread_name_prefix="log-params") as background:
        params_logged = background.submit(tracking.log_params, child, params)
        code = _run_entry_point(tracking, spec, manifest, child, experiment_id, scratch, partition)
    if code != 0:
        return code  # the entry point's failure is the cause to report, not a param that failed with it
    params_logged.result()
    log_outputs(tracking, child, output_dir, scratch / "output-metadata.jsonl")
    tracking.finish(child)
    return 0


def _run_entry_point(
    tracking: Tracking,
    spec: TaskSpec,
    manifest: Manifest,
    child: str,
    experiment_id: str | None,
    scratch: Path,
    partition: int,
) -> int:
    """The project's entry point, or the built-in scorer, with the task's environment; its exit code."""
    input_dir, output_dir = scratch / "input", scratch / "output"
    os.environ.update(
        {
            task.ENV_INPUT_DIR: str(input_dir),
            task.ENV_OUTPUT_DIR: str(output_dir),
            task.ENV_PARTITION: str(partition),
            task.ENV_PARTITIONS: str(manifest.partitions),
            task.ENV_MANIFEST: str(scratch / "manifest.json"),
            task.ENV_OUTPUT_METADATA: str(scratch / "output-metadata.jsonl"),
            "MLFLOW_RUN_ID": child,
        }
    )
    if isinstance(spec, InferenceSpec):
        from concurrent_mlflow.worker.inference import score_partition

        tracking.log_metrics(child, score_partition(spec, manifest, input_dir, output_dir))
        return 0
    from concurrent_mlflow.worker.project_run import run_project

    return run_project(spec, manifest, child, tracking, experiment_id)


def log_outputs(tracking: Tracking, child: str, output_dir: Path, metadata_file: Path) -> None:
    """Upload the output dir and an index of it (size and metadata per file) in two calls."""
    metadata: dict[str, dict[str, Any]] = {}
    if metadata_file.exists():
        for line in metadata_file.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            metadata.setdefault(record["relpath"], {}).update(record["metadata"])
    files = sorted(p for p in output_dir.rglob("*") if p.is_file())
    for path in files:
        _check_output_name(path.relative_to(output_dir).as_posix())
    index = {
        "files": [
            {
                "relpath": p.relative_to(output_dir).as_posix(),
                "size": p.stat().st_size,
                **(
                    {"metadata": metadata[rel]}
                    if (rel := p.relative_to(output_dir).as_posix()) in metadata
                    else {}
                ),
            }
            for p in files
        ]
    }
    if files:
        tracking.log_dir(child, output_dir, OUTPUTS_DIR)
    tracking.log_text(child, json.dumps(index), OUTPUT_INDEX)
    log.info("logged %d output file(s) to run %s", len(files), child)


def _check_output_name(relpath: str) -> None:
    """MLflow artifact stores cannot hold every POSIX name; say which file and why before uploading."""
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in relpath):
        raise ConcurrentError(
            f"Output file {relpath!r} has a control character in its name, which MLflow artifact stores "
            "cannot hold; rename it before the task ends."
        )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
