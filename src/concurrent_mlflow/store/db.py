"""Opening the database: SQLite under the data dir by default, any SQLAlchemy URL otherwise (PostgreSQL)."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, exc, inspect, text
from sqlalchemy.orm import Session, sessionmaker

from concurrent_mlflow.settings import PRIVATE_DIR, private_file

if TYPE_CHECKING:  # Alembic is imported only when a store needs migrating (its import takes ~0.5 s)
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
MIGRATION_LOCK = 0x636D665F6D6967  # any constant shared by every server ("cmf_mig")
PRE_ALEMBIC_REVISION = "0001"  # stores created by 0.1 with `create_all` hold exactly this schema


class Store:
    """A database plus a session factory; `transaction()` is the unit every state change uses."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers (runs show, the API) never block the engine
    # Under WAL, NORMAL syncs at checkpoints instead of at every commit (1.4 ms each here, several per
    # task): a crashed process loses nothing and the file never corrupts; a power cut may lose the last
    # transitions, which the restarted engine reconciles as after any engine death (a Job made but not
    # recorded is adopted).
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def database_url(url_or_path: str | Path) -> str:
    """A SQLAlchemy URL; a bare path means a SQLite file. `postgresql://` uses psycopg 3."""
    url = str(url_or_path)
    if "://" not in url:
        # A missing directory is made private; an existing one is the operator's choice and stays as it is.
        Path(url).parent.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        private_file(Path(url))  # SQLite gives its -wal and -shm files the database file's mode
        return f"sqlite:///{url}"
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def open_store(url_or_path: str | Path, *, migrate: bool = True) -> Store:
    """Open the store at a SQLAlchemy URL or a SQLite file path, bringing its schema up to date."""
    url = database_url(url_or_path)
    if url.startswith("sqlite"):
        engine = create_engine(url)
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)
    if migrate and _revision(engine) != head_revision():
        with _sqlite_migration_lock(url), engine.begin() as connection:
            upgrade(connection)
    return Store(engine)


def head_revision() -> str:
    """The newest migration's revision, read from the file names (`NNNN_what.py` holds revision NNNN)."""
    return max(
        path.name.split("_", 1)[0] for path in (MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py")
    )


def _revision(engine: Engine) -> str | None:
    """The store's schema revision; None for a new store or one from before migrations."""
    try:
        with engine.connect() as connection:
            found = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except exc.DBAPIError:  # no such table
        return None
    return str(found) if found is not None else None


@contextmanager
def _sqlite_migration_lock(url: str) -> Iterator[None]:
    """Processes opening one SQLite file at once migrate it one after the other (PostgreSQL: see upgrade)."""
    if not url.startswith("sqlite:///") or url == "sqlite:///:memory:":
        yield
        return
    with private_file(Path(url.removeprefix("sqlite:///") + ".migrate.lock")).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Run pending migrations; a store from before migrations existed is first stamped as revision 0001."""
    from alembic import command

    config = alembic_config(connection)
    if connection.dialect.name == "postgresql":
        # Servers starting together on one database: one migrates, the others wait for its commit.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    tables = set(inspect(connection).get_table_names())
    if "runs" in tables and "alembic_version" not in tables:
        command.stamp(config, PRE_ALEMBIC_REVISION)
    command.upgrade(config, revision)
