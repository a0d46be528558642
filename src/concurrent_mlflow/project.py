"""Find a project node's MLflow Project on disk, and read its entry points and typed parameters.

A project node names an MLproject by a local path or a git URI (`https://host/repo.git#subdir`) and a
`version` (branch, tag or commit). The planner resolves it once, pins the version to a commit sha and hands
that sha to every task, so all partitions of a stage run the same code even if the branch moves mid-run; each
worker then resolves (uri, sha) again. Resolution must therefore be exact, cheap when repeated, and safe when
many processes of one machine do it at the same moment:

- one bare mirror per repository URL at `cache_dir/git/<key>`, cloned once and fetched afterwards, under a
  file lock so parallel processes never write it at the same time;
- one tree per commit at `cache_dir/checkouts/<sha>`, written into a temporary directory and renamed into
  place, so nobody ever sees half a checkout; a commit that is already checked out resolves without any
  network access (a worker with a warm cache does not depend on the git server being up).

MLproject files are read as MLflow's own loader reads them (`mlproject`: without importing MLflow for plain
files, by MLflow itself for the rest), so we accept exactly what `mlflow run` accepts, and
`check_parameters` lets the DAG validator name a typo'd entry point or parameter before any task starts.
"""

from __future__ import annotations

import contextlib
import difflib
import fcntl
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from concurrent_mlflow import git_credentials, mlproject
from concurrent_mlflow.errors import ProjectError

GIT_TIMEOUT_S = 300.0
"""Longest a single git command (clone, fetch, checkout) may run before we give up on it."""

_FULL_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_SCP_LIKE = re.compile(r"[\w.-]+@[\w.-]+:")  # git@github.com:org/repo.git
_NETWORK_SCHEMES = ("https", "http", "ssh", "git")
_ENV_TYPES = {"docker_env": "docker", "conda_env": "conda_env", "python_env": "python_env"}
_SCRIPT_SUFFIXES = (".py", ".sh")
_MAX_LISTED = 20
_MAX_VALUE_PROBLEMS = 5  # bad values of one swept parameter shown; a sweep may have thousands


@dataclass(frozen=True)
class ParameterSpec:
    """One typed parameter of an entry point; `type` is MLflow's: string, float, path or uri."""

    name: str
    type: str
    default: str | None


@dataclass(frozen=True)
class EntryPointSpec:
    name: str
    parameters: dict[str, ParameterSpec]
    command: str


@dataclass(frozen=True)
class ResolvedProject:
    uri: str
    version: str | None
    commit: str | None
    """Full commit sha of a git project (or of a local clone given a version); None for a local directory."""
    work_dir: Path
    """The directory holding the MLproject file (the URI's `#subdir` applied)."""
    name: str | None
    entry_points: dict[str, EntryPointSpec]
    env_type: str
    """`python_env`, `conda_env`, `docker` or `none` (the MLproject names no environment)."""
    env_file: Path | None = None
    """The python_env or conda_env file, when the MLproject names one."""
    docker_image: str | None = None
    """A docker_env project's image."""
    docker_environment: dict[str, str] = field(default_factory=dict)
    """A docker_env project's `environment`, its containers' variables."""


def is_git_uri(uri: str) -> bool:
    """True if `uri` names a git repository rather than a local directory."""
    if _SCP_LIKE.match(uri):
        return True
    scheme = urllib.parse.urlsplit(uri).scheme.lower()
    if scheme == "file":
        repo, subdir = split_subdir(uri)
        return bool(subdir) or repo.rstrip("/").endswith(".git")
    return scheme in _NETWORK_SCHEMES


def split_subdir(uri: str) -> tuple[str, str]:
    """`https://h/r.git#sub/dir` -> (`https://h/r.git`, `sub/dir`); a URI without `#` -> (uri, "")."""
    repo, _, subdir = uri.partition("#")
    return repo, subdir.strip("/")


def local_project_path(uri: str, base_dir: Path) -> Path | None:
    """The local directory a project URI names, or the repository of a `file://` git URI (relative to
    `base_dir`, `~` expanded, links not yet resolved); None for a git URI reached over the network."""
    if is_git_uri(uri):
        repo, _ = split_subdir(uri)
        parts = urllib.parse.urlsplit(repo)
        return Path(urllib.parse.unquote(parts.path)) if parts.scheme.lower() == "file" else None
    raw = urllib.parse.unquote(urllib.parse.urlsplit(uri).path) if uri.startswith("file:") else uri
    return base_dir / Path(raw).expanduser()


def resolve_project(uri: str, version: str | None, *, base_dir: Path, cache_dir: Path) -> ResolvedProject:
    """Make the project at `uri` (git, or a path relative to `base_dir`) available locally and read it.

    A local directory with a `version` must be a git repository (a clone): that version is checked out
    into the cache as for any git project, never in the user's work tree (`mlflow run` checks it out there,
    detaching its HEAD). Its URI is then made absolute, so every worker finds the same repository."""
    if is_git_uri(uri):
        commit, work_dir = _resolve_git(uri, version, cache_dir)
    elif version is not None:
        repo, subdir = _local_repository(uri, version, base_dir)
        uri = str(repo) + (f"#{subdir}" if subdir else "")
        commit, work_dir = _resolve_git(f"{repo.as_uri()}#{subdir}", version, cache_dir)
    else:
        commit, work_dir = None, _resolve_local(uri, base_dir)
    name, entry_points, env_type, env_file, image, image_env = _read_mlproject(work_dir)
    return ResolvedProject(
        uri, version, commit, work_dir, name, entry_points, env_type, env_file, image, image_env
    )


def git_repository_of(project: ResolvedProject) -> str | None:
    """The repository a git-pinned project was checked out from (its mirror's key, without credentials),
    else None."""
    if is_git_uri(project.uri):
        return git_credentials.without(split_subdir(project.uri)[0])
    return Path(split_subdir(project.uri)[0]).as_uri() if project.commit else None


def check_parameters(
    project: ResolvedProject,
    entry_point: str,
    parameters: Mapping[str, object],
    *,
    extra_allowed: bool = False,
    base_dir: Path | None = None,
) -> list[str]:
    """Problems with running `entry_point` of `project` with `parameters`, one sentence each; [] if none.
    `extra_allowed`: undeclared parameters are passed on (as `mlflow run` does) rather than refused.
    `base_dir`: the tasks run on this machine, where a local `path` parameter must name something that
    exists (relative to this directory), as `mlflow run` checks before the run."""
    spec = project.entry_points.get(entry_point)
    if spec is None:
        # MLflow runs an existing .py/.sh file as an entry point, passing each parameter as `--name value`.
        return (
            [] if _is_script(project.work_dir, entry_point) else [_unknown_entry_point(project, entry_point)]
        )
    unknown = [name for name in parameters if name not in spec.parameters]
    problems = [] if extra_allowed else [_unknown_parameter(spec, name) for name in unknown]
    for param in spec.parameters.values():
        if param.name in parameters:
            found = _value_problems(spec, param, parameters[param.name])
            if base_dir is not None and param.type == "path" and not found:  # a usable value: does it exist?
                found = _missing_path(spec, param, str(parameters[param.name]), base_dir)
            problems += found
        elif param.default is None:
            problems.append(
                f"entry point {spec.name!r} needs parameter {param.name!r} ({param.type}, no default in the "
                "MLproject); set it under `parameters`"
            )
    return problems


def effective_parameters(
    project: ResolvedProject, entry_point: str, parameters: Mapping[str, str]
) -> dict[str, str]:
    """`parameters` with the entry point's defaults for those not given: what the run receives and, as
    under `mlflow run`, what is logged on it."""
    spec = project.entry_points.get(entry_point)
    declared = spec.parameters.values() if spec else ()
    defaults = {p.name: p.default for p in declared if p.default is not None}
    return {**defaults, **parameters}


def as_logged(parameters: Mapping[str, str]) -> dict[str, str]:
    """Parameter values as `mlflow run` logs them: shell-quoted, as they are put into the entry point's
    command (MLflow's `EntryPoint.compute_parameters`), so `hello world` is logged as `'hello world'` and
    an empty string as `''`; plain numbers, names and paths read as given."""
    return {key: shlex.quote(value) for key, value in parameters.items()}


def check_sweep_values(
    project: ResolvedProject, entry_point: str, name: str, values: Sequence[object]
) -> list[str]:
    """Problems with each value of swept parameter `name`: the first few, and how many more.

    An unknown entry point or parameter is `check_parameters`' to report; here it is no problem.
    """
    spec = project.entry_points.get(entry_point)
    param = spec.parameters.get(name) if spec else None
    if spec is None or param is None:
        return []
    problems = [p for value in dict.fromkeys(values) for p in _value_problems(spec, param, value)]
    if len(problems) <= _MAX_VALUE_PROBLEMS:
        return problems
    more = len(problems) - _MAX_VALUE_PROBLEMS
    return [*problems[:_MAX_VALUE_PROBLEMS], f"... and {more} more values of {name!r} with such problems"]


# --- local directories -------------------------------------------------------------------------------------


def _resolve_local(uri: str, base_dir: Path) -> Path:
    """A local directory as it is now (uncommitted changes included), `#subdir` applied."""
    path_part, subdir = split_subdir(uri)
    root = _local_directory(path_part, uri, base_dir)
    if not subdir:
        return root
    if ".." in PurePosixPath(subdir).parts:
        raise ProjectError(f"subdirectory {subdir!r} of project {uri!r} must stay inside {root}")
    work_dir = (root / subdir).resolve()
    if not work_dir.is_dir() or not work_dir.is_relative_to(root):
        raise ProjectError(
            f"project {uri!r} has no subdirectory {subdir!r} inside {root}; fix the '#{subdir}' part"
        )
    return work_dir


def _local_directory(path_part: str, uri: str, base_dir: Path) -> Path:
    try:
        named = local_project_path(path_part, base_dir)
        assert named is not None
        path = named.resolve()
        is_dir = path.is_dir()
    except (OSError, RuntimeError) as exc:  # a name too long, a symlink loop: no such directory either
        raise ProjectError(f"project {uri!r} is not a usable directory path: {exc}") from exc
    if not is_dir:
        raise ProjectError(
            f"project directory {path} does not exist (project {uri!r}, relative to {base_dir})"
        )
    return path


def _local_repository(uri: str, version: str, base_dir: Path) -> tuple[Path, str]:
    """The git repository a local project with a `version` names, and the `#subdir` within it."""
    path_part, subdir = split_subdir(uri)
    repo = _local_directory(path_part, uri, base_dir)
    bare = _run_git(["-C", str(repo), "rev-parse", "--is-bare-repository"])
    if bare.returncode != 0:
        raise ProjectError(
            f"project {uri!r} has version {version!r}, but {repo} is not in a git repository, so it has no "
            "versions: remove `version` to run the directory as it is, or name a git repository (a local "
            "clone, `path/to/clone#subdir`, or a URI such as https://host/repo.git#subdir)"
        )
    if bare.stdout.strip() == "true":
        return repo, subdir
    top = Path(
        _git(["-C", str(repo), "rev-parse", "--show-toplevel"], failure=f"cannot read {repo}").strip()
    ).resolve()
    inner = repo.relative_to(top).as_posix() if repo != top else ""  # a directory inside a clone
    return top, "/".join(part for part in (inner, subdir) if part)


# --- git repositories --------------------------------------------------------------------------------------


def _resolve_git(uri: str, version: str | None, cache_dir: Path) -> tuple[str, Path]:
    repo, subdir = split_subdir(uri)
    if subdir and ".." in PurePosixPath(subdir).parts:
        raise ProjectError(
            f"subdirectory {subdir!r} of project {_redact(uri)!r} must stay inside the repository"
        )
    if version is not None and (not version.strip() or version.startswith("-")):
        raise ProjectError(f"version {version!r} of project {_redact(uri)!r} is not a branch, tag or commit")
    checkout = cache_dir / "checkouts" / version.lower() if version and _is_full_sha(version) else None
    if checkout is None or not checkout.is_dir():
        checkout = _fetch_checkout(repo, version, cache_dir)
    return checkout.name, _project_dir(checkout, subdir, repo, version)


def _fetch_checkout(repo: str, version: str | None, cache_dir: Path) -> Path:
    """The checkout of `version`; a URL's credentials reach git through its environment only, so the
    mirror is keyed by, and its config holds, the URL without them (git_credentials.py)."""
    bare = git_credentials.without(repo)
    git_dir = _mirror_dir(bare, cache_dir)
    with _file_lock(git_dir.with_name(f"{git_dir.name}.lock")):
        sha = version.lower() if version and _is_full_sha(version) and _has_commit(git_dir, version) else None
        if sha is None:
            _sync_mirror(git_dir, bare, git_credentials.git_env([repo], os.environ), shown=_redact(repo))
            sha = _rev_parse(git_dir, repo, version)
        return _materialise(git_dir, sha, cache_dir / "checkouts")


def is_branch(project: ResolvedProject, cache_dir: Path) -> bool:
    """True if the project's `version` names a branch of its git repository (as its mirror here last saw
    it), not a tag or commit: MLflow tags a run with the branch only then."""
    repo = git_repository_of(project)
    version = project.version
    if not version or repo is None or _is_full_sha(version):
        return False
    git_dir = _mirror_dir(repo, cache_dir)
    found = _run_git(["--git-dir", str(git_dir), "show-ref", "--verify", "--quiet", f"refs/heads/{version}"])
    return found.returncode == 0


def _mirror_dir(repo: str, cache_dir: Path) -> Path:
    return cache_dir / "git" / hashlib.sha256(repo.encode()).hexdigest()[:16]


def _sync_mirror(git_dir: Path, repo: str, credentials: Mapping[str, str], *, shown: str) -> None:
    """Clone or fetch the mirror of `repo`; a failure names it as `shown` (its user, never its password)."""
    failure = f"cannot fetch git repository {shown}"
    hint = "check the URL, the network and your git credentials (git runs here without prompting)"
    if git_dir.is_dir():
        fetch = ["--git-dir", str(git_dir), "fetch", "--prune", "--quiet"]
        _git(fetch, failure=failure, hint=hint, env=credentials)
        return
    partial = git_dir.with_name(f"{git_dir.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)  # left by a clone that was killed; we hold the lock
    clone = ["clone", "--mirror", "--quiet", "--", repo, str(partial)]
    _git(clone, failure=failure, hint=hint, env=credentials)
    partial.rename(git_dir)


def _rev_parse(git_dir: Path, repo: str, version: str | None) -> str:
    rev = f"{version or 'HEAD'}^{{commit}}"
    done = _run_git(["--git-dir", str(git_dir), "rev-parse", "--verify", "--quiet", "--end-of-options", rev])
    if done.returncode == 0:
        return done.stdout.strip()
    if version is None:
        raise ProjectError(
            f"git repository {_redact(repo)} has no default branch (HEAD); set the node's `version` to a "
            f"branch, tag or commit ({_known_refs(git_dir)})"
        )
    if "ambiguous" in done.stderr:
        raise ProjectError(f"commit {version!r} is ambiguous in {_redact(repo)}; give more digits of the sha")
    raise ProjectError(
        f"branch, tag or commit {version!r} not found in {_redact(repo)}; {_known_refs(git_dir)}"
    )


def _known_refs(git_dir: Path) -> str:
    refs = _git(
        ["--git-dir", str(git_dir), "for-each-ref", "--format=%(refname)", "refs/heads", "refs/tags"],
        failure=f"cannot list the branches of {git_dir}",
    ).split()
    heads = [r.removeprefix("refs/heads/") for r in refs if r.startswith("refs/heads/")]
    tags = [r.removeprefix("refs/tags/") for r in refs if r.startswith("refs/tags/")]
    return f"known branches: {_listing(heads)}; tags: {_listing(tags)}"


def _materialise(git_dir: Path, sha: str, checkouts: Path) -> Path:
    """Check `sha` out at `checkouts/<sha>` unless it is there already; atomic, so safe across processes."""
    target = checkouts / sha
    if target.is_dir():
        return target
    checkouts.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{sha[:12]}-", dir=checkouts) as scratch:
        tree = Path(scratch) / "tree"
        tree.mkdir()
        _git(
            ["--git-dir", str(git_dir), "--work-tree", str(tree), "checkout", "--force", sha, "--", "."],
            failure=f"cannot check out commit {sha}",
            env={"GIT_INDEX_FILE": str(Path(scratch) / "index")},  # never touch the shared mirror's index
        )
        with contextlib.suppress(OSError):  # fails only if another process renamed the same commit first
            tree.rename(target)
    if not target.is_dir():
        raise ProjectError(f"cannot move the checkout of commit {sha} into {target}")
    return target


def _project_dir(checkout: Path, subdir: str, repo: str, version: str | None) -> Path:
    work_dir = checkout / subdir if subdir else checkout
    if not work_dir.is_dir() or not work_dir.resolve().is_relative_to(checkout.resolve()):  # symlink out
        top = sorted(p.name for p in checkout.iterdir() if p.is_dir() and not p.name.startswith("."))
        raise ProjectError(
            f"no directory {subdir!r} in {_redact(repo)} at {version or 'HEAD'} "
            f"(commit {checkout.name[:12]}); fix the '#{subdir}' part of the project URI "
            f"(top-level directories: {_listing(top)})"
        )
    return work_dir


def _has_commit(git_dir: Path, sha: str) -> bool:
    if not git_dir.is_dir():
        return False
    rev = f"{sha}^{{commit}}"
    return _run_git(["--git-dir", str(git_dir), "cat-file", "-e", rev]).returncode == 0


def _is_full_sha(version: str) -> bool:
    return _FULL_SHA.fullmatch(version.lower()) is not None


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield  # closing the file releases the lock


def _git(args: list[str], *, failure: str, hint: str = "", env: Mapping[str, str] | None = None) -> str:
    done = _run_git(args, env=env)
    if done.returncode != 0:
        last = done.stderr.strip().splitlines()[-1:] or [f"git exited with status {done.returncode}"]
        raise ProjectError(f"{failure}: {_redact(last[0])}" + (f"; {hint}" if hint else ""))
    return done.stdout


def _run_git(args: list[str], *, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # A new session has no controlling terminal, so neither git nor ssh can stop and wait for a password.
    full_env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", **(env or {})}
    try:
        return subprocess.run(
            ["git", *args],
            capture_output=True,
            text=True,
            env=full_env,
            stdin=subprocess.DEVNULL,
            timeout=GIT_TIMEOUT_S,
            start_new_session=True,
            check=False,
        )
    except FileNotFoundError as exc:
        raise ProjectError("git is not installed; git projects need the `git` command on PATH") from exc
    except subprocess.TimeoutExpired as exc:
        raise ProjectError(
            f"git {_redact(' '.join(args))} did not finish within {GIT_TIMEOUT_S:.0f}s"
        ) from exc


def _redact(text: str) -> str:
    """Hide a password or token written into a URL (`https://user:token@host/...`)."""
    return re.sub(r"(://[^/@\s:]*):[^/@\s]*@", r"\1:***@", text)


def _listing(names: list[str]) -> str:
    if not names:
        return "none"
    more = f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else ""
    return ", ".join(names[:_MAX_LISTED]) + more


# --- MLproject files ---------------------------------------------------------------------------------------


def _read_mlproject(
    work_dir: Path,
) -> tuple[str | None, dict[str, EntryPointSpec], str, Path | None, str | None, dict[str, str]]:
    try:
        found = any(p.name.lower() == "mlproject" and p.is_file() for p in work_dir.iterdir())
    except OSError as exc:
        raise ProjectError(f"cannot read the project directory {work_dir}: {exc}") from exc
    if not found:
        raise ProjectError(f"no MLproject file in {work_dir}; a project node needs an MLflow Project")
    spec = mlproject.load_plain(work_dir) or _load_with_mlflow(work_dir)
    entry_points = {str(name): _entry_point(ep, work_dir) for name, ep in spec.entry_points.items()}
    name = None if spec.name is None else str(spec.name)
    env_file = Path(spec.env_config_path) if spec.env_config_path else None
    image = str(spec.docker_image) if spec.docker_image else None
    return name, entry_points, _env_type(spec), env_file, image, _docker_environment(spec.docker_environment)


def _docker_environment(raw: Any) -> dict[str, str]:
    """`docker_env.environment` as the variables of the project's containers. MLflow's docker backend also
    copies a bare `NAME` from the environment of whoever runs `mlflow run`; a pod has no such caller (and
    must not get the control plane's variables), so that form is refused with the way to write it."""
    variables: dict[str, str] = {}
    for entry in raw or []:
        if isinstance(entry, list | tuple) and len(entry) == 2:
            variables[str(entry[0])] = str(entry[1])
        elif isinstance(entry, str):
            raise ProjectError(
                f"docker_env.environment: {entry!r} copies a variable from the machine running `mlflow run`, "
                f"which a task pod does not have; write it as [{entry!r}, value], or give the cluster's pods "
                "the variable (`concurrent cluster update NAME --pod`, key env)"
            )
        else:
            raise ProjectError(f"docker_env.environment: {entry!r} is neither [NAME, value] nor NAME")
    return variables


def _load_with_mlflow(work_dir: Path) -> mlproject.Project:
    from mlflow.exceptions import MlflowException

    try:
        return mlproject.from_mlflow(work_dir)
    except (MlflowException, yaml.YAMLError, OSError) as exc:
        raise ProjectError(f"MLflow cannot read the MLproject file in {work_dir}: {exc}") from exc
    except (AttributeError, TypeError, ValueError) as exc:  # YAML, but not shaped like an MLproject
        raise ProjectError(
            f"MLflow cannot read the MLproject file in {work_dir} ({exc}); it must be a YAML mapping such as "
            "`entry_points: {main: {parameters: {alpha: float}, command: ...}}`"
        ) from exc


def _entry_point(entry_point: mlproject.EntryPoint, work_dir: Path) -> EntryPointSpec:
    if not isinstance(entry_point.command, str) or not entry_point.command.strip():
        raise ProjectError(
            f"entry point {entry_point.name!r} of the MLproject in {work_dir} has no `command`; add one"
        )
    parameters = {
        str(name): ParameterSpec(str(name), str(p.type), None if p.default is None else str(p.default))
        for name, p in entry_point.parameters.items()
    }
    return EntryPointSpec(str(entry_point.name), parameters, entry_point.command)


def _env_type(spec: mlproject.Project) -> str:
    if spec.env_type == "docker_env":
        return "docker"
    # MLflow reports python_env even when the MLproject names no environment file; we call that "none".
    return _ENV_TYPES.get(spec.env_type or "", "none") if spec.env_config_path else "none"


# --- parameter checks --------------------------------------------------------------------------------------


def _is_script(work_dir: Path, entry_point: str) -> bool:
    if not entry_point.endswith(_SCRIPT_SUFFIXES):
        return False
    path = (work_dir / entry_point).resolve()
    return path.is_file() and path.is_relative_to(work_dir.resolve())


def _unknown_entry_point(project: ResolvedProject, entry_point: str) -> str:
    known = ", ".join(sorted(project.entry_points)) or "none"
    return (
        f"entry point {entry_point!r} is not in the MLproject of {_redact(project.uri)}; known entry points: "
        f"{known} (a .py or .sh file in the project directory may also be named as the entry point)"
    )


def _unknown_parameter(spec: EntryPointSpec, name: str) -> str:
    known = ", ".join(sorted(spec.parameters)) or "none"
    nearest = nearest_parameter(spec, name)
    return (
        f"entry point {spec.name!r} has no parameter {name!r}{nearest} (known: {known}); MLflow would pass "
        f"it on as an extra `--{name}` argument, but it is rejected here to catch typos: declare it in the "
        "MLproject, or set `extra_parameters: allow` on the node"
    )


def nearest_parameter(spec: EntryPointSpec, name: str) -> str:
    """`; did you mean 'alpha'?` when a declared parameter is spelled nearly like `name`, else ``."""
    close = difflib.get_close_matches(name, list(spec.parameters), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def local_path(value: str, base_dir: Path) -> Path | None:
    """Where a `path` parameter's value is on this machine (relative values against `base_dir`), or None
    for a URI MLflow downloads (`s3://`, `runs:/`, ...)."""
    parsed = urllib.parse.urlparse(value)
    if parsed.scheme == "file":
        return Path(urllib.parse.unquote(parsed.path))
    if len(parsed.scheme) > 1:  # one letter: a Windows drive, a path
        return None
    return base_dir / Path(value).expanduser()


def _missing_path(spec: EntryPointSpec, param: ParameterSpec, value: str, base_dir: Path) -> list[str]:
    path = local_path(value, base_dir)
    if path is None or path.exists():
        return []
    return [
        f"parameter {param.name!r} of entry point {spec.name!r} (MLproject type path) is {value!r}, but "
        f"{path} does not exist (relative paths start at {base_dir})"
    ]


def _value_problems(spec: EntryPointSpec, param: ParameterSpec, value: object) -> list[str]:
    where = f"parameter {param.name!r} of entry point {spec.name!r}"
    text = "" if value is None else str(value)
    if param.type == "float":
        return [] if _is_float(value) else [f"{where} must be a number (MLproject type float), got {value!r}"]
    if param.type in ("path", "uri") and not text.strip():
        return [f"{where} must not be empty (MLproject type {param.type})"]
    if param.type == "uri" and (problem := mlproject.uri_problem(param.name, text)):
        return [f"{where}: {problem}"]  # MLflow's own check, as `mlflow run` makes it before downloading
    return []


def _is_float(value: object) -> bool:
    if isinstance(value, bool) or value is None:
        return False
    try:
        float(str(value))
    except ValueError:
        return False
    return True
