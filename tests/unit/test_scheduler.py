"""The scheduler's rules on a real SQLite store, with a fake clock (`now` passed in) and a fake `StartRun`
that records a real pending run, as the server's does, without checking any project.

Covered: the first window starts at the epoch; windows chain from the last *succeeded* run; skip vs queue
while a run is going; missed ticks coalesce into one run; paused schedules; a deleted DAG or stale overrides
recorded as `last_error` without stopping other schedules; a crash between starting a run and recording the
tick; bad cron expressions and time zones refused.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import delete

from concurrent_mlflow.cron import parse_cron
from concurrent_mlflow.engine.scheduler import EPOCH, fire_due, stored_dag_starter
from concurrent_mlflow.errors import ScheduleNotFoundError, ScheduleValidationError
from concurrent_mlflow.policy import ExecutionPolicy
from concurrent_mlflow.store import RunRow, TaskState, catalog, open_store
from concurrent_mlflow.store import schedules as stored
from concurrent_mlflow.store import transitions as tx
from concurrent_mlflow.store.db import Store
from concurrent_mlflow.store.models import DagRow, ScheduleRow
from concurrent_mlflow.store.queries import list_runs

S = TaskState
T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)  # the fake clock starts here; ticks are whole minutes
MINUTE = timedelta(minutes=1)
TOOLBOX = Path(__file__).resolve().parents[1] / "projects" / "toolbox"


class FakeStarter:
    """Records a real pending run per call (so overlap and windows see it) and remembers each window."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.windows: list[tuple[datetime, datetime]] = []

    def __call__(self, schedule: ScheduleRow, window: tuple[datetime, datetime]) -> str:
        self.windows.append(window)
        return tx.create_run(
            self.store,
            dag_name=schedule.dag_name,
            dag_yaml=f"name: {schedule.dag_name}",
            base_dir="/",
            node_ids=[],
            overrides=schedule.overrides,
            schedule_id=schedule.id,
            window=window,
        )


class Killed(BaseException):
    """Stands for SIGKILL: not an Exception, so nothing in the scheduler catches it."""


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return open_store(tmp_path / "store.db")


@pytest.fixture
def start(store: Store) -> FakeStarter:
    return FakeStarter(store)


def schedule(
    store: Store,
    cron: str = "* * * * *",
    *,
    overlap: str = "skip",
    dag: str = "d",
    overrides: dict[str, str] | None = None,
) -> int:
    row = stored.create(
        store,
        dag_name=dag,
        cron=parse_cron(cron),
        overrides=overrides or {},
        overlap=overlap,
        enabled=True,
        created_by="tester",
        now=T0,
    )
    return row.id


def finish(store: Store, run_id: str, state: TaskState = S.SUCCEEDED) -> None:
    if state == S.SUCCEEDED:
        tx.attach_mlflow(store, run_id, mlflow_run_id="parent", experiment_id="1")
    tx.finish_run(store, run_id, state)


def aware(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment and moment.tzinfo is None else moment


def runs_of(store: Store, schedule_id: int) -> list[RunRow]:
    rows, _ = list_runs(
        store, dag_names=None, dag=None, state=None, offset=0, limit=100, schedule_id=schedule_id
    )
    return list(reversed(rows))


# -- windows ------------------------------------------------------------------------------------------------


def test_nothing_fires_before_the_first_tick(store: Store, start: FakeStarter) -> None:
    sid = schedule(store)
    assert aware(stored.get(store, sid).next_fire_at) == T0 + MINUTE
    assert fire_due(store, T0 + timedelta(seconds=59), start) == []
    assert start.windows == []


def test_the_first_run_takes_everything_since_the_epoch_then_windows_chain(
    store: Store, start: FakeStarter
) -> None:
    sid = schedule(store)
    (first,) = fire_due(store, T0 + MINUTE, start)
    assert (first.action, first.tick) == ("fired", T0 + MINUTE)
    assert start.windows == [(EPOCH, T0 + MINUTE)]
    row = stored.get(store, sid)
    assert aware(row.last_fire_at) == T0 + MINUTE and aware(row.next_fire_at) == T0 + 2 * MINUTE
    assert first.run_id is not None
    finish(store, first.run_id)

    (second,) = fire_due(store, T0 + 2 * MINUTE + timedelta(seconds=1), start)
    assert second.action == "fired"
    assert start.windows[1] == (T0 + MINUTE, T0 + 2 * MINUTE)  # starts where the success ended
    run = runs_of(store, sid)[1]
    assert (aware(run.window_start), aware(run.window_end)) == start.windows[1]


def test_a_failed_runs_window_is_covered_again_by_the_next_run(store: Store, start: FakeStarter) -> None:
    schedule(store)
    (ok,) = fire_due(store, T0 + MINUTE, start)
    assert ok.run_id
    finish(store, ok.run_id)
    (bad,) = fire_due(store, T0 + 2 * MINUTE, start)
    assert bad.run_id
    finish(store, bad.run_id, S.FAILED)
    (cancelled,) = fire_due(store, T0 + 3 * MINUTE, start)
    assert cancelled.run_id
    finish(store, cancelled.run_id, S.CANCELLED)
    fire_due(store, T0 + 4 * MINUTE, start)
    assert start.windows[1:] == [
        (T0 + MINUTE, T0 + 2 * MINUTE),
        (T0 + MINUTE, T0 + 3 * MINUTE),
        (T0 + MINUTE, T0 + 4 * MINUTE),  # from the last success, over the failed and cancelled windows
    ]


def test_missed_ticks_coalesce_into_one_run_ending_at_the_latest(store: Store, start: FakeStarter) -> None:
    sid = schedule(store, "*/5 * * * *")
    down_until = T0 + timedelta(minutes=47, seconds=30)  # ticks at :05, :10, ... :45 were missed
    outcomes = fire_due(store, down_until, start)
    assert [o.action for o in outcomes] == ["fired"]
    assert start.windows == [(EPOCH, T0 + timedelta(minutes=45))]
    assert aware(stored.get(store, sid).next_fire_at) == T0 + timedelta(minutes=50)
    assert fire_due(store, down_until + timedelta(seconds=1), start) == []


def test_a_tick_behind_the_last_window_is_consumed_with_an_error(store: Store, start: FakeStarter) -> None:
    sid = schedule(store)
    ahead = start(
        stored.get(store, sid), (EPOCH, T0 + timedelta(hours=1))
    )  # from a server whose clock ran ahead
    finish(store, ahead)
    (behind,) = fire_due(store, T0 + MINUTE, start)
    assert behind.action == "skipped" and "not after the last window's end" in (behind.error or "")
    row = stored.get(store, sid)
    assert row.last_error == behind.error and aware(row.next_fire_at) == T0 + 2 * MINUTE
    assert len(runs_of(store, sid)) == 1


# -- overlap ------------------------------------------------------------------------------------------------


def test_skip_drops_ticks_while_a_run_is_going(store: Store, start: FakeStarter) -> None:
    sid = schedule(store, overlap="skip")
    (first,) = fire_due(store, T0 + MINUTE, start)
    (skipped,) = fire_due(store, T0 + 2 * MINUTE, start)
    assert (skipped.action, skipped.tick) == ("skipped", T0 + 2 * MINUTE)
    row = stored.get(store, sid)
    assert aware(row.next_fire_at) == T0 + 3 * MINUTE and row.queued_fire_at is None
    assert aware(row.last_fire_at) == T0 + MINUTE  # nothing fired at 2 minutes

    assert first.run_id
    finish(store, first.run_id)
    assert fire_due(store, T0 + 2 * MINUTE + timedelta(seconds=30), start) == []  # no late fire
    fire_due(store, T0 + 3 * MINUTE, start)
    assert start.windows == [(EPOCH, T0 + MINUTE), (T0 + MINUTE, T0 + 3 * MINUTE)]


def test_queue_keeps_one_tick_and_fires_it_when_the_run_ends(store: Store, start: FakeStarter) -> None:
    sid = schedule(store, overlap="queue")
    (first,) = fire_due(store, T0 + MINUTE, start)
    assert [o.action for o in fire_due(store, T0 + 2 * MINUTE, start)] == ["queued"]
    assert [o.action for o in fire_due(store, T0 + 3 * MINUTE, start)] == ["queued"]
    row = stored.get(store, sid)
    assert aware(row.queued_fire_at) == T0 + 3 * MINUTE  # the later tick coalesced into the queued one
    assert [o.action for o in fire_due(store, T0 + 3 * MINUTE + timedelta(seconds=10), start)] == ["waiting"]

    assert first.run_id
    finish(store, first.run_id)
    (queued,) = fire_due(store, T0 + 3 * MINUTE + timedelta(seconds=20), start)  # before the next tick
    assert (queued.action, queued.tick) == ("fired", T0 + 3 * MINUTE)
    assert start.windows == [(EPOCH, T0 + MINUTE), (T0 + MINUTE, T0 + 3 * MINUTE)]
    row = stored.get(store, sid)
    assert row.queued_fire_at is None and aware(row.next_fire_at) == T0 + 4 * MINUTE
    assert len(runs_of(store, sid)) == 2


def test_switching_to_skip_or_pausing_drops_a_queued_tick(store: Store, start: FakeStarter) -> None:
    sid = schedule(store, overlap="queue")
    fire_due(store, T0 + MINUTE, start)
    fire_due(store, T0 + 2 * MINUTE, start)
    assert stored.get(store, sid).queued_fire_at is not None
    assert stored.update(store, sid, now=T0 + 2 * MINUTE, overlap="skip").queued_fire_at is None


# -- pausing, errors, restarts ------------------------------------------------------------------------------


def test_a_paused_schedule_never_fires_and_resumes_from_now(store: Store, start: FakeStarter) -> None:
    sid = schedule(store)
    (first,) = fire_due(store, T0 + MINUTE, start)
    assert first.run_id
    finish(store, first.run_id)
    paused = stored.update(store, sid, now=T0 + MINUTE, enabled=False)
    assert paused.next_fire_at is None
    assert fire_due(store, T0 + timedelta(hours=5), start) == []

    resumed = stored.update(store, sid, now=T0 + timedelta(hours=5, seconds=5), enabled=True)
    assert aware(resumed.next_fire_at) == T0 + timedelta(hours=5, minutes=1)
    fire_due(store, T0 + timedelta(hours=5, minutes=1), start)
    # The paused spell's ticks did not fire, but its data is in the next window.
    assert start.windows[-1] == (T0 + MINUTE, T0 + timedelta(hours=5, minutes=1))


def test_a_new_cron_replans_the_next_tick(store: Store) -> None:
    sid = schedule(store)
    updated = stored.update(store, sid, now=T0 + timedelta(seconds=10), cron=parse_cron("0 * * * *"))
    assert (updated.cron, aware(updated.next_fire_at)) == ("0 * * * *", T0 + timedelta(hours=1))


def stored_dag(store: Store, name: str, param: str = "suffix") -> None:
    yaml_text = (
        f"name: {name}\nnodes:\n  - {{id: raw, kind: source, uri: data, incremental: true}}\n"
        f"  - {{id: work, kind: project, project: {TOOLBOX}, entry_point: transform}}\n"
        "edges:\n  - {from: raw, to: work, input: text}\n"
    )
    create = not catalog.exists(store, name)
    catalog.save_version(store, name, yaml_text, description=None, user="tester", create=create)


def test_a_deleted_dag_or_stale_overrides_are_recorded_and_other_schedules_still_fire(
    store: Store, tmp_path: Path
) -> None:
    for name in ("gone", "stale", "fine"):
        stored_dag(store, name)
    gone = schedule(store, dag="gone")
    stale = schedule(store, dag="stale", overrides={"work.suffix": ".x"})
    fine = schedule(store, dag="fine", overrides={"work.suffix": ".y"})
    with store.transaction() as session:  # the DAG vanishes under its schedule (a race with its deletion)
        session.execute(delete(DagRow).where(DagRow.name == "gone"))
    catalog.save_version(  # a new version without the overridden node
        store,
        "stale",
        f"name: stale\nnodes:\n  - {{id: other, kind: project, project: {TOOLBOX}, entry_point: count}}\n",
        description=None,
        user="tester",
        create=False,
    )
    start = stored_dag_starter(
        store, base_dir=tmp_path, cache_dir=tmp_path / "cache", policy=ExecutionPolicy()
    )

    outcomes = {o.schedule_id: o for o in fire_due(store, T0 + MINUTE, start)}

    assert {sid: o.action for sid, o in outcomes.items()} == {gone: "failed", stale: "failed", fine: "fired"}
    assert "No DAG 'gone'" in (stored.get(store, gone).last_error or "")
    assert "no node 'work'" in (stored.get(store, stale).last_error or "")
    for sid in (gone, stale):  # the tick is consumed: no retry storm, the next tick tries again
        row = stored.get(store, sid)
        assert aware(row.next_fire_at) == T0 + 2 * MINUTE and aware(row.last_fire_at) == T0 + MINUTE
    (run,) = runs_of(store, fine)
    assert (run.dag_version, run.overrides, run.created_by) == (1, {"work.suffix": ".y"}, "tester")
    assert (aware(run.window_start), aware(run.window_end)) == (EPOCH, T0 + MINUTE)
    assert stored.get(store, fine).last_error is None


def test_deleting_a_dag_deletes_its_schedules(store: Store, start: FakeStarter) -> None:
    stored_dag(store, "temp")
    sid = schedule(store, dag="temp")
    catalog.delete_dag(store, "temp")
    assert fire_due(store, T0 + MINUTE, start) == []
    with pytest.raises(ScheduleNotFoundError, match=f"No schedule {sid}"):
        stored.get(store, sid)


def test_a_crash_between_starting_a_run_and_recording_the_tick_never_runs_the_tick_twice(
    store: Store, start: FakeStarter
) -> None:
    sid = schedule(store)

    def start_then_die(row: ScheduleRow, window: tuple[datetime, datetime]) -> str:
        start(row, window)
        raise Killed

    with pytest.raises(Killed):
        fire_due(store, T0 + MINUTE, start_then_die)
    assert aware(stored.get(store, sid).next_fire_at) == T0 + MINUTE  # the tick was not recorded

    (again,) = fire_due(store, T0 + MINUTE + timedelta(seconds=2), start)  # the restarted server
    assert again.action == "recorded" and again.run_id == runs_of(store, sid)[0].id
    assert len(start.windows) == 1 and len(runs_of(store, sid)) == 1
    row = stored.get(store, sid)
    assert aware(row.last_fire_at) == T0 + MINUTE and aware(row.next_fire_at) == T0 + 2 * MINUTE


def test_a_restart_after_a_long_crash_does_not_pile_up_runs(store: Store, start: FakeStarter) -> None:
    sid = schedule(store)

    def start_then_die(row: ScheduleRow, window: tuple[datetime, datetime]) -> str:
        start(row, window)
        raise Killed

    with pytest.raises(Killed):
        fire_due(store, T0 + MINUTE, start_then_die)
    (later,) = fire_due(store, T0 + timedelta(hours=1), start)  # the first run has not ended yet
    assert later.action == "skipped" and len(runs_of(store, sid)) == 1


# -- validation ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cron", "timezone", "location", "words"),
    [
        ("* * * *", "UTC", "cron", "has 4 field(s)"),
        ("* * * * * * *", "UTC", "cron", "has 7 field(s)"),
        ("61 * * * *", "UTC", "cron", "not a valid cron expression"),
        ("every day", "UTC", "cron", "has 2 field(s)"),
        ("0 0 31 2 *", "UTC", "cron", "never fires"),
        ("* * * * *", "Mars/Olympus", "timezone", "not an IANA time zone"),
        ("* * * * *", "../../etc/passwd", "timezone", "not an IANA time zone"),
        ("* * * * *", "localtime", "timezone", "not an IANA time zone"),
    ],
)
def test_bad_cron_expressions_and_time_zones_are_refused_naming_the_field(
    cron: str, timezone: str, location: str, words: str
) -> None:
    with pytest.raises(ScheduleValidationError) as caught:
        parse_cron(cron, timezone)
    (problem,) = caught.value.problems
    assert problem.location == location and words in problem.message, problem


def test_a_sixth_field_is_seconds_and_ticks_follow_the_time_zone() -> None:
    every_5s = parse_cron("* * * * *   */5")
    assert every_5s.expression == "* * * * * */5"
    assert every_5s.next_after(T0 + timedelta(seconds=1)) == T0 + timedelta(seconds=5)
    paris = parse_cron("0 9 * * *", "Europe/Paris")
    assert paris.next_after(T0) == datetime(2030, 1, 2, 8, 0, tzinfo=UTC)  # CET, UTC+1
    assert paris.next_after(datetime(2030, 7, 1, tzinfo=UTC)) == datetime(2030, 7, 1, 7, 0, tzinfo=UTC)
    assert paris.latest_at_or_before(datetime(2030, 7, 1, 7, 0, tzinfo=UTC)) == datetime(
        2030, 7, 1, 7, 0, tzinfo=UTC
    )


CRON_TOKENS = [
    "*",
    "*/0",
    "*/5",
    "0",
    "59",
    "60",
    "1-99",
    "5-1",
    "L",
    "W",
    "#",
    "?",
    "MON-FRI",
    "JAN",
    ",",
    "-",
    "H",
]


@settings(max_examples=300, deadline=None)
@given(
    fields=st.lists(st.sampled_from(CRON_TOKENS) | st.text(max_size=6), max_size=8),
    timezone=st.sampled_from(["UTC", "Europe/Paris", "", "..", "Etc/GMT+14"]) | st.text(max_size=20),
)
def test_any_text_is_either_a_schedule_that_ticks_or_a_validation_error(
    fields: list[str], timezone: str
) -> None:
    try:
        cron = parse_cron(" ".join(fields), timezone)
    except ScheduleValidationError as exc:
        assert exc.problems and {p.location for p in exc.problems} <= {"cron", "timezone"}
        return
    assert cron.next_after(T0) > T0 >= cron.latest_at_or_before(T0)
