"""Legacy DAG JSON (the original Concurrent for MLflow) -> our DAG: the mapping, the report, and bad documents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from concurrent_mlflow.dag import ProjectNode, SourceNode, parse_dag
from concurrent_mlflow.errors import DagValidationError
from concurrent_mlflow.legacy import LegacyConversion, LegacyNote, convert_legacy, load_legacy

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "legacy"
GIT = "https://github.com/acme/jobs.git"


def node(legacy_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": legacy_id, "transform": GIT, "xform_path": legacy_id, **fields}


def edge(source: str, target: str) -> dict[str, str]:
    return {"source": source, "target": target}


def upstream(source: str, **fields: Any) -> dict[str, Any]:
    return {"type": "existing_xform", "source": source, **fields}


def convert(*nodes: dict[str, Any], edges: tuple[dict[str, Any], ...] = ()) -> LegacyConversion:
    conv = convert_legacy({"node": list(nodes), "edge": list(edges)}, name="t")
    assert parse_dag(conv.dag.to_yaml()) == conv.dag  # every conversion passes our validation and round-trips
    return conv


def notes(conv: LegacyConversion) -> dict[str, str]:
    return {note.where: note.severity for note in conv.report}


def problems(document: Any, name: str = "t") -> list[str]:
    with pytest.raises(DagValidationError) as info:
        convert_legacy(document, name=name)
    return [str(problem) for problem in info.value.problems]


# -- nodes and parameters ---------------------------------------------------------------------------------


def test_a_legacy_node_becomes_a_project_node() -> None:
    conv = convert(
        node("prep", name="Prepare", version="v1.2", parallelization="4", kwarg=[{"key": "a", "value": "1"}])
    )
    prep = conv.dag.node("prep")
    assert isinstance(prep, ProjectNode)
    assert (prep.project, prep.version, prep.partitions) == (f"{GIT}#prep", "v1.2", 4)
    assert (prep.description, prep.parameters) == ("Prepare", {"a": "1"})
    assert conv.report == []


def test_subdir_in_the_url_and_xform_path_join() -> None:
    conv = convert(
        {"id": "a", "transform": f"{GIT}#pipelines/", "xform_path": "/prep/", "git_commit": "3e1f0b7"}
    )
    a = conv.dag.node("a")
    assert isinstance(a, ProjectNode)
    assert (a.project, a.version) == (f"{GIT}#pipelines/prep", "3e1f0b7")
    assert notes(conv) == {"node[0].xform_path": "info"}


@pytest.mark.parametrize(
    "kwarg",
    [
        [{"key": "alpha", "value": "0.5"}, {"key": "name", "value": "two words"}],
        {"alpha": "0.5", "name": "two words"},
        "-P alpha=0.5 -P 'name=two words'",
        "-Palpha=0.5 name='two words'",
    ],
)
def test_kwarg_forms_become_parameters(kwarg: Any) -> None:
    conv = convert(node("a", kwarg=kwarg))
    assert conv.dag.node("a").parameters == {"alpha": "0.5", "name": "two words"}  # type: ignore[union-attr]
    assert conv.report == []


def test_typed_kwarg_values_keep_their_type() -> None:
    conv = convert(node("a", kwarg={"size": 224, "scale": 0.5, "gray": False}))
    assert conv.dag.node("a").parameters == {"size": 224, "scale": 0.5, "gray": False}  # type: ignore[union-attr]


def test_bad_kwarg_entries_are_dropped_and_reported_where_they_are() -> None:
    kwarg = [
        {"key": "ok", "value": "1"},
        "junk",
        {"key": "nested", "value": {"x": 1}},
        {"key": " ", "value": "2"},
    ]
    conv = convert(node("a", kwarg=kwarg), node("b", kwarg="-P novalue -P c=3"), node("c", kwarg="-P 'open"))
    assert conv.dag.node("a").parameters == {"ok": "1"}  # type: ignore[union-attr]
    assert conv.dag.node("b").parameters == {"c": "3"}  # type: ignore[union-attr]
    assert notes(conv) == {
        "node[0].kwarg[1]": "error",
        "node[0].kwarg[2]": "error",
        "node[0].kwarg[3]": "error",
        "node[1].kwarg": "error",
        "node[2].kwarg": "error",
    }


@pytest.mark.parametrize("parallelization", ["many", 0, -2, 2.5, True, "1000001"])
def test_a_bad_parallelization_runs_one_partition_and_says_so(parallelization: Any) -> None:
    conv = convert(node("a", parallelization=parallelization))
    assert conv.dag.node("a").partitions is None  # type: ignore[union-attr]
    assert notes(conv) == {"node[0].parallelization": "error"}


# -- ids and input names -----------------------------------------------------------------------------------


def test_ids_are_slugified_unique_and_each_rename_is_noted() -> None:
    long_name = "Extract every single honeypot session from the cowrie logs"
    conv = convert(
        node("Prep Images"),
        node("prep images"),
        node("42"),
        node("7f9c2ba4-e88f-11ed-a05b-0242ac120002", name="Ünïcode Näme"),
        node("N_5", name=long_name),
        node("ok-id", name="Whatever"),
        edges=(edge("Prep Images", "prep images"), edge("42", "ok-id")),
    )
    ids = [n.id for n in conv.dag.nodes]
    assert ids == [
        "prep-images",
        "prep-images-2",
        "n-42",
        "unicode-name",
        "extract-every-single-honeypot-session-fr",
        "ok-id",
    ]
    assert [(e.source, e.target) for e in conv.dag.edges] == [
        ("prep-images", "prep-images-2"),
        ("n-42", "ok-id"),
    ]
    assert notes(conv) == {f"node[{i}].id": "info" for i in range(5)}


def test_input_names_come_from_the_legacy_input_or_the_upstream_id() -> None:
    conv = convert(
        node("a"),
        node("b"),
        node(
            "c",
            input=[
                upstream("a", name="raw images"),
                upstream("b", name="raw images"),
                upstream("b", name="x"),
            ],
        ),
        node("d", input=[upstream("a")]),
        edges=(edge("a", "c"), edge("b", "c"), edge("a", "d")),
    )
    assert [e.input for e in conv.dag.incoming("c")] == ["raw_images", "raw_images-2", "x"]
    assert [e.input for e in conv.dag.incoming("d")] == ["a"]
    assert notes(conv) == {"node[2].input[0].name": "info", "node[2].input[1].name": "info"}


def test_edges_and_upstream_inputs_wire_once_and_either_is_enough() -> None:
    conv = convert(
        node("a"),
        node("b", input=[upstream("a", name="features")]),
        node("c"),
        edges=(edge("a", "b"), {"from": "b", "to": "c"}, edge("b", "c")),
    )
    assert [(e.source, e.target, e.input) for e in conv.dag.edges] == [
        ("a", "b", "features"),
        ("b", "c", "b"),
    ]
    conv = convert(node("a"), node("b", input=[upstream("a")]))  # no legacy edge at all
    assert [(e.source, e.target) for e in conv.dag.edges] == [("a", "b")]


def test_plural_top_level_keys_are_accepted() -> None:
    conv = convert_legacy({"nodes": [node("a"), node("b")], "edges": [edge("a", "b")]}, name="t")
    assert conv.dag.upstream("b") == ["a"]


# -- partitioners -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "kind", "function", "where"),
    [
        ({"partitioner": "object"}, "file", None, None),
        ({"partitioner": "directory"}, "directory", None, None),
        ({"partitioner": "broadcast"}, "broadcast", None, None),
        ({"partitioner": "Custom", "lambda": "pkg.parts:by_patient"}, "custom", "pkg.parts:by_patient", None),
        (
            {"partitioner": "custom", "partition_lambda": "pkg.parts:by_day"},
            "custom",
            "pkg.parts:by_day",
            None,
        ),
        ({"partitioner": "custom", "lambda": "lambda row: row['FileName']"}, "file", None, "lambda"),
        ({"partitioner": "custom"}, "file", None, "partition_lambda"),
        ({"partitioner": "round-robin"}, "file", None, "partitioner"),
    ],
)
def test_legacy_partitioners_map_to_ours(
    params: dict[str, str], kind: str, function: str | None, where: str | None
) -> None:
    conv = convert(
        node("up"), node("down", input=[upstream("up", partition_params=params)]), edges=(edge("up", "down"),)
    )
    partitioner = conv.dag.incoming("down")[0].partitioner
    assert (partitioner.kind, partitioner.function) == (kind, function)
    expected = {f"node[1].input[0].partition_params.{where}": "error"} if where else {}
    assert notes(conv) == expected


def test_no_partitioner_on_a_fanned_out_node_is_broadcast_as_in_the_original() -> None:
    conv = convert(
        node("up"),
        node("wide", parallelization=3, input=[upstream("up")]),
        node("narrow", input=[upstream("up")]),
        node("bare", parallelization=2),
        edges=(edge("up", "wide"), edge("up", "narrow"), edge("up", "bare")),
    )
    kinds = {e.target: e.partitioner.kind for e in conv.dag.edges}
    assert kinds == {"wide": "broadcast", "narrow": "file", "bare": "broadcast"}
    assert notes(conv) == {"node[1].input[0].partition_params": "info", "edge[2]": "info"}


# -- data locations ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "uri", "incremental"),
    [
        ({"type": "s3", "bucketname": "raw", "prefix": "/cameras/2023/"}, "s3://raw/cameras/2023", False),
        ({"type": "infinsnap", "bucketname": "raw", "pathInBucket": "logs"}, "s3://raw/logs", False),
        ({"type": "INFINSLICE", "bucketname": "raw", "prefix": "/"}, "s3://raw", True),
        ({"type": "gs", "bucketname": "raw", "prefix": "a/b"}, "gs://raw/a/b", False),
        (
            {"type": "mlflow-run-artifacts", "run_id": "0f3c2a9b", "prefix": "out"},
            "runs:/0f3c2a9b/out",
            False,
        ),
        ({"type": "mlflow-artifacts", "input_run_id": "0f3c2a9b"}, "runs:/0f3c2a9b", False),
        ({"type": "path", "path": "data/in"}, "data/in", False),
        ({"type": "uri", "uri": "gs://raw/x"}, "gs://raw/x", False),
    ],
)
def test_data_inputs_become_source_nodes(spec: dict[str, Any], uri: str, incremental: bool) -> None:
    conv = convert(node("a", input=[{"name": "images", **spec}]))
    source = conv.dag.node("images")
    assert isinstance(source, SourceNode)
    assert (source.uri, source.incremental) == (uri, incremental)
    assert [(e.source, e.target, e.input) for e in conv.dag.edges] == [("images", "a", "images")]


def test_one_source_node_per_location() -> None:
    same = {"type": "s3", "bucketname": "raw", "prefix": "x"}
    conv = convert(node("a", input=[same]), node("b", input=[same, {**same, "prefix": "y"}]))
    assert [n.id for n in conv.dag.nodes] == ["a-data", "a", "b-data", "b"]
    assert [(e.source, e.target) for e in conv.dag.edges] == [
        ("a-data", "a"),
        ("a-data", "b"),
        ("b-data", "b"),
    ]


def test_time_specs_and_unknown_input_types_are_reported() -> None:
    conv = convert(
        node(
            "a",
            input=[
                {"type": "infinsnap", "bucketname": "raw", "time_spec": "tm20220927184500"},
                {"type": "label", "label": "cats"},
                {"type": "no-input-data"},
                "not an object",
            ],
        )
    )
    assert conv.dag.edges[0].source == "a-data"
    assert len(conv.dag.edges) == 1
    assert notes(conv) == {
        "node[0].input[0].time_spec": "warning",
        "node[0].input[1].label": "warning",
        "node[0].input[1]": "error",
        "node[0].input[2]": "info",
        "node[0].input[3]": "error",
    }


# -- what does not carry over -----------------------------------------------------------------------------


def test_unmappable_fields_are_reported_with_their_location() -> None:
    conv = convert(
        node(
            "a",
            k8s_params={"namespace": "parallelsns", "shm_size": "1Gi"},
            positional=["x"],
            color="red",
            input=[upstream("b", partition_params={"partitioner": "object", "parallelization": 8})],
        ),
        node("b"),
        edges=({"source": "b", "target": "a", "label": "features"},),
    )
    assert notes(conv) == {
        "node[0].k8s_params.shm_size": "warning",
        "node[0].k8s_params": "info",
        "node[0].positional": "warning",
        "node[0].color": "warning",
        "node[0].input[0].partition_params.parallelization": "warning",
        "edge[0].label": "warning",
    }
    assert "'1Gi' is not carried over" in next(n.message for n in conv.report if n.where.endswith("shm_size"))


def test_a_version_without_a_git_project_is_dropped_and_reported() -> None:
    conv = convert({"id": "a", "transform": "./projects/a", "version": "v1"})
    a = conv.dag.node("a")
    assert isinstance(a, ProjectNode)
    assert (a.project, a.version) == ("./projects/a", None)
    assert notes(conv) == {"node[0].version": "error"}


def test_a_note_reads_as_one_line() -> None:
    assert str(LegacyNote("node[0].kwarg", "dropped", "error")) == "error: node[0].kwarg: dropped"


# -- documents that cannot become a DAG --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ([node("a")], "node: a legacy DAG is a JSON object"),
        ("node", "node: a legacy DAG is a JSON object"),
        ({}, "node: a legacy DAG is a JSON object"),
        ({"node": []}, "node: a legacy DAG is a JSON object"),
        ({"node": {"a": node("a")}}, "node: a legacy DAG is a JSON object"),
        ({"node": ["a"]}, "node[0].id: missing"),
        ({"node": [{"transform": GIT}]}, "node[0].id: missing"),
        ({"node": [node("a"), node("a")]}, "node[1].id: duplicate id 'a'"),
        ({"node": [{"id": "a"}]}, "node[0].transform: missing"),
        ({"node": [node("a")], "edge": [edge("a", "ghost")]}, "edge[0].target: no node with id 'ghost'"),
        ({"node": [node("a")], "edge": [{"to": "a"}]}, "edge[0].source: no node with id None"),
        ({"node": [node("a")], "edge": [7]}, "edge[0].source: no node with id None"),
        ({"node": [node("a")], "edge": "a->a"}, "edge: expected a list"),
        ({"node": [node("a")], "edge": [edge("a", "a")]}, "edge[0]: the edge joins node 'a' to itself"),
        (
            {"node": [node("a", input=[upstream("ghost")])]},
            "node[0].input[0].source: no node with id 'ghost'",
        ),
        (
            {"node": [node("a", input=[{"type": "s3"}])]},
            "node[0].input[0].bucketname: None is not a bucket name",
        ),
        (
            {"node": [node("a", input=[{"type": "mlflow-run-artifacts"}])]},
            "node[0].input[0].run_id: None is not",
        ),
        ({"node": [node("a", input=[{"type": "path"}])]}, "node[0].input[0].path: None is not a location"),
    ],
)
def test_structurally_unusable_documents_are_refused_with_the_field(document: Any, expected: str) -> None:
    assert any(problem.startswith(expected) for problem in problems(document)), problems(document)


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"node": [node("../../etc/passwd")]}, "node[0].id: '../../etc/passwd' looks like a path"),
        ({"node": [node("a/b")]}, "node[0].id: 'a/b' looks like a path"),
        (
            {"node": [node("a", xform_path="../../etc")]},
            "node[0].xform_path: '../../etc' is not a path inside",
        ),
        (
            {"node": [{"id": "a", "transform": f"{GIT}#../.."}]},
            "node[0].transform: '../..' is not a path inside",
        ),
        (
            {"node": [node("a", input=[{"type": "s3", "bucketname": "b", "prefix": "../../etc/passwd"}])]},
            "node[0].input[0].prefix",
        ),
        (
            {"node": [node("a", input=[{"type": "s3", "bucketname": "../etc"}])]},
            "node[0].input[0].bucketname",
        ),
        (
            {"node": [node("a", input=[{"type": "mlflow-run-artifacts", "run_id": "../x"}])]},
            "node[0].input[0].run_id",
        ),
        (
            {"node": [node("a", input=[{"type": "path", "path": "../../etc/passwd"}])]},
            "node[0].input[0].path",
        ),
        ({"node": [node("a", input=[{"type": "uri", "uri": "s3://b/..\\..\\x"}])]}, "node[0].input[0].uri"),
    ],
)
def test_hostile_names_and_paths_are_refused(document: Any, expected: str) -> None:
    assert any(problem.startswith(expected) for problem in problems(document)), problems(document)


def test_a_hostile_input_name_is_made_harmless() -> None:
    conv = convert(node("a"), node("b", input=[upstream("a", name="../../etc/passwd")]))
    assert conv.dag.edges[0].input == "_.._.._etc_passwd"


def test_a_cycle_is_refused_and_named() -> None:
    found = problems(
        {"node": [node("a"), node("b"), node("c")], "edge": [edge("a", "b"), edge("b", "c"), edge("c", "a")]}
    )
    assert found == ["edges: the graph has a cycle: a -> b -> c -> a; a DAG must not loop back"]


def test_every_problem_is_listed_at_once() -> None:
    found = problems({"node": [{"id": "a"}, node("b", xform_path="../x")], "edge": [edge("a", "zz")]})
    assert [p.split(":")[0] for p in found] == ["edge[0].target", "node[0].transform", "node[1].xform_path"]


def test_an_invalid_dag_name_is_refused() -> None:
    assert any(p.startswith("name:") for p in problems({"node": [node("a")]}, name="no spaces allowed"))


# -- files --------------------------------------------------------------------------------------------------


def test_load_names_the_file_in_every_error(tmp_path: Path) -> None:
    cases = {
        "missing.json": None,
        "broken.json": b'{"node": [',
        "binary.json": b"\xff\xfe\x00garbage",
        "deep.json": b"[" * 200_000,
        "dangling.json": json.dumps({"node": [node("a")], "edge": [edge("a", "b")]}).encode(),
    }
    for file_name, content in cases.items():
        path = tmp_path / file_name
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(DagValidationError) as info:
            load_legacy(path)
        assert str(info.value).startswith(f"{path} is not valid"), str(info.value)
    with pytest.raises(DagValidationError, match=r"line 1, column 11: not valid JSON"):
        load_legacy(tmp_path / "broken.json")


def test_load_names_the_dag_after_the_file_unless_told(tmp_path: Path) -> None:
    path = tmp_path / "my legacy dag.json"
    path.write_text(json.dumps({"node": [node("a")]}), encoding="utf-8")
    assert load_legacy(path).dag.name == "my-legacy-dag"
    assert load_legacy(path, name="nightly").dag.name == "nightly"


@pytest.mark.parametrize("sample", sorted(SAMPLES.glob("*.json")), ids=lambda path: path.stem)
def test_samples_convert_and_round_trip(sample: Path) -> None:
    conv = load_legacy(sample)
    assert parse_dag(conv.dag.to_yaml()) == conv.dag
    assert conv.dag.name == sample.stem
    assert all(note.where and note.message for note in conv.report)


def test_the_honeypot_sample_maps_as_documented() -> None:
    conv = load_legacy(SAMPLES / "honeypot.json")
    assert [(n.id, n.kind) for n in conv.dag.nodes] == [
        ("cowrie", "source"),
        ("node1", "project"),
        ("node2", "project"),
    ]
    cowrie, node1 = conv.dag.node("cowrie"), conv.dag.node("node1")
    assert isinstance(cowrie, SourceNode) and isinstance(node1, ProjectNode)
    assert cowrie.uri == "s3://honeypot-logs/honeypot/test"
    assert (node1.project, node1.partitions, node1.parameters) == (
        "https://github.com/concurrent-ai/concurrent-examples.git#honeypot/node1",
        4,
        {"min_session_bytes": "200"},
    )
    assert [(e.source, e.target, e.input, e.partitioner.kind) for e in conv.dag.edges] == [
        ("cowrie", "node1", "cowrie", "file"),
        ("node1", "node2", "sessions", "file"),
    ]
    errors = [note.where for note in conv.report if note.severity == "error"]
    assert errors == ["node[0].input[0].partition_params.lambda"]
    node2 = conv.dag.node("node2")
    assert isinstance(node2, ProjectNode) and node2.resources is not None
    assert (node1.cluster, node2.cluster, node2.resources.gpu) == ("concurrent-prod", "concurrent-prod", 1)


# -- Kubernetes settings -----------------------------------------------------------------------------------


def test_k8s_resources_become_the_node_resources() -> None:
    conv = convert(
        node(
            "a",
            k8s_params={
                "kube_context": "prod",
                "resources.requests.cpu": "500m",
                "resources.limits.cpu": "2",
                "resources": {"requests": {"memory": "4Gi"}},
                "resources.limits.nvidia.com/gpu": "1",
                "instance_type": "g5.xlarge",
            },
        )
    )
    a = conv.dag.node("a")
    assert isinstance(a, ProjectNode) and a.resources is not None
    assert (a.resources.cpu, a.resources.memory, a.resources.gpu) == ("2", "4Gi", 1)  # the limit wins
    assert a.node_selector == {"node.kubernetes.io/instance-type": "g5.xlarge"}
    assert notes(conv) == {"node[0].k8s_params.resources.limits.cpu": "info", "node[0].k8s_params": "info"}


def test_each_context_and_namespace_is_one_cluster_with_the_command_that_registers_it() -> None:
    conv = convert(
        node("a", k8s_params={"kube_context": "arn:aws:eks:us-east-1:1:cluster/Prod", "namespace": "ml"}),
        node("b", k8s_params={"kube_context": "arn:aws:eks:us-east-1:1:cluster/Prod", "namespace": "ml"}),
        node("c", k8s_params={"kube_context": "arn:aws:eks:us-east-1:1:cluster/Prod", "namespace": "batch"}),
        node("d", k8s_params={"namespace": "team"}, instanceType="gke", runlocation="k8s"),
    )
    prod = "arn-aws-eks-us-east-1-1-cluster-prod"
    assert [n.cluster for n in conv.dag.nodes if isinstance(n, ProjectNode)] == [
        prod,
        prod,
        f"{prod}-2",
        "team",
    ]
    assert [c.command for c in conv.clusters] == [
        f"concurrent cluster add {prod} --context arn:aws:eks:us-east-1:1:cluster/Prod --namespace ml",
        f"concurrent cluster add {prod}-2 --context arn:aws:eks:us-east-1:1:cluster/Prod --namespace batch",
        "concurrent cluster add team --namespace team",
    ]
    assert notes(conv)["node[3].instanceType"] == notes(conv)["node[3].runlocation"] == "info"
    assert not any("kubernetes executor" in note.message for note in conv.report)


def test_resources_without_a_cluster_are_dropped_and_said_so() -> None:
    conv = convert(node("a", k8s_params={"resources.requests.cpu": "1"}, instanceType="eks"))
    a = conv.dag.node("a")
    assert isinstance(a, ProjectNode) and (a.cluster, a.resources) == (None, None)
    assert notes(conv) == {"node[0].k8s_params": "error", "node[0].instanceType": "warning"}


def test_a_bad_quantity_is_dropped_and_said_so() -> None:
    conv = convert(node("a", k8s_params={"kube_context": "k", "resources.requests.memory": "lots"}))
    a = conv.dag.node("a")
    assert isinstance(a, ProjectNode) and a.resources is None and a.cluster == "k"
    assert notes(conv)["node[0].k8s_params.resources.requests.memory"] == "error"


# -- misspelt fields and the summary ----------------------------------------------------------------------


def test_a_misspelt_field_names_the_field_it_probably_meant() -> None:
    conv = convert(
        node("a", parallelisation=4, color="red", input=[{"type": "s3", "bucketname": "b", "prefx": "p"}])
    )
    messages = {note.where: (note.severity, note.message) for note in conv.report}
    assert messages["node[0].parallelisation"] == (
        "error",
        "unknown field, not carried over; did you mean 'parallelization'?",
    )
    assert messages["node[0].input[0].prefx"][1].endswith("did you mean 'prefix'?")
    assert messages["node[0].color"] == ("warning", "unknown field, not carried over")  # nothing close


def test_the_summary_counts_what_was_mapped_and_what_was_not() -> None:
    conv = load_legacy(SAMPLES / "honeypot.json")
    unmapped = [note for note in conv.report if note.severity != "info"]
    assert [n.where for n in unmapped] == [
        "node[0].input[0].time_spec",
        "node[0].input[0].partition_params.lambda",
    ]
    assert conv.summary() == [
        "Mapped 2 legacy node(s) to project nodes, 1 data location(s) to source nodes and 2 edge(s); "
        "2 node(s) run on 1 Kubernetes cluster(s).",
        "2 legacy setting(s) could not be mapped as written (the warnings and errors above); "
        "4 note(s) on renames and choices.",
        "Register cluster 'concurrent-prod' before running (with --kubeconfig FILE if its context is not in "
        "your default kubeconfig): concurrent cluster add concurrent-prod --context concurrent-prod "
        "--namespace parallelsns",
    ]
