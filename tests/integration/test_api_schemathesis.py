"""Schemathesis against a live `concurrent server` (auth off): every operation in the served
/api/v1/openapi.json gets generated requests, valid (positive) and invalid (negative), and must answer each
without a 5xx and, where the document describes the response, with a body that matches it.

Two passes: one with every path parameter generated (almost always names and ids that do not exist, so the
validation and not-found paths), and one with the DAG name, run id, node and partition pinned to a stored DAG
and a finished run, so the handlers that find something are fuzzed through their query parameters and bodies.

Bounded for CI: 25 examples per operation and mode (CONCURRENT_FUZZ_EXAMPLES), no shrinking, no Hypothesis
database. Each run draws a new seed, so runs explore different requests; a failure lists the request (as
curl), the server's tracebacks and the seed, and CONCURRENT_FUZZ_SEED=<seed> repeats exactly that run.
"""

from __future__ import annotations

import os
import random
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance

from tests.fixtures.control_plane import ControlPlane
from tests.fixtures.mlflow_server import MlflowServer
from tests.integration.conftest import TOOLBOX, make_files

pytestmark = pytest.mark.integration

MAX_EXAMPLES = int(os.environ.get("CONCURRENT_FUZZ_EXAMPLES", "25"))
SEED = int(os.environ.get("CONCURRENT_FUZZ_SEED") or random.SystemRandom().randrange(1 << 32))
CHECKS = [not_a_server_error, response_schema_conformance]
SEEDED_DAG = "fuzz-target"
# Pinned, these would only repeat one request that changes the seeded resources under the other operations
# (delete the DAG; cancel or re-open the run), with nothing else left to vary. The unpinned pass still
# fuzzes them, and test_api_dags / test_api_runs cover their successful paths.
NOT_PINNED = {
    "DELETE /api/v1/dags/{name}",
    "POST /api/v1/runs/{run_id}/cancel",
    "POST /api/v1/runs/{run_id}/retry",
}
# POST /runs is fuzzed too, although a valid request starts a real run: its `dag` must name a stored DAG, and
# the only one stored is SEEDED_DAG, which generated names do not hit, so every generated request is refused
# (404/422) and no run starts; test_fuzzing_started_no_run checks that afterwards.


@dataclass
class Seeded:
    plane: ControlPlane
    run_id: str


@pytest.fixture(scope="module")
def seeded(mlflow_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    """A server (auth off) holding one DAG and one finished, successful run of it."""
    root = tmp_path_factory.mktemp("api-fuzz")
    plane = ControlPlane.under(root, mlflow_server.url)
    try:
        plane.start()
        make_files(root / "data", {"only.txt": "fuzz me\n"})
        dag = (
            f"name: {SEEDED_DAG}\nnodes:\n  - {{id: raw, kind: source, uri: data}}\n"
            f"  - {{id: work, kind: project, project: {TOOLBOX}, entry_point: transform, partitions: 1}}\n"
            "edges:\n  - {from: raw, to: work, input: text}\n"
        )
        with plane.client() as api:
            api.post("/dags", json={"yaml": dag}).raise_for_status()
            started = api.post("/runs", json={"dag": SEEDED_DAG, "base_dir": str(root)})
            assert started.status_code == 201, started.text
        run_id = started.json()["id"]
        done = plane.wait_for_run(run_id)
        assert done["state"] == "succeeded", done
        yield Seeded(plane, run_id)
    finally:
        plane.stop()


def load_schema(plane: ControlPlane) -> Any:
    config = schemathesis.Config.from_dict({"request-timeout": 60})
    return schemathesis.openapi.from_url(f"{plane.url}/api/v1/openapi.json", config=config)


def free_inputs(operation: Any, pinned: dict[str, Any]) -> int:
    unpinned = [p for p in operation.path_parameters if p.name not in pinned]
    return len(unpinned) + len(operation.query) + len(operation.headers) + len(operation.body)


def fuzz(plane: ControlPlane, mode: GenerationMode, pins: dict[str, Any] | None) -> None:
    """Run every operation (pinning path parameters when `pins` is given); fail listing every finding."""
    schema = load_schema(plane)
    failures: dict[str, str] = {}
    examples: dict[str, int] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        label = operation.label
        pinned = {p.name: pins[p.name] for p in operation.path_parameters if pins and p.name in pins}
        if pins is not None and (not pinned or label in NOT_PINNED):
            continue  # nothing to pin: the unpinned pass covers it
        if mode == GenerationMode.NEGATIVE and free_inputs(operation, pinned) == 0:
            continue  # no input left to make invalid
        examples[label] = 0
        exercise = exerciser(
            operation.as_strategy(generation_mode=mode, path_parameters=pinned or None), examples
        )
        try:
            exercise()
        except hypothesis.errors.Unsatisfiable:
            failures[label] = "schemathesis could not generate a single request"
        except (Exception, BaseExceptionGroup) as exc:  # schemathesis reports check failures as a group
            failures[label] = "".join(traceback.format_exception_only(exc))[:6000]

    assert examples, "no operation was exercised"
    assert all(examples.values()), (
        f"operations that got no request: {[k for k, v in examples.items() if not v]}"
    )
    if failures:
        report = "\n\n".join(f"=== {label}\n{text}" for label, text in failures.items())
        raise AssertionError(
            f"{len(failures)} operation(s) failed (CONCURRENT_FUZZ_SEED={SEED}):\n\n{report}\n\n"
            + server_errors(plane)
        )
    assert "unexpected error" not in full_log(plane), server_errors(plane)


def exerciser(strategy: Any, examples: dict[str, int]) -> Any:
    """A Hypothesis test sending each generated case and running the checks on its response."""

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.seed(SEED)
    @given(case=strategy)
    def exercise(case: Any) -> None:
        examples[case.operation.label] += 1
        case.call_and_validate(checks=CHECKS)

    return exercise


def full_log(plane: ControlPlane) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(plane.home.glob("server-*.log")))


def server_errors(plane: ControlPlane) -> str:
    blocks = [b for b in full_log(plane).split("\n20") if "unexpected error" in b or "Traceback" in b]
    return "server tracebacks:\n" + ("\n".join(blocks)[-12000:] if blocks else "(none)")


def test_the_schema_lists_every_operation_with_a_path_schemathesis_can_use(seeded: Seeded) -> None:
    schema = load_schema(seeded.plane)
    labels = set()
    for result in schema.get_all_operations():
        labels.add(result.ok().label)  # `ok()` raises on an operation schemathesis cannot parse
    assert {"GET /api/v1/dags", "POST /api/v1/dags/import", "POST /api/v1/runs"} <= labels
    assert len(labels) >= 20, labels


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_generated_requests_never_get_a_5xx_or_a_body_off_schema(
    seeded: Seeded, mode: GenerationMode
) -> None:
    fuzz(seeded.plane, mode, pins=None)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_requests_on_a_stored_dag_and_run_never_get_a_5xx_or_a_body_off_schema(
    seeded: Seeded, mode: GenerationMode
) -> None:
    pins = {"name": SEEDED_DAG, "run_id": seeded.run_id, "node": "work", "partition": 0}
    fuzz(seeded.plane, mode, pins=pins)


def test_fuzzing_started_no_run(seeded: Seeded) -> None:
    with seeded.plane.client() as api:
        runs = api.get("/runs").json()
    assert [r["id"] for r in runs["items"]] == [seeded.run_id]
