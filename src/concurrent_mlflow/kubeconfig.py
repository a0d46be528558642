"""Kubeconfig documents: parse, pick one context, reduce to it, check it is usable from the control plane.

Pure functions on dicts (no Kubernetes client). What a cluster stores is the *reduced* document: one context,
its cluster and its user, so credentials of the other contexts in a user's kubeconfig are never kept.

A stored kubeconfig must be self-contained and inert: file references (`client-key: ~/.kube/key.pem`)
would be read on the server's file system, and `exec` / `auth-provider` plugins would run commands there,
so both are refused. `flatten` (used by the CLI, on the user's machine) inlines file references the way
`kubectl config view --minify --flatten` does.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from concurrent_mlflow import bounded_yaml
from concurrent_mlflow.errors import ClusterConfigError

MAX_KUBECONFIG = 256 * 1024
NAMESPACE = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"  # a DNS-1123 label, as Kubernetes requires
# Keys of a cluster / user entry that name a file, and the inline key that replaces each.
FILE_KEYS = {
    "certificate-authority": "certificate-authority-data",
    "client-certificate": "client-certificate-data",
    "client-key": "client-key-data",
    "tokenFile": "token",
}
PLUGINS = ("exec", "auth-provider")
SECRET_KEYS = ("token", "password", "client-key-data", "client-certificate-data")
# What the reduced document keeps of each entry (scalars only); `extensions` are tool metadata and dropped.
# Anything else (impersonation `as`, unknown keys) is refused rather than silently changing who we act as.
ALLOWED = {
    "context": {"cluster", "user", "namespace"},
    "cluster": {
        "server",
        "certificate-authority",
        "certificate-authority-data",
        "insecure-skip-tls-verify",
        "tls-server-name",
        "proxy-url",
        "disable-compression",
    },
    "user": {"token", "username", "password", *FILE_KEYS, *FILE_KEYS.values()},
}
DROPPED = {"extensions"}


@dataclass(frozen=True)
class Kubeconfig:
    """A validated, single-context kubeconfig and what may be shown about it (no credentials)."""

    document: dict[str, Any]
    context: str
    namespace: str
    server: str
    auth: str  # token | client-certificate | basic | none


def parse(text: str) -> dict[str, Any]:
    """The YAML document as a dict; errors give line and column but never quote the text (it holds keys)."""
    if len(text.encode()) > MAX_KUBECONFIG:
        raise ClusterConfigError(f"kubeconfig: larger than {MAX_KUBECONFIG // 1024} KiB; is it a kubeconfig?")
    try:
        document = bounded_yaml.load(text)  # an alias bomb would stall whatever walks it
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ClusterConfigError(f"kubeconfig: not valid YAML{where}: {exc.problem}") from None
    except (yaml.YAMLError, ValueError, RecursionError):  # a bad date, or nesting too deep to read
        raise ClusterConfigError("kubeconfig: not valid YAML") from None
    if not isinstance(document, dict):
        raise ClusterConfigError("kubeconfig: expected a mapping with `contexts`, `clusters` and `users`")
    return document


def reduce(document: dict[str, Any], context: str | None) -> dict[str, Any]:
    """Only `context` (default: `current-context`), its cluster and its user: nothing else is kept."""
    name = context or document.get("current-context")
    if not name:
        raise ClusterConfigError(
            "kubeconfig: no `current-context` set; choose one with --context (field `context`)"
        )
    name = str(name)
    chosen = _named(document, "contexts", name, "context")
    cluster_name, user_name = chosen.get("cluster"), chosen.get("user")
    if not isinstance(cluster_name, str) or not cluster_name:
        raise ClusterConfigError(f"kubeconfig: contexts[{name}].context.cluster is missing")
    reduced: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": name,
        "contexts": [{"name": name, "context": chosen}],
        "clusters": [
            {"name": cluster_name, "cluster": _named(document, "clusters", cluster_name, "cluster")}
        ],
        "users": [],
    }
    if user_name:
        reduced["users"] = [
            {"name": str(user_name), "user": _named(document, "users", str(user_name), "user")}
        ]
    return reduced


def validate(document: dict[str, Any], namespace: str | None) -> Kubeconfig:
    """Check a reduced kubeconfig (see `reduce`) can be used from the control plane as it is."""
    context = document["current-context"]
    chosen = document["contexts"][0]["context"]
    cluster = document["clusters"][0]["cluster"]
    user = document["users"][0]["user"] if document["users"] else {}
    where = f"clusters[{document['clusters'][0]['name']}].cluster"
    server = _server(cluster.get("server"), where)
    _inert(cluster, where)
    _base64(cluster, where)
    if user:
        _inert(user, f"users[{document['users'][0]['name']}].user")
        _base64(user, f"users[{document['users'][0]['name']}].user")
    chosen_namespace = validate_namespace(namespace or chosen.get("namespace") or "default")
    return Kubeconfig(document, context, chosen_namespace, server, _auth(user))


def validate_namespace(namespace: Any) -> str:
    if not isinstance(namespace, str) or not re.fullmatch(NAMESPACE, namespace):
        raise ClusterConfigError(
            f"namespace: {str(namespace)[:80]!r} is not a Kubernetes namespace name "
            "(lowercase letters, digits and '-', at most 63)"
        )
    return namespace


def load(text: str, context: str | None, namespace: str | None) -> Kubeconfig:
    """parse + reduce + validate: what registering a cluster does with the text it is given."""
    return validate(reduce(parse(text), context), namespace)


def flatten(document: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """Inline the files a (reduced) kubeconfig refers to, resolving relative paths against `base_dir`."""
    flat = {**document}
    for section, key in (("clusters", "cluster"), ("users", "user")):
        flat[section] = [
            {**entry, key: _inline(entry.get(key) or {}, base_dir, f"{section}[{entry.get('name')}].{key}")}
            for entry in document.get(section) or []
        ]
    return flat


def secret_values(document: dict[str, Any]) -> list[str]:
    """Every credential string in a kubeconfig (and the decoded PEM of base64 ones), to scrub from text."""
    values: list[str] = []
    for entry in document.get("users") or []:
        user = entry.get("user") if isinstance(entry, dict) else None
        for key in SECRET_KEYS:
            value = user.get(key) if isinstance(user, dict) else None
            if isinstance(value, str) and value:
                values.append(value)
                values.extend(_decoded_lines(value) if key.endswith("-data") else [])
    return sorted(set(values), key=len, reverse=True)


def without_user(document: dict[str, Any]) -> dict[str, Any]:
    """A reduced kubeconfig without its user (an exec plugin, say): the API server's address and CA only,
    for a cluster whose control plane signs in itself (cloud_auth.py)."""
    contexts = [
        {**entry, "context": {k: v for k, v in entry["context"].items() if k != "user"}}
        for entry in document["contexts"]
    ]
    return {**document, "contexts": contexts, "users": []}


def dump(document: dict[str, Any]) -> str:
    return yaml.safe_dump(document, sort_keys=False)


def _named(document: dict[str, Any], section: str, name: str, key: str) -> dict[str, Any]:
    """The entry `name` of `section`, keeping only the keys we understand (see ALLOWED)."""
    entries = document.get(section)
    if not isinstance(entries, list):
        raise ClusterConfigError(f"kubeconfig: `{section}` is missing or not a list")
    for entry in entries:
        if isinstance(entry, dict) and entry.get("name") == name:
            body = entry.get(key)
            if not isinstance(body, dict):
                raise ClusterConfigError(f"kubeconfig: {section}[{name}].{key} is missing or not a mapping")
            return _pick(body, key, f"{section}[{name}].{key}")
    known = ", ".join(sorted(str(e.get("name")) for e in entries if isinstance(e, dict))) or "none"
    raise ClusterConfigError(f"kubeconfig: no entry named {name!r} in `{section}` (it has: {known})")


def _pick(body: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    """Known scalar keys only: also keeps alias bombs and stray tool data out of what is stored."""
    picked: dict[str, Any] = {}
    for field, value in body.items():
        if field in DROPPED:
            continue
        if field in PLUGINS and key == "user":
            picked[field] = True  # kept only so that `validate` refuses it by name
            continue
        if field not in ALLOWED[key]:
            raise ClusterConfigError(f"kubeconfig: {where}.{field} is not supported")
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # YAML reads an all-digit token or user name as a number
        if not isinstance(value, str | bool):
            raise ClusterConfigError(f"kubeconfig: {where}.{field} must be a string or a boolean")
        picked[field] = value
    return picked


def _server(server: Any, where: str) -> str:
    if not isinstance(server, str) or not server:
        raise ClusterConfigError(f"kubeconfig: {where}.server is missing: the API server's URL is needed")
    parts = urlsplit(server)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ClusterConfigError(f"kubeconfig: {where}.server must be the http(s):// URL of the API server")
    if parts.username or parts.password:
        raise ClusterConfigError(
            f"kubeconfig: {where}.server carries credentials in the URL; put them in the user entry"
        )
    return server.rstrip("/")


def _inert(entry: dict[str, Any], where: str) -> None:
    for key in PLUGINS:
        if key in entry:
            raise ClusterConfigError(
                f"kubeconfig: {where}.{key} would run a command on the control plane, which is not "
                "supported; use a service-account token (`kubectl create token NAME`) or a client certificate"
            )
    for key, inline in FILE_KEYS.items():
        if key in entry:
            raise ClusterConfigError(
                f"kubeconfig: {where}.{key} refers to a file, which the control plane cannot read; inline it "
                f"as `{inline}` (`concurrent cluster add` does, as does `kubectl config view --flatten`)"
            )


def _base64(entry: dict[str, Any], where: str) -> None:
    """Certificates and keys are base64 in a kubeconfig; catch a paste error now, not at the first task."""
    for key in ("certificate-authority-data", "client-certificate-data", "client-key-data"):
        if key in entry:
            try:
                base64.b64decode(str(entry[key]), validate=True)
            except ValueError:
                raise ClusterConfigError(f"kubeconfig: {where}.{key} is not base64") from None


def _auth(user: dict[str, Any]) -> str:
    if user.get("token"):
        return "token"
    if user.get("client-certificate-data") and user.get("client-key-data"):
        return "client-certificate"
    if user.get("username") and user.get("password"):
        return "basic"
    return "none"


def _inline(entry: dict[str, Any], base_dir: Path, where: str) -> dict[str, Any]:
    flat = {**entry}
    for key, inline in FILE_KEYS.items():
        if key not in flat:
            continue
        reference = str(flat.pop(key))
        if flat.get(inline):
            continue  # the inline data wins, as in kubectl; the path is dropped
        path = (base_dir / Path(reference).expanduser()).resolve()
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise ClusterConfigError(
                f"kubeconfig: {where}.{key}: cannot read {path}: {exc.strerror}"
            ) from None
        flat[inline] = content.decode().strip() if key == "tokenFile" else base64.b64encode(content).decode()
    return flat


def _decoded_lines(value: str) -> list[str]:
    """The base64 lines of a decoded PEM block: what an error message could quote instead of the data."""
    try:
        text = base64.b64decode(value, validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return []
    return [line for line in text.splitlines() if len(line) >= 16 and not line.startswith("-----")]
