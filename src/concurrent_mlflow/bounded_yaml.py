"""YAML for documents users send us, with the cost of reading them bounded.

PyYAML builds an alias (`*a`) as a reference to the anchored object, so a 500-byte "billion laughs"
document (`a: &a [x, x]`, `b: &b [*a, *a]`, ...) loads in microseconds; but everything that then walks the
result (our NUL check, pydantic, `Dag.to_yaml`) pays for the fully expanded tree, which can have 10^9 nodes.
`load` counts, while composing, the nodes and scalar characters the document would have with every alias
written out, and refuses it as soon as either passes its limit: the work done is proportional to the text
read, never to the expansion. An alias inside its own anchor (`&a [*a]`) would expand forever and is
refused too.

Merge keys (`<<: *a`) copy the merged pairs, so they are counted like the aliases they are written with.
"""

from __future__ import annotations

from typing import Any

import yaml

# A real DAG document has hundreds of nodes; these leave room for 512 KiB written out by hand (the API's
# size cap) and for modest use of anchors, and keep everything that walks the result well under a second.
MAX_NODES = 100_000
MAX_CHARS = 2 * 512 * 1024


class ExpansionError(yaml.MarkedYAMLError):
    """The document is too large once its aliases are expanded, or an alias refers to itself."""


class BoundedLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader whose composer measures the expanded size of every node it builds.

    `composed` counts the nodes really built (the work done); tests use it to prove a bomb costs little.
    """

    def __init__(self, stream: str, *, max_nodes: int = MAX_NODES, max_chars: int = MAX_CHARS) -> None:
        super().__init__(stream)
        self.max_nodes = max_nodes
        self.max_chars = max_chars
        self.composed = 0
        self.aliases = 0
        self._sizes: dict[yaml.Node, tuple[int, int]] = {}

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        is_alias = self.check_event(yaml.AliasEvent)
        mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
        node = super().compose_node(parent, index)
        if node is None:
            return None
        size = self._sizes.get(node)
        if size is None and is_alias:
            raise ExpansionError(
                problem="an alias refers to the node that contains it, so the document never ends; "
                "write the values out instead",
                problem_mark=mark,
            )
        if size is None:
            size = self._sizes[node] = self._measure(node)
            self.composed += 1
        self.aliases += is_alias
        if size[0] > self.max_nodes or size[1] > self.max_chars:
            raise ExpansionError(problem=self._too_large(size), problem_mark=mark)
        return node

    def _measure(self, node: yaml.Node) -> tuple[int, int]:
        """(nodes, scalar characters) of `node` with every alias written out; its children are measured."""
        if isinstance(node, yaml.ScalarNode):
            return 1, len(node.value)
        mapping = isinstance(node, yaml.MappingNode)
        children = [c for pair in node.value for c in pair] if mapping else node.value
        sizes = [self._sizes[child] for child in children]
        return 1 + sum(n for n, _ in sizes), sum(c for _, c in sizes)

    def _too_large(self, size: tuple[int, int]) -> str:
        if size[0] > self.max_nodes:
            what = f"more than {self.max_nodes:,} nodes (values, lists and mappings)"
        else:
            what = f"more than {self.max_chars:,} characters of text"
        if self.aliases:
            fix = "write the values out or use fewer aliases"
            return f"the document expands to {what} through YAML aliases; {fix}"
        return f"the document has {what}; split it into smaller documents"


def load(text: str, *, max_nodes: int = MAX_NODES, max_chars: int = MAX_CHARS) -> Any:
    """The one YAML document in `text`, like `yaml.safe_load`; raises ExpansionError past the limits."""
    loader = BoundedLoader(text, max_nodes=max_nodes, max_chars=max_chars)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
