"""The API's request and response bodies (pydantic); what `/api/v1/openapi.json` publishes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from concurrent_mlflow.dag import MAX_DOCUMENT_CHARS, nul_locations
from concurrent_mlflow.kubeconfig import MAX_KUBECONFIG, NAMESPACE
from concurrent_mlflow.store.access import Role
from concurrent_mlflow.store.clusters import IMAGE, PodDefaults
from concurrent_mlflow.store.clusters import NAME as CLUSTER_NAME

T = TypeVar("T")
NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
MAX_YAML = MAX_DOCUMENT_CHARS


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# The store writes UTC everywhere, but SQLite hands timestamps back without their offset; published as
# naive they are not RFC 3339 `date-time`s (what openapi.json promises) and differ from what POST returned.
Timestamp = Annotated[datetime, AfterValidator(_utc)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        if where := nul_locations(data):
            raise ValueError(f"text may not contain NUL characters (at {', '.join(where)})")
        return data


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


class ProblemLocation(BaseModel):
    location: str = Field(description="Where in the request or document, e.g. `nodes.train.partitions`.")
    message: str


class DagCheck(_Body):
    yaml: str = Field(max_length=MAX_YAML, description="The DAG document (YAML) to check; nothing is saved.")


class ValidationResult(BaseModel):
    valid: bool
    errors: list[ProblemLocation] = Field(
        description="Every problem: structure, graph, partitioners, projects, entry points, parameter types."
    )


class ParameterInfo(BaseModel):
    name: str
    type: str = Field(description="MLflow's parameter type: string, float, path or uri.")
    default: str | None


class EntryPointInfo(BaseModel):
    name: str
    parameters: list[ParameterInfo]


class ProjectInfo(BaseModel):
    uri: str
    version: str | None
    commit: str | None = Field(description="The commit a git URI resolved to; null for a local directory.")
    name: str | None
    environment: str = Field(description="python_env, conda_env, docker or none.")
    entry_points: list[EntryPointInfo]


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
    schedule_id: int | None = Field(description="The schedule that started this run; null if by hand.")
    window_start: Timestamp | None = Field(
        description="A scheduled run's micro-batch window: incremental sources list files modified in "
        "[window_start, window_end)."
    )
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
    mlflow_url: str | None = Field(None, description="The child run's MLflow page, when the server is one.")
    started_at: Timestamp | None
    finished_at: Timestamp | None


class Accepted(BaseModel):
    id: str
    state: str
    detail: str


class RetryResult(BaseModel):
    id: str
    reset_tasks: int


Overlap = Literal["skip", "queue"]
OVERLAP_HELP = (
    "What a tick does while a run this schedule started is still going: `skip` drops the tick; `queue` "
    "keeps one tick waiting (later ticks coalesce into it) and fires it as soon as that run ends."
)
MISSED_HELP = (
    "Ticks missed while no server was driving the engine coalesce: one run is started, whose window ends "
    "at the latest missed tick; it is never one run per missed tick."
)
CRON_HELP = (
    "5 fields (`minute hour day-of-month month day-of-week`), or 6 with seconds last "
    "(`* * * * * */5`: every 5 seconds; for tests and sub-minute micro-batches)."
)
Overrides = dict[str, str]


class ScheduleCreate(_Body):
    dag: str = Field(pattern=NAME, description="Name of a stored DAG; each tick runs its newest version.")
    cron: str = Field(min_length=1, max_length=100, description=CRON_HELP)
    timezone: str = Field(
        "UTC", min_length=1, max_length=64, description="IANA time zone the cron is read in."
    )
    overlap: Overlap = Field("skip", description=OVERLAP_HELP)
    overrides: Overrides = Field(
        default_factory=dict, description="Parameter overrides `node.param` -> value for every run."
    )
    enabled: bool = Field(True, description="False creates it paused.")


class ScheduleUpdate(_Body):
    cron: str | None = Field(None, min_length=1, max_length=100, description=CRON_HELP)
    timezone: str | None = Field(None, min_length=1, max_length=64)
    overlap: Overlap | None = Field(None, description=OVERLAP_HELP)
    overrides: Overrides | None = Field(None, description="Replaces the schedule's overrides.")
    enabled: bool | None = Field(None, description="False pauses the schedule; true resumes it.")


class ScheduleInfo(BaseModel):
    id: int
    dag: str
    cron: str = Field(description=CRON_HELP)
    timezone: str
    overlap: Overlap = Field(description=OVERLAP_HELP)
    missed_ticks: Literal["coalesce"] = Field("coalesce", description=MISSED_HELP)
    overrides: Overrides
    enabled: bool
    next_fire_at: Timestamp | None = Field(description="The next tick; null while paused.")
    last_fire_at: Timestamp | None = Field(description="The last tick that fired (or tried to).")
    queued_fire_at: Timestamp | None = Field(description="overlap=queue: the tick waiting for a run to end.")
    last_error: str | None = Field(description="Why the last tick could not start a run; null once one did.")
    last_run_id: str | None
    last_run_state: str | None
    created_by: str | None
    created_at: Timestamp


class WhoAmI(BaseModel):
    user: str
    admin: bool
    auth: bool


class Health(BaseModel):
    status: Literal["ok"]
    leader: str | None = Field(description="The server that drives the engine now.")
    this_server: str


class ProblemDocument(BaseModel):
    """RFC 7807: every error the API returns has this shape (`application/problem+json`)."""

    type: str = Field(description="A URI naming the kind of problem; stable, for programs to match on.")
    title: str
    status: int
    detail: str = Field(description="What went wrong and what to do about it, for a person.")
    instance: str = Field(description="The request path.")
    errors: list[ProblemLocation] | None = Field(None, description="Each problem of an invalid request.")


def _problem_response(description: str) -> dict[str, object]:
    schema = {"$ref": "#/components/schemas/ProblemDocument"}
    return {"description": description, "content": {"application/problem+json": {"schema": schema}}}


# Documented on every operation, so clients (and schemathesis) know the shape of each error.
PROBLEM_RESPONSES: dict[int | str, dict[str, object]] = {
    401: _problem_response("No or an invalid bearer token (only when auth is on)."),
    403: _problem_response("The caller's role on the DAG is too small, or the operation is for admins."),
    404: _problem_response("No such DAG, version, run, node or partition (or no role on the DAG)."),
    409: _problem_response("Conflicts with the current state (a name taken, a run already finished)."),
    413: _problem_response("The request body is over the server's limit."),
    422: _problem_response("The request or the DAG document is invalid; `errors` lists each problem."),
    502: _problem_response("MLflow's tracking server could not be reached."),
}


# -- clusters: what is shown never includes the kubeconfig or any credential -----------------------------
ClusterName = Annotated[str, Field(pattern=CLUSTER_NAME, description="Cluster name (a DNS label).")]


class EksSignIn(_Body):
    """The control plane mints EKS tokens (presigned STS GetCallerIdentity) from this identity."""

    kind: Literal["eks"]
    cluster: str = Field(min_length=1, max_length=100, description="The EKS cluster's name.")
    region: str = Field(pattern=r"^[a-z0-9-]{1,30}$", description="Its AWS region, e.g. `eu-west-1`.")
    role_arn: str | None = Field(
        None,
        pattern=r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/\S+$",
        max_length=2048,
        description="Assumed first.",
    )
    access_key_id: str | None = Field(None, max_length=128, description="Default: the server's own identity.")
    secret_access_key: str | None = Field(None, max_length=256, description="Stored encrypted, never shown.")
    session_token: str | None = Field(None, max_length=4096)
    sts_endpoint: str | None = Field(
        None, pattern=r"^https?://\S+$", max_length=2000, description="Default: the region's STS endpoint."
    )


class GkeSignIn(_Body):
    """The control plane gets GKE access tokens (OAuth2) for this service account, or its own identity."""

    kind: Literal["gke"]
    cluster: str | None = Field(None, max_length=300, description="PROJECT/LOCATION/CLUSTER, for display.")
    service_account_key: dict[str, Any] | None = Field(
        None, description="A service-account JSON key, stored encrypted; default: workload identity."
    )


CloudSignIn = Annotated[EksSignIn | GkeSignIn, Field(discriminator="kind")]


class ClusterRegister(_Body):
    name: ClusterName
    kubeconfig: str = Field(
        min_length=1,
        max_length=MAX_KUBECONFIG,
        description="Kubeconfig YAML; only `context` (with its cluster and user) is kept, encrypted. File "
        "references and exec/auth-provider plugins are refused: inline them (`kubectl config view "
        "--minify --flatten`).",
    )
    context: str | None = Field(None, max_length=253, description="Default: the `current-context`.")
    namespace: str | None = Field(
        None, pattern=NAMESPACE, description="Default: the context's namespace, else `default`."
    )
    image: str | None = Field(None, pattern=IMAGE, description="Container image for tasks on this cluster.")
    pod: PodDefaults | None = Field(None, description="What every task pod on this cluster gets.")
    cloud: CloudSignIn | None = Field(
        None, description="EKS/GKE: the control plane signs in itself; the kubeconfig's context has no user."
    )


class ClusterUpdate(_Body):
    kubeconfig: str | None = Field(
        None, min_length=1, max_length=MAX_KUBECONFIG, description="New credentials (same rules as POST)."
    )
    context: str | None = Field(None, max_length=253, description="Needs `kubeconfig` to change.")
    namespace: str | None = Field(None, pattern=NAMESPACE)
    image: str | None = Field(None, max_length=255, description="Empty string or null clears it.")
    pod: PodDefaults | None = Field(None, description="Replaces the pod defaults; `{}` clears them.")
    cloud: CloudSignIn | None = Field(None, description="A new cloud sign-in (same rules as POST).")


class ClusterInfo(BaseModel):
    name: str
    kind: str
    context: str
    namespace: str
    server: str = Field(description="The API server's URL.")
    auth: str = Field(description="How we authenticate: token, client-certificate, basic or none.")
    image: str | None
    pod: PodDefaults
    created_by: str | None
    created_at: Timestamp
    checked_at: Timestamp | None
    reachable: bool | None = Field(description="The last check's verdict; null if never checked.")
    check_message: str | None


class ClusterCheck(BaseModel):
    name: str
    reachable: bool
    message: str
    server_version: str | None
    checked_at: Timestamp
