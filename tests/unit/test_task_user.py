"""Local tasks as a task user (`nobody`), forked and spawned, with real processes: the task runs as that user
with no groups, in its own home, cannot read a file of the server's private data dir, and finds no server
secret in its environment (nor, when forked, in the fork server's memory). Needs root to switch users."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from tests.fixtures.task_user import NOBODY, needs_nobody, open_world
from tests.unit.test_local_executor import TASK, launch, wait

from concurrent_mlflow.errors import ExecutorError
from concurrent_mlflow.executors.local import LocalExecutor
from concurrent_mlflow.executors.task_user import TaskUser

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def world() -> Iterator[Path]:
    with open_world() as base:
        yield base


@pytest.fixture(scope="module")
def data_dir(world: Path) -> Path:
    """Like the server's data dir: 0700, with a 0600 secret.key."""
    home = world / "data"
    home.mkdir(mode=0o700)
    (home / "secret.key").write_bytes(Fernet.generate_key())
    (home / "secret.key").chmod(0o600)
    return home


@pytest.fixture(scope="module")
def nobody(world: Path, data_dir: Path) -> TaskUser:
    user = TaskUser.lookup("nobody", world / "tasks")
    user.prepare([data_dir])
    return user


@needs_nobody
@pytest.mark.parametrize("how", ["forked", "spawned"])
def test_a_task_runs_as_the_task_user_and_cannot_read_the_data_dir(
    how: str, nobody: TaskUser, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONCURRENT_SECRET_KEY", Fernet.generate_key().decode())  # the server's, in its env
    executor = LocalExecutor(
        tmp_path / "logs", tmp_path / "scratch", fork=how == "forked", worker_module=TASK, task_user=nobody
    )
    try:
        handle, log_path = executor.submit(
            launch(0, TASK_READ=str(data_dir / "secret.key"), PYTHONPATH=str(REPO))
        )
        seen = wait(executor, handle)
    finally:
        executor.close()
    log = Path(str(log_path)).read_text()
    assert seen.exit_code == 0, log
    assert f"ids=({NOBODY}, {NOBODY}, {NOBODY}, {NOBODY}, [])" in log
    assert f"cwd={nobody.home} HOME={nobody.home} key_in_environ=False" in log
    assert "read=PermissionError" in log


def test_the_task_user_must_exist_and_not_be_root(world: Path) -> None:
    with pytest.raises(ExecutorError, match="'no-such-task-user' does not exist"):
        TaskUser.lookup("no-such-task-user", world / "tasks")
    with pytest.raises(ExecutorError, match="'root' is root"):
        TaskUser.lookup("root", world / "tasks")


@needs_nobody
def test_a_task_user_that_can_read_the_data_dir_is_refused(nobody: TaskUser, world: Path) -> None:
    readable = world / "open-data"
    readable.mkdir(mode=0o755, exist_ok=True)
    with pytest.raises(ExecutorError, match=f"cannot run local tasks safely: it can read {readable}"):
        nobody.probe([readable])
