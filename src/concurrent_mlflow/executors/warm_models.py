"""Warm fork servers that hold a stage's model, so an inference stage loads its model once, not per partition.

Loading an MLflow model costs seconds (the download, the flavour's imports such as scikit-learn, the
unpickling); paid by every partition it made 20 partitions 7x slower than 2 for the same rows. For the
first task of an inference stage the local executor asks the fork server for a child that becomes a fork
server of its own and loads the model (`worker.inference.preload`); the stage's tasks are forked from it
and find the model in memory, shared copy-on-write, while each still gets the thread counts its own
environment asks for.

A warm server is kept per stage (run, node and model URI), not per model URI alone: `models:/name@alias`
may point elsewhere for the next stage, and a model should not stay in memory long after its stage. At most
`MAX_WARM` are kept (least recently used closed first), all closed with the executor. A model whose loading
leaves a thread running (which makes forking unsafe), or fails to load, is not kept warm: its tasks are
forked from the ordinary fork server and load it each on their own, after one warning. With a task user
there are no warm model servers: loading a model runs the model's code, which must run as the task user,
while the fork server is root so it can write each task's pid and exit files; tasks then load it each.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from pathlib import Path

from concurrent_mlflow.errors import ExecutorError
from concurrent_mlflow.executors.base import TaskLaunch
from concurrent_mlflow.executors.forkserver import ForkServer
from concurrent_mlflow.manifest import InferenceSpec, spec_from_json

log = logging.getLogger("concurrent.executor")

MAX_WARM = 2
PRELOAD_HOOK = "concurrent_mlflow.worker.inference:preload"
Key = tuple[str, str, str]  # run id, node id, model URI


class WarmModels:
    """The warm model servers of one local executor, forked from its fork server."""

    def __init__(self, base: ForkServer, log_root: Path, size: int = MAX_WARM) -> None:
        self.base = base
        self.log_root = log_root
        self.size = size
        self._servers: OrderedDict[Key, ForkServer] = OrderedDict()
        self._refused: OrderedDict[Key, None] = OrderedDict()  # warned once; bounded like the servers
        self._locks: dict[Key, threading.Lock] = {}
        self._lock = threading.Lock()

    def server(self, launch: TaskLaunch, env: dict[str, str]) -> ForkServer | None:
        """The warm server for `launch`'s stage (started on first use), or None: not an inference task,
        or its model cannot be kept warm."""
        model = model_of(launch)
        if model is None:
            return None
        key = (launch.run_id, launch.node_id, model)
        with self._lock:
            starting = self._locks.setdefault(key, threading.Lock())
        with starting:  # the stage's other tasks wait for this one load rather than start their own
            with self._lock:
                if key in self._refused:
                    return None
                if key in self._servers:
                    self._servers.move_to_end(key)
                    return self._servers[key]
            return self._start(key, env)

    def refuse(self, launch: TaskLaunch, why: str) -> None:
        """The warm server of `launch`'s stage failed a task: close it and fork the stage's tasks as usual."""
        model = model_of(launch)
        if model is not None:
            self._refuse((launch.run_id, launch.node_id, model), why)

    def close(self) -> None:
        with self._lock:
            servers, self._servers = list(self._servers.values()), OrderedDict()
        for server in servers:
            server.close()

    def _start(self, key: Key, env: dict[str, str]) -> ForkServer | None:
        log_path = self.log_root / key[0] / key[1] / "model-server.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            server = self.base.warm(PRELOAD_HOOK, key[2], env, log_path)
        except (ExecutorError, OSError, ValueError) as exc:
            self._refuse(key, f"{exc} (its log: {log_path})")
            return None
        with self._lock:
            self._servers[key] = server
            evicted = [self._servers.popitem(last=False)[1] for _ in range(len(self._servers) - self.size)]
        for old in evicted:
            old.close()  # its running tasks carry on and are still reaped
        return server

    def _refuse(self, key: Key, why: str) -> None:
        with self._lock:
            server = self._servers.pop(key, None)
            warn = key not in self._refused
            self._refused[key] = None
            while len(self._refused) > 64:
                self._refused.popitem(last=False)
        if server is not None:
            server.close()
        if warn:
            log.warning(
                "Model %s of %s is not kept loaded for the stage, so each of its tasks loads it: %s",
                key[2],
                key[1],
                why,
            )


def model_of(launch: TaskLaunch) -> str | None:
    """The model URI of an inference task handed over with its spec, else None."""
    if launch.task is None:
        return None
    spec = spec_from_json(json.loads(launch.task)["spec"])  # not the manifest: it is parsed by the worker
    return spec.model if isinstance(spec, InferenceSpec) else None
