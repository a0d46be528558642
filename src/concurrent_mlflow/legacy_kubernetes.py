"""A legacy node's `k8s_params` as our Kubernetes settings: a cluster reference, resources, a node selector.

The original product named a kubeconfig context and namespace per node and passed pod resources as dotted
keys (`resources.requests.cpu`, `resources.limits.nvidia.com/gpu`). We register clusters by name once
(`concurrent cluster add`), so a legacy (context, namespace) becomes a cluster name the node refers to and
a command the user runs to register it. Pure functions: `legacy.py` turns the notes into its report.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from concurrent_mlflow.dag import QUANTITY

CONTEXT_KEYS = ("kube_context", "namespace")
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
_RESOURCE = re.compile(r"^resources\.(requests|limits)\.(cpu|memory|nvidia\.com/gpu|gpu)$")
KNOWN_KEYS = [*CONTEXT_KEYS, "instance_type"] + [
    f"resources.{kind}.{name}"
    for kind in ("requests", "limits")
    for name in ("cpu", "memory", "nvidia.com/gpu")
]

Note = tuple[str, str, Literal["info", "warning", "error"]]  # (where, message, severity)


@dataclass(frozen=True)
class LegacyCluster:
    """A cluster the converted DAG names, and how to register it."""

    name: str
    context: str | None
    namespace: str | None

    @property
    def command(self) -> str:
        options = [
            f"--{key} {value}" for key, value in (("context", self.context), ("namespace", self.namespace))
        ]
        return " ".join(
            ["concurrent cluster add", self.name, *(o for o in options if not o.endswith(" None"))]
        )


@dataclass
class KubernetesSettings:
    """What a node's `k8s_params` became, and notes on what did not carry over."""

    context: str | None = None
    namespace: str | None = None
    resources: dict[str, str | int] = field(default_factory=dict)
    node_selector: dict[str, str] = field(default_factory=dict)
    notes: list[Note] = field(default_factory=list)


def kubernetes_settings(params: Any, where: str) -> KubernetesSettings:
    """Map one node's `k8s_params` (dotted or nested keys); every key is either mapped or noted."""
    found = KubernetesSettings()
    if not isinstance(params, Mapping):
        found.notes.append((where, f"{params!r} is not a mapping of Kubernetes settings; dropped", "error"))
        return found
    for key, value in flatten(params).items():
        _one(found, key, value, f"{where}.{key}")
    return found


def _one(found: KubernetesSettings, key: str, value: Any, where: str) -> None:
    text = str(value).strip() if isinstance(value, str | int | float) and not isinstance(value, bool) else ""
    resource = _RESOURCE.match(key)
    if key in CONTEXT_KEYS and text:
        setattr(found, "context" if key == "kube_context" else "namespace", text)
    elif key == "instance_type" and text:
        found.node_selector[INSTANCE_TYPE_LABEL] = text
    elif resource and text:
        _resource(found, resource.group(2), text, where)
    else:
        found.notes.append(
            (where, f"{value!r} is not carried over{did_you_mean(key, KNOWN_KEYS)}", "warning")
        )


def _resource(found: KubernetesSettings, name: str, text: str, where: str) -> None:
    """Our pods ask the same for requests and limits: the larger legacy value (the limit) wins."""
    target = "gpu" if "gpu" in name else name
    valid = text.isdigit() if target == "gpu" else re.match(QUANTITY, text) is not None
    if not valid:
        found.notes.append((where, f"{text!r} is not a Kubernetes quantity; dropped", "error"))
        return
    value: str | int = int(text) if target == "gpu" else text
    earlier = found.resources.get(target)
    if earlier is not None and earlier != value:
        kept = value if "limits" in where else earlier
        found.notes.append((where, f"{earlier!r} and {value!r}: ours asks one amount; {kept!r} kept", "info"))
        value = kept
    found.resources[target] = value


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"resources": {"requests": {"cpu": 1}}}` -> `{"resources.requests.cpu": 1}` (dotted keys stay)."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat |= flatten(value, f"{name}.")
        else:
            flat[name] = value
    return flat


def cluster_name(context: str | None, namespace: str | None, taken: set[str]) -> str:
    """A valid cluster name after the context (else the namespace), unique among `taken`."""
    base = (
        re.sub(r"[^a-z0-9]+", "-", (context or namespace or "cluster").lower()).strip("-")[:55] or "cluster"
    )
    name, count = base, 2
    while name in taken:
        name, count = f"{base}-{count}", count + 1
    return name


def did_you_mean(key: str, known: list[str]) -> str:
    """`; did you mean 'parallelization'?` for a misspelt field, else ""."""
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
    return f"; did you mean {close[0]!r}?" if close else ""
