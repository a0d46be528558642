"""Preparing a cluster for the executor, run by an operator with admin rights on their own machine.

`concurrent cluster bootstrap` creates the task namespace (Pod Security `restricted`), a ServiceAccount for
the control plane, a Role holding exactly what the executor uses (`EXECUTOR_RULES`, the rules of
deploy/kubernetes/tasks-rbac.yaml) and its RoleBinding, then asks the TokenRequest API for a bound token of
that ServiceAccount with an expiry and registers the cluster with that token alone: the operator's own
credentials (often an `exec` plugin such as `aws eks get-token`) never leave their machine.
`cluster rotate-token` asks for a new token and replaces the stored one. Re-running either is safe: objects
that exist are brought back to what they should be, not created twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from concurrent_mlflow.errors import ClusterConfigError

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

ACCOUNT = "concurrent"
ROLE = "concurrent-executor"
LABELS = {"app.kubernetes.io/name": "concurrent-mlflow", "app.kubernetes.io/part-of": "concurrent-mlflow"}
POD_SECURITY = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "warn", "audit")}
# What the executor does in the task namespace, and nothing more (kept equal to tasks-rbac.yaml by a test).
JOB_VERBS = ["create", "get", "list", "watch", "delete", "patch"]
EXECUTOR_RULES: list[dict[str, list[str]]] = [
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": JOB_VERBS},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
]
MIN_TOKEN_SECONDS = 600  # the TokenRequest API's own minimum


@dataclass(frozen=True)
class BoundToken:
    token: str
    expires_at: datetime | None


def objects(namespace: str, account: str = ACCOUNT) -> list[dict[str, Any]]:
    """The namespace, ServiceAccount, Role and RoleBinding, as the API takes them (and --dry-run prints)."""
    meta = {"namespace": namespace, "labels": LABELS}
    rbac = "rbac.authorization.k8s.io"
    return [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": namespace, "labels": {**LABELS, **POD_SECURITY}},
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": account, **meta},
            "automountServiceAccountToken": False,
        },
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "Role",
            "metadata": {"name": ROLE, **meta},
            "rules": EXECUTOR_RULES,
        },
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "RoleBinding",
            "metadata": {"name": ROLE, **meta},
            "roleRef": {"apiGroup": rbac, "kind": "Role", "name": ROLE},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
        },
    ]


def apply(client: ApiClient, wanted: list[dict[str, Any]]) -> list[str]:
    """Create each object, or bring an existing one back to `wanted`; what was done, one line each."""
    return [_apply_one(client, body) for body in wanted]


def request_token(client: ApiClient, namespace: str, seconds: int, account: str = ACCOUNT) -> BoundToken:
    """A bound token of the ServiceAccount valid for `seconds` (the API server may shorten it)."""
    from kubernetes.client import AuthenticationV1TokenRequest, CoreV1Api, V1TokenRequestSpec

    if seconds < MIN_TOKEN_SECONDS:
        raise ClusterConfigError(f"--token-duration: at least {MIN_TOKEN_SECONDS // 60} minutes")
    body = AuthenticationV1TokenRequest(spec=V1TokenRequestSpec(audiences=[], expiration_seconds=seconds))
    answer = CoreV1Api(client).create_namespaced_service_account_token(account, namespace, body)
    status = answer.status
    if status is None or not status.token:
        raise ClusterConfigError(f"the API server returned no token for ServiceAccount {namespace}/{account}")
    return BoundToken(str(status.token), status.expiration_timestamp)


def token_kubeconfig(admin: dict[str, Any], token: str, namespace: str, name: str) -> dict[str, Any]:
    """A kubeconfig reaching the cluster of the reduced `admin` kubeconfig with `token` alone."""
    cluster = admin["clusters"][0]["cluster"]
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": name,
        "contexts": [{"name": name, "context": {"cluster": name, "user": name, "namespace": namespace}}],
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": name, "user": {"token": token}}],
    }


def _apply_one(client: ApiClient, body: dict[str, Any]) -> str:
    from kubernetes.client.exceptions import ApiException

    kind, name = body["kind"], body["metadata"]["name"]
    create, replace = _verbs(client, body)
    try:
        create()
        return f"created {kind} {name}"
    except ApiException as exc:
        if exc.status != 409:
            raise
    replace()
    return f"updated {kind} {name}"


def _verbs(client: ApiClient, body: dict[str, Any]) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """(create, bring back to `body`) for one object; a patch, so fields others own are kept."""
    from kubernetes.client import CoreV1Api, RbacAuthorizationV1Api

    core, rbac = CoreV1Api(client), RbacAuthorizationV1Api(client)
    kind, name, namespace = body["kind"], body["metadata"]["name"], body["metadata"].get("namespace")
    body_: Any = body  # the client sends a dict body as it is
    if kind == "Namespace":
        return lambda: core.create_namespace(body_), lambda: core.patch_namespace(name, body_)
    if kind == "ServiceAccount":
        return (
            lambda: core.create_namespaced_service_account(namespace, body_),
            lambda: core.patch_namespaced_service_account(name, namespace, body_),
        )
    if kind == "Role":
        return (
            lambda: rbac.create_namespaced_role(namespace, body_),
            lambda: rbac.replace_namespaced_role(name, namespace, body_),  # rules exactly, none left over
        )
    return (
        lambda: rbac.create_namespaced_role_binding(namespace, body_),
        lambda: rbac.replace_namespaced_role_binding(name, namespace, body_),
    )
