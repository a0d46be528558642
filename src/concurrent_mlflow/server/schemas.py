"""The API's request and response bodies (pydantic); what `/api/v1/openapi.json` publishes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from concurrent_mlflow.store.access import Role

T = TypeVar("T")
NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
MAX_YAML = 512 * 1024


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# The store writes UTC everywhere, but SQLite hands timestamps back without their offset; published as
# naive they are not RFC 3339 `date-time`s (what openapi.json promises) and differ from what POST returned.
Timestamp = Annotated[datetime, AfterValidator(_utc)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    offset: int
    next_offset: int | None = Field(description="Pass as `offset` for the next page; null on the last page.")


class DagWrite(_Body):
    yaml: str = Field(
        max_length=MAX_YAML, description="The DAG document (YAML), as `concurrent dag` reads it."
    )
    description: str | None = Field(None, max_length=2000)


class DagVersion(BaseModel):
    name: str
    version: int
    description: str | None
    yaml: str
    created_by: str | None
    created_at: Timestamp


class DagVersionInfo(BaseModel):
    version: int
    description: str | None
    created_by: str | None
    created_at: Timestamp


class DagSummary(BaseModel):
    name: str
    latest_version: int
    versions: int
    description: str | None
    updated_at: Timestamp
    last_run_id: str | None
    last_run_state: str | None


class GrantWrite(_Body):
    role: Role


class RunStart(_Body):
    dag: str = Field(pattern=NAME, description="Name of a stored DAG.")
    version: int | None = Field(
        None, ge=1, le=1_000_000, description="The DAG version to run; the newest if omitted."
    )
    overrides: dict[str, str] = Field(
        default_factory=dict, description="Parameter overrides `node.param` -> value (like `-P`)."
    )
    base_dir: str | None = Field(
        None,
        max_length=4096,
        description="Directory on the server that relative paths in the DAG resolve against; "
        "admins only (any caller when auth is off). Defaults to the server's work dir.",
    )


class StageStatus(BaseModel):
    node: str
    state: str
    partitions: int | None
    counts: dict[str, int]
    error: str | None


class RunInfo(BaseModel):
    id: str
    dag: str
    dag_version: int | None
    state: str
    created_by: str | None
    created_at: Timestamp
    finished_at: Timestamp | None
    error: str | None
    cancel_requested: str | None
    overrides: dict[str, str]
    mlflow_run_id: str | None
    experiment_id: str | None
    mlflow_url: str | None
    window_start: Timestamp | None
    window_end: Timestamp | None


class RunDetail(RunInfo):
    stages: list[StageStatus]


class TaskStatus(BaseModel):
    node: str
    partition: int
    state: str
    attempts: int
    input_bytes: int
    error: str | None
    mlflow_run_id: str | None
    started_at: Timestamp | None
    finished_at: Timestamp | None


class Accepted(BaseModel):
    id: str
    state: str
    detail: str


class RetryResult(BaseModel):
    id: str
    reset_tasks: int


class WhoAmI(BaseModel):
    user: str
    admin: bool
    auth: bool


class Health(BaseModel):
    status: Literal["ok"]
    leader: str | None = Field(description="The server that drives the engine now.")
    this_server: str
