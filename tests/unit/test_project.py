"""Local project resolution, MLproject reading, URI classification and parameter checks."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from concurrent_mlflow.dag import Dag, parse_dag
from concurrent_mlflow.errors import DagValidationError, ProjectError
from concurrent_mlflow.plan import check_projects
from concurrent_mlflow.project import (
    EntryPointSpec,
    ParameterSpec,
    ResolvedProject,
    check_parameters,
    is_branch,
    is_git_uri,
    resolve_project,
    split_subdir,
)

TOOLBOX = Path(__file__).resolve().parents[1] / "projects" / "toolbox"

MLPROJECT = """\
name: sample
entry_points:
  main:
    parameters:
      greeting: {type: string, default: "hi"}
      alpha: float
      ratio: {type: float, default: 3}
      data: {type: path, default: "."}
      model: {type: uri, default: "models:/m/1"}
      flag: {type: string, default: true}
    command: "python main.py --greeting {greeting} --alpha {alpha}"
  other:
    command: "python other.py"
"""


def make_project(root: Path, mlproject: str = MLPROJECT, **files: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "MLproject").write_text(mlproject)
    for name, text in files.items():
        (root / name).write_text(text)
    return root


def resolve_local(uri: str | Path, base_dir: Path, version: str | None = None) -> ResolvedProject:
    return resolve_project(str(uri), version, base_dir=base_dir, cache_dir=base_dir / "cache")


def test_local_project_is_read_with_mlflows_loader(tmp_path: Path) -> None:
    work_dir = make_project(tmp_path / "proj")
    project = resolve_local(work_dir, tmp_path)
    assert project.work_dir == work_dir
    assert (project.uri, project.version, project.commit) == (str(work_dir), None, None)
    assert project.name == "sample"
    assert sorted(project.entry_points) == ["main", "other"]
    main = project.entry_points["main"]
    assert main.command == "python main.py --greeting {greeting} --alpha {alpha}"
    assert main.parameters["greeting"] == ParameterSpec("greeting", "string", "hi")
    assert main.parameters["alpha"] == ParameterSpec("alpha", "float", None)
    assert main.parameters["ratio"].default == "3"  # YAML number, as MLflow will format it into the command
    assert main.parameters["flag"].default == "True"
    assert project.entry_points["other"] == EntryPointSpec("other", {}, "python other.py")
    assert project.env_type == "none"
    assert not (tmp_path / "cache").exists()  # local projects need no cache


def test_relative_path_is_relative_to_base_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_project(tmp_path / "dags" / "projects" / "p")
    monkeypatch.chdir(tmp_path)  # not where the DAG file is
    project = resolve_local("projects/p", tmp_path / "dags")
    assert project.work_dir == tmp_path / "dags" / "projects" / "p"
    assert resolve_local("./projects/../projects/p", tmp_path / "dags").work_dir == project.work_dir


def test_file_uri_without_git_suffix_is_a_local_directory(tmp_path: Path) -> None:
    work_dir = make_project(tmp_path / "my project")
    assert not is_git_uri(work_dir.as_uri())
    assert resolve_local(work_dir.as_uri(), tmp_path).work_dir == work_dir


def test_the_repository_toolbox_project_resolves(tmp_path: Path) -> None:
    project = resolve_local(TOOLBOX, tmp_path)
    assert project.name == "toolbox"
    assert project.entry_points["echo_params"].parameters["alpha"] == ParameterSpec("alpha", "float", None)
    assert project.entry_points["transform"].parameters["flaky_marker_dir"].default == ""


@pytest.mark.parametrize(
    ("files", "mlproject_extra", "env_type"),
    [
        ({}, "", "none"),
        ({"python_env.yaml": "python: '3.11'\n"}, "", "python_env"),
        ({"conda.yaml": "name: x\n"}, "", "conda_env"),
        ({"env.yaml": "python: '3.11'\n"}, "python_env: env.yaml\n", "python_env"),
        ({}, "docker_env:\n  image: python:3.11\n", "docker"),
    ],
)
def test_env_type(tmp_path: Path, files: dict[str, str], mlproject_extra: str, env_type: str) -> None:
    work_dir = make_project(tmp_path / "p", MLPROJECT + mlproject_extra, **files)
    assert resolve_local(work_dir, tmp_path).env_type == env_type


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match=r"project directory .*nope does not exist"):
        resolve_local("nope", tmp_path)


@pytest.mark.parametrize("name", ["a" * 300, "loop", "~no-such-user-here/project"])
def test_a_path_no_directory_can_have_is_a_project_error(tmp_path: Path, name: str) -> None:
    (tmp_path / "loop").symlink_to(tmp_path / "loop")  # resolves to itself, forever
    with pytest.raises(ProjectError, match=r"is not a usable directory path|does not exist"):
        resolve_local(name, tmp_path)


def test_missing_mlproject(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        ProjectError, match=r"no MLproject file in .*empty; a project node needs an MLflow Project"
    ):
        resolve_local("empty", tmp_path)


def test_mlproject_name_is_case_insensitive_like_mlflow(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "mlproject").write_text(MLPROJECT)
    assert resolve_local("p", tmp_path).name == "sample"


@pytest.mark.parametrize(
    ("mlproject", "message"),
    [
        ("entry_points: [unclosed\n", r"MLflow cannot read the MLproject file in .*: while parsing"),
        ("", r"MLflow cannot read the MLproject file .*it must be a YAML mapping"),
        ("python_env: a.yaml\nconda_env: b.yaml\n", r"cannot contain multiple environment fields"),
        ("python_env: missing.yaml\n", r"no such file was found"),
        ("docker_env: {volumes: [a]}\n", r"Docker environment specified but no image"),
        ("entry_points:\n  main:\n    parameters: {a: 3}\n", r"it must be a YAML mapping"),
        ("entry_points:\n  main:\n    parameters: {}\n", r"entry point 'main' .* has no `command`"),
    ],
)
def test_unparsable_mlproject(tmp_path: Path, mlproject: str, message: str) -> None:
    make_project(tmp_path / "p", mlproject)
    with pytest.raises(ProjectError, match=message):
        resolve_local("p", tmp_path)


def test_a_version_of_a_directory_outside_git_says_which_forms_have_versions(tmp_path: Path) -> None:
    make_project(tmp_path / "p")
    with pytest.raises(ProjectError) as caught:
        resolve_local("p", tmp_path, version="main")
    message = str(caught.value)
    assert "is not in a git repository, so it has no versions: remove `version`" in message
    assert "`path/to/clone#subdir`" in message and "https://host/repo.git#subdir" in message


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture
def clone(tmp_path: Path) -> dict[str, str]:
    """A user's clone: tag v1 says `hi`, main says `hello`, and the work tree has an uncommitted edit."""
    repo = tmp_path / "clone"
    make_project(repo / "projects" / "p", MLPROJECT)
    git(repo, "init", "-q", "-b", "main")
    commit = ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam"]
    git(repo, "add", ".")
    git(repo, *commit, "v1")
    git(repo, "tag", "v1")
    (repo / "projects" / "p" / "MLproject").write_text(MLPROJECT.replace('default: "hi"', 'default: "hello"'))
    git(repo, *commit, "main")
    (repo / "projects" / "p" / "notes.txt").write_text("work in progress\n")
    return {"v1": git(repo, "rev-parse", "v1"), "main": git(repo, "rev-parse", "main")}


@pytest.mark.parametrize("uri", ["clone#projects/p", "clone/projects/p", "clone/projects#p"])
def test_a_local_clone_at_a_version_is_checked_out_in_the_cache_not_in_the_users_tree(
    tmp_path: Path, clone: dict[str, str], uri: str
) -> None:
    project = resolve_local(uri, tmp_path, version="v1")

    assert project.commit == clone["v1"]
    assert project.work_dir == tmp_path / "cache" / "checkouts" / clone["v1"] / "projects" / "p"
    assert project.entry_points["main"].parameters["greeting"].default == "hi"  # v1's, not the tree's
    assert project.uri == f"{tmp_path / 'clone'}#projects/p"  # absolute: every worker finds it
    user_tree = tmp_path / "clone"
    assert git(user_tree, "rev-parse", "--abbrev-ref", "HEAD") == "main"  # not detached, unlike mlflow run
    assert git(user_tree, "status", "--porcelain") == "?? projects/p/notes.txt"  # the edit is untouched
    assert is_branch(project, tmp_path / "cache") is False  # v1 is a tag
    assert is_branch(resolve_local(uri, tmp_path, version="main"), tmp_path / "cache") is True
    again = resolve_project(
        project.uri, project.commit, base_dir=tmp_path / "elsewhere", cache_dir=tmp_path / "cache"
    )
    assert again.work_dir == project.work_dir  # as a worker resolves the planned (uri, sha)


def test_a_local_directory_with_a_subdir_and_no_version_is_used_as_it_is(
    tmp_path: Path, clone: dict[str, str]
) -> None:
    project = resolve_local("clone#projects/p", tmp_path)

    assert (project.commit, project.work_dir) == (None, tmp_path / "clone" / "projects" / "p")
    assert project.entry_points["main"].parameters["greeting"].default == "hello"  # the tree as it is
    with pytest.raises(ProjectError, match="must stay inside"):
        resolve_local("clone#../clone/projects/p", tmp_path)
    with pytest.raises(ProjectError, match="has no subdirectory 'projects/q'"):
        resolve_local("clone#projects/q", tmp_path)


@pytest.mark.parametrize(
    ("uri", "git"),
    [
        ("https://github.com/org/repo.git", True),
        ("https://github.com/org/repo", True),
        ("http://127.0.0.1:8080/repo.git#projects/hello", True),
        ("ssh://git@host/org/repo.git", True),
        ("git@github.com:org/repo.git", True),
        ("git@github.com:org/repo.git#sub", True),
        ("git://host/repo.git", True),
        ("file:///srv/repo.git", True),
        ("file:///srv/repo.git/", True),
        ("file:///srv/repo#projects/hello", True),
        ("file:///srv/projects/hello", False),
        ("projects/hello", False),
        ("./projects/hello", False),
        ("/abs/projects/hello", False),
        ("s3://bucket/project", False),
        ("C:\\projects\\hello", False),
    ],
)
def test_is_git_uri(uri: str, git: bool) -> None:
    assert is_git_uri(uri) is git


@pytest.mark.parametrize(
    ("uri", "parts"),
    [
        ("https://h/r.git#sub/dir", ("https://h/r.git", "sub/dir")),
        ("https://h/r.git#/sub/dir/", ("https://h/r.git", "sub/dir")),
        ("https://h/r.git", ("https://h/r.git", "")),
        ("https://h/r.git#", ("https://h/r.git", "")),
        ("git@h:o/r.git#a", ("git@h:o/r.git", "a")),
        ("file:///srv/r.git#a#b", ("file:///srv/r.git", "a#b")),
    ],
)
def test_split_subdir(uri: str, parts: tuple[str, str]) -> None:
    assert split_subdir(uri) == parts


def test_subdir_may_not_leave_the_repository(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="must stay inside the repository"):
        resolve_project("https://h/r.git#a/../../x", None, base_dir=tmp_path, cache_dir=tmp_path)


@pytest.mark.parametrize("version", ["--upload-pack=touch /tmp/x", "", " "])
def test_option_like_or_empty_version_is_refused_before_git_runs(tmp_path: Path, version: str) -> None:
    with pytest.raises(ProjectError, match="is not a branch, tag or commit"):
        resolve_project("https://h/r.git", version, base_dir=tmp_path, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


# --- check_parameters ------------------------------------------------------------------------------


@pytest.fixture
def sample(tmp_path: Path) -> ResolvedProject:
    work_dir = make_project(tmp_path / "p", **{"job.py": "print(1)\n", "run.sh": "echo 1\n", "notes.txt": ""})
    return resolve_local(work_dir, tmp_path)


def test_valid_parameters_have_no_problems(sample: ResolvedProject) -> None:
    assert check_parameters(sample, "main", {"alpha": "0.5"}) == []
    assert check_parameters(sample, "main", {"alpha": 2, "greeting": "", "ratio": 1e-3, "data": "x"}) == []
    assert check_parameters(sample, "main", {"alpha": "-1e3", "model": "s3://b/k"}) == []
    assert check_parameters(sample, "other", {}) == []


def test_unknown_entry_point_lists_the_known_ones(sample: ResolvedProject) -> None:
    [problem] = check_parameters(sample, "mian", {})
    assert "entry point 'mian' is not in the MLproject" in problem
    assert "known entry points: main, other" in problem
    assert ".py or .sh file" in problem


@pytest.mark.parametrize("script", ["job.py", "run.sh"])
def test_a_script_in_the_project_is_an_entry_point(sample: ResolvedProject, script: str) -> None:
    assert check_parameters(sample, script, {"anything": "goes"}) == []


@pytest.mark.parametrize("name", ["missing.py", "notes.txt", "../p/job.py/..", "../outside.py"])
def test_other_files_are_not_entry_points(sample: ResolvedProject, name: str) -> None:
    (sample.work_dir.parent / "outside.py").write_text("")
    assert len(check_parameters(sample, name, {})) == 1


def test_unknown_parameter_is_rejected_to_catch_typos(sample: ResolvedProject) -> None:
    [problem] = check_parameters(sample, "main", {"alpha": 1, "greting": "yo"})
    assert "entry point 'main' has no parameter 'greting'" in problem
    assert "known: alpha, data, flag, greeting, model, ratio" in problem
    assert "extra `--greting` argument" in problem and "rejected here to catch typos" in problem
    assert "did you mean 'greeting'?" in problem and "extra_parameters: allow" in problem
    assert check_parameters(sample, "main", {"alpha": 1, "greting": "yo"}, extra_allowed=True) == []


def test_a_local_path_parameter_must_exist_where_the_tasks_run(
    sample: ResolvedProject, tmp_path: Path
) -> None:
    (tmp_path / "rows.csv").write_text("a\n")
    here = {"base_dir": tmp_path}

    assert check_parameters(sample, "main", {"alpha": 1, "data": "rows.csv"}, **here) == []
    assert check_parameters(sample, "main", {"alpha": 1, "data": f"file://{tmp_path}/rows.csv"}, **here) == []
    assert (
        check_parameters(sample, "main", {"alpha": 1, "data": "s3://bucket/rows.csv"}, **here) == []
    )  # fetched
    [problem] = check_parameters(sample, "main", {"alpha": 1, "data": "rows.tsv"}, **here)
    assert problem == (
        f"parameter 'data' of entry point 'main' (MLproject type path) is 'rows.tsv', but {tmp_path}/rows.tsv "
        f"does not exist (relative paths start at {tmp_path})"
    )
    assert check_parameters(sample, "main", {"alpha": 1, "data": "rows.tsv"}) == []  # tasks run elsewhere
    both = check_parameters(sample, "main", {"alpha": "fast", "data": "rows.tsv"}, **here)
    assert len(both) == 2 and "rows.tsv" in both[1]  # every problem at once, not the first only


def test_missing_required_parameter(sample: ResolvedProject) -> None:
    [problem] = check_parameters(sample, "main", {"greeting": "yo"})
    assert problem.startswith("entry point 'main' needs parameter 'alpha' (float, no default")


@pytest.mark.parametrize("value", ["abc", "", "1,5", True, None])
def test_value_that_is_not_a_float(sample: ResolvedProject, value: object) -> None:
    [problem] = check_parameters(sample, "main", {"alpha": value})
    assert (
        problem
        == f"parameter 'alpha' of entry point 'main' must be a number (MLproject type float), got {value!r}"
    )


def test_path_and_uri_must_not_be_empty_and_uri_needs_a_scheme(sample: ResolvedProject) -> None:
    problems = check_parameters(sample, "main", {"alpha": 1, "data": " ", "model": ""})
    assert problems == [
        "parameter 'data' of entry point 'main' must not be empty (MLproject type path)",
        "parameter 'model' of entry point 'main' must not be empty (MLproject type uri)",
    ]
    [problem] = check_parameters(sample, "main", {"alpha": 1, "model": "just-a-name"})
    assert (
        problem
        == "parameter 'model' of entry point 'main': Expected URI for parameter model but got just-a-name"
    )


def test_every_problem_is_reported_at_once(sample: ResolvedProject) -> None:
    problems = check_parameters(sample, "main", {"ratio": "x", "bogus": 1})
    assert len(problems) == 3  # unknown 'bogus', bad 'ratio', missing 'alpha'


# --- swept values (plan.check_projects) --------------------------------------------------------------------


def sweep_dag(project: Path, sweep: str) -> Dag:
    return parse_dag(
        f"name: grid\nnodes:\n  - {{id: train, kind: project, project: {project}, sweep: {sweep}}}\n"
    )


def test_every_swept_value_is_checked_against_the_mlproject_type(
    sample: ResolvedProject, tmp_path: Path
) -> None:
    dag = sweep_dag(sample.work_dir, "{alpha: [0.1, 0.5, fast, 2]}")
    with pytest.raises(DagValidationError) as caught:
        check_projects(dag, base_dir=tmp_path, cache_dir=tmp_path / "cache")
    assert [str(p) for p in caught.value.problems] == [
        "nodes.train.sweep.alpha: parameter 'alpha' of entry point 'main' must be a number "
        "(MLproject type float), got 'fast'"
    ]
    check_projects(
        sweep_dag(sample.work_dir, "{alpha: [0.1, 1e3, -2]}"), base_dir=tmp_path, cache_dir=tmp_path
    )


def test_many_bad_swept_values_are_summed_up(sample: ResolvedProject, tmp_path: Path) -> None:
    bad = ", ".join(f"x{i}" for i in range(1, 100))
    dag = sweep_dag(sample.work_dir, f"{{alpha: [1, {bad}], model: ['models:/m/1', '', 'no-scheme']}}")
    with pytest.raises(DagValidationError) as caught:
        check_projects(dag, base_dir=tmp_path, cache_dir=tmp_path / "cache")
    found = [str(p) for p in caught.value.problems]
    assert len(found) == 8
    assert found[5] == "nodes.train.sweep.alpha: ... and 94 more values of 'alpha' with such problems"
    assert found[6].startswith("nodes.train.sweep.model: parameter 'model' of entry point 'main'")
    assert "no-scheme" in found[7]


# --- environments (plan.check_projects): what cannot be built is refused before the run ---------------------

CONDA_PROJECT = "name: c\nconda_env: conda.yaml\nentry_points:\n  main:\n    command: python -V\n"
DOCKER_PROJECT = (
    "name: d\ndocker_env:\n  image: python:3.11\nentry_points:\n  main:\n    command: python -V\n"
)


def env_dag(project: Path, fields: str = "") -> Dag:
    return parse_dag(f"name: env\nnodes:\n  - {{id: train, kind: project, project: {project}{fields}}}\n")


def env_problems(dag: Dag, tmp_path: Path) -> list[str]:
    try:
        check_projects(dag, base_dir=tmp_path, cache_dir=tmp_path / "cache")
    except DagValidationError as exc:
        return [str(p) for p in exc.problems]
    return []


@pytest.fixture
def bare_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A PATH with git and Python but no conda, docker or pyenv."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("git", "python3"):
        found = shutil.which(tool)
        assert found
        (bin_dir / tool).symlink_to(found)
    monkeypatch.setenv("PATH", str(bin_dir))
    for name in ("MLFLOW_CONDA_HOME", "CONDA_EXE", "PYENV_ROOT"):
        monkeypatch.delenv(name, raising=False)


def test_conda_without_conda_is_refused_with_mlflows_message(tmp_path: Path, bare_path: None) -> None:
    project = make_project(tmp_path / "p", CONDA_PROJECT, **{"conda.yaml": "dependencies: [python=3.11]\n"})

    found = env_problems(env_dag(project, ", env_manager: conda"), tmp_path)

    assert len(found) == 1
    assert found[0].startswith("nodes.train.env_manager: env_manager conda: Could not find Conda executable")
    assert "MLFLOW_CONDA_HOME" in found[0] and "--env-manager uv" in found[0]
    assert env_problems(env_dag(project, ", env_manager: uv"), tmp_path) == []  # uv converts conda.yaml
    assert env_problems(env_dag(project, ", env_manager: conda, cluster: gke"), tmp_path) == []  # in pods


def test_converting_conda_yaml_for_uv_names_the_conda_packages_it_would_drop(tmp_path: Path) -> None:
    conda_yaml = "dependencies:\n  - python=3.11\n  - pip\n  - numpy=1.26\n  - conda-forge::cudatoolkit\n  - pip: [pyyaml]\n"
    project = make_project(tmp_path / "p", CONDA_PROJECT, **{"conda.yaml": conda_yaml})

    (found,) = env_problems(env_dag(project, ", env_manager: uv"), tmp_path)

    assert found.startswith("nodes.train.env_manager: env_manager uv builds a virtualenv from conda.yaml's")
    assert "conda packages 'numpy=1.26', 'conda-forge::cudatoolkit' would not be installed" in found
    assert "list them under `pip:`" in found and "or use env_manager conda" in found
    (project / "conda.yaml").write_text("dependencies:\n  - python=3.11\n  - pip\n  - pip: [numpy==1.26]\n")
    assert env_problems(env_dag(project, ", env_manager: virtualenv, cluster: gke"), tmp_path) == []


def test_a_python_env_project_cannot_use_conda(tmp_path: Path) -> None:
    project = make_project(
        tmp_path / "p",
        "name: p\npython_env: python_env.yaml\nentry_points:\n  main:\n    command: x\n",
        **{"python_env.yaml": "python: '3.11'\n"},
    )

    found = env_problems(env_dag(project, ", env_manager: conda"), tmp_path)

    assert found == [
        "nodes.train.env_manager: a python_env project cannot be executed using conda (MLflow's rule): "
        "use uv, virtualenv or local"
    ]


def test_docker_env_without_docker_is_refused_up_front(tmp_path: Path, bare_path: None) -> None:
    project = make_project(tmp_path / "p", DOCKER_PROJECT)

    (found,) = env_problems(env_dag(project), tmp_path)

    assert found.startswith("nodes.train.env_manager: project ")
    assert "Could not find Docker executable" in found and "python_env or conda_env" in found


def test_docker_env_on_kubernetes_runs_in_the_projects_image_without_docker_here(
    tmp_path: Path, bare_path: None
) -> None:
    project = make_project(tmp_path / "p", DOCKER_PROJECT)

    assert env_problems(env_dag(project, ", cluster: gke"), tmp_path) == []
    assert resolve_local(project, tmp_path).docker_image == "python:3.11"


def test_docker_env_environment_becomes_the_pods_variables_and_a_host_copy_is_refused(tmp_path: Path) -> None:
    from concurrent_mlflow.project import _docker_environment

    assert _docker_environment([["A", "1"], ("B", 2)]) == {"A": "1", "B": "2"}
    assert _docker_environment(None) == {}
    with pytest.raises(
        ProjectError, match=r"copies a variable from the machine running `mlflow run`.*\['HOME', value\]"
    ):
        _docker_environment(["HOME"])
    with pytest.raises(ProjectError, match="neither"):
        _docker_environment([["A", "1", "2"]])
