"""Bounded YAML: alias bombs are refused after work proportional to the text, ordinary YAML loads as before."""

from __future__ import annotations

import pytest
import yaml

from concurrent_mlflow import bounded_yaml
from concurrent_mlflow.bounded_yaml import BoundedLoader, ExpansionError


def alias_bomb(levels: int = 9, width: int = 9, key: str = "lol") -> str:
    """Billion laughs: each level is a list of `width` aliases of the level before; width**levels leaves."""
    lines = [f"  - &l0 [{', '.join(['lol'] * width)}]"]
    lines += [f"  - &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    return f"{key}:\n" + "\n".join(lines) + "\n"


def refusal(text: str, **limits: int) -> tuple[str, BoundedLoader]:
    loader = BoundedLoader(text, **limits)
    with pytest.raises(ExpansionError) as info:
        loader.get_single_data()
    return str(info.value.problem), loader


def test_an_alias_bomb_is_refused_after_composing_only_the_nodes_written() -> None:
    message, loader = refusal(alias_bomb())
    assert message == (
        "the document expands to more than 100,000 nodes (values, lists and mappings) through YAML aliases; "
        "write the values out or use fewer aliases"
    )
    assert loader.composed <= 9 * 9 + 20  # the nodes written in the text, not the 9**9 they stand for


def test_a_bomb_of_long_strings_is_refused_on_characters() -> None:
    text = "s: &s " + "x" * 10_000 + "\nl: &l [" + ", ".join(["*s"] * 200) + "]\n"
    message, _ = refusal(text)
    assert message.startswith("the document expands to more than 1,048,576 characters of text through YAML")


def test_merge_keys_count_what_they_copy() -> None:
    lines = ["m0: &m0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8}"]
    lines += [f"m{i}: &m{i} {{<<: [{', '.join([f'*m{i - 1}'] * 8)}]}}" for i in range(1, 9)]
    message, loader = refusal("\n".join(lines))
    assert "through YAML aliases" in message
    assert loader.composed < 200


def test_an_alias_inside_its_own_anchor_is_refused() -> None:
    message, _ = refusal("a: &a [1, *a]")
    assert message.startswith("an alias refers to the node that contains it")


def test_a_large_document_without_aliases_is_told_to_split() -> None:
    message, _ = refusal("[" + ", ".join(["1"] * 200) + "]", max_nodes=100)
    assert (
        message
        == "the document has more than 100 nodes (values, lists and mappings); split it into smaller documents"
    )


@pytest.mark.parametrize(
    "text",
    [
        "a: 1\nb: [x, {c: 2.5, d: true}]\n",
        "base: &base {retries: 2, env: local}\nnode: {<<: *base, retries: 3}\n",
        "x: &x [1, 2]\ny: *x\nz: [*x, *x]\n",
        alias_bomb(levels=3, width=3),
        "",
        "when: 2024-01-02\n",
    ],
)
def test_ordinary_yaml_loads_as_safe_load_does(text: str) -> None:
    assert bounded_yaml.load(text) == yaml.safe_load(text)


def test_the_limit_is_on_the_expanded_size_exactly() -> None:
    text = alias_bomb(levels=2, width=10)  # mapping, key, list; [10 leaves]: 11; [10 x *l0]: 1 + 10 * 11
    assert bounded_yaml.load(text, max_nodes=125) == yaml.safe_load(text)
    refusal(text, max_nodes=124)
