"""The control plane's tables on real SQLite and PostgreSQL: versioned DAGs, tokens and roles, the engine
lease, and the migrations that build all of it (also under concurrency: several servers share one database)."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select, text

from concurrent_mlflow.errors import AuthenticationError, ConflictError, DagNotFoundError, NotFoundError
from concurrent_mlflow.store import access, catalog, lease, open_store
from concurrent_mlflow.store import transitions as tx
from concurrent_mlflow.store.db import Store, alembic_config, head_revision
from concurrent_mlflow.store.models import ScheduleRow, TokenRow
from concurrent_mlflow.store.queries import run_view

T = TypeVar("T")


def all_at_once(count: int, work: Callable[[int], T]) -> list[T | Exception]:
    """Run `work(i)` in `count` threads released together; each result or the exception it raised."""
    barrier = threading.Barrier(count)
    results: list[T | Exception] = [RuntimeError("did not run")] * count

    def one(index: int) -> None:
        barrier.wait()
        try:
            results[index] = work(index)
        except Exception as exc:  # collected, asserted on by the caller
            results[index] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def state_of(store: Store, run_id: str) -> str:
    view = run_view(store, run_id)
    assert view is not None, f"run {run_id} is gone"
    return view.state


# -- versioned DAGs -----------------------------------------------------------------------------------------
def test_every_save_is_a_new_version_and_old_versions_stay_as_they_were(store: Store) -> None:
    catalog.save_version(store, "etl", "name: etl # v1", description="first", user="ann", create=True)
    catalog.save_version(store, "etl", "name: etl # v2", description=None, user="bob", create=False)
    assert catalog.get_version(store, "etl").yaml == "name: etl # v2"
    assert catalog.get_version(store, "etl", 1).yaml == "name: etl # v1"
    assert [row.version for row in catalog.versions(store, "etl")] == [2, 1]
    assert access.grants(store, "etl") == {
        "ann": "owner"
    }  # the creator owns it; a new version changes nothing
    with pytest.raises(ConflictError, match="already exists"):
        catalog.save_version(store, "etl", "name: etl", description=None, user="eve", create=True)
    with pytest.raises(DagNotFoundError, match="create it first"):
        catalog.save_version(store, "nope", "name: nope", description=None, user="eve", create=False)
    with pytest.raises(DagNotFoundError, match="version 7"):
        catalog.get_version(store, "etl", 7)


def test_concurrent_saves_of_one_dag_lose_no_version(store: Store) -> None:
    catalog.save_version(store, "busy", "v1", description=None, user="ann", create=True)
    outcomes = all_at_once(
        6,
        lambda i: catalog.save_version(
            store, "busy", f"edit {i}", description=None, user="ann", create=False
        ),
    )
    saved = [o for o in outcomes if not isinstance(o, Exception)]
    refused = [o for o in outcomes if isinstance(o, Exception)]
    assert all(isinstance(o, ConflictError) for o in refused), refused  # never a raw database error
    assert saved, "at least one save must win"
    stored = {row.version: row.yaml for row in catalog.versions(store, "busy")}
    assert sorted(stored) == list(range(1, len(saved) + 2))
    assert {row.yaml for row in saved} == set(stored.values()) - {"v1"}


def test_list_searches_literally_and_pages(store: Store) -> None:
    for name, description in [("a_b", "100% done"), ("axb", "plain"), ("other", "has a_b inside")]:
        catalog.save_version(store, name, f"name: {name}", description=description, user="u", create=True)
    found, total = catalog.list_dags(store, search="a_b", names=None, offset=0, limit=10)
    assert ([d.name for d in found], total) == (["a_b", "other"], 2)  # `_` is not a wildcard
    found, _ = catalog.list_dags(store, search="%", names=None, offset=0, limit=10)
    assert [d.name for d in found] == ["a_b"]
    page, total = catalog.list_dags(store, search=None, names=None, offset=1, limit=1)
    assert ([d.name for d in page], total) == (["axb"], 3)
    mine, _ = catalog.list_dags(store, search=None, names={"other"}, offset=0, limit=10)
    assert [d.name for d in mine] == ["other"]


def test_deleting_a_dag_removes_its_grants_and_schedules_but_keeps_its_runs(store: Store) -> None:
    catalog.save_version(store, "gone", "name: gone", description=None, user="ann", create=True)
    with store.transaction() as session:
        session.add(ScheduleRow(dag_name="gone", cron="* * * * *"))
    run_id = tx.create_run(
        store, dag_name="gone", dag_yaml="name: gone", base_dir="/", node_ids=["a"], overrides={}
    )
    assert catalog.delete_dag(store, "gone") == 1
    assert not catalog.exists(store, "gone") and access.grants(store, "gone") == {}
    with store.transaction() as session:
        assert session.scalars(select(ScheduleRow).where(ScheduleRow.dag_name == "gone")).first() is None
    assert state_of(store, run_id) == "pending"
    with pytest.raises(DagNotFoundError):
        catalog.delete_dag(store, "gone")


# -- tokens and roles ---------------------------------------------------------------------------------------
def test_tokens_are_verified_against_a_hash_and_can_be_revoked(store: Store) -> None:
    token = access.create_token(store, "ann", "laptop")
    admin = access.create_token(store, "root", "ops", admin=True)
    assert access.verify_token(store, token) == access.Identity("ann", admin=False)
    assert access.verify_token(store, admin).admin
    secret = token.split("_", 2)[2]
    with store.transaction() as session:
        stored = session.scalars(select(TokenRow.secret_hash)).all()
    assert all(secret not in value for value in stored)  # only the hash is at rest
    for wrong in (token[:-1] + ("A" if token[-1] != "A" else "B"), "cmf_nothing_here", "", "Bearer x"):
        with pytest.raises(AuthenticationError):
            access.verify_token(store, wrong)
    access.revoke_token(store, token)
    with pytest.raises(AuthenticationError, match="revoked"):
        access.verify_token(store, token)
    with pytest.raises(NotFoundError):
        access.revoke_token(store, "cmf_000000000000_x")


def test_roles_are_ordered_and_grants_replace_each_other(store: Store) -> None:
    access.grant(store, "d", "bob", "runner")
    assert access.role_of(store, "d", "bob") == "runner"
    assert access.allows("runner", "reader") and access.allows("runner", "runner")
    assert not access.allows("runner", "editor") and not access.allows(None, "reader")
    access.grant(store, "d", "bob", "editor")
    assert access.grants(store, "d") == {"bob": "editor"}
    assert access.readable_dags(store, "bob") == {"d"}
    access.grant(store, "d", "bob", None)
    assert access.role_of(store, "d", "bob") is None and access.readable_dags(store, "bob") == set()


# -- the engine lease ---------------------------------------------------------------------------------------
def test_the_lease_has_one_holder_until_it_expires_or_is_released(store: Store) -> None:
    ttl = timedelta(seconds=30)
    assert lease.acquire(store, "a", ttl) and lease.acquire(store, "a", ttl)  # taken, then renewed
    assert not lease.acquire(store, "b", ttl) and lease.holder(store) == "a"
    lease.release(store, "a")
    assert lease.acquire(store, "b", ttl) and lease.holder(store) == "b"
    assert not lease.acquire(store, "a", ttl)
    assert lease.acquire(store, "b", timedelta(seconds=-1))  # renewed into the past: expired at once
    assert lease.acquire(store, "a", ttl) and lease.holder(store) == "a"


def test_of_many_servers_racing_for_a_free_lease_exactly_one_wins(store: Store) -> None:
    outcomes = all_at_once(8, lambda i: lease.acquire(store, f"server-{i}", timedelta(seconds=30)))
    assert outcomes.count(True) == 1, outcomes
    assert lease.holder(store) == f"server-{outcomes.index(True)}"


# -- migrations ---------------------------------------------------------------------------------------------
def _head() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _revision(store: Store) -> str | None:
    with store.engine.connect() as connection:
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def test_migrations_go_down_to_nothing_and_up_again(store: Store) -> None:
    assert _revision(store) == _head() == head_revision()  # (open_store skips Alembic at head_revision)
    with store.engine.begin() as connection:
        command.downgrade(alembic_config(connection), "base")
    with store.engine.connect() as connection:
        assert set(inspect(connection).get_table_names()) <= {"alembic_version"}
    store.close()
    again = open_store(store.engine.url.render_as_string(hide_password=False))
    assert _revision(again) == _head()
    run_id = tx.create_run(
        again, dag_name="d", dag_yaml="name: d", base_dir="/", node_ids=["a"], overrides={}
    )
    assert state_of(again, run_id) == "pending"
    again.close()


def test_a_store_from_before_migrations_is_stamped_and_upgraded_keeping_its_runs(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = open_store(path, migrate=False)
    with old.engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0001")  # exactly what 0.1's create_all made
        connection.execute(text("DROP TABLE alembic_version"))
        connection.execute(
            text(
                "INSERT INTO runs (id, dag_name, dag_yaml, base_dir, overrides, state, created_at) "
                "VALUES ('r1', 'd', 'name: d', '/', '{}', 'succeeded', '2026-01-01 00:00:00')"
            )
        )
    old.close()
    upgraded = open_store(path)
    assert _revision(upgraded) == _head()
    assert state_of(upgraded, "r1") == "succeeded"


def test_servers_starting_together_on_a_fresh_database_migrate_it_once(store_url: str) -> None:
    """Separate processes, as servers are (Alembic's own state is per process, not per thread)."""
    opener = "import sys; from concurrent_mlflow.store import open_store; open_store(sys.argv[1]).close()"
    processes = [
        subprocess.Popen([sys.executable, "-c", opener, store_url], stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    failures = [p.stderr.read() for p in processes if p.wait(timeout=120) != 0 and p.stderr]
    assert not failures, failures
    opened = open_store(store_url)
    assert _revision(opened) == _head()
    opened.close()
