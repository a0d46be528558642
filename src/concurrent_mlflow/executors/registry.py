"""The executors of one process, by name: built once and shared by the engine and the server's routes.

An attempt records the name of the executor that ran it (`local`, `kubernetes`); whoever later observes,
cancels or reads the log of that attempt asks this registry for that name, so a Kubernetes attempt's log is
read from its pods and a local one's from its file, whichever part of the process asks.
"""

from __future__ import annotations

from collections.abc import Callable

from concurrent_mlflow.errors import ExecutorError
from concurrent_mlflow.executors.base import Executor
from concurrent_mlflow.executors.kubernetes import KubernetesExecutor
from concurrent_mlflow.executors.local import LocalExecutor
from concurrent_mlflow.settings import Paths
from concurrent_mlflow.store import Store
from concurrent_mlflow.store.crypto import Cipher, load_cipher
from concurrent_mlflow.tracking import Tracking


class Executors:
    """The local executor (tasks on this machine) and, optionally, the Kubernetes one, by name."""

    def __init__(self, local: Executor, kubernetes: KubernetesExecutor | None = None) -> None:
        self.local, self.kubernetes = local, kubernetes
        self._by_name: dict[str, Executor] = {local.name: local}
        if kubernetes is not None:
            self._by_name[kubernetes.name] = kubernetes

    def get(self, name: str) -> Executor:
        """The executor called `name`; an attempt's `executor` column says which one ran it."""
        try:
            return self._by_name[name]
        except KeyError:
            have = ", ".join(sorted(self._by_name))
            raise ExecutorError(
                f"this process has no {name!r} executor (it has {have}), but an attempt ran there"
            ) from None

    def stage_executor(self) -> Executor:
        """The executor of nodes with a `placement`, which starts a stage's tasks at once (Kubernetes)."""
        if self.kubernetes is None:
            raise ExecutorError("this engine has no Kubernetes executor, but the run has tasks there")
        return self.kubernetes

    def prepare(self) -> None:
        """Let every executor get ready for tasks in the background (the local fork server starts)."""
        for executor in self._by_name.values():
            executor.prepare()

    def wake_on_change(self, wake: Callable[[], None]) -> None:
        """`wake` is called whenever a task of any executor may have ended."""
        for executor in self._by_name.values():
            executor.wake_on_change(wake)

    def close(self) -> None:
        """Release every executor's helpers (fork server, watches); running tasks are left running."""
        for executor in self._by_name.values():
            executor.close()


def standard(
    paths: Paths,
    store: Store,
    tracking: Tracking,
    *,
    local: Executor | None = None,
    cipher: Callable[[], Cipher] | None = None,
) -> Executors:
    """This machine's executors: `local` (a `LocalExecutor` under `paths` by default) and Kubernetes, which
    connects to a registered cluster only when a task or a log needs it."""
    local = local or LocalExecutor(log_root=paths.logs, scratch_root=paths.scratch)
    kubernetes = KubernetesExecutor(store, cipher or (lambda: load_cipher(paths.home)), tracking)
    return Executors(local, kubernetes)
