"""Run drivers' leases on real SQLite and PostgreSQL: who drives a run, which drivers are dead, and which
tasks hold a slot of the global limit."""

from __future__ import annotations

import os
import socket
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from tests.unit.test_store_control_plane import all_at_once

from concurrent_mlflow.cli.backends import LocalRuns
from concurrent_mlflow.cli.base import CliContext
from concurrent_mlflow.engine import orphans, reads
from concurrent_mlflow.errors import ConflictError
from concurrent_mlflow.settings import Paths
from concurrent_mlflow.store import TaskState, drivers
from concurrent_mlflow.store import transitions as tx
from concurrent_mlflow.store.db import Store

TTL = timedelta(seconds=60)
EXPIRED = timedelta(seconds=-1)


def new_run(store: Store, driver: str | None = None, ttl: timedelta = TTL) -> str:
    return tx.create_run(
        store,
        dag_name="d",
        dag_yaml="name: d",
        base_dir="/",
        node_ids=["a"],
        overrides={},
        driver=driver,
        driver_ttl=ttl,
    )


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_a_local_driver_is_orphaned_as_soon_as_its_process_is_gone_a_remote_one_once_its_lease_expired(
    store: Store,
) -> None:
    me, host = orphans.this_process(), socket.gethostname()
    mine = new_run(store, me)
    gone = new_run(store, f"cli:{host}:{dead_pid()}:1")
    reused = new_run(store, f"cli:{host}:{os.getpid()}:1")  # a live pid, but another process started it
    elsewhere = new_run(store, "cli:elsewhere:1:1")
    lapsed = new_run(store, "cli:elsewhere:2:2", EXPIRED)
    served = new_run(store)  # no driver: the server's engine drives it

    assert {o.run_id for o in orphans.find_orphans(store, me)} == {gone, reused, lapsed}
    seen_by_another = {o.run_id for o in orphans.find_orphans(store, "cli:elsewhere:3:3")}
    assert seen_by_another == {gone, reused, lapsed}, "a live driver is nobody's orphan"
    assert {mine, elsewhere, served}.isdisjoint(seen_by_another)


def test_only_runs_with_a_live_driver_hold_slots_and_the_server_ticks_only_its_own_runs(store: Store) -> None:
    live = new_run(store, "cli:elsewhere:1:1")
    lapsed = new_run(store, "cli:elsewhere:2:2", EXPIRED)
    served = new_run(store)
    for run_id in (live, lapsed, served):
        tx.plan_stage(store, run_id, "a", [0])
        (task,) = reads.stage_tasks(store, reads.stages(store, run_id)[0].id)
        tx.reserve_attempt(store, task.id, executor="local")

    assert reads.count_active(store, executor="local") == 2  # the lapsed driver's task holds no slot
    assert reads.open_run_ids(store) == [served]  # a `concurrent run` process's run is never the server's


def test_of_commands_settling_one_orphan_exactly_one_takes_it_over(store: Store) -> None:
    dead = "cli:elsewhere:1:1"
    run_id = new_run(store, dead, EXPIRED)

    outcomes = all_at_once(8, lambda i: drivers.take_over(store, run_id, f"cli:h:{i}:1", TTL, dead=dead))

    assert outcomes.count(True) == 1, outcomes
    assert drivers.driver_of(store, run_id) == f"cli:h:{outcomes.index(True)}:1"
    assert not drivers.renew(store, run_id, dead, TTL), "a driver back from a long pause has lost its run"
    assert not drivers.take_ended(store, run_id, "cli:h:9:1", TTL), "an open run keeps its driver"
    tx.finish_run(store, run_id, TaskState.FAILED)
    assert drivers.take_ended(store, run_id, None, TTL)  # `run retry` on a server hands it to the server
    assert drivers.driver_of(store, run_id) is None


def test_retrying_a_run_a_live_process_drives_names_that_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # never called: nothing to settle
    monkeypatch.delenv("CONCURRENT_STORE", raising=False)
    runs = LocalRuns(CliContext(Paths(tmp_path / "home")), None)
    try:
        run_id = new_run(runs.store, "cli:elsewhere:4242:1")
        with pytest.raises(ConflictError, match="driven by `concurrent run` pid 4242 on elsewhere"):
            runs.retry(run_id)
    finally:
        runs.close()
