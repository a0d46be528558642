"""Planning off the engine's loop.

Planning a stage lists its inputs (a bucket, a directory, every upstream task's output index), partitions
them and stores the manifests: seconds for most stages, minutes for a large or slow one. It runs here, in
background threads, so a pass over the runs never waits for it: other runs keep dispatching, and a cancel
applies at the next pass. The engine starts a stage's plan, finds it still running on later passes, and
records the result once it is done; nothing is written to the store from these threads.

Plan threads are daemons and nobody joins them: a listing hung on an unanswering endpoint never keeps a
cancelled run, a closing engine or an exiting CLI waiting; its stop flag is set and its result dropped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future

# A plan gets a "should I stop?" callable to ask between long steps; it returns the stage's input sizes.
PlanJob = Callable[[Callable[[], bool]], list[int]]


class Planner:
    def __init__(self, on_done: Callable[[], None] = lambda: None) -> None:
        self._on_done = on_done  # wakes the engine's driver, which records the plan on its next pass
        self._jobs: dict[tuple[str, str], Future[list[int]]] = {}
        self._stops: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def poll(self, run_id: str, node_id: str, job: PlanJob) -> Future[list[int]] | None:
        """The stage's finished plan (taken: asked again, it starts a new one), or None while it runs;
        the first call starts `job`."""
        key = (run_id, node_id)
        with self._lock:
            future = self._jobs.get(key)
            if future is None:
                stop = self._stops.setdefault(run_id, threading.Event())
                self._jobs[key] = self._start(f"concurrent-plan-{node_id}", job, stop)
                return None
            if not future.done():
                return None
            del self._jobs[key]
            return future

    def planning(self, run_id: str) -> list[str]:
        """Nodes of the run whose plans are running now."""
        with self._lock:
            return [node for (run, node), future in self._jobs.items() if run == run_id and not future.done()]

    def stop(self, run_id: str) -> None:
        """The run is ending (or has ended): its plans stop at their next check, their results are dropped,
        and a later plan of it (after a retry) starts afresh."""
        with self._lock:
            self._stops.pop(run_id, threading.Event()).set()
            for key in [k for k in self._jobs if k[0] == run_id]:
                self._jobs.pop(key).cancel()

    def close(self) -> None:
        """Stop every plan at its next check; nothing waits for them (see the module's docstring)."""
        with self._lock:
            for stop in self._stops.values():
                stop.set()
            self._jobs.clear()

    def _start(self, name: str, job: PlanJob, stop: threading.Event) -> Future[list[int]]:
        future: Future[list[int]] = Future()

        def work() -> None:
            if not future.set_running_or_notify_cancel():
                return  # the run was stopped before this thread began
            try:
                future.set_result(job(stop.is_set))
            except Exception as exc:  # handed to the engine's pass, which records or re-raises it
                future.set_exception(exc)
            self._on_done()

        threading.Thread(target=work, name=name, daemon=True).start()
        return future
