"""One exception family for everything Concurrent for MLflow reports to a person.

ConcurrentError                 base: a message that says what was wrong, where, and what to do
├── DagValidationError          a DAG document is malformed; carries every problem found
│   └── ScheduleValidationError a schedule's cron expression or time zone is not valid
├── ProjectError                an MLproject cannot be fetched, read, or lacks an entry point
├── SourceError                 an input location cannot be listed or fetched
│   └── UnsafePathError         a file name would escape the task's input directory
├── PartitionError              a partitioner was misconfigured or returned a bad split
├── ExecutorError               an executor could not submit, observe or cancel a task
├── TrackingError               the MLflow tracking server refused or could not be reached
├── ClusterConfigError          a cluster's kubeconfig or settings are unusable (names the field)
├── SecretKeyError              stored credentials cannot be decrypted with the secret key in use
├── NotFoundError               something named does not exist
│   ├── RunNotFoundError        a DAG run id is unknown to the store
│   ├── DagNotFoundError        no stored DAG (or version) by that name
│   ├── ClusterNotFoundError    no registered cluster by that name
│   └── ScheduleNotFoundError   no schedule with that id
├── ConflictError               the request clashes with what is stored (a name taken, a run still going)
│   └── DriverLostError         this process no longer drives its run: another command settled it
├── AuthenticationError         no valid bearer token
├── PermissionDeniedError       the token's user lacks the role the action needs
└── PolicyError                 the server's execution policy refuses a path or a local task (names each)
"""

from __future__ import annotations

from dataclasses import dataclass


class ConcurrentError(Exception):
    """Base of all errors this package raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a DAG document, located by a dotted path such as `nodes.train.parameters`."""

    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


class DagValidationError(ConcurrentError):
    def __init__(self, problems: list[Problem], source: str = "DAG") -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source} is not valid ({len(problems)} problem(s)):\n{lines}")


class ScheduleValidationError(DagValidationError):
    """A schedule's cron or time zone is malformed: reported like a DAG's problems, per field."""

    def __init__(self, problems: list[Problem], source: str = "The schedule") -> None:
        super().__init__(problems, source)


class ProjectError(ConcurrentError):
    pass


class SourceError(ConcurrentError):
    pass


class UnsafePathError(SourceError):
    pass


class PartitionError(ConcurrentError):
    pass


class ExecutorError(ConcurrentError):
    pass


class TrackingError(ConcurrentError):
    pass


class ClusterConfigError(ConcurrentError):
    pass


class SecretKeyError(ConcurrentError):
    pass


class NotFoundError(ConcurrentError):
    pass


class RunNotFoundError(NotFoundError):
    pass


class DagNotFoundError(NotFoundError):
    pass


class ClusterNotFoundError(NotFoundError):
    pass


class ScheduleNotFoundError(NotFoundError):
    pass


class ConflictError(ConcurrentError):
    pass


class DriverLostError(ConflictError):
    """This process's lease on its run lapsed and another command settled (or now drives) the run: stop
    driving it, and touch none of its tasks."""


class AuthenticationError(ConcurrentError):
    pass


class PermissionDeniedError(ConcurrentError):
    pass


class PolicyError(ConcurrentError):
    """What the server's execution policy refuses: one Problem per field (`nodes.raw.uri`, `base_dir`)."""

    def __init__(self, problems: list[Problem], source: str = "The request") -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source} is refused by this server's execution policy:\n{lines}")


class PlanStopped(ConcurrentError):
    """A stage's planning was stopped because its run is being cancelled or its engine is closing."""
