"""Firing cron schedules: each due tick starts one micro-batch run of the schedule's DAG.

`fire_due(store, now, start_run)` is called on every pass of the server's engine loop (only by the server
holding the engine lease). It is deterministic given `now` and the store, so tests drive it with a fake
clock. The rules:

- **Window.** A run processes `[start, end)`: `end` is the tick being fired; `start` is the `window_end` of
  the schedule's latest *succeeded* run, or 1970-01-01T00:00Z when there is none (the first run takes all
  existing data). A failed or cancelled run's window is therefore covered again by the next run. Sources
  with `incremental: true` list only files modified inside the window.
- **Overlap.** While a run of this schedule has not ended, a tick either is dropped (`skip`, logged) or
  waits (`queue`): at most one tick waits, later ticks coalesce into it (its window grows to the later
  tick), and it fires as soon as the run ends.
- **Missed ticks** (the server was down, or a pass took long) **coalesce**: ONE run is started, whose
  window ends at the latest missed tick, never one run per missed tick. The next tick is then the first
  after `now`.
- **Errors never stop the loop.** A tick that cannot start a run (the DAG was deleted, overrides no longer
  match it, a project is unreachable) is consumed, its error kept on the schedule (`last_error`), and the
  schedule fires again at its next tick; the data is not lost, as the next window starts at the last
  success.
- **Restart safety.** Starting a run and recording the tick are two transactions. A scheduler killed in
  between finds the run of that tick on restart (same schedule, `window_end` == tick) and only records the
  tick, so a tick never starts two runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from concurrent_mlflow.cron import Cron
from concurrent_mlflow.engine.start import start_stored_run
from concurrent_mlflow.policy import ExecutionPolicy
from concurrent_mlflow.store import Store
from concurrent_mlflow.store import schedules as stored
from concurrent_mlflow.store.models import ScheduleRow

log = logging.getLogger("concurrent.scheduler")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

StartRun = Callable[[ScheduleRow, tuple[datetime, datetime]], str]
"""Starts a run of the schedule's DAG over the window (start, end); returns its id or raises."""

Action = Literal["fired", "failed", "skipped", "queued", "waiting", "recorded"]


@dataclass(frozen=True)
class Outcome:
    """What one schedule did on this pass (for logs and tests)."""

    schedule_id: int
    action: Action
    tick: datetime | None = None
    run_id: str | None = None
    error: str | None = None


def fire_due(
    store: Store,
    now: datetime,
    start_run: StartRun,
    keep_going: Callable[[], bool] = lambda: True,
) -> list[Outcome]:
    """Fire every due schedule once; one schedule's failure is logged and never stops the others."""
    now = _utc(now)
    outcomes = []
    for schedule in stored.due(store, now):
        if not keep_going():
            break
        try:
            outcomes.append(fire_one(store, schedule, now, start_run))
        except Exception:  # a store hiccup on one schedule: the next pass tries again
            log.exception("schedule %s: this pass failed; trying again", schedule.id)
    return outcomes


def fire_one(store: Store, schedule: ScheduleRow, now: datetime, start_run: StartRun) -> Outcome:
    """Apply the rules of this module to one schedule found due at `now`."""
    cron = Cron(schedule.cron, schedule.timezone)
    due_tick = _due_tick(schedule, cron, now)
    queued = _utc(schedule.queued_fire_at) if schedule.queued_fire_at else None
    ticks = [t for t in (due_tick, queued) if t is not None]
    if not ticks:  # changed since `due` read it (a PATCH re-planned it): nothing to do yet
        return Outcome(schedule.id, "waiting")
    tick = max(ticks)
    next_fire_at = cron.next_after(now) if due_tick else _utc(schedule.next_fire_at or now)
    if (already := stored.run_for_tick(store, schedule.id, tick)) is not None:
        stored.record_fire(store, schedule.id, tick=tick, next_fire_at=next_fire_at, error=None)
        return Outcome(schedule.id, "recorded", tick, already)
    if stored.has_open_run(store, schedule.id):
        return _overlapping(store, schedule, tick, due_tick, next_fire_at)
    return _fire(store, schedule, tick, next_fire_at, start_run)


def stored_dag_starter(store: Store, *, base_dir: Path, cache_dir: Path, policy: ExecutionPolicy) -> StartRun:
    """The server's `StartRun`: the newest version of the schedule's DAG, checked as `POST /runs` checks
    it (the server's execution policy included), with relative paths resolved against `base_dir` (the
    server's work dir)."""

    def start(schedule: ScheduleRow, window: tuple[datetime, datetime]) -> str:
        return start_stored_run(
            store,
            schedule.dag_name,
            overrides=schedule.overrides,
            base_dir=base_dir,
            cache_dir=cache_dir,
            policy=policy,
            created_by=schedule.created_by,
            schedule_id=schedule.id,
            window=window,
        )

    return start


def _due_tick(schedule: ScheduleRow, cron: Cron, now: datetime) -> datetime | None:
    """The latest tick at or before `now` if the next tick has come (missed ones coalesce into it)."""
    if schedule.next_fire_at is None or _utc(schedule.next_fire_at) > now:
        return None
    return max(cron.latest_at_or_before(now), _utc(schedule.next_fire_at))


def _overlapping(
    store: Store, schedule: ScheduleRow, tick: datetime, due_tick: datetime | None, next_fire_at: datetime
) -> Outcome:
    if due_tick is None:  # only a queued tick, still waiting for the run to end
        return Outcome(schedule.id, "waiting", tick)
    if schedule.overlap == "queue":
        stored.record_queue(store, schedule.id, tick=tick, next_fire_at=next_fire_at)
        log.info("schedule %s: tick %s queued behind the run still going", schedule.id, tick.isoformat())
        return Outcome(schedule.id, "queued", tick)
    stored.record_skip(store, schedule.id, next_fire_at=next_fire_at)
    log.info("schedule %s: tick %s skipped, a run it started is still going", schedule.id, tick.isoformat())
    return Outcome(schedule.id, "skipped", tick)


def _fire(
    store: Store, schedule: ScheduleRow, tick: datetime, next_fire_at: datetime, start_run: StartRun
) -> Outcome:
    start = stored.window_start(store, schedule.id)
    window = (_utc(start) if start else EPOCH, tick)
    if window[0] >= tick:  # the clock went back behind the last window: nothing new to cover
        error = f"tick {tick.isoformat()} is not after the last window's end {window[0].isoformat()}"
        log.warning("schedule %s: %s; skipped", schedule.id, error)
        stored.record_fire(store, schedule.id, tick=tick, next_fire_at=next_fire_at, error=error)
        return Outcome(schedule.id, "skipped", tick, error=error)
    try:
        run_id = start_run(schedule, window)
    except Exception as exc:  # the DAG was deleted, its overrides went stale, a project is unreachable...
        error = f"tick {tick.isoformat()} could not start a run of DAG {schedule.dag_name!r}: {exc}"
        log.warning("schedule %s: %s", schedule.id, error)
        stored.record_fire(store, schedule.id, tick=tick, next_fire_at=next_fire_at, error=error)
        return Outcome(schedule.id, "failed", tick, error=error)
    stored.record_fire(store, schedule.id, tick=tick, next_fire_at=next_fire_at, error=None)
    log.info("schedule %s: run %s over [%s, %s)", schedule.id, run_id, window[0], window[1])
    return Outcome(schedule.id, "fired", tick, run_id)


def _utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; the store writes UTC."""
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
