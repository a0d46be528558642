"""DAG documents: parsing, every validation message a user reads, overrides and the shipped schema."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from concurrent_mlflow.dag import (
    MAX_DOCUMENT_CHARS,
    SourceNode,
    apply_overrides,
    json_schema,
    load_dag,
    parse_dag,
    parse_overrides,
)
from concurrent_mlflow.errors import DagValidationError

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "src" / "concurrent_mlflow" / "schema" / "dag.schema.json"

GOOD = """
name: good
defaults: {retries: 2, env_manager: local}
nodes:
  - {id: raw, kind: source, uri: data, pattern: "*.csv"}
  - id: prep
    kind: project
    project: ./projects/prep
    entry_point: main
    parameters: {scale: 2.5, flag: true}
    partitions: 8
    parallelism: 4
    timeout: 60
  - {id: score, kind: inference, model: "models:/m/1", partitions: 8}
  - {id: report, kind: project, project: "https://git.example/repo.git#report", version: v1}
edges:
  - {from: raw, to: prep, input: raw, partitioner: file}
  - {from: prep, to: score, input: features, partitioner: one-to-one}
  - {from: score, to: report, input: predictions, partitioner: gather}
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(DagValidationError) as info:
        parse_dag(text)
    return [str(p) for p in info.value.problems]


def test_a_good_dag_parses_with_defaults_applied() -> None:
    dag = parse_dag(GOOD)
    prep = dag.node("prep")
    assert prep.kind == "project"
    assert dag.retries(prep) == 2  # type: ignore[arg-type]
    assert dag.timeout(prep) == 60  # type: ignore[arg-type]
    assert dag.topological_order() == ["raw", "prep", "score", "report"]
    assert dag.incoming("score")[0].partitioner.kind == "one-to-one"


def test_yaml_round_trip_keeps_the_document() -> None:
    dag = parse_dag(GOOD)
    assert parse_dag(dag.to_yaml()) == dag


def test_cycle_is_named_node_by_node() -> None:
    found = problems_of("""
name: loop
nodes:
  - {id: a, kind: project, project: p}
  - {id: b, kind: project, project: p}
  - {id: c, kind: project, project: p}
edges:
  - {from: a, to: b, input: x}
  - {from: b, to: c, input: x}
  - {from: c, to: a, input: x}
""")
    assert found == ["edges: the graph has a cycle: a -> b -> c -> a; a DAG must not loop back"]


def test_every_problem_is_reported_at_once_with_node_and_field() -> None:
    found = problems_of("""
name: many
nodes:
  - {id: raw, kind: source, uri: d}
  - {id: Bad_Id, kind: project, project: p}
  - {id: prep, kind: project, project: p, partitions: 0, colour: blue}
edges:
  - {from: raw, to: ghost, input: x}
""")
    assert "nodes.prep.partitions: Input should be greater than or equal to 1" in found
    assert "nodes.prep.colour: unknown field (check the spelling; see `concurrent dag schema`)" in found
    assert len(found) == 2  # pydantic problems first; graph checks run on a well-formed document


def test_graph_problems_name_what_is_wrong() -> None:
    found = problems_of("""
name: graph
nodes:
  - {id: raw, kind: source, uri: d}
  - {id: Bad_Id, kind: project, project: p}
  - {id: prep, kind: project, project: p}
  - {id: prep, kind: project, project: q}
edges:
  - {from: raw, to: ghost, input: x}
  - {from: prep, to: raw, input: y}
  - {from: raw, to: prep, input: "a/b"}
""")
    assert (
        "nodes.Bad_Id.id: must be lower-case letters, digits and dashes, start with a letter, at most 40 characters"
        in found
    )
    assert "nodes.prep: duplicate node id" in found
    assert "edges.raw->ghost.to: no node with id 'ghost'" in found
    assert "edges.prep->raw: source node 'raw' cannot have inputs" in found
    assert any(p.startswith("edges.raw->prep.input: 'a/b' is not a valid input name") for p in found)


@pytest.mark.parametrize(
    ("partitioner", "message"),
    [
        ("{kind: key}", "edges.raw->prep.partitioner.key: the `key` partitioner needs `key:`"),
        (
            "{kind: custom, function: not-a-function}",
            "edges.raw->prep.partitioner.function: the `custom` partitioner",
        ),
        ("{kind: file, key: x}", "edges.raw->prep.partitioner: `key`/`function` do not apply to the 'file'"),
        ("round-robin", "edges.raw->prep.partitioner.kind: Input should be 'file', 'directory'"),
    ],
)
def test_bad_partitioners(partitioner: str, message: str) -> None:
    found = problems_of(f"""
name: parts
nodes:
  - {{id: raw, kind: source, uri: d}}
  - {{id: prep, kind: project, project: p}}
edges:
  - {{from: raw, to: prep, input: x, partitioner: {partitioner}}}
""")
    assert any(p.startswith(message) for p in found), found


def test_partitioning_rules() -> None:
    found = problems_of("""
name: rules
nodes:
  - {id: raw, kind: source, uri: d}
  - {id: one, kind: project, project: p, partitions: 4}
  - {id: all, kind: project, project: p, partitions: 3}
  - {id: grid, kind: project, project: p, partitions: 2, sweep: {alpha: [1, 2], beta: []}, parameters: {alpha: 1}}
edges:
  - {from: raw, to: one, input: x, partitioner: one-to-one}
  - {from: one, to: all, input: x, partitioner: gather}
  - {from: raw, to: grid, input: x, partitioner: file}
""")
    assert any("one-to-one` needs a project or inference node upstream" in p for p in found)
    assert any(p.startswith("nodes.all.partitions: a node fed by a `gather` edge") for p in found)
    assert "nodes.grid.partitions: a sweep runs one partition per combination; remove `partitions`" in found
    assert any(
        p.startswith("nodes.grid.sweep: every input of a sweep node must use the `broadcast`") for p in found
    )
    assert "nodes.grid.sweep.beta: needs at least one value" in found
    assert "nodes.grid.sweep.alpha: is also set in `parameters`; set it in one place" in found


def test_inference_needs_input_and_unknown_kind_is_explained() -> None:
    assert any(
        "unknown node kind; use one of: source, project, inference" in p
        for p in problems_of("""
name: k
nodes:
  - {id: x, kind: notebook}
""")
    )
    assert problems_of("""
name: k
nodes:
  - {id: s, kind: inference, model: "models:/m/1"}
""") == ["nodes.s: an inference node needs at least one incoming edge with the files to score"]


def test_not_yaml_and_not_a_mapping() -> None:
    assert problems_of("name: [unclosed")[0].startswith("line 1, column")
    assert problems_of("- a\n- b") == ["a DAG document must be a YAML mapping with `name` and `nodes`"]


# Like what a user posted (505 bytes): a few hundred bytes whose `desc` stands for 9**9 strings.
BOMB = "name: bomb\nnodes: [{id: s, kind: source, uri: d}]\ndesc:\n" + "".join(
    f"  - &l{i} [{','.join([f'*l{i - 1}' if i else 'lol'] * 9)}]\n" for i in range(9)
)


@pytest.mark.timeout(60)  # a safety net only: before the bound, the NUL check walked 9**9 strings for minutes
def test_an_alias_bomb_is_refused_naming_the_problem_and_the_fix() -> None:
    assert len(BOMB.encode()) < 505
    assert problems_of(BOMB) == [
        "line 9, column 5: the document expands to more than 100,000 nodes (values, lists and mappings) "
        "through YAML aliases; write the values out or use fewer aliases"
    ]


def test_a_document_that_contains_itself_is_refused() -> None:
    (problem,) = problems_of("name: &n\n  nodes: [{id: s, kind: source, uri: d}]\n  again: *n\n")
    assert "an alias refers to the node that contains it" in problem


def test_anchors_and_merge_keys_within_the_bound_still_work() -> None:
    dag = parse_dag("""
name: dry
nodes:
  - &proj {id: a, kind: project, project: p, parameters: {lr: 0.1}}
  - {<<: *proj, id: b}
""")
    assert [n.id for n in dag.nodes] == ["a", "b"]
    assert dag.node("b").parameters == {"lr": 0.1}  # type: ignore[union-attr]


def test_a_dag_file_larger_than_the_api_accepts_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("name: big\nnodes: []\n" + "#" * MAX_DOCUMENT_CHARS, encoding="utf-8")
    with pytest.raises(DagValidationError) as caught:
        load_dag(path)
    assert [p.message for p in caught.value.problems] == [
        "the file is larger than 524,288 characters, the most a DAG document may have"
    ]


def test_a_source_pattern_is_at_most_1000_characters() -> None:
    found = problems_of(f"name: p\nnodes: [{{id: raw, kind: source, uri: d, pattern: '{'*' * 1001}'}}]\n")
    assert found == ["nodes.raw.pattern: String should have at most 1000 characters"]


def test_a_sweep_of_more_than_10_000_combinations_is_refused_naming_the_node() -> None:
    values = "[" + ", ".join(str(i) for i in range(10)) + "]"
    sweep = "{" + ", ".join(f"p{i}: {values}" for i in range(7)) + "}"
    found = problems_of(f"name: grid\nnodes:\n  - {{id: train, kind: project, project: p, sweep: {sweep}}}\n")
    assert found == [
        "nodes.train.sweep: has 10,000,000 combinations (10 p0 x 10 p1 x 10 p2 x 10 p3 x 10 p4 x 10 p5 x 10 p6), "
        "more than the 10,000 a sweep may have; sweep fewer values, or split the grid over several nodes"
    ]
    sweep = "{" + ", ".join(f"p{i}: {values}" for i in range(4)) + "}"
    parse_dag(f"name: grid\nnodes:\n  - {{id: train, kind: project, project: p, sweep: {sweep}}}\n")


def chain(length: int, *, loop: bool = False) -> str:
    nodes = "".join(f"  - {{id: n{i}, kind: project, project: p}}\n" for i in range(length))
    edges = "".join(f"  - {{from: n{i}, to: n{i + 1}, input: x}}\n" for i in range(length - 1))
    back = f"  - {{from: n{length - 1}, to: n0, input: back}}\n" if loop else ""
    return f"name: chain\nnodes:\n{nodes}edges:\n{edges}{back}"


def test_topological_order_goes_in_rounds_with_ties_in_document_order() -> None:
    dag = parse_dag("""
name: rounds
nodes:
  - {id: d, kind: project, project: p}
  - {id: b, kind: project, project: p}
  - {id: a, kind: source, uri: x}
  - {id: c, kind: project, project: p}
edges:
  - {from: a, to: b, input: x}
  - {from: b, to: d, input: x}
  - {from: a, to: d, input: y}
""")
    assert dag.topological_order() == ["a", "c", "b", "d"]


@pytest.mark.timeout(30)  # a net only: every node rescanned every round made this take many minutes
def test_a_long_chain_validates_in_time_linear_in_its_size() -> None:
    dag = parse_dag(chain(3000))
    assert dag.topological_order() == [f"n{i}" for i in range(3000)]
    (problem,) = problems_of(chain(3000, loop=True))
    assert problem.startswith("edges: the graph has a cycle: n0 -> n1 -> n2 -> ")
    assert problem.endswith("n2999 -> n0; a DAG must not loop back")


def test_overrides_apply_to_project_parameters_and_reject_typos() -> None:
    dag = apply_overrides(parse_dag(GOOD), parse_overrides(["prep.scale=3", "prep.new=x"]))
    assert dag.node("prep").parameters == {"scale": "3", "flag": True, "new": "x"}  # type: ignore[union-attr]
    with pytest.raises(DagValidationError, match=r"no node 'nope'; use NODE\.PARAM=VALUE"):
        apply_overrides(parse_dag(GOOD), {"nope.x": "1"})
    with pytest.raises(DagValidationError, match="overrides set a project node's parameter"):
        apply_overrides(parse_dag(GOOD), {"raw.uri": "1"})
    with pytest.raises(DagValidationError, match=r"expected NODE\.PARAM=VALUE"):
        parse_overrides(["scale"])


def test_shipped_schema_matches_the_models() -> None:
    """Regenerate with CONCURRENT_REGENERATE=1 after changing the models."""
    generated = json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
    if os.environ.get("CONCURRENT_REGENERATE"):
        SCHEMA_FILE.parent.mkdir(exist_ok=True)
        SCHEMA_FILE.write_text(generated)
    assert SCHEMA_FILE.read_text() == generated


@pytest.mark.parametrize(
    "text",
    ["name: x\nwhen: 2023-13-45\nnodes: []\n", "[" * 100_000, 'name: "a\\0b"\nnodes: []\n'],
    ids=["impossible-date", "nested-too-deep", "nul-escape"],
)
def test_documents_yaml_itself_chokes_on_are_validation_errors(text: str) -> None:
    with pytest.raises(DagValidationError) as caught:
        parse_dag(text)
    assert caught.value.problems and all(p.message for p in caught.value.problems)


def test_kubernetes_placement_resources_and_their_mistakes() -> None:
    dag = parse_dag("""
name: k8s
defaults: {cluster: main}
nodes:
  - id: a
    kind: project
    project: p
    resources: {cpu: 0.5, memory: 2Gi, gpu: 1}
    node_selector: {pool: gpu}
    tolerations: [{key: gpu, operator: Exists, effect: NoSchedule, tolerationSeconds: 30}]
  - {id: b, kind: project, project: p, clusters: {east: 3, west: 1}}
""")
    a, b = dag.node("a"), dag.node("b")
    assert not isinstance(a, SourceNode) and not isinstance(b, SourceNode)
    assert dag.placement(a) == {"main": 1} and dag.placement(b) == {"east": 3, "west": 1}
    assert a.resources is not None and a.resources.cpu == "0.5"
    assert parse_dag(dag.to_yaml()) == dag  # tolerationSeconds keeps its Kubernetes spelling

    found = problems_of("""
name: k8s-bad
nodes:
  - {id: both, kind: project, project: p, cluster: a, clusters: {b: 1}}
  - {id: local, kind: project, project: p, resources: {cpu: 2}}
  - {id: weights, kind: project, project: p, clusters: {Bad_Name: 0}}
""")
    assert "nodes.both.clusters: set either `cluster` or `clusters` (weights), not both" in found
    assert (
        "nodes.local.resources: applies to pods on Kubernetes, but this node runs on this machine: set `cluster`"
        in found
    )
    assert "nodes.weights.clusters.Bad_Name: is not a valid cluster name" in found
    assert "nodes.weights.clusters.Bad_Name: weight must be a positive integer" in found
    quantity = problems_of(
        "name: q\nnodes: [{id: x, kind: project, project: p, cluster: c, resources: {memory: lots}}]"
    )
    assert quantity[0].startswith("nodes.x.resources.memory: String should match pattern")
