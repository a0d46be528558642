"""Talking to a registered cluster's API server with the official `kubernetes` client: the reachability check.

Every client gets its own `Configuration` built from the cluster's stored kubeconfig (never the process-wide
default, so clusters cannot leak into each other), no retries and short timeouts, so a check of a dead
cluster answers in seconds. What a check reports is scrubbed of every credential in the kubeconfig.
"""

from __future__ import annotations

import atexit
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from concurrent_mlflow import cloud_auth, kubeconfig
from concurrent_mlflow.errors import ConcurrentError, SecretKeyError
from concurrent_mlflow.store import clusters
from concurrent_mlflow.store.crypto import Cipher
from concurrent_mlflow.store.db import Store
from concurrent_mlflow.store.models import utcnow

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

TIMEOUT_SECONDS = 5.0
MAX_MESSAGE = 500
_CLIENT_LOCK = threading.Lock()  # the kubeconfig loader's file cache is process-wide
_KEY_DIR: str | None = None
_BEARER = re.compile(r"(?i)(bearer|basic)\s+[^\s'\",]+")
_CLOUD_TOKEN = re.compile(r"(k8s-aws-v1\.|ya29\.)[A-Za-z0-9_.\-]+")  # EKS and Google access tokens
_PEM = re.compile(r"-----BEGIN [A-Z ]+-----.*?(-----END [A-Z ]+-----|$)", re.S)


@dataclass(frozen=True)
class CheckResult:
    reachable: bool
    message: str
    server_version: str | None
    checked_at: datetime


class _Unreachable(Exception):
    """A check step's verdict: the cluster cannot be used, for the reason given (already safe to show)."""


def check_cluster(store: Store, cipher: Cipher, name: str, timeout: float = TIMEOUT_SECONDS) -> CheckResult:
    """Check a registered cluster and record the result on it (`reachable`, `check_message`, `checked_at`)."""
    cluster = clusters.get(store, name)
    try:
        document = clusters.credentials(store, cipher, name)
    except SecretKeyError as exc:
        result = CheckResult(False, str(exc), None, utcnow())
    else:
        result = check(document, cluster.namespace, timeout)
    clusters.record_check(store, name, result.reachable, result.message, result.checked_at)
    return result


def secret_values(document: dict[str, Any]) -> list[str]:
    """Every credential a cluster's stored document holds: the kubeconfig's and its cloud sign-in's."""
    cloud = cloud_auth.secrets_of(document.get(cloud_auth.CONFIG_KEY) or {})
    return sorted({*kubeconfig.secret_values(document), *cloud}, key=len, reverse=True)


def check(document: dict[str, Any], namespace: str, timeout: float = TIMEOUT_SECONDS) -> CheckResult:
    """Does the API server answer, accept the credentials, have the namespace, let us create Jobs?

    Never raises for anything the cluster does: the answer is in the result, with a message that names
    the problem and contains no credential."""
    secrets = secret_values(document)
    server = document["clusters"][0]["cluster"].get("server", "?")
    try:
        with api_client(document) as client:
            version = _version(client, timeout)
            note = _namespace(client, namespace, timeout)
    except _Unreachable as exc:
        return CheckResult(False, scrub(str(exc), secrets), None, utcnow())
    except Exception as exc:  # the client raises many kinds; each is reported, none is fatal
        return CheckResult(False, scrub(f"{server}: {describe(exc)}", secrets), None, utcnow())
    return CheckResult(True, scrub(f"Kubernetes {version} at {server}; {note}", secrets), version, utcnow())


@contextmanager
def api_client(document: dict[str, Any]) -> Iterator[ApiClient]:
    """A short-lived client for one single-context kubeconfig, with no retries (a check must answer fast)."""
    client = _new_client(document, retries=0)
    try:
        yield client
    finally:
        client.close()


def persistent_client(document: dict[str, Any]) -> ApiClient:
    """A client for the executor: it lives as long as the executor, with the library's default retries."""
    return _new_client(document, retries=None)


def _new_client(document: dict[str, Any], retries: int | None) -> ApiClient:
    from kubernetes import config
    from kubernetes.client import ApiClient, Configuration

    configuration = Configuration()
    if retries is not None:
        configuration.retries = retries
    cloud = document.get(cloud_auth.CONFIG_KEY)
    kube_document = {k: v for k, v in document.items() if k != cloud_auth.CONFIG_KEY}
    # The loader writes key material to files it caches by content for the life of the process, so they
    # go in one private directory that lives as long as the process (removed at exit).
    with _CLIENT_LOCK:
        config.load_kube_config_from_dict(
            kube_document, client_configuration=configuration, persist_config=False, temp_file_path=_key_dir()
        )
    if cloud:
        _sign_in(configuration, cloud_auth.TokenSource(cloud))
    return ApiClient(configuration)


def _sign_in(configuration: Any, source: cloud_auth.TokenSource) -> None:
    """Every request carries the source's current token: the client asks the hook before each one, and
    the source mints a new token shortly before the current one expires."""
    configuration.api_key = {"authorization": f"Bearer {source.token()}"}
    configuration.refresh_api_key_hook = lambda conf: conf.api_key.update(
        authorization=f"Bearer {source.token()}"
    )


def _key_dir() -> str:
    global _KEY_DIR
    if _KEY_DIR is None:
        _KEY_DIR = tempfile.mkdtemp(prefix="concurrent-kube-")  # mode 0700
        atexit.register(shutil.rmtree, _KEY_DIR, True)
    return _KEY_DIR


def describe(exc: BaseException) -> str:
    """A short, human reason for a client failure (not the client's repr, which can be long)."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import MaxRetryError, NameResolutionError, NewConnectionError, SSLError
    from urllib3.exceptions import TimeoutError as Timeout

    reason = exc.reason if isinstance(exc, MaxRetryError) and exc.reason is not None else exc
    if isinstance(reason, ApiException):
        return f"the API server answered HTTP {reason.status} {reason.reason}{_status_message(reason)}"
    if isinstance(reason, NameResolutionError):
        return "cannot resolve the API server's host name"
    if isinstance(reason, NewConnectionError):
        return f"cannot connect ({str(reason).rsplit(': ', 1)[-1]})"
    if isinstance(reason, Timeout | TimeoutError):
        return "no answer in time (is the address right, and reachable from the control plane?)"
    if isinstance(reason, SSLError):
        return f"TLS failed ({reason}); check certificate-authority-data or tls-server-name"
    if isinstance(reason, ConcurrentError):
        return str(reason)
    return f"{type(reason).__name__}: {reason}"


def scrub(text: str, secrets: list[str]) -> str:
    """Remove every credential (and anything shaped like one) from text that will be shown or stored."""
    for secret in secrets:
        text = text.replace(secret, "***")
    text = _PEM.sub("<PEM removed>", _BEARER.sub(r"\1 ***", _CLOUD_TOKEN.sub(r"\1***", text)))
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def _version(client: ApiClient, timeout: float) -> str:
    from kubernetes.client import VersionApi

    info = VersionApi(client).get_code(_request_timeout=(timeout, timeout))
    return str(info.git_version)


def _namespace(client: ApiClient, namespace: str, timeout: float) -> str:
    """Whether the namespace exists (if we may read it) and whether we may create Jobs in it."""
    from kubernetes.client import CoreV1Api
    from kubernetes.client.exceptions import ApiException

    seen = f"namespace {namespace!r} exists"
    try:
        CoreV1Api(client).read_namespace(namespace, _request_timeout=(timeout, timeout))
    except ApiException as exc:
        if exc.status == 401:
            raise _Unreachable("the API server rejected the credentials (HTTP 401 Unauthorized)") from None
        if exc.status == 404:
            raise _Unreachable(
                f"namespace {namespace!r} does not exist; create it (kubectl create namespace {namespace}) "
                "or choose another one"
            ) from None
        if exc.status != 403:
            raise
        seen = f"namespace {namespace!r} (not readable with these credentials)"
    return f"{seen}; {_may_create_jobs(client, namespace, timeout)}"


def _may_create_jobs(client: ApiClient, namespace: str, timeout: float) -> str:
    from kubernetes.client import (
        AuthorizationV1Api,
        V1ResourceAttributes,
        V1SelfSubjectAccessReview,
        V1SelfSubjectAccessReviewSpec,
    )
    from kubernetes.client.exceptions import ApiException

    attributes = V1ResourceAttributes(namespace=namespace, verb="create", group="batch", resource="jobs")
    review = V1SelfSubjectAccessReview(spec=V1SelfSubjectAccessReviewSpec(resource_attributes=attributes))
    try:
        answer = AuthorizationV1Api(client).create_self_subject_access_review(
            review, _request_timeout=(timeout, timeout)
        )
    except ApiException as exc:
        return f"could not ask whether Jobs may be created there (HTTP {exc.status})"
    status = answer.status
    if status is not None and status.allowed:
        return "may create Jobs there"
    why = f": {status.reason}" if status is not None and status.reason else ""
    return f"may NOT create Jobs there{why}; tasks will fail until that is granted"


def _status_message(exc: Any) -> str:
    """The `message` of the Kubernetes Status object an error response carries, if any."""
    import json

    try:
        message = json.loads(exc.body or "{}").get("message")
    except (ValueError, AttributeError):
        return ""
    return f": {message}" if isinstance(message, str) and message else ""
