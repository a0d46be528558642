"""MLflow's standard tags on our runs, set as `mlflow run -b local` sets them on its own run.

A project's tags (where its code came from, which entry point and environment ran it) are worked out once
per stage at planning, kept in its task spec and put on every child run at its creation, and on the parent
run of a DAG run that has one project node (what `mlflow run -b concurrent` makes): the MLflow UI's source,
version and user columns then read the same as for `-b local`. Tag names and the git helpers are MLflow's.
"""

from __future__ import annotations

from pathlib import Path

from mlflow.entities import SourceType
from mlflow.utils import mlflow_tags

from concurrent_mlflow.project import ResolvedProject, is_git_uri, split_subdir
from concurrent_mlflow.tracking import without_url_credentials as without_credentials

BACKEND = "concurrent"
LOCAL_USER = "local"  # who calls a control plane that has auth off: the machine's own user, not a person


def run_tags(created_by: str | None) -> dict[str, str]:
    """The tags of every run we create: who asked for it, and that this backend ran it."""
    return {mlflow_tags.MLFLOW_USER: user(created_by), mlflow_tags.MLFLOW_PROJECT_BACKEND: BACKEND}


def user(created_by: str | None) -> str:
    """The person a run is for: the authenticated caller of the control plane, else (a CLI, `mlflow run`,
    a control plane with auth off) the user MLflow itself would name, from its credentials or the OS."""
    if created_by and created_by != LOCAL_USER:
        return created_by
    from mlflow.tracking.context.default_context import _get_user
    from mlflow.utils.credentials import read_mlflow_creds

    return str(read_mlflow_creds().username or _get_user())  # type: ignore[no-untyped-call]


def project_tags(
    project: ResolvedProject, entry_point: str, env_manager: str, *, branch: bool
) -> dict[str, str]:
    """`mlflow.source.*`, `mlflow.project.*`: where the code came from and how it ran. `branch`: the
    project's version names a branch (MLflow then also tags `mlflow.source.git.branch`)."""
    tags = {
        mlflow_tags.MLFLOW_SOURCE_TYPE: SourceType.to_string(SourceType.PROJECT),
        mlflow_tags.MLFLOW_PROJECT_ENTRY_POINT: entry_point,
    }
    if env_manager != "local" or project.env_type == "docker":  # MLflow tags only an environment it builds
        tags[mlflow_tags.MLFLOW_PROJECT_ENV] = "docker" if project.env_type == "docker" else env_manager
    if is_git_uri(project.uri):
        repo, _ = split_subdir(project.uri)
        tags[mlflow_tags.MLFLOW_SOURCE_NAME] = without_credentials(project.uri)
        tags[mlflow_tags.MLFLOW_GIT_REPO_URL] = without_credentials(repo)
        if project.commit:
            tags[mlflow_tags.MLFLOW_GIT_COMMIT] = project.commit
    else:  # a local directory, or a local clone checked out at `version` into the cache
        repo, subdir = split_subdir(project.uri)
        tags.update(_local_source_tags(Path(repo) / subdir if project.commit else project.work_dir))
        if project.commit:
            tags[mlflow_tags.MLFLOW_GIT_COMMIT] = project.commit
    if branch and project.version:
        tags[mlflow_tags.MLFLOW_GIT_BRANCH] = project.version
    return tags


def _local_source_tags(directory: Path) -> dict[str, str]:
    """A local directory: as MLflow names it (`repo URL#subdir` inside a git work tree that has a remote,
    else the path), with the commit its work tree is at, if any (uncommitted changes are not recorded)."""
    from mlflow.tracking._tracking_service.utils import _get_git_url_if_present
    from mlflow.utils.git_utils import get_git_commit, get_git_repo_url

    source = _get_git_url_if_present(str(directory))  # type: ignore[no-untyped-call]
    tags = {mlflow_tags.MLFLOW_SOURCE_NAME: str(source)}
    if commit := get_git_commit(str(directory)):
        tags[mlflow_tags.MLFLOW_GIT_COMMIT] = commit
    if repo_url := get_git_repo_url(str(directory)):
        tags[mlflow_tags.MLFLOW_GIT_REPO_URL] = repo_url
    return tags
