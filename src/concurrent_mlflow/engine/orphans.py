"""A dead driver never blocks anything: runs whose driver died are found, settled and reported.

The process driving a run (`concurrent run`, `mlflow run -b concurrent`) holds a lease on it
(`store.drivers`) and renews it every few seconds while it drives (`drive`). A run is orphaned once its
driver is dead: at once when the driver ran on this machine and its process is gone (pid and kernel start
time, so a reused pid does not count as alive), else once its lease expired (`DRIVER_TTL`, the database's
clock). The next command that opens the store settles every orphan (`settle_orphans`), and so does every
live driver every few seconds:

- an attempt whose worker exited is ended as the engine would have ended it: its MLflow child run FINISHED
  means succeeded, outputs kept;
- a worker still running is stopped (its whole process group; a Kubernetes Job is deleted) and its attempt
  fails saying the driver died, with no automatic retry: nobody would be there to watch it;
- the run ends failed, so `concurrent run retry RUN_ID` redoes only what did not succeed; or cancelled, when
  the command settling it is `concurrent runs cancel RUN_ID`.

Settling takes the run over first with a compare-and-set on its driver, so of two commands settling one
orphan exactly one does it. A run with no driver belongs to the server's engine and is never settled here:
the engine lease (`store.lease`) covers it, and a restarted server re-observes its tasks.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from concurrent_mlflow.engine import reads
from concurrent_mlflow.engine.reconcile import Engine
from concurrent_mlflow.errors import DriverLostError
from concurrent_mlflow.executors import forkserver
from concurrent_mlflow.executors.base import TaskLaunch
from concurrent_mlflow.store import AttemptRow, RunRow, Store, TaskRow, TaskState, drivers
from concurrent_mlflow.store import transitions as tx
from concurrent_mlflow.store.states import AttemptState, RunState, StageState

log = logging.getLogger("concurrent.engine")
S = TaskState

# A driver on another machine is presumed dead this long after its last renewal.
DRIVER_TTL = timedelta(seconds=60)
RENEW_SECONDS = 5.0
KINDS = {"cli": "`concurrent run`", "mlflow": "`mlflow run -b concurrent`"}


@dataclass(frozen=True)
class DriverId:
    """Names one process for ever: kind, host, pid and the kernel's start time of that pid."""

    kind: str
    host: str
    pid: int
    started: int

    def __str__(self) -> str:
        return f"{self.kind}:{self.host}:{self.pid}:{self.started}"

    @classmethod
    def parse(cls, text: str) -> DriverId | None:
        kind, *host, pid, started = text.split(":") if text.count(":") >= 3 else ("", "", "x", "x")
        if not (pid.isdigit() and started.isdigit()):
            return None
        return cls(kind, ":".join(host), int(pid), int(started))

    def describe(self) -> str:
        return f"{KINDS.get(self.kind, self.kind)} pid {self.pid} on {self.host}"

    def dead_here(self) -> bool:
        """True if this process ran on this machine and is gone (a zombie or a reused pid is gone too)."""
        return self.host == socket.gethostname() and not forkserver.running(self.pid, self.started)


def this_process(kind: str = "cli") -> str:
    pid = os.getpid()
    return str(DriverId(kind, socket.gethostname(), pid, forkserver.start_time(pid) or 0))


def describe(driver: str) -> str:
    parsed = DriverId.parse(driver)
    return parsed.describe() if parsed else repr(driver)


@dataclass(frozen=True)
class Orphan:
    run_id: str
    driver: str


def find_orphans(store: Store, me: str) -> list[Orphan]:
    """Open runs whose driver (not `me`) died or let its lease expire."""
    found = []
    for run in drivers.driven_runs(store):
        parsed = DriverId.parse(run.driver)
        if run.driver != me and (run.expired or (parsed is not None and parsed.dead_here())):
            found.append(Orphan(run.run_id, run.driver))
    return found


@dataclass(frozen=True)
class Settlement:
    """What settling one orphan did, as one line for the person at the terminal."""

    run_id: str
    driver: str
    state: str
    succeeded: int
    stopped: int
    unfinished: int

    def message(self) -> str:
        text = (
            f"Run {self.run_id} was orphaned: its driver, {describe(self.driver)}, died. "
            f"{self.succeeded} partition(s) had succeeded and keep their outputs; "
            f"{self.stopped} worker(s) still running were stopped."
        )
        if self.state == S.CANCELLED:
            return text + " The run is now cancelled."
        return (
            text + f" The run is now failed with {self.unfinished} partition(s) unfinished; to finish only "
            f"those: concurrent run retry {self.run_id}"
        )


def settle_orphans(engine: Engine, me: str, cancelling: str | None = None) -> list[Settlement]:
    """Settle every orphan in the store; the one named `cancelling` ends cancelled, the others failed."""
    settled = []
    for orphan in find_orphans(engine.store, me):
        done = settle(engine, orphan, me, cancel=orphan.run_id == cancelling)
        if done is not None:
            settled.append(done)
    return settled


def settle(engine: Engine, orphan: Orphan, me: str, *, cancel: bool = False) -> Settlement | None:
    """Take the orphan over and end it; None if another command got to it first."""
    store = engine.store
    if not drivers.take_over(store, orphan.run_id, me, DRIVER_TTL, dead=orphan.driver):
        return None
    reason = f"its driver, {describe(orphan.driver)}, died"
    log.info("run %s: %s; settling it", orphan.run_id, reason)  # the caller reports what was done
    run = reads.run(store, orphan.run_id)
    end = AttemptState.CANCELLED if cancel else AttemptState.FAILED
    stopped = sum(
        _settle_attempt(engine, run, t, a, end, reason) for t, a in reads.active_attempts(store, run.id)
    )
    if cancel:
        engine.cancel(run.id, f"cancelled with `concurrent runs cancel` after {reason}")
    else:
        _fail(engine, run, reason)
    counts = list(reads.task_counts(store, run.id).values())
    succeeded = sum(c[S.SUCCEEDED] for c in counts)
    total = sum(sum(c.values()) for c in counts)
    return Settlement(run.id, orphan.driver, end, succeeded, stopped, total - succeeded)


def _settle_attempt(
    engine: Engine, run: RunRow, task: TaskRow, attempt: AttemptRow, end: AttemptState, reason: str
) -> int:
    """End one active attempt of an orphan; 1 if a live worker had to be stopped."""
    if not attempt.handle:
        _find(engine, run, task, attempt)
    stopped = 0
    if attempt.handle:
        executor = engine.executors.get(attempt.executor)
        seen = executor.observe(attempt.handle)
        if seen.phase in ("exited", "lost") and attempt.mlflow_run_id:
            engine.endings.finish(task, attempt, seen)  # as the driver would have: FINISHED means succeeded
            return 0
        executor.cancel(attempt.handle)
        stopped = 1
    # Stopped (or never started): a worker that got as far as FINISHING its MLflow run still counts.
    if attempt.mlflow_run_id and engine.tracking.status(attempt.mlflow_run_id) == "FINISHED":
        tx.end_attempt(engine.store, attempt.id, state=AttemptState.SUCCEEDED)
        return stopped
    _end_attempt(engine, attempt, end, f"stopped: {reason}" if stopped else f"never started: {reason}")
    return stopped


def _end_attempt(engine: Engine, attempt: AttemptRow, end: AttemptState, error: str) -> None:
    """Its log saved, its MLflow run KILLED, and no automatic retry: the run is ending (`run retry` redoes
    a failed attempt)."""
    if attempt.mlflow_run_id:
        if attempt.handle:
            engine.endings.save_log(attempt, attempt.mlflow_run_id)
        engine.tracking.terminate(attempt.mlflow_run_id, "KILLED")
    tx.end_attempt(engine.store, attempt.id, state=end, error=error)


def _find(engine: Engine, run: RunRow, task: TaskRow, attempt: AttemptRow) -> None:
    """A worker the dead driver started but had not recorded yet: found by its pid file or command line."""
    executor = engine.executors.get(attempt.executor)
    if executor.traits.whole_stages or not attempt.mlflow_run_id:
        return  # (a stage executor adopts what an earlier engine started when the stage is handed over again)
    launch = TaskLaunch(
        run_id=run.id,
        node_id=task.node_id,
        partition=task.partition,
        partitions=1,
        attempt=attempt.number,
        parent_run_id=run.mlflow_run_id or "",
        child_run_id=attempt.mlflow_run_id,
        tracking_uri=engine.tracking.tracking_uri,
    )
    found = executor.find(launch)
    if found is not None:
        attempt.handle, attempt.log_path = found
        tx.attach_handle(engine.store, attempt.id, *found)


def _fail(engine: Engine, run: RunRow, reason: str) -> None:
    """End the run failed: stages whose tasks all ended close as usual, the others fail or are skipped."""
    engine.endings.close_stages(run.id)
    for stage in reads.stages(engine.store, run.id):
        if stage.state == S.RUNNING:
            tx.end_stage(engine.store, run.id, stage.node_id, StageState.FAILED, f"unfinished: {reason}")
        elif stage.state == S.PENDING:
            tx.end_stage(engine.store, run.id, stage.node_id, StageState.SKIPPED, f"skipped: {reason}")
    tx.finish_run(
        engine.store,
        run.id,
        RunState.FAILED,
        f"orphaned: {reason}; `concurrent run retry {run.id}` finishes it",
    )
    if run.mlflow_run_id:
        engine.tracking.terminate(run.mlflow_run_id, "FAILED")


# -- the driver's side -----------------------------------------------------------------------------------
class _Lease:
    """Renews the driver's lease every few seconds from the loop that drives the run; on the way settles
    other orphans (their slots free up at once) and says so when the run waits for a slot."""

    def __init__(self, engine: Engine, run_id: str, me: str, report: Callable[[str], None]) -> None:
        self.engine, self.run_id, self.me, self.report = engine, run_id, me, report
        self.renewed = time.monotonic()
        self.said_waiting = False

    def check(self) -> None:
        if time.monotonic() - self.renewed < RENEW_SECONDS:
            return
        self.renewed = time.monotonic()
        if not drivers.renew(self.engine.store, self.run_id, self.me, DRIVER_TTL):
            raise DriverLostError(
                f"Run {self.run_id} is no longer driven by this process (now: "
                f"{describe(drivers.driver_of(self.engine.store, self.run_id) or 'the server')}); "
                "its lease lapsed and another command settled it. `concurrent runs show` tells its state."
            )
        try:
            for settled in settle_orphans(self.engine, self.me):
                self.report(settled.message())
        except Exception:  # another run's trouble (MLflow away, say) must not stop this one: next time
            log.exception("could not settle an orphaned run; trying again in %.0fs", RENEW_SECONDS)
        self._say_if_waiting()

    def _say_if_waiting(self) -> None:
        """The run has work but no slot: say who holds the slots, once, rather than sit at 0 tasks."""
        store, limit = self.engine.store, self.engine.settings.max_parallel
        if self.said_waiting or reads.count_active(store, run_id=self.run_id):
            return
        pending = sum(c[S.PENDING] for c in reads.task_counts(store, self.run_id).values())
        busy = reads.count_active(store, executor=self.engine.executors.local.name)
        if pending and busy >= limit:
            self.said_waiting = True
            self.report(
                f"Run {self.run_id} waits for a free slot: {busy} task(s) of other runs on this machine hold "
                f"all {limit} (--max-parallel); it starts as they end."
            )


def drive(
    engine: Engine,
    run_id: str,
    me: str,
    on_tick: Callable[[], None] | None = None,
    report: Callable[[str], None] = log.warning,
) -> str:
    """`Engine.run_until_done`, holding the run's driver lease while it runs."""
    lease = _Lease(engine, run_id, me, report)

    def tick() -> None:
        lease.check()
        if on_tick:
            on_tick()

    return engine.run_until_done(run_id, on_tick=tick)
