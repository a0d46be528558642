"""The engine beside the API: a thread that, while this server holds the engine lease, reconciles every open
run and fires due schedules. Of several servers on one database exactly one does this at a time."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta

from concurrent_mlflow.engine import Engine
from concurrent_mlflow.store import lease

log = logging.getLogger("concurrent.server")


class EngineLoop:
    def __init__(
        self,
        engine: Engine,
        server_id: str,
        *,
        lease_seconds: float,
        poll_seconds: float,
        extra_pass: Callable[[], None] | None = None,
    ) -> None:
        self.engine, self.server_id = engine, server_id
        self.lease_ttl = timedelta(seconds=lease_seconds)
        self.poll_seconds = poll_seconds
        self.extra_pass = extra_pass
        self.leading = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="concurrent-engine", daemon=True)

    def start(self) -> None:
        self.engine.prepare()  # the fork server's imports start now, not when the first task comes
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.engine.wake.set()
        self._thread.join(timeout=60)
        if self.leading:
            lease.release(self.engine.store, self.server_id)

    def still_leader(self) -> bool:
        """Renew the lease; False (stop driving at once) if another server holds it now."""
        held = lease.acquire(self.engine.store, self.server_id, self.lease_ttl)
        if held != self.leading:
            log.warning("%s %s the engine lease", self.server_id, "took" if held else "lost")
            self.leading = held
        return held and not self._stop.is_set()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                if self.still_leader():
                    self.engine.tick_all(keep_going=self.still_leader)
                    if self.extra_pass and self.still_leader():
                        self.extra_pass()
            except Exception:  # the loop must outlive a database or MLflow outage
                log.exception("engine pass failed; retrying")
            # Until a task ends, a route starts or cancels a run, a deadline comes, or at most poll_seconds.
            self.engine.wait(max(0.0, self.poll_seconds - (time.monotonic() - started)))
