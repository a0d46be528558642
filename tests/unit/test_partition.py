"""Partitioners: a worked example per kind, then properties that hold for any listing, then error messages."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from concurrent_mlflow import partition
from concurrent_mlflow.errors import PartitionError
from concurrent_mlflow.manifest import InputItem

# The custom partitioners below are referenced as "<this module>:<function>". `__name__` is whatever name
# pytest imported this file under ("tests.unit.test_partition" or "test_partition"), so the reference always
# resolves to this very module instead of importing a second copy of it.
HERE = __name__

PROPERTY = settings(deadline=None)
BALANCED = ["file", "directory", "key"]


def item(relpath: str, size: int = 0, *, origin: int | None = None, **metadata: Any) -> InputItem:
    return InputItem(
        uri=f"s3://bucket/{relpath}", relpath=relpath, size=size, metadata=metadata, origin=origin
    )


def paths(parts: Sequence[Sequence[InputItem]]) -> list[list[str]]:
    return [[i.relpath for i in part] for part in parts]


# -- one example per kind ---------------------------------------------------------------------------------


def test_file_puts_the_largest_file_first_into_the_lightest_partition() -> None:
    items = [item("a.csv", 100), item("b.csv", 60), item("c.csv", 50), item("d.csv", 10)]
    # a -> 0 (100); b -> 1 (60); c -> 1 (110); d -> 0 (110)
    assert paths(partition.split("file", items, 2)) == [["a.csv", "d.csv"], ["b.csv", "c.csv"]]


def test_directory_keeps_a_top_level_directory_together() -> None:
    items = [
        item("2024-01/x.csv", 50),
        item("2024-01/y.csv", 50),
        item("2024-02/z.csv", 70),
        item("notes.txt", 5),
    ]
    # units: 2024-01 (100 bytes), 2024-02 (70), notes.txt (5, a top-level file is its own unit)
    assert paths(partition.split("directory", items, 2)) == [
        ["2024-01/x.csv", "2024-01/y.csv"],
        ["2024-02/z.csv", "notes.txt"],
    ]


def test_key_keeps_files_with_the_same_metadata_value_together() -> None:
    items = [
        item("1.parquet", 40, label="cat"),
        item("2.parquet", 40, label="dog"),
        item("3.parquet", 40, label="cat"),
        item("4.parquet", 30, label="bird"),
    ]
    # units: cat (80 bytes), dog (40), bird (30) -> cat alone; dog and bird together
    parts = partition.split("key", items, 2, {"key": "label"})
    assert paths(parts) == [["1.parquet", "3.parquet"], ["2.parquet", "4.parquet"]]


def test_key_values_are_compared_as_json_so_one_and_the_string_one_differ() -> None:
    items = [item("a", 1, day=1), item("b", 1, day="1"), item("c", 1, day=True), item("d", 1, day=1)]
    parts = partition.split("key", items, 3, {"key": "day"})
    assert sorted(paths(parts)) == [["a", "d"], ["b"], ["c"]]


def test_one_to_one_sends_upstream_partition_i_to_partition_i() -> None:
    items = [item("out-a", origin=2), item("out-b", origin=0), item("out-c", origin=2)]
    assert paths(partition.split("one-to-one", items, 3)) == [["out-b"], [], ["out-a", "out-c"]]


def test_broadcast_gives_every_partition_every_file() -> None:
    items = [item("model.pkl"), item("labels.json")]
    assert paths(partition.split("broadcast", items, 3)) == [["labels.json", "model.pkl"]] * 3


def test_gather_gives_the_single_partition_every_file() -> None:
    items = [item("part-1.csv", origin=1), item("part-0.csv", origin=0)]
    assert paths(partition.split("gather", items, 1)) == [["part-0.csv", "part-1.csv"]]


def test_custom_calls_the_users_function_with_sorted_items() -> None:
    items = [item("c"), item("a"), item("b"), item("d")]
    parts = partition.split("custom", items, 2, {"function": f"{HERE}:round_robin"})
    assert paths(parts) == [["a", "c"], ["b", "d"]]


def test_sweep_grid_is_one_combination_per_partition_with_values_as_mlflow_params() -> None:
    grid: dict[str, list[Any]] = {"lr": [0.1, 0.01], "batch": [32], "shuffle": [True, False]}
    assert partition.sweep_grid(grid) == [
        {"batch": "32", "lr": "0.1", "shuffle": "true"},
        {"batch": "32", "lr": "0.1", "shuffle": "false"},
        {"batch": "32", "lr": "0.01", "shuffle": "true"},
        {"batch": "32", "lr": "0.01", "shuffle": "false"},
    ]
    assert partition.sweep_grid({}) == [{}]


def test_effective_partitions_never_leaves_a_partition_idle() -> None:
    items = [item("a/1", 1, k="x"), item("a/2", 1, k="x"), item("b/1", 1, k="y")]
    assert partition.effective_partitions("file", items, 8) == 3
    assert partition.effective_partitions("directory", items, 8) == 2
    assert partition.effective_partitions("key", items, 8, {"key": "k"}) == 2
    assert partition.effective_partitions("file", [], 8) == 1
    assert partition.effective_partitions("broadcast", items, 8) == 8


def test_ten_thousand_empty_files_spread_by_count() -> None:
    items = [item(f"empty-{i:05}") for i in range(10_000)] + [item("big", 10**9)]
    sizes = [len(part) for part in partition.split("file", items, 4)]
    assert max(sizes) - min(sizes) <= 1


# -- strategies -------------------------------------------------------------------------------------------

segments = st.text(alphabet="abxyz01_-.", min_size=1, max_size=5).filter(lambda s: s not in (".", ".."))
relpaths = st.lists(segments, min_size=1, max_size=3).map("/".join)
sizes = st.one_of(st.just(0), st.integers(0, 100), st.integers(0, 10**9))
# Equal dicts in a different key order are one key; 1, "1" and True are three.
labels = st.sampled_from(["cat", "dog", 1, "1", True, None, [1, 2], {"x": 1, "y": 2}, {"y": 2, "x": 1}])


@st.composite
def listings(draw: st.DrawFn, max_size: int = 40, origins: int | None = None) -> list[InputItem]:
    """Files with nested relative paths, sizes including 0, a `label` and sometimes other metadata.

    Two buckets, so the same relative path can occur under two URIs (as when gathering upstream partitions).
    """
    places = draw(
        st.lists(st.tuples(st.sampled_from(["b1", "b2"]), relpaths), unique=True, max_size=max_size)
    )
    return [
        InputItem(
            uri=f"s3://{bucket}/{path}",
            relpath=path,
            size=draw(sizes),
            metadata={
                "label": draw(labels),
                **draw(st.dictionaries(st.sampled_from(["day", "site"]), labels)),
            },
            origin=None if origins is None else draw(st.integers(0, origins - 1)),
        )
        for bucket, path in places
    ]


partition_counts = st.integers(1, 12)


def identities(items: Sequence[InputItem]) -> Counter[tuple[str, str]]:
    return Counter((i.uri, i.relpath) for i in items)


def unit_of(kind: str) -> Callable[[InputItem], str]:
    if kind == "file":
        return lambda i: f"{i.uri} {i.relpath}"
    if kind == "directory":
        return lambda i: i.relpath.split("/")[0]
    return lambda i: json.dumps(i.metadata["label"], sort_keys=True)


def options_for(kind: str) -> dict[str, str]:
    return {"key": {"key": "label"}, "custom": {"function": f"{HERE}:round_robin"}}.get(kind, {})


# -- properties -------------------------------------------------------------------------------------------


@PROPERTY
@given(kind=st.sampled_from(BALANCED), items=listings(), n=partition_counts)
def test_balanced_kinds_put_every_file_in_exactly_one_of_n_sorted_partitions(
    kind: str, items: list[InputItem], n: int
) -> None:
    parts = partition.split(kind, items, n, options_for(kind))
    assert len(parts) == n
    assert identities([i for part in parts for i in part]) == identities(items)
    for part in parts:
        assert part == sorted(part, key=lambda i: (i.relpath, i.uri))


@PROPERTY
@given(kind=st.sampled_from(BALANCED), items=listings(), n=partition_counts)
def test_no_partition_gets_more_than_its_share_plus_the_largest_unit(
    kind: str, items: list[InputItem], n: int
) -> None:
    unit = unit_of(kind)
    unit_bytes: Counter[str] = Counter()
    for i in items:
        unit_bytes[unit(i)] += i.size
    parts = partition.split(kind, items, n, options_for(kind))
    largest = max(unit_bytes.values(), default=0)
    total = sum(unit_bytes.values())
    for part in parts:
        assert sum(i.size for i in part) * n <= total + largest * n  # max <= total / n + largest unit
    homes: dict[str, set[int]] = {}
    for index, part in enumerate(parts):
        for i in part:
            homes.setdefault(unit(i), set()).add(index)
    assert all(len(where) == 1 for where in homes.values())  # a unit is never split


@PROPERTY
@given(items=listings(), n=partition_counts)
def test_empty_files_spread_evenly_by_count(items: list[InputItem], n: int) -> None:
    empty = [InputItem(i.uri, i.relpath, 0) for i in items]
    counts = [len(part) for part in partition.split_files(empty, n)]
    assert max(counts) - min(counts) <= 1


@PROPERTY
@given(kind=st.sampled_from(BALANCED), items=listings(), requested=partition_counts)
def test_the_effective_partition_count_leaves_no_partition_empty(
    kind: str, items: list[InputItem], requested: int
) -> None:
    n = partition.effective_partitions(kind, items, requested, options_for(kind))
    assert 1 <= n <= requested
    parts = partition.split(kind, items, n, options_for(kind))
    assert all(parts) or not items


@PROPERTY
@given(
    kind=st.sampled_from(partition.PARTITIONER_KINDS),
    n=partition_counts,
    data=st.data(),
)
def test_the_same_files_in_any_order_split_the_same_way(kind: str, n: int, data: st.DataObject) -> None:
    n = 1 if kind == "gather" else n
    items = data.draw(listings(origins=n))
    shuffled = data.draw(st.permutations(items))
    assert partition.split(kind, shuffled, n, options_for(kind)) == partition.split(
        kind, items, n, options_for(kind)
    )


@PROPERTY
@given(data=st.data(), n=partition_counts)
def test_one_to_one_routes_every_file_by_its_origin(data: st.DataObject, n: int) -> None:
    items = data.draw(listings(origins=n))
    parts = partition.split_one_to_one(items, n)
    assert len(parts) == n
    assert identities([i for part in parts for i in part]) == identities(items)
    assert all(i.origin == index for index, part in enumerate(parts) for i in part)


@PROPERTY
@given(items=listings(), n=partition_counts)
def test_broadcast_and_gather_hand_out_the_whole_listing(items: list[InputItem], n: int) -> None:
    ordered = sorted(items, key=lambda i: (i.relpath, i.uri))
    assert partition.broadcast(items, n) == [ordered] * n
    assert partition.gather(items, 1) == [ordered]


@PROPERTY
@given(items=listings(), n=partition_counts)
def test_a_correct_custom_partitioner_is_accepted(items: list[InputItem], n: int) -> None:
    parts = partition.split_custom(items, n, f"{HERE}:round_robin")
    assert len(parts) == n
    assert identities([i for part in parts for i in part]) == identities(items)


grids = st.dictionaries(
    st.text(alphabet="abcdefgh_", min_size=1, max_size=6),
    st.lists(st.one_of(st.integers(-5, 5), st.booleans(), st.text(max_size=3)), min_size=1, max_size=3),
    max_size=4,
)


@PROPERTY
@given(grid=grids)
def test_sweep_grid_is_the_cartesian_product(grid: dict[str, list[Any]]) -> None:
    combos = partition.sweep_grid(grid)
    size = 1
    for values in grid.values():
        size *= len(values)
    assert len(combos) == size
    for combo in combos:
        assert list(combo) == sorted(grid)
        assert all(value in [as_param(v) for v in grid[name]] for name, value in combo.items())
    assert combos[0] == {name: as_param(values[0]) for name, values in grid.items()}
    assert combos[-1] == {name: as_param(values[-1]) for name, values in grid.items()}


def as_param(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


# -- custom partitioners used above, and ones that get it wrong -------------------------------------------


def round_robin(items: list[InputItem], n: int) -> list[list[InputItem]]:
    return [items[i::n] for i in range(n)]


def one_partition_short(items: list[InputItem], n: int) -> list[list[InputItem]]:
    return round_robin(items, n)[:-1]


def first_file_twice(items: list[InputItem], n: int) -> list[list[InputItem]]:
    parts = round_robin(items, n)
    parts[-1].append(items[0])
    return parts


def drops_everything(items: list[InputItem], n: int) -> list[list[InputItem]]:
    return [[] for _ in range(n)]


def invents_a_file(items: list[InputItem], n: int) -> list[list[InputItem]]:
    return [*round_robin(items, n)[:-1], [*round_robin(items, n)[-1], item("made-up.csv")]]


def returns_a_dict(items: list[InputItem], n: int) -> dict[int, list[InputItem]]:
    return dict(enumerate(round_robin(items, n)))


def returns_paths(items: list[InputItem], n: int) -> list[list[str]]:
    return paths(round_robin(items, n))


def crashes(items: list[InputItem], n: int) -> list[list[InputItem]]:
    raise ValueError("no idea how to split")


NOT_A_FUNCTION = 42

FIVE = [item("a.csv"), item("b.csv"), item("c.csv"), item("d.csv"), item("e.csv")]


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("one_partition_short", "returned 3 partitions, expected 4"),
        ("first_file_twice", "item 'a.csv' appears 2 times (in partitions 0, 3)"),
        (
            "drops_everything",
            "lost 5 item(s), e.g. 'a.csv'; every input item must be in exactly one partition",
        ),
        ("invents_a_file", "returned item 'made-up.csv', which is not in its input"),
        ("returns_a_dict", "returned a dict; expected a list of 4 lists of InputItem"),
        ("returns_paths", "partition 0 holds a str; expected a list of 4 lists of InputItem"),
        ("crashes", "raised ValueError: no idea how to split; fix the function"),
        ("NOT_A_FUNCTION", "is a int, not a function"),
        (
            "no_such_function",
            f"module {HERE!r} has no attribute 'no_such_function'; check the name after ':'",
        ),
    ],
)
def test_a_custom_partitioner_that_gets_it_wrong_is_named_with_what_went_wrong(
    function: str, message: str
) -> None:
    spec = f"{HERE}:{function}"
    with pytest.raises(PartitionError) as info:
        partition.split("custom", FIVE, 4, {"function": spec})
    assert f"custom partitioner {spec!r}" in str(info.value)
    assert message in str(info.value)


def test_a_custom_partitioner_that_cannot_be_imported_says_how_to_fix_it() -> None:
    assert message_of(lambda: partition.split_custom(FIVE, 2, "no_such_pkg.splits:by_day")) == (
        "custom partitioner 'no_such_pkg.splits:by_day': cannot import module 'no_such_pkg.splits' "
        "(No module named 'no_such_pkg'); install the package that provides it where the control plane runs, "
        "or put it on PYTHONPATH"
    )
    assert message_of(lambda: partition.split_custom(FIVE, 2, "no_colon_here")) == (
        "custom partitioner 'no_colon_here' is not of the form 'package.module:function', "
        "e.g. 'my_pkg.splits:by_day'"
    )


# -- what a user reads when the DAG asks for something impossible -----------------------------------------


def message_of(call: Callable[[], object]) -> str:
    with pytest.raises(PartitionError) as info:
        call()
    return str(info.value)


def test_a_file_without_the_key_names_the_file_and_the_call_that_records_it() -> None:
    items = [item("ok.csv", label="cat"), item("b/missing.csv"), item("c/missing.csv")]
    assert message_of(lambda: partition.split("key", items, 2, {"key": "label"})) == (
        "file 'b/missing.csv' (and 1 more file(s)) has no metadata 'label', which the `key` partitioner "
        "splits by; the upstream task must call task.log_output(path, label=...) for every file it writes"
    )
    assert "task.log_output(path, **{'class-id': ...})" in message_of(
        lambda: partition.split_by_key(items, 2, "class-id")
    )


def test_one_to_one_from_a_source_or_a_node_with_more_partitions_is_refused() -> None:
    assert message_of(lambda: partition.split("one-to-one", [item("raw.csv")], 2)) == (
        "file 'raw.csv' was not produced by an upstream partition (it comes from a source node); "
        "one-to-one needs an upstream project node with the same partition count; "
        "use `file` or `broadcast` to split a source"
    )
    assert message_of(lambda: partition.split("one-to-one", [item("out.csv", origin=5)], 4)) == (
        "file 'out.csv' came from upstream partition 5, but this node has 4 partition(s); "
        "one-to-one needs an upstream project node with the same partition count: "
        "give both nodes the same `partitions`"
    )


def test_gather_into_more_than_one_partition_is_refused() -> None:
    assert "the node has 3 partitions; set `partitions: 1` on the node" in message_of(
        lambda: partition.split("gather", FIVE, 3)
    )


def test_unknown_kinds_missing_options_and_zero_partitions_are_refused() -> None:
    assert message_of(lambda: partition.split("round-robin", FIVE, 2)) == (
        "unknown partitioner 'round-robin'; "
        "use one of: file, directory, key, one-to-one, broadcast, gather, custom"
    )
    assert message_of(lambda: partition.split("key", FIVE, 2)) == (
        "the `key` partitioner needs `key:` (the metadata field to split by) on the edge"
    )
    assert "needs `function:`" in message_of(lambda: partition.split("custom", FIVE, 2, {}))
    assert message_of(lambda: partition.split("file", FIVE, 0)) == (
        "a node needs at least 1 partition, got 0; set `partitions` to 1 or more"
    )
    assert "unknown partitioner 'files'" in message_of(
        lambda: partition.effective_partitions("files", FIVE, 2)
    )


def test_a_negative_size_is_a_broken_listing() -> None:
    assert "file 'bad.csv' has a negative size (-1)" in message_of(
        lambda: partition.split_files([item("bad.csv", -1)], 2)
    )


def test_a_sweep_parameter_without_values_is_refused() -> None:
    assert message_of(lambda: partition.sweep_grid({"lr": [0.1], "depth": []})) == (
        "sweep parameter 'depth' has no values; give at least one or remove it"
    )
    assert "sweep parameter 'lr' must be a list of values, got '0.1'" in message_of(
        lambda: partition.sweep_grid({"lr": "0.1"})
    )
    assert "the sweep has 100,000,000 combinations, more than the 10,000 a sweep may have" in message_of(
        lambda: partition.sweep_grid({name: list(range(100)) for name in "abcd"})
    )
