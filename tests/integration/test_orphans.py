"""A dead driver never blocks anything: `kill -9` of `concurrent run` mid-run, then what a user does next.

Each test starts the real CLI on a run of 4 partitions: 0 and 1 finish at once, 2 and 3 sleep (on their
first attempt only). Once 0 and 1 have FINISHED and 2 and 3 are asleep, the CLI gets SIGKILL; its workers
live on (the fork server outlives the engine to reap them). Then (a) `run retry` redoes only 2 and 3,
(b) `runs cancel` ends the run, (c) a new run on the same home, limited to as many slots as the dead run
held, starts and finishes; each settles the orphan first, stopping its workers.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from concurrent_mlflow.settings import Paths
from concurrent_mlflow.store import open_store
from concurrent_mlflow.store.queries import run_view
from tests.integration.conftest import TOOLBOX, make_files
from tests.integration.test_cli import concurrent, processes_of

pytestmark = pytest.mark.integration

DAG = """
name: {name}
nodes:
  - {{id: raw, kind: source, uri: data}}
  - id: work
    kind: project
    project: "{toolbox}"
    entry_point: transform
    partitions: 4
    retries: 0
    parameters: {{sleep: {sleep}, sleep_once_dir: "{markers}"}}
edges:
  - {{from: raw, to: work, input: text}}
"""


@dataclass
class Orphaned:
    run_id: str
    driver_pid: int
    client: MlflowClient
    experiment_id: str
    sleepers: dict[int, str]  # partition -> child run of the attempt the dead driver left running

    def children(self) -> dict[tuple[int, int], str]:
        """(partition, attempt) -> MLflow status of each child run."""
        runs = self.client.search_runs([self.experiment_id], "tags.`concurrent.kind` = 'task'")
        return {
            (int(r.data.tags["concurrent.partition"]), int(r.data.tags["concurrent.attempt"])): r.info.status
            for r in runs
        }


def start_and_kill(tmp_path: Path, name: str) -> Orphaned:
    """Run the CLI until partitions 0 and 1 FINISHED and 2 and 3 sleep, then kill -9 it."""
    markers = tmp_path / "markers"
    make_files(markers, {"slept-0": "", "slept-1": ""})  # 0 and 1 do not sleep
    make_files(tmp_path / "data", {f"f{i}.txt": f"w {i}" for i in range(4)})
    dag = tmp_path / "dag.yaml"
    dag.write_text(DAG.format(name=name, toolbox=TOOLBOX, sleep=600, markers=markers))
    with (tmp_path / "cli.out").open("wb") as out:
        cli = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "concurrent_mlflow.cli",
                "run",
                str(dag),
                "--no-progress",
                "--max-parallel",
                "4",
            ],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    client = MlflowClient()
    deadline, children = time.monotonic() + 180, []
    while time.monotonic() < deadline:
        assert cli.poll() is None, (tmp_path / "cli.out").read_text()
        experiment = client.get_experiment_by_name(name)
        if experiment:
            children = client.search_runs([experiment.experiment_id], "tags.`concurrent.kind` = 'task'")
            finished = {
                int(c.data.tags["concurrent.partition"]) for c in children if c.info.status == "FINISHED"
            }
            if finished == {0, 1} and all((markers / f"slept-{p}").exists() for p in (2, 3)):
                break
        time.sleep(0.5)
    else:
        pytest.fail(
            f"partitions 0 and 1 did not finish while 2 and 3 slept:\n{(tmp_path / 'cli.out').read_text()}"
        )
    sleepers = {
        int(c.data.tags["concurrent.partition"]): c.info.run_id
        for c in children
        if c.data.tags["concurrent.partition"] in ("2", "3")
    }
    cli.send_signal(signal.SIGKILL)
    cli.wait(timeout=30)
    assert processes_of(set(sleepers.values())), "the dead driver's workers live on until settled"
    run_id = children[0].data.tags["concurrent.run_id"]
    return Orphaned(run_id, cli.pid, client, children[0].info.experiment_id, sleepers)


def assert_settled_here(orphan: Orphaned, output: str) -> None:
    output = " ".join(output.split())  # as read, not as the terminal's width wrapped it
    assert (
        f"Run {orphan.run_id} was orphaned: its driver, `concurrent run` pid {orphan.driver_pid} on "
        in output
    )
    assert (
        "2 partition(s) had succeeded and keep their outputs; 2 worker(s) still running were stopped"
        in output
    )
    assert processes_of(set(orphan.sleepers.values())) == [], "no worker of the dead driver is left running"


def test_retry_after_kill_9_of_the_cli_redoes_only_the_unfinished_partitions(
    tracking_env: Path, tmp_path: Path
) -> None:
    orphan = start_and_kill(tmp_path, "orphan-retry")

    result = concurrent("run", "retry", orphan.run_id, "--no-progress", cwd=tmp_path, timeout=180)

    assert result.returncode == 0, result.stdout + result.stderr
    assert_settled_here(orphan, result.stderr)
    assert f"concurrent run retry {orphan.run_id}" in " ".join(result.stderr.split())  # what to do next
    assert f"Run {orphan.run_id} succeeded" in result.stdout
    assert orphan.children() == {
        (0, 1): "FINISHED",  # kept, not run again
        (1, 1): "FINISHED",
        (2, 1): "KILLED",  # stopped when the orphan was settled, then redone
        (3, 1): "KILLED",
        (2, 2): "FINISHED",
        (3, 2): "FINISHED",
    }


def test_cancel_after_kill_9_of_the_cli_ends_the_run_and_its_workers(
    tracking_env: Path, tmp_path: Path
) -> None:
    orphan = start_and_kill(tmp_path, "orphan-cancel")

    result = concurrent("runs", "cancel", orphan.run_id, cwd=tmp_path, timeout=120)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Run {orphan.run_id} is cancelled." in result.stdout
    assert_settled_here(orphan, result.stderr)
    store = open_store(Paths(tracking_env).store_url)
    try:
        view = run_view(store, orphan.run_id)
    finally:
        store.close()
    assert view is not None and view.state == "cancelled"
    assert orphan.children() == {(0, 1): "FINISHED", (1, 1): "FINISHED", (2, 1): "KILLED", (3, 1): "KILLED"}
    assert view.mlflow_run_id and orphan.client.get_run(view.mlflow_run_id).info.status == "KILLED"


def test_a_new_run_after_kill_9_of_the_cli_gets_the_slots_the_dead_run_held(
    tracking_env: Path, tmp_path: Path
) -> None:
    orphan = start_and_kill(tmp_path, "orphan-new-run")
    other = tmp_path / "other"
    make_files(other / "data", {f"g{i}.txt": f"v {i}" for i in range(4)})
    dag = other / "dag.yaml"
    dag.write_text(DAG.format(name="after-orphan", toolbox=TOOLBOX, sleep=0, markers=""))

    # As many slots as the dead run's sleeping workers held: on the old code this waited for ever.
    result = concurrent("run", str(dag), "--no-progress", "--max-parallel", "2", cwd=other, timeout=180)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "succeeded" in result.stdout
    assert_settled_here(orphan, result.stderr)
    assert "now failed with 2 partition(s) unfinished" in " ".join(result.stderr.split())
