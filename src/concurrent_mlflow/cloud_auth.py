"""Short-lived Kubernetes tokens minted by the control plane itself from a cloud identity: EKS and GKE
clusters without their kubeconfigs' `exec` plugins (`aws eks get-token`, `gke-gcloud-auth-plugin`), which a
server must never run.

- EKS: a presigned STS `GetCallerIdentity` URL, signed with botocore for the header `x-k8s-aws-id: <cluster>`,
  base64url-encoded behind `k8s-aws-v1.`: what `aws eks get-token` prints and what EKS's authenticator
  checks with STS. The identity is the server's ambient one (IRSA, an instance role, the environment), or
  stored access keys, optionally assuming `role_arn` first.
- GKE: an OAuth2 access token from google-auth, for a stored service-account key or the ambient identity
  (workload identity, application default credentials).

A `TokenSource` keeps the current token and mints the next one a few minutes before it expires; a token
is never logged, stored or returned by the API (kube.scrub removes anything shaped like one).
"""

from __future__ import annotations

import base64
import functools
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from concurrent_mlflow.errors import ClusterConfigError

CONFIG_KEY = "concurrent-cloud-auth"  # beside the kubeconfig in a cluster's encrypted document
EKS_TOKEN_PREFIX = "k8s-aws-v1."
EKS_TOKEN_SECONDS = 14 * 60  # EKS accepts a presigned URL for 15 minutes
REFRESH_MARGIN_SECONDS = 5 * 60
CALL_TIMEOUT_SECONDS = (
    10  # a cloud call (AssumeRole, a token endpoint): a dead endpoint must not hang a check
)
GKE_SCOPES = (
    "https://www.googleapis.com/auth/cloud-platform",
    "https://www.googleapis.com/auth/userinfo.email",
)
EKS_FIELDS = {
    "cluster",
    "region",
    "role_arn",
    "access_key_id",
    "secret_access_key",
    "session_token",
    "sts_endpoint",
}
GKE_FIELDS = {"cluster", "service_account_key"}
SECRET_FIELDS = ("secret_access_key", "session_token", "service_account_key")


def checked(config: Mapping[str, Any]) -> dict[str, Any]:
    """A cloud sign-in config as stored, or ClusterConfigError naming the field and the fix."""
    kind = config.get("kind")
    fields = {"eks": EKS_FIELDS, "gke": GKE_FIELDS}.get(str(kind))
    if fields is None:
        raise ClusterConfigError(f"cloud sign-in: kind {kind!r} is not one of eks, gke")
    unknown = sorted(set(config) - fields - {"kind"})
    if unknown:
        raise ClusterConfigError(f"cloud sign-in ({kind}): unknown field(s) {', '.join(unknown)}")
    if kind == "eks":
        for name in ("cluster", "region"):
            if not isinstance(config.get(name), str) or not config[name]:
                raise ClusterConfigError(
                    f"cloud sign-in (eks): `{name}` is required (--eks CLUSTER --region R)"
                )
        if bool(config.get("access_key_id")) != bool(config.get("secret_access_key")):
            raise ClusterConfigError(
                "cloud sign-in (eks): give both access_key_id and secret_access_key, or none"
            )
    key = config.get("service_account_key")
    if (
        kind == "gke"
        and key is not None
        and (not isinstance(key, dict) or key.get("type") != "service_account")
    ):
        raise ClusterConfigError(
            "cloud sign-in (gke): service_account_key must be a service-account JSON key"
        )
    return {k: v for k, v in config.items() if v is not None}


def describe(config: Mapping[str, Any]) -> str:
    """What may be shown of a config: its kind and whose identity, never a secret."""
    if config.get("kind") == "eks":
        who = config.get("role_arn") or (
            "stored access keys" if config.get("access_key_id") else "ambient identity"
        )
        return f"eks ({config['cluster']}, {config['region']}, {who})"
    key = config.get("service_account_key")
    who = key.get("client_email", "a service account") if isinstance(key, dict) else "ambient identity"
    return f"gke ({config['cluster']}, {who})" if config.get("cluster") else f"gke ({who})"


def secrets_of(config: Mapping[str, Any]) -> list[str]:
    """The stored secrets of a config, to scrub from messages."""
    found: list[str] = []
    for name in SECRET_FIELDS:
        value = config.get(name)
        if isinstance(value, str) and value:
            found.append(value)
        elif isinstance(value, dict) and isinstance(value.get("private_key"), str):
            found.append(value["private_key"])
    return found


@dataclass(frozen=True)
class Token:
    value: str
    expires_at: float  # time.time()


class TokenSource:
    """The current token of one cluster, minted again shortly before it expires (thread-safe)."""

    def __init__(self, config: Mapping[str, Any], mint: Callable[[Mapping[str, Any]], Token] | None = None):
        self.config = dict(config)
        self._mint = mint or mint_token
        self._lock = threading.Lock()
        self._token: Token | None = None

    def token(self) -> str:
        with self._lock:
            if self._token is None or self._token.expires_at - time.time() < REFRESH_MARGIN_SECONDS:
                self._token = self._mint(self.config)
            return self._token.value


def mint_token(config: Mapping[str, Any]) -> Token:
    try:
        return _mint_eks(config) if config.get("kind") == "eks" else _mint_gke(config)
    except ClusterConfigError:
        raise
    except Exception as exc:  # botocore / google-auth raise many kinds; the cause is what the user needs
        raise ClusterConfigError(
            f"cloud sign-in ({describe(config)}) failed: {_short(exc, config)}"
        ) from None


def _mint_eks(config: Mapping[str, Any]) -> Token:
    import botocore.session
    from botocore.config import Config
    from botocore.credentials import Credentials
    from botocore.signers import RequestSigner

    session = botocore.session.Session()
    if config.get("access_key_id"):
        session.set_credentials(
            config["access_key_id"], config["secret_access_key"], config.get("session_token")
        )
    region, endpoint = config["region"], config.get("sts_endpoint")
    credentials = session.get_credentials()
    if credentials is None:
        raise ClusterConfigError(
            f"cloud sign-in ({describe(config)}): no AWS identity here (no IRSA web identity, instance "
            "role or AWS_* variables); give the server one, or register access keys"
        )
    bounded = Config(
        connect_timeout=CALL_TIMEOUT_SECONDS, read_timeout=CALL_TIMEOUT_SECONDS, retries={"max_attempts": 2}
    )
    sts = session.create_client("sts", region_name=region, endpoint_url=endpoint, config=bounded)
    if config.get("role_arn"):
        assumed = sts.assume_role(RoleArn=config["role_arn"], RoleSessionName="concurrent-mlflow")[
            "Credentials"
        ]
        credentials = Credentials(assumed["AccessKeyId"], assumed["SecretAccessKey"], assumed["SessionToken"])
    signer = RequestSigner(
        sts.meta.service_model.service_id,
        region,
        "sts",
        "v4",
        credentials,
        session.get_component("event_emitter"),
    )
    request = {
        "method": "GET",
        "url": f"{sts.meta.endpoint_url}/?Action=GetCallerIdentity&Version=2011-06-15",
        "body": {},
        "headers": {"x-k8s-aws-id": config["cluster"]},
        "context": {},
    }
    url = signer.generate_presigned_url(request, region_name=region, expires_in=60, operation_name="")
    encoded = base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")
    return Token(EKS_TOKEN_PREFIX + encoded, time.time() + EKS_TOKEN_SECONDS)


def _mint_gke(config: Mapping[str, Any]) -> Token:
    import google.auth
    import google.auth.transport.requests
    from google.oauth2 import service_account

    key = config.get("service_account_key")
    if key:
        credentials: Any = service_account.Credentials.from_service_account_info(key, scopes=list(GKE_SCOPES))
    else:
        credentials, _ = google.auth.default(scopes=list(GKE_SCOPES))
    request = google.auth.transport.requests.Request()
    credentials.refresh(functools.partial(request, timeout=CALL_TIMEOUT_SECONDS))  # its default is 120 s
    expiry = credentials.expiry  # naive UTC, as google-auth keeps it
    expires = expiry.replace(tzinfo=UTC).timestamp() if isinstance(expiry, datetime) else time.time() + 3000
    return Token(str(credentials.token), expires)


def _short(exc: BaseException, config: Mapping[str, Any]) -> str:
    text = f"{type(exc).__name__}: {exc}"
    for secret in secrets_of(config):
        text = text.replace(secret, "***")
    return text[:400]
