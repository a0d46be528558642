"""The state tables of runs, stages, tasks and attempts, and the store writes that must obey them."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import delete, update

from concurrent_mlflow.errors import ConflictError
from concurrent_mlflow.store import AttemptRow, StageRow, TaskRow
from concurrent_mlflow.store import transitions as tx
from concurrent_mlflow.store.db import Store
from concurrent_mlflow.store.queries import run_view
from concurrent_mlflow.store.states import (
    ATTEMPT,
    RUN,
    STAGE,
    TASK,
    TERMINAL,
    AttemptState,
    Machine,
    RunState,
    StageState,
    TaskState,
)

MACHINES = (RUN, STAGE, TASK, ATTEMPT)
WORDS = sorted({str(s) for enum in (RunState, StageState, TaskState, AttemptState) for s in enum})

DAG = """
name: d
nodes:
  - {id: src, kind: source, uri: data}
  - {id: work, kind: project, project: ., partitions: 2}
  - {id: total, kind: project, project: .}
edges:
  - {from: src, to: work, input: files}
  - {from: work, to: total, input: parts, partitioner: gather}
"""


@given(st.sampled_from(MACHINES), st.sampled_from(WORDS), st.sampled_from(WORDS), st.booleans())
def test_check_refuses_every_move_outside_its_table(
    machine: Machine, old: str, new: str, retry: bool
) -> None:
    table = machine.retry if retry else machine.moves
    legal = old in machine.states and new in machine.states and (old == new or new in table.get(old, ()))
    if legal:
        machine.check("x", old, new, retry=retry)
    else:
        with pytest.raises(RuntimeError, match=f"illegal state change {old} -> {new}"):
            machine.check("x", old, new, retry=retry)


@pytest.mark.parametrize("machine", MACHINES, ids=lambda m: m.kind)
def test_only_a_retry_leaves_an_end_and_nothing_leaves_success(machine: Machine) -> None:
    for old, new in itertools.product(machine.states, repeat=2):
        if old in TERMINAL and old != new:
            assert not machine.allows(old, new), f"{machine.kind}: {old} -> {new} without a retry"
        if machine.allows(old, new, retry=True) and old != new:
            assert old in TERMINAL - {"succeeded"} and new not in TERMINAL, (machine.kind, old, new)
    assert not ATTEMPT.retry, "a retry makes a new attempt; it never revives one"


def new_run(store: Store) -> str:
    run_id = tx.create_run(
        store, dag_name="d", dag_yaml=DAG, base_dir="/", node_ids=["src", "work", "total"], overrides={}
    )
    tx.attach_mlflow(store, run_id, mlflow_run_id="parent", experiment_id="1")
    tx.settle_source(store, run_id, "src")
    return run_id


def stage(store: Store, run_id: str, node_id: str) -> tuple[str, int | None]:
    view = run_view(store, run_id)
    assert view is not None
    found = next(s for s in view.stages if s.node_id == node_id)
    return found.state, found.partitions


def test_a_stage_succeeds_only_with_every_partition_succeeded(store: Store) -> None:
    run_id = new_run(store)
    assert stage(store, run_id, "src") == ("succeeded", 0)
    with pytest.raises(RuntimeError, match="not a source"):
        tx.settle_source(store, run_id, "total")
    with pytest.raises(RuntimeError, match="at least one partition"):
        tx.plan_stage(store, run_id, "work", [])  # how planning failures used to be recorded
    with pytest.raises(RuntimeError, match="pending -> succeeded with 0 of None"):
        tx.end_stage(store, run_id, "work", StageState.SUCCEEDED)

    tx.plan_stage(store, run_id, "work", [5, 5])
    with store.transaction() as session:
        first, second = session.query(TaskRow).filter_by(run_id=run_id).order_by(TaskRow.partition)
        first_id, second_id = first.id, second.id
    attempt = tx.reserve_attempt(store, first_id, executor="local")
    tx.end_attempt(store, attempt, state=AttemptState.SUCCEEDED)
    with pytest.raises(RuntimeError, match="running -> succeeded with 1 of 2"):
        tx.end_stage(store, run_id, "work", StageState.SUCCEEDED)
    tx.end_attempt(
        store, tx.reserve_attempt(store, second_id, executor="local"), state=AttemptState.SUCCEEDED
    )
    tx.end_stage(store, run_id, "work", StageState.SUCCEEDED)
    assert stage(store, run_id, "work") == ("succeeded", 2)


def test_a_stage_that_failed_to_plan_is_planned_again_by_a_retry(store: Store) -> None:
    run_id = new_run(store)
    tx.end_stage(store, run_id, "work", StageState.FAILED, "planning failed: no key")
    tx.end_stage(store, run_id, "total", StageState.SKIPPED, "upstream failed")
    tx.finish_run(store, run_id, RunState.FAILED, "work: planning failed")
    assert stage(store, run_id, "work") == ("failed", None)

    tx.reset_for_retry(store, run_id)

    assert stage(store, run_id, "work") == ("pending", None)
    assert stage(store, run_id, "total") == ("pending", None)
    assert stage(store, run_id, "src") == ("succeeded", 0)


def test_retry_refuses_a_succeeded_run_and_a_move_its_table_lacks(store: Store) -> None:
    run_id = new_run(store)
    tx.plan_stage(store, run_id, "work", [1])
    tx.end_stage(store, run_id, "work", StageState.CANCELLED, "stop")
    tx.end_stage(store, run_id, "total", StageState.CANCELLED, "stop")
    tx.finish_run(store, run_id, RunState.CANCELLED, "stop")
    with store.transaction() as session:  # damage the store: a stage left running without tasks
        session.execute(delete(TaskRow).where(TaskRow.run_id == run_id))
        session.execute(
            update(StageRow)
            .where(StageRow.run_id == run_id, StageRow.node_id == "work")
            .values(state="running")
        )
    with pytest.raises(RuntimeError, match="stage work: illegal state change running -> pending"):
        tx.reset_for_retry(store, run_id)
    assert run_view(store, run_id).state == "cancelled"  # type: ignore[union-attr]  # nothing half-written

    done = new_run(store)
    for node_id in ("work", "total"):
        tx.plan_stage(store, done, node_id, [1])
    with store.transaction() as session:
        session.execute(update(TaskRow).where(TaskRow.run_id == done).values(state="succeeded"))
    for node_id in ("work", "total"):
        tx.end_stage(store, done, node_id, StageState.SUCCEEDED)
    tx.finish_run(store, done, RunState.SUCCEEDED)
    with pytest.raises(ConflictError, match="succeeded: there is nothing to retry"):
        tx.reset_for_retry(store, done)


def test_a_cancelled_stage_ends_its_open_tasks_and_their_attempts(store: Store) -> None:
    run_id = new_run(store)
    tx.plan_stage(store, run_id, "work", [1, 1])
    with store.transaction() as session:
        first = session.query(TaskRow).filter_by(run_id=run_id, partition=0).one().id
    attempt = tx.reserve_attempt(store, first, executor="local")
    tx.mark_running(store, attempt)

    tx.end_stage(store, run_id, "work", StageState.CANCELLED, "stop")

    with store.transaction() as session:
        assert {t.state for t in session.query(TaskRow).filter_by(run_id=run_id)} == {"cancelled"}
        assert session.get_one(AttemptRow, attempt).state == "cancelled"
