"""Partitioners: how one input of a node is split among the node's partitions.

The control plane splits every incoming edge of a stage once, when it plans the stage, and stores one manifest
per partition (see `plan`). So splitting is pure and deterministic: the same listing, in any order, gives the
same partitions, and a restarted control plane or a retried task sees exactly the same slice. It is also
O(files · log partitions), so that a listing of millions of files plans in seconds.

The kinds, as an edge in a DAG document names them:

- `file`: every file is a unit; units are balanced by bytes.
- `directory`: the first component of a file's relative path is a unit (a top-level file is its own unit).
- `key`: files sharing the value of one metadata field (written upstream by `task.log_output`) are a unit.
- `one-to-one`: the files upstream partition i produced go to partition i.
- `broadcast`: every partition gets every file.
- `gather`: the single partition of a fan-in node gets every file.
- `custom`: a `package.module:function(items, n)` the user supplies, checked for a complete, exact split.

Units are balanced greedily, largest first into the partition with the fewest bytes (LPT), so no partition
gets more than `total bytes / n + largest unit`. Units of zero bytes carry no load, so they are spread by file
count instead. Within a partition, files are ordered by relative path.
"""

from __future__ import annotations

import heapq
import importlib
import itertools
import json
import math
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from operator import attrgetter
from typing import Any, TypeGuard

from concurrent_mlflow.errors import PartitionError
from concurrent_mlflow.manifest import InputItem

PARTITIONER_KINDS: tuple[str, ...] = (
    "file",
    "directory",
    "key",
    "one-to-one",
    "broadcast",
    "gather",
    "custom",
)

# A node has at most this many partitions (the DAG schema's limit).
MAX_PARTITIONS = 1_000_000
# A sweep has at most this many combinations, checked when a DAG is validated. Every combination is a
# parameter set held in the plan, a task and an MLflow child run; planning 10^6 took the engine's loop
# minutes. A grid beyond 10^4 points is better searched at random or split over several nodes.
MAX_SWEEP_COMBINATIONS = 10_000

Partitions = list[list[InputItem]]

# json.dumps builds a new encoder on every call with these options; one shared encoder is 2.5x faster.
_canonical_json = json.JSONEncoder(sort_keys=True, default=str).encode


# -- the dispatcher --


def split(
    kind: str, items: Sequence[InputItem], n: int, options: Mapping[str, Any] | None = None
) -> Partitions:
    """Split `items` into `n` partitions the way the edge's partitioner `kind` says.

    `options` carries what a kind needs besides the items: `{"key": field}` for `key`, `{"function":
    "package.module:function"}` for `custom`.
    """
    _check_kind(kind)
    _check_count(n)
    if kind == "key":
        return split_by_key(items, n, _option(options, "key", "key", "the metadata field to split by"))
    if kind == "custom":
        return split_custom(items, n, _option(options, "custom", "function", "package.module:function"))
    return _SPLITTERS[kind](items, n)


def effective_partitions(
    kind: str, items: Sequence[InputItem], requested: int, options: Mapping[str, Any] | None = None
) -> int:
    """How many partitions a node should run: no more than there are units to give them, and at least 1.

    Only `file`, `directory` and `key` can run out of units; every other kind keeps `requested`. For `key`
    without `options["key"]` the number of files is used, an upper bound on the number of keys.
    """
    _check_kind(kind)
    _check_count(requested)
    if kind == "file":
        units = len(items)
    elif kind == "directory":
        units = len({_top_level(item) for item in items})
    elif kind == "key" and options and options.get("key"):
        units = len(set(_key_units(items, str(options["key"]))))
    elif kind == "key":
        units = len(items)
    else:
        return requested
    return max(1, min(requested, units))


# -- balanced kinds --


def split_files(items: Sequence[InputItem], n: int) -> Partitions:
    """Balance files by bytes; every file is its own unit."""
    _check_count(n)
    ordered = _sorted(items)
    return _route(ordered, range(len(ordered)), [item.size for item in ordered], [1] * len(ordered), n)


def split_directories(items: Sequence[InputItem], n: int) -> Partitions:
    """Balance top-level directories by bytes; all files below one top-level directory stay together."""
    _check_count(n)
    ordered = _sorted(items)
    return _split_units(ordered, [_top_level(item) for item in ordered], n)


def split_by_key(items: Sequence[InputItem], n: int, key: str) -> Partitions:
    """Balance groups of files that share the value of metadata field `key`; a group stays together."""
    _check_count(n)
    ordered = _sorted(items)
    return _split_units(ordered, _key_units(ordered, key), n)


def _split_units(ordered: list[InputItem], unit_names: list[str], n: int) -> Partitions:
    """Balance `ordered` where file i belongs to the unit named `unit_names[i]`."""
    index = {name: u for u, name in enumerate(sorted(set(unit_names)))}
    unit_of = [index[name] for name in unit_names]
    weights, counts = [0] * len(index), [0] * len(index)
    for u, item in zip(unit_of, ordered, strict=True):
        weights[u] += item.size
        counts[u] += 1
    return _route(ordered, unit_of, weights, counts, n)


def _route(
    ordered: list[InputItem], unit_of: Sequence[int], weights: list[int], counts: list[int], n: int
) -> Partitions:
    """Put each file where its unit was assigned; files keep their sorted order within a partition."""
    _check_sizes(ordered)
    assignment = _assign(weights, counts, n)
    parts: Partitions = [[] for _ in range(n)]
    for u, item in zip(unit_of, ordered, strict=True):
        parts[assignment[u]].append(item)
    return parts


def _assign(weights: list[int], counts: list[int], n: int) -> list[int]:
    """Partition of each unit: LPT by bytes, then zero-byte units spread by file count.

    Ties go to the unit that comes first and to the partition with the fewest files, then the lowest index.
    """
    assignment = [0] * len(weights)
    heavy = sorted((u for u, w in enumerate(weights) if w > 0), key=weights.__getitem__, reverse=True)
    loads = [(0, 0, p) for p in range(n)]  # (bytes, files, partition); sorted, so already a heap
    for u in heavy:
        size, files, p = loads[0]
        assignment[u] = p
        heapq.heapreplace(loads, (size + weights[u], files + counts[u], p))
    empty = sorted((u for u, w in enumerate(weights) if w == 0), key=counts.__getitem__, reverse=True)
    by_files = sorted((files, p) for _, files, p in loads)
    for u in empty:
        files, p = by_files[0]
        assignment[u] = p
        heapq.heapreplace(by_files, (files + counts[u], p))
    return assignment


def _top_level(item: InputItem) -> str:
    return item.relpath.split("/", 1)[0]


def _key_units(items: Sequence[InputItem], key: str) -> list[str]:
    """The unit name of every file: its `key` value as canonical JSON, so 1 and "1" are different keys."""
    missing = [item.relpath for item in items if key not in item.metadata]
    if missing:
        more = f" (and {len(missing) - 1} more file(s))" if len(missing) > 1 else ""
        raise PartitionError(
            f"file {min(missing)!r}{more} has no metadata {key!r}, which the `key` partitioner splits by; "
            f"the upstream task must call {_log_output_call(key)} for every file it writes"
        )
    return [_canonical_json(item.metadata[key]) for item in items]


def _log_output_call(key: str) -> str:
    return (
        f"task.log_output(path, {key}=...)"
        if key.isidentifier()
        else f"task.log_output(path, **{{{key!r}: ...}})"
    )


# -- routing kinds --


def split_one_to_one(items: Sequence[InputItem], n: int) -> Partitions:
    """The files upstream partition i produced go to partition i."""
    _check_count(n)
    parts: Partitions = [[] for _ in range(n)]
    for item in _sorted(items):
        if item.origin is None or not 0 <= item.origin < n:
            raise _origin_error(item, n)
        parts[item.origin].append(item)
    return parts


def _origin_error(item: InputItem, n: int) -> PartitionError:
    fix = "one-to-one needs an upstream project node with the same partition count"
    if item.origin is None:
        return PartitionError(
            f"file {item.relpath!r} was not produced by an upstream partition (it comes from a source node); "
            f"{fix}; use `file` or `broadcast` to split a source"
        )
    return PartitionError(
        f"file {item.relpath!r} came from upstream partition {item.origin}, but this node has {n} "
        f"partition(s); {fix}: give both nodes the same `partitions`"
    )


def broadcast(items: Sequence[InputItem], n: int) -> Partitions:
    """Every partition gets every file (a model, a lookup table, a config)."""
    _check_count(n)
    ordered = _sorted(items)
    return [list(ordered) for _ in range(n)]


def gather(items: Sequence[InputItem], n: int) -> Partitions:
    """The one partition of a fan-in node gets every file."""
    _check_count(n)
    if n != 1:
        raise PartitionError(
            f"the `gather` partitioner sends every file to one partition, but the node has {n} partitions; "
            "set `partitions: 1` on the node, or use `broadcast` to give every partition all files"
        )
    return [_sorted(items)]


# -- custom --


def split_custom(items: Sequence[InputItem], n: int, function: str) -> Partitions:
    """Call the user's `package.module:function(items, n)` and check that it split the items exactly."""
    _check_count(n)
    split_function = _load_function(function)
    ordered = _sorted(items)
    try:
        result = split_function(list(ordered), n)
    except Exception as exc:
        raise PartitionError(
            f"custom partitioner {function!r} raised {type(exc).__name__}: {exc}; fix the function"
        ) from exc
    parts = _checked_shape(result, n, function)
    _check_exact_cover(ordered, parts, function)
    return parts


def _load_function(spec: str) -> Callable[..., Any]:
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise PartitionError(
            f"custom partitioner {spec!r} is not of the form 'package.module:function', "
            "e.g. 'my_pkg.splits:by_day'"
        )
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise PartitionError(
            f"custom partitioner {spec!r}: cannot import module {module_name!r} ({exc}); install the package "
            "that provides it where the control plane runs, or put it on PYTHONPATH"
        ) from exc
    except Exception as exc:
        raise PartitionError(
            f"custom partitioner {spec!r}: importing module {module_name!r} failed with "
            f"{type(exc).__name__}: {exc}; fix the module"
        ) from exc
    for name in attribute.split("."):
        if not hasattr(target, name):
            raise PartitionError(
                f"custom partitioner {spec!r}: module {module_name!r} has no attribute {attribute!r}; "
                "check the name after ':'"
            )
        target = getattr(target, name)
    if not callable(target):
        raise PartitionError(f"custom partitioner {spec!r} is a {type(target).__name__}, not a function")
    return target  # type: ignore[no-any-return]


def _checked_shape(result: object, n: int, spec: str) -> Partitions:
    expected = f"expected a list of {n} lists of InputItem"
    if not _is_sequence(result):
        raise PartitionError(f"custom partitioner {spec!r} returned a {type(result).__name__}; {expected}")
    if len(result) != n:
        raise PartitionError(f"custom partitioner {spec!r} returned {len(result)} partitions, expected {n}")
    for index, part in enumerate(result):
        if not _is_sequence(part):
            raise PartitionError(
                f"custom partitioner {spec!r}: partition {index} is a {type(part).__name__}; {expected}"
            )
        for value in part:
            if not isinstance(value, InputItem):
                raise PartitionError(
                    f"custom partitioner {spec!r}: partition {index} holds a {type(value).__name__}; "
                    f"{expected}"
                )
    return [list(part) for part in result]


def _is_sequence(value: object) -> TypeGuard[Sequence[Any]]:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def _check_exact_cover(ordered: list[InputItem], parts: Partitions, spec: str) -> None:
    """Every input item must come back exactly once, identified by (uri, relpath)."""
    rule = "every input item must be in exactly one partition"
    wanted = Counter(_identity(item) for item in ordered)
    got = Counter(_identity(item) for part in parts for item in part)
    for item in (item for part in parts for item in part):
        if not wanted[_identity(item)]:
            raise PartitionError(
                f"custom partitioner {spec!r} returned item {item.relpath!r}, which is not in its input; "
                f"{rule}"
            )
        if got[_identity(item)] > wanted[_identity(item)]:
            where = [str(i) for i, part in enumerate(parts) for x in part if _identity(x) == _identity(item)]
            raise PartitionError(
                f"custom partitioner {spec!r}: item {item.relpath!r} appears {len(where)} times "
                f"(in partitions {', '.join(where)}); {rule}"
            )
    lost = wanted - got
    if lost:
        first = next(item.relpath for item in ordered if _identity(item) in lost)
        raise PartitionError(
            f"custom partitioner {spec!r} lost {lost.total()} item(s), e.g. {first!r}; {rule}"
        )


def _identity(item: InputItem) -> Hashable:
    return (item.uri, item.relpath)


# -- parameter sweeps --


def sweep_grid(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, str]]:
    """Every combination of a parameter grid, one partition each, with values as MLflow params (strings).

    Parameter names come in sorted order and the first name varies slowest; values keep the order given.
    Booleans are written `true` / `false`, the way YAML and MLprojects spell them.
    """
    names = sorted(grid)
    for name in names:
        values = grid[name]
        if not _is_sequence(values):
            raise PartitionError(f"sweep parameter {name!r} must be a list of values, got {values!r}")
        if not values:
            raise PartitionError(f"sweep parameter {name!r} has no values; give at least one or remove it")
    combinations = math.prod(len(grid[name]) for name in names)
    if combinations > MAX_SWEEP_COMBINATIONS:
        raise PartitionError(
            f"the sweep has {combinations:,} combinations, more than the {MAX_SWEEP_COMBINATIONS:,} "
            "a sweep may have; sweep fewer values"
        )
    columns = [[_param_str(value) for value in grid[name]] for name in names]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*columns)]


def _param_str(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


# -- shared checks --

_BY_PATH = attrgetter("relpath")
_BY_ALL = attrgetter("relpath", "uri", "size")


def _sorted(items: Sequence[InputItem]) -> list[InputItem]:
    """Items in a canonical order, whatever order they came in: by relpath, then uri, then size.

    Sorting by relpath alone is twice as fast, and relpaths are almost always unique, so the full key is
    used only when two items share one.
    """
    ordered = sorted(items, key=_BY_PATH)
    if any(a.relpath == b.relpath for a, b in itertools.pairwise(ordered)):
        ordered.sort(key=_BY_ALL)
    return ordered


def _check_sizes(items: Sequence[InputItem]) -> None:
    negative = next((item for item in items if item.size < 0), None)
    if negative is not None:
        raise PartitionError(
            f"file {negative.relpath!r} has a negative size ({negative.size}); the listing that produced it "
            "is wrong: list the input again"
        )


def _check_count(n: int) -> None:
    if n < 1:
        raise PartitionError(f"a node needs at least 1 partition, got {n}; set `partitions` to 1 or more")


def _check_kind(kind: str) -> None:
    if kind not in PARTITIONER_KINDS:
        raise PartitionError(f"unknown partitioner {kind!r}; use one of: {', '.join(PARTITIONER_KINDS)}")


def _option(options: Mapping[str, Any] | None, kind: str, name: str, what: str) -> str:
    value = (options or {}).get(name)
    if not value:
        raise PartitionError(f"the `{kind}` partitioner needs `{name}:` ({what}) on the edge")
    return str(value)


_SPLITTERS: dict[str, Callable[[Sequence[InputItem], int], Partitions]] = {
    "file": split_files,
    "directory": split_directories,
    "one-to-one": split_one_to_one,
    "broadcast": broadcast,
    "gather": gather,
}
