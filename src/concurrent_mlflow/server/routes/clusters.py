"""/api/v1/clusters: register Kubernetes clusters, list them, check they are reachable.

Clusters are global, so changing them is for admins; any caller may list, read and check them. No response
carries the kubeconfig or a credential: they go in encrypted and only the check (and later the Kubernetes
executor) decrypts them, inside the server.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Path, Response

from concurrent_mlflow import kube
from concurrent_mlflow.server import schemas as api
from concurrent_mlflow.server.auth import Caller, require_admin
from concurrent_mlflow.server.context import Context
from concurrent_mlflow.store import clusters
from concurrent_mlflow.store.crypto import load_cipher

router = APIRouter(prefix="/clusters", tags=["clusters"])
ClusterName = Annotated[str, Path(pattern=clusters.NAME, description="Cluster name.")]
log = logging.getLogger("concurrent.server")


@router.get("", response_model=list[api.ClusterInfo], summary="Registered clusters and their last check")
def list_clusters(context: Context, caller: Caller) -> list[api.ClusterInfo]:
    return [_info(c) for c in clusters.list_clusters(context.store)]


@router.post("", status_code=201, response_model=api.ClusterInfo, summary="Register a cluster (admins)")
def register_cluster(body: api.ClusterRegister, context: Context, caller: Caller) -> api.ClusterInfo:
    require_admin(caller, "register clusters")
    cluster = clusters.register(
        context.store,
        load_cipher(context.paths.home),
        body.name,
        body.kubeconfig,
        context=body.context,
        namespace=body.namespace,
        image=body.image,
        user=caller.user,
        pod=body.pod.model_dump(mode="json", by_alias=True) if body.pod else None,
        cloud=body.cloud.model_dump(exclude_none=True) if body.cloud else None,
    )
    log.info(
        "cluster %s registered by %s: %s, namespace %s",
        cluster.name,
        caller.user,
        cluster.server,
        cluster.namespace,
    )
    return _info(cluster)


@router.get("/{name}", response_model=api.ClusterInfo, summary="One cluster")
def get_cluster(name: ClusterName, context: Context, caller: Caller) -> api.ClusterInfo:
    return _info(clusters.get(context.store, name))


@router.patch("/{name}", response_model=api.ClusterInfo, summary="Change a cluster's settings or credentials")
def update_cluster(
    name: ClusterName, body: api.ClusterUpdate, context: Context, caller: Caller
) -> api.ClusterInfo:
    require_admin(caller, "change clusters")
    image = (body.image or "") if "image" in body.model_fields_set else None
    cluster = clusters.update(
        context.store,
        load_cipher(context.paths.home),
        name,
        kubeconfig_text=body.kubeconfig,
        context=body.context,
        namespace=body.namespace,
        image=image,
        pod=body.pod.model_dump(mode="json", by_alias=True) if body.pod is not None else None,
        cloud=body.cloud.model_dump(exclude_none=True) if body.cloud else None,
    )
    log.info("cluster %s updated by %s (%s)", name, caller.user, ", ".join(sorted(body.model_fields_set)))
    return _info(cluster)


@router.delete("/{name}", status_code=204, summary="Forget a cluster and its credentials (admins)")
def delete_cluster(name: ClusterName, context: Context, caller: Caller) -> Response:
    require_admin(caller, "remove clusters")
    clusters.delete(context.store, name)
    log.info("cluster %s removed by %s", name, caller.user)
    return Response(status_code=204)


@router.post(
    "/{name}/check",
    response_model=api.ClusterCheck,
    summary="Check the API server answers, the credentials work and the namespace exists (a few seconds)",
)
def check_cluster(name: ClusterName, context: Context, caller: Caller) -> api.ClusterCheck:
    result = kube.check_cluster(context.store, load_cipher(context.paths.home), name)
    log.info("cluster %s checked by %s: reachable=%s", name, caller.user, result.reachable)
    return api.ClusterCheck(
        name=name,
        reachable=result.reachable,
        message=result.message,
        server_version=result.server_version,
        checked_at=result.checked_at,
    )


def _info(cluster: clusters.Cluster) -> api.ClusterInfo:
    return api.ClusterInfo.model_validate({**cluster.__dict__})
