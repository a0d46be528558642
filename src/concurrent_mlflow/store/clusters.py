"""Registered clusters: where tasks may run. Credentials are stored encrypted and never leave this module
except through `credentials()`, which the reachability check (and later the Kubernetes executor) calls.

What callers get back is a `Cluster`: the settings and the last check, never the kubeconfig or its key
material, so an API response or a log line built from it cannot carry a secret.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from concurrent_mlflow import cloud_auth, kubeconfig
from concurrent_mlflow.dag import Toleration
from concurrent_mlflow.errors import ClusterConfigError, ClusterNotFoundError, ConcurrentError, ConflictError
from concurrent_mlflow.store.crypto import Cipher
from concurrent_mlflow.store.db import Store
from concurrent_mlflow.store.models import ClusterRow, utcnow

# A DNS label: cluster names will appear in Kubernetes object labels and MLflow tags.
NAME = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
IMAGE = r"^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}$"


class PodDefaults(BaseModel):
    """What every task pod on a cluster gets, beside what a DAG node asks for (node values win)."""

    model_config = ConfigDict(extra="forbid")
    tracking_uri: str | None = Field(
        None, max_length=2000, description="MLflow as pods reach it, if not the control plane's URI."
    )
    service_account: str | None = Field(None, max_length=253)
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict, description="Extra pod labels (cost centre, team).")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables for tasks.")
    cache_claim: str | None = Field(
        None, max_length=253, description="PersistentVolumeClaim for the uv and environment caches (/cache)."
    )


def pod_defaults(value: Any) -> dict[str, Any]:
    """Validated pod defaults as stored (JSON), or ClusterConfigError naming the field."""
    try:
        model = PodDefaults.model_validate(value or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ClusterConfigError(f"pod.{where}: {first['msg']}") from None
    return model.model_dump(mode="json", by_alias=True, exclude_defaults=True)


@dataclass(frozen=True)
class Cluster:
    name: str
    kind: str
    context: str
    namespace: str
    server: str
    auth: str
    image: str | None
    pod: dict[str, Any]  # pod settings: node_selector, tolerations, labels, env, service_account, ...
    created_by: str | None
    created_at: datetime
    checked_at: datetime | None
    reachable: bool | None
    check_message: str | None


def validate_name(name: str) -> str:
    if not re.fullmatch(NAME, name):
        raise ClusterConfigError(
            f"name: {name[:80]!r} is not a valid cluster name: lowercase letters, digits and '-', "
            "starting and ending with a letter or digit, at most 63 characters"
        )
    return name


def register(
    store: Store,
    cipher: Cipher,
    name: str,
    kubeconfig_text: str,
    *,
    context: str | None = None,
    namespace: str | None = None,
    image: str | None = None,
    user: str | None = None,
    pod: Any = None,
    cloud: Mapping[str, Any] | None = None,
) -> Cluster:
    """Validate the kubeconfig, keep only the chosen context, store it encrypted; a taken name is refused.
    With `cloud` (cloud_auth.py), the control plane signs in itself and the kubeconfig gives the API
    server's address and CA only."""
    validate_name(name)
    loaded = kubeconfig.load(kubeconfig_text, context, namespace)
    row = ClusterRow(name=name, kind="kubernetes", created_by=user)
    _set_kubeconfig(row, cipher, loaded, _image(image), _cloud(cloud, loaded))
    row.config = {**row.config, "pod": pod_defaults(pod)}
    try:
        with store.transaction() as session:
            if session.get(ClusterRow, name) is not None:
                raise ConflictError(
                    f"A cluster named {name!r} is registered already; update it "
                    f"(`concurrent cluster update {name}`) or remove it first."
                )
            session.add(row)
    except IntegrityError:  # registered by someone else between our check and the insert
        raise ConflictError(f"A cluster named {name!r} is registered already.") from None
    return _cluster(row)


def update(
    store: Store,
    cipher: Cipher,
    name: str,
    *,
    kubeconfig_text: str | None = None,
    context: str | None = None,
    namespace: str | None = None,
    image: str | None = None,
    pod: Any = None,
    cloud: Mapping[str, Any] | None = None,
) -> Cluster:
    """Change settings or credentials; None keeps a value, `image=""` (or `pod={}`) clears it. New
    credentials or a new namespace forget the last check, which no longer says anything about them. A
    new kubeconfig without a user keeps the cluster's cloud sign-in; one with its own credentials ends it."""
    with store.transaction() as session:
        row = _row(session.get(ClusterRow, name), name)
        config = dict(row.config)
        if kubeconfig_text is not None or cloud is not None:
            chosen = context or config["context"]
            if kubeconfig_text is None:  # a new sign-in for the stored address and CA
                kubeconfig_text = kubeconfig.dump(
                    kubeconfig.without_user(_without_cloud(_decrypt(row, cipher)))
                )
            loaded = kubeconfig.load(kubeconfig_text, chosen, namespace or config["namespace"])
            kept = _stored_cloud(row, cipher) if cloud is None and loaded.auth == "none" else None
            _set_kubeconfig(row, cipher, loaded, config.get("image"), _cloud(cloud or kept, loaded))
        elif context is not None and context != config["context"]:
            raise ClusterConfigError(
                f"context: cluster {name!r} stores only context {config['context']!r}; to use {context!r} "
                "give the kubeconfig that has it as well"
            )
        elif namespace is not None:
            loaded = kubeconfig.validate(_decrypt(row, cipher), namespace)
            row.config = {**config, "namespace": loaded.namespace}
            _forget_check(row)
        if image is not None:
            row.config = {**row.config, "image": _image(image) if image else None}
        if pod is not None:
            row.config = {**row.config, "pod": pod_defaults(pod)}
        session.flush()
        return _cluster(row)


def get(store: Store, name: str) -> Cluster:
    with store.transaction() as session:
        return _cluster(_row(session.get(ClusterRow, name), name))


def list_clusters(store: Store) -> list[Cluster]:
    with store.transaction() as session:
        return [_cluster(row) for row in session.scalars(select(ClusterRow).order_by(ClusterRow.name))]


def delete(store: Store, name: str) -> None:
    with store.transaction() as session:
        session.delete(_row(session.get(ClusterRow, name), name))


def credentials(store: Store, cipher: Cipher, name: str) -> dict[str, Any]:
    """The decrypted single-context kubeconfig: for talking to the cluster, never for showing."""
    with store.transaction() as session:
        return _decrypt(_row(session.get(ClusterRow, name), name), cipher)


def record_check(
    store: Store, name: str, reachable: bool, message: str, at: datetime | None = None
) -> Cluster:
    with store.transaction() as session:
        row = _row(session.get(ClusterRow, name), name)
        row.reachable, row.check_message, row.checked_at = reachable, message[:2000], at or utcnow()
        return _cluster(row)


def rotate(store: Store, cipher: Cipher) -> int:
    """Re-encrypt every cluster's credentials under the cipher's first key; how many were rewritten."""
    with store.transaction() as session:
        rows = [row for row in session.scalars(select(ClusterRow)) if row.secret is not None]
        for row in rows:
            assert row.secret is not None
            row.secret = cipher.rotate(row.secret, f"the credentials of cluster {row.name!r}")
    return len(rows)


def _set_kubeconfig(
    row: ClusterRow,
    cipher: Cipher,
    loaded: kubeconfig.Kubeconfig,
    image: str | None,
    cloud: dict[str, Any] | None = None,
) -> None:
    document = {**loaded.document, **({cloud_auth.CONFIG_KEY: cloud} if cloud else {})}
    row.secret = cipher.encrypt(json.dumps(document, sort_keys=True).encode())
    row.config = {
        "context": loaded.context,
        "namespace": loaded.namespace,
        "server": loaded.server,
        "auth": cloud_auth.describe(cloud) if cloud else loaded.auth,
        "image": image,
        "pod": (row.config or {}).get("pod", {}),
    }
    _forget_check(row)


def _cloud(cloud: Mapping[str, Any] | None, loaded: kubeconfig.Kubeconfig) -> dict[str, Any] | None:
    if cloud is None:
        return None
    if loaded.auth != "none":
        raise ClusterConfigError(
            f"kubeconfig: its user has credentials of its own ({loaded.auth}); with --eks or --gke the "
            "control plane signs in itself, so give a kubeconfig context without a user (the CLI drops it)"
        )
    return cloud_auth.checked(cloud)


def _stored_cloud(row: ClusterRow, cipher: Cipher) -> dict[str, Any] | None:
    """The cluster's cloud sign-in, if its stored credentials can still be read (new credentials are how
    a cluster whose key was lost is repaired, so an unreadable old one is no error here)."""
    try:
        found = _decrypt(row, cipher).get(cloud_auth.CONFIG_KEY)
    except ConcurrentError:
        return None
    return dict(found) if isinstance(found, dict) else None


def _without_cloud(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k != cloud_auth.CONFIG_KEY}


def _forget_check(row: ClusterRow) -> None:
    row.reachable, row.check_message, row.checked_at = None, None, None


def _decrypt(row: ClusterRow, cipher: Cipher) -> dict[str, Any]:
    if row.secret is None:
        raise ClusterConfigError(
            f"Cluster {row.name!r} has no stored credentials; update it with a kubeconfig."
        )
    document: dict[str, Any] = json.loads(
        cipher.decrypt(row.secret, f"the credentials of cluster {row.name!r}")
    )
    return document


def _image(image: str | None) -> str | None:
    if image is not None and not re.fullmatch(IMAGE, image):
        raise ClusterConfigError(f"image: {image[:80]!r} is not a container image reference")
    return image


def _row(row: ClusterRow | None, name: str) -> ClusterRow:
    if row is None:
        raise ClusterNotFoundError(f"No cluster named {name!r}; `concurrent cluster list` shows them.")
    return row


def _cluster(row: ClusterRow) -> Cluster:
    config = row.config or {}
    return Cluster(
        name=row.name,
        kind=row.kind,
        context=str(config.get("context", "")),
        namespace=str(config.get("namespace", "")),
        server=str(config.get("server", "")),
        auth=str(config.get("auth", "")),
        image=config.get("image"),
        pod=dict(config.get("pod") or {}),
        created_by=row.created_by,
        created_at=row.created_at,
        checked_at=row.checked_at,
        reachable=row.reachable,
        check_message=row.check_message,
    )
