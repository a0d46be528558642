"""Our reading of plain MLproject files against MLflow's own loader: the same project, or we defer to MLflow."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from mlflow.exceptions import MlflowException
from mlflow.projects._project_spec import Parameter

from concurrent_mlflow import mlproject

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted(
    p.parent for p in [*REPO.glob("*/projects/*/MLproject"), *REPO.glob("src/*/demo/projects/*/MLproject")]
)

DOCUMENTS = [
    "name: a\nentry_points:\n  main:\n    parameters: {x: float, y: {type: path, default: .}, z: {}}\n    command: run {x}\n",
    "entry_points: {main: {command: go}, 3: {parameters: {1: {default: true}}}}\n",
    "name: 7\nentry_points: {}\n",
    "{}\n",
    "name: only\n",
    "python_env: env.yaml\n",
    "python_env: env.yaml/\n",
    "python_env: missing.yaml\n",
    "python_env: ''\n",
    "python_env: [env.yaml]\n",
    "conda_env: conda.yaml\n",
    "python_env: env.yaml\nconda_env: conda.yaml\n",
    "docker_env: {image: python}\n",
    "databricks_spark_job: {python_file: a.py}\n",
    "databricks_spark_job:\n",
    "entry_points: [main]\n",
    "entry_points: {main: go}\n",
    "entry_points: {main: {parameters: [a]}}\n",
    "entry_points: {main: {parameters: {a: 3}}}\n",
    "entry_points: {main: {parameters: null}}\n",
    "- a list\n",
    "",
    "entry_points: [unclosed\n",
]


def agree(directory: Path) -> mlproject.Project | None:
    """Read `directory` both ways; the plain reading, if any, must be MLflow's."""
    plain = mlproject.load_plain(directory)
    try:
        mlflows = mlproject.from_mlflow(directory)
    except (MlflowException, yaml.YAMLError, OSError, AttributeError, TypeError, ValueError):
        assert plain is None  # MLflow refuses it: only MLflow may say why
        return None
    assert plain is None or plain == mlflows
    return plain


@pytest.mark.parametrize("project", SHIPPED, ids=lambda p: p.name)
def test_the_shipped_projects_are_read_without_mlflow_as_mlflow_reads_them(project: Path) -> None:
    if "docker_env" in (project / "MLproject").read_text():
        assert agree(project) is None  # MLflow's alone to read (and our conformance test's to run)
    else:
        assert agree(project) is not None


@pytest.mark.parametrize("text", DOCUMENTS)
@pytest.mark.parametrize("env_files", [(), ("env.yaml", "conda.yaml"), ("python_env.yaml",), ("conda.yaml",)])
def test_each_document_is_read_as_mlflow_reads_it_or_left_to_mlflow(
    tmp_path: Path, text: str, env_files: tuple[str, ...]
) -> None:
    (tmp_path / "MLproject").write_text(text)
    for name in env_files:
        (tmp_path / name).write_text("python: '3.11'\n")
    agree(tmp_path)


def test_two_mlproject_files_are_left_to_mlflow(tmp_path: Path) -> None:
    (tmp_path / "MLproject").write_text("name: a\n")
    (tmp_path / "mlproject").write_text("name: b\n")
    assert mlproject.load_plain(tmp_path) is None


scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8))
keys = st.sampled_from(
    ["name", "entry_points", "parameters", "command", "type", "default", "python_env", "main"]
)
documents: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda inner: (
        st.dictionaries(keys | st.text(max_size=4), inner, max_size=4) | st.lists(inner, max_size=2)
    ),
)


@settings(max_examples=150, deadline=None)
@given(documents)
def test_any_yaml_document_is_read_as_mlflow_reads_it_or_left_to_mlflow(document: Any) -> None:
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "MLproject").write_text(yaml.safe_dump(document))
        agree(Path(directory))


@given(
    st.text(max_size=20)
    | st.sampled_from(["s3://b/k", "models:/m/1", "runs:/r/p", "C:/x", "just-a-name", "/abs"])
)
def test_a_uri_parameter_is_checked_as_mlflow_checks_it(value: str) -> None:
    try:
        Parameter("p", {"type": "uri"}).compute_value(value, None, 0)  # type: ignore[no-untyped-call]
        expected = None
    except MlflowException as exc:
        expected = exc.message
    assert mlproject.uri_problem("p", value) == expected
