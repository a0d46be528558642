"""`concurrent cluster`: register Kubernetes clusters, list them with their reachability, check, remove.

With --server the commands act on that server's registry (changing it needs an admin token); without, on
this machine's store. The kubeconfig is reduced to one context and its files inlined *here*, so the other
contexts' credentials never leave this machine, and the server never reads a path on its own disk.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import click
from rich.markup import escape
from rich.table import Table

from concurrent_mlflow import kubeconfig
from concurrent_mlflow.cli.base import CliContext, console, err

if TYPE_CHECKING:  # the store, its cipher and the API client are imported by the commands that use them
    from concurrent_mlflow.client import ApiClient
    from concurrent_mlflow.store.clusters import Cluster
    from concurrent_mlflow.store.crypto import Cipher

T = TypeVar("T")
MARKS = {True: "[green]yes[/]", False: "[red]no[/]", None: "[dim]unchecked[/]"}


class ClusterBackend(Protocol):
    def register(
        self,
        name: str,
        text: str,
        context: str,
        namespace: str | None,
        image: str | None,
        pod: Any,
        cloud: dict[str, Any] | None = None,
    ) -> Cluster: ...
    def update(self, name: str, changes: dict[str, Any]) -> Cluster: ...
    def list(self) -> list[Cluster]: ...
    def check(self, name: str) -> tuple[bool, str]: ...
    def remove(self, name: str) -> None: ...


class LocalClusters:
    """This machine's store, with the key under the data dir (or CONCURRENT_SECRET_KEY)."""

    def __init__(self, obj: CliContext) -> None:
        from concurrent_mlflow.store import open_store

        self.store, self.home = open_store(obj.paths.store_url), obj.paths.home

    @property
    def cipher(self) -> Cipher:
        """Loaded when credentials are touched: listing must not create a key file."""
        from concurrent_mlflow.store.crypto import load_cipher

        return load_cipher(self.home)

    def register(
        self,
        name: str,
        text: str,
        context: str,
        namespace: str | None,
        image: str | None,
        pod: Any,
        cloud: dict[str, Any] | None = None,
    ) -> Cluster:
        from concurrent_mlflow.store import clusters

        user = os.environ.get("USER") or None
        return clusters.register(
            self.store,
            self.cipher,
            name,
            text,
            context=context,
            namespace=namespace,
            image=image,
            user=user,
            pod=pod,
            cloud=cloud,
        )

    def update(self, name: str, changes: dict[str, Any]) -> Cluster:
        from concurrent_mlflow.store import clusters

        text = changes.pop("kubeconfig", None)
        return clusters.update(self.store, self.cipher, name, kubeconfig_text=text, **changes)

    def list(self) -> list[Cluster]:
        from concurrent_mlflow.store import clusters

        return clusters.list_clusters(self.store)

    def check(self, name: str) -> tuple[bool, str]:
        from concurrent_mlflow.kube import check_cluster

        result = check_cluster(self.store, self.cipher, name)
        return result.reachable, result.message

    def remove(self, name: str) -> None:
        from concurrent_mlflow.store import clusters

        clusters.delete(self.store, name)


class RemoteClusters:
    def __init__(self, api: ApiClient) -> None:
        self.api = api

    def register(
        self,
        name: str,
        text: str,
        context: str,
        namespace: str | None,
        image: str | None,
        pod: Any,
        cloud: dict[str, Any] | None = None,
    ) -> Cluster:
        body = {
            "name": name,
            "kubeconfig": text,
            "context": context,
            "namespace": namespace,
            "image": image,
            "pod": pod,
            "cloud": cloud,
        }
        return _from_api(self.api.register_cluster(body))

    def update(self, name: str, changes: dict[str, Any]) -> Cluster:
        return _from_api(self.api.update_cluster(name, changes))

    def list(self) -> list[Cluster]:
        return [_from_api(item) for item in self.api.clusters()]

    def check(self, name: str) -> tuple[bool, str]:
        result = self.api.check_cluster(name)
        return bool(result["reachable"]), str(result["message"])

    def remove(self, name: str) -> None:
        self.api.remove_cluster(name)


def backend(obj: CliContext) -> ClusterBackend:
    return RemoteClusters(obj.api()) if obj.server else LocalClusters(obj)


POD_OPTION = click.option(
    "--pod",
    "pod_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="YAML of what every task pod gets: node_selector, tolerations, labels, env, service_account, "
    "cache_claim (a PVC for the uv cache), tracking_uri (MLflow as pods reach it).",
)


def _pod_settings(path: Path) -> dict[str, Any]:
    import yaml

    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise click.BadParameter(f"cannot read {path}: {exc}", param_hint="--pod") from None
    if loaded is not None and not isinstance(loaded, dict):
        raise click.BadParameter(f"{path} must hold a YAML mapping", param_hint="--pod")
    return dict(loaded or {})


KUBECONFIG_OPTION = click.option(
    "--kubeconfig",
    "kubeconfig_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Kubeconfig file [default: $KUBECONFIG, else ~/.kube/config].",
)


CLOUD_OPTIONS = [
    click.option("--eks", "eks_cluster", default=None, metavar="CLUSTER", help="EKS: the server signs in."),
    click.option("--region", default=None, help="--eks: the cluster's AWS region."),
    click.option("--role-arn", default=None, help="--eks: an IAM role the server assumes first."),
    click.option(
        "--aws-keys",
        "aws_keys_file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        default=None,
        help="--eks: JSON access keys (as `aws iam create-access-key` prints them), stored encrypted "
        "[default: the server's own identity: IRSA, instance role, AWS_* variables].",
    ),
    click.option("--sts-endpoint", default=None, help="--eks: another STS endpoint (a VPC endpoint)."),
    click.option(
        "--gke", "gke_cluster", default=None, metavar="PROJECT/LOCATION/CLUSTER", help="GKE: likewise."
    ),
    click.option(
        "--gcp-key",
        "gcp_key_file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        default=None,
        help="--gke: a service-account JSON key, stored encrypted [default: the server's workload identity].",
    ),
]


CLOUD_PARAMETERS = (
    "eks_cluster",
    "region",
    "role_arn",
    "aws_keys_file",
    "sts_endpoint",
    "gke_cluster",
    "gcp_key_file",
)  # fmt: skip  (in _cloud_sign_in's order)


def cloud_options(command: Callable[..., None]) -> Callable[..., None]:
    """The --eks / --gke options, handed to `command` as one `cloud` sign-in (None without them)."""

    @functools.wraps(command)
    def with_cloud(*args: Any, **kwargs: Any) -> None:
        names = (
            "eks_cluster",
            "region",
            "role_arn",
            "aws_keys_file",
            "sts_endpoint",
            "gke_cluster",
            "gcp_key_file",
        )
        given = [kwargs.pop(name) for name in names]
        command(*args, cloud=_cloud_sign_in(*given), **kwargs)

    for option in reversed(CLOUD_OPTIONS):
        with_cloud = option(with_cloud)
    return with_cloud


@click.group()
def cluster() -> None:
    """Kubernetes clusters that nodes can run on: credentials are stored encrypted, never shown."""


@cluster.command("add")
@click.argument("name")
@KUBECONFIG_OPTION
@click.option("--context", default=None, help="Kubeconfig context to use [default: its current-context].")
@click.option("--namespace", default=None, help="Namespace for tasks [default: the context's, else default].")
@click.option("--image", default=None, help="Container image for tasks on this cluster.")
@POD_OPTION
@cloud_options
@click.option("--check/--no-check", default=True, show_default=True, help="Check reachability right away.")
@click.pass_obj
def cluster_add(
    obj: CliContext,
    name: str,
    kubeconfig_file: Path | None,
    context: str | None,
    namespace: str | None,
    image: str | None,
    pod_file: Path | None,
    cloud: dict[str, Any] | None,
    check: bool,
) -> None:
    """Register NAME: one context of a kubeconfig, with the files it refers to inlined, stored encrypted.

    Exec and auth-provider credential plugins are refused (they would run commands on the control
    plane): use a service-account token (`kubectl create token ...`), a client certificate, `concurrent
    cluster bootstrap`, or for EKS and GKE `--eks CLUSTER --region R` / `--gke PROJECT/LOCATION/CLUSTER`:
    the control plane then mints short-lived tokens itself from its own cloud identity (or stored keys),
    and the kubeconfig's context gives only the API server's address and CA (its user is dropped here).
    """
    document = _reduced_for(kubeconfig_file, context, cloud)
    clusters = backend(obj)
    chosen = str(document["current-context"])
    pod = _pod_settings(pod_file) if pod_file else None
    added = clusters.register(name, kubeconfig.dump(document), chosen, namespace, image, pod, cloud)
    console.print(
        f"[green]Cluster {added.name!r} registered[/]: {escape(added.server)}, context "
        f"{escape(repr(added.context))}, namespace {added.namespace!r}, auth {added.auth}."
    )
    if check:
        _check(clusters, name, fail=False)


TOKEN_DURATION = click.option(
    "--token-duration",
    default="30d",
    show_default=True,
    help="How long the ServiceAccount token is valid: 90m, 12h, 30d (the API server may cap it).",
)


@cluster.command("bootstrap")
@click.argument("name")
@KUBECONFIG_OPTION
@click.option(
    "--context", default=None, help="Your admin context [default: the kubeconfig's current-context]."
)
@click.option(
    "--namespace", default="concurrent-tasks", show_default=True, help="The task namespace to create."
)
@TOKEN_DURATION
@click.option("--image", default=None, help="Container image for tasks on this cluster.")
@POD_OPTION
@click.option(
    "--dry-run", is_flag=True, help="Print the objects and what would be registered; change nothing."
)
@click.option("--check/--no-check", default=True, show_default=True, help="Check reachability right away.")
@click.pass_obj
def cluster_bootstrap(
    obj: CliContext,
    name: str,
    kubeconfig_file: Path | None,
    context: str | None,
    namespace: str,
    token_duration: str,
    image: str | None,
    pod_file: Path | None,
    dry_run: bool,
    check: bool,
) -> None:
    """Prepare a cluster with YOUR admin kubeconfig and register it as NAME with a least-privilege token.

    Creates (or brings back) the task namespace (Pod Security `restricted`), the ServiceAccount
    `concurrent`, and the Role and RoleBinding `concurrent-executor` with exactly what the executor uses;
    then registers NAME with a bound token of that ServiceAccount (TokenRequest API, with an expiry). Your
    own credentials, exec plugins included, are used here only and never stored. Safe to re-run; renew the
    token with `concurrent cluster rotate-token NAME`.
    """
    import yaml

    from concurrent_mlflow import cluster_bootstrap as boot

    seconds = _seconds(token_duration)
    wanted = boot.objects(kubeconfig.validate_namespace(namespace))
    admin = _reduced(kubeconfig_file, context)
    if dry_run:
        click.echo(yaml.safe_dump_all(wanted, sort_keys=False), nl=False)  # as it is: `kubectl apply -f -`
        server = admin["clusters"][0]["cluster"].get("server")
        err.print(
            f"Then: a token of ServiceAccount {namespace}/{boot.ACCOUNT} valid {token_duration}, and cluster "
            f"{name!r} registered (or updated) with it for {server}. Nothing was changed.",
            markup=False,
        )
        return
    client = _admin_client(kubeconfig_file, context)
    for line in _kube(lambda: boot.apply(client, wanted)):
        console.print(f"  {line}", markup=False)
    _register_token(obj, name, admin, client, namespace, seconds, image, pod_file, check)


@cluster.command("rotate-token")
@click.argument("name")
@KUBECONFIG_OPTION
@click.option(
    "--context", default=None, help="Your admin context [default: the kubeconfig's current-context]."
)
@TOKEN_DURATION
@click.option("--check/--no-check", default=True, show_default=True, help="Check reachability right away.")
@click.pass_obj
def cluster_rotate_token(
    obj: CliContext,
    name: str,
    kubeconfig_file: Path | None,
    context: str | None,
    token_duration: str,
    check: bool,
) -> None:
    """Replace NAME's stored token by a new one of its ServiceAccount (see `cluster bootstrap`).

    The old token stays valid until it expires: bound tokens cannot be revoked one by one.
    """
    found = [c for c in backend(obj).list() if c.name == name]
    if not found:
        raise click.ClickException(
            f"No cluster named {name!r}; bootstrap it first (`concurrent cluster bootstrap`)."
        )
    admin = _reduced(kubeconfig_file, context)
    client = _admin_client(kubeconfig_file, context)
    _register_token(obj, name, admin, client, found[0].namespace, _seconds(token_duration), None, None, check)


@cluster.command("update")
@click.argument("name")
@KUBECONFIG_OPTION
@click.option("--context", default=None, help="Another context (needs --kubeconfig).")
@click.option("--namespace", default=None, help="Another namespace for tasks.")
@click.option("--image", default=None, help="Another image; an empty string clears it.")
@POD_OPTION
@cloud_options
@click.pass_obj
def cluster_update(
    obj: CliContext,
    name: str,
    kubeconfig_file: Path | None,
    context: str | None,
    namespace: str | None,
    image: str | None,
    pod_file: Path | None,
    cloud: dict[str, Any] | None,
) -> None:
    """Change NAME's credentials (--kubeconfig, or a cloud sign-in with --eks / --gke), namespace or image;
    new credentials forget the last check."""
    changes: dict[str, Any] = {}
    if kubeconfig_file is not None:
        document = _reduced_for(kubeconfig_file, context, cloud)
        changes["kubeconfig"], context = kubeconfig.dump(document), str(document["current-context"])
    if cloud is not None:
        changes["cloud"] = cloud
    changes.update({k: v for k, v in (("context", context), ("namespace", namespace)) if v is not None})
    if image is not None:
        changes["image"] = image
    if pod_file is not None:
        changes["pod"] = _pod_settings(pod_file)
    if not changes:
        raise click.UsageError(
            "Nothing to change: give --kubeconfig, --eks/--gke, --namespace, --image or --pod."
        )
    updated = backend(obj).update(name, changes)
    console.print(f"[green]Cluster {updated.name!r} updated[/]: namespace {updated.namespace!r}.")


@cluster.command("list")
@click.pass_obj
def cluster_list(obj: CliContext) -> None:
    """Registered clusters and what their last check found."""
    found = backend(obj).list()
    images = any(c.image for c in found)
    table = Table()
    table.add_column("name", no_wrap=True)
    table.add_column("server", overflow="fold")
    table.add_column("context / namespace", overflow="fold")
    if images:
        table.add_column("image", overflow="fold")
    table.add_column("reachable", no_wrap=True)
    table.add_column("last check (UTC)", no_wrap=True)
    table.add_column("message", overflow="fold", ratio=1)
    for c in found:
        cells = [c.name, c.server, f"{c.context} / {c.namespace}", *([c.image or ""] if images else [])]
        checked = c.checked_at.strftime("%Y-%m-%d %H:%M") if c.checked_at else ""
        table.add_row(*map(escape, cells), MARKS[c.reachable], checked, escape(c.check_message or ""))
    console.print(table)


@cluster.command("check")
@click.argument("name")
@click.pass_obj
def cluster_check(obj: CliContext, name: str) -> None:
    """Check NAME answers, accepts its credentials and has its namespace; exit 1 if not."""
    _check(backend(obj), name, fail=True)


@cluster.command("remove")
@click.argument("name")
@click.pass_obj
def cluster_remove(obj: CliContext, name: str) -> None:
    """Forget NAME and its stored credentials (the cluster itself is not touched)."""
    backend(obj).remove(name)
    console.print(f"Cluster {name!r} removed.")


@cluster.command("rotate-key")
@click.pass_obj
def cluster_rotate_key(obj: CliContext) -> None:
    """Re-encrypt all stored credentials under the first key of CONCURRENT_SECRET_KEY="NEW,OLD".

    Acts on this machine's store (CONCURRENT_STORE or the data dir): run it where the server runs.
    """
    from concurrent_mlflow.store import clusters, open_store
    from concurrent_mlflow.store.crypto import load_cipher

    count = clusters.rotate(open_store(obj.paths.store_url), load_cipher(obj.paths.home))
    console.print(f"Re-encrypted the credentials of {count} cluster(s) under the first key.")


def _reduced(kubeconfig_file: Path | None, context: str | None) -> dict[str, Any]:
    """The chosen context of the kubeconfig, its cluster and user, with referenced files inlined."""
    path = kubeconfig_file or _default_kubeconfig()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"Cannot read the kubeconfig {path}: {exc}") from None
    reduced = kubeconfig.reduce(kubeconfig.parse(text), context)
    return kubeconfig.flatten(reduced, path.resolve().parent)


def _cloud_sign_in(
    eks: str | None,
    region: str | None,
    role_arn: str | None,
    aws_keys_file: Path | None,
    sts_endpoint: str | None,
    gke: str | None,
    gcp_key_file: Path | None,
) -> dict[str, Any] | None:
    """The cloud sign-in the options describe, or None; misplaced options are refused by name."""
    eks_only = {
        "--region": region,
        "--role-arn": role_arn,
        "--aws-keys": aws_keys_file,
        "--sts-endpoint": sts_endpoint,
    }
    if eks and gke:
        raise click.UsageError("Give --eks or --gke, not both.")
    if not eks and (given := [flag for flag, value in eks_only.items() if value]):
        raise click.UsageError(f"{', '.join(given)} need(s) --eks CLUSTER.")
    if not gke and gcp_key_file:
        raise click.UsageError("--gcp-key needs --gke PROJECT/LOCATION/CLUSTER.")
    if eks:
        if not region:
            raise click.UsageError("--eks needs --region (the cluster's AWS region).")
        keys = _aws_keys(aws_keys_file) if aws_keys_file else {}
        eks_config = {"kind": "eks", "cluster": eks, "region": region, "role_arn": role_arn}
        return {**eks_config, "sts_endpoint": sts_endpoint, **keys}
    if gke:
        if gke.count("/") != 2 or not all(gke.split("/")):
            raise click.BadParameter(f"{gke!r}: expected PROJECT/LOCATION/CLUSTER", param_hint="--gke")
        key = _json_file(gcp_key_file, "--gcp-key") if gcp_key_file else None
        return {"kind": "gke", "cluster": gke, "service_account_key": key}
    return None


def _aws_keys(path: Path) -> dict[str, Any]:
    """`{"AccessKey": {"AccessKeyId", "SecretAccessKey"}}` as `aws iam create-access-key` prints it, or the
    inner object alone (a `SessionToken` too for temporary keys)."""
    loaded = _json_file(path, "--aws-keys")
    keys = loaded.get("AccessKey", loaded)
    if not isinstance(keys, dict) or not keys.get("AccessKeyId") or not keys.get("SecretAccessKey"):
        raise click.BadParameter(f"{path} has no AccessKeyId and SecretAccessKey", param_hint="--aws-keys")
    return {
        "access_key_id": keys["AccessKeyId"],
        "secret_access_key": keys["SecretAccessKey"],
        "session_token": keys.get("SessionToken"),
    }


def _json_file(path: Path, flag: str) -> dict[str, Any]:
    import json

    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise click.BadParameter(f"cannot read {path} as JSON: {exc}", param_hint=flag) from None
    if not isinstance(loaded, dict):
        raise click.BadParameter(f"{path} must hold a JSON object", param_hint=flag)
    return loaded


def _reduced_for(
    kubeconfig_file: Path | None, context: str | None, cloud: dict[str, Any] | None
) -> dict[str, Any]:
    """The kubeconfig context to register; with a cloud sign-in, without its user (only the address and CA
    are sent), and for GKE the context `gcloud container clusters get-credentials` makes by default."""
    if context is None and cloud and cloud["kind"] == "gke":
        context = "gke_" + str(cloud["cluster"]).replace("/", "_")
    document = _reduced(kubeconfig_file, context)
    return kubeconfig.without_user(document) if cloud else document


def _register_token(
    obj: CliContext,
    name: str,
    admin: dict[str, Any],
    client: Any,
    namespace: str,
    seconds: int,
    image: str | None,
    pod_file: Path | None,
    check: bool,
) -> None:
    """Ask for a bound token and register NAME with it, or update NAME if it is registered already."""
    from concurrent_mlflow import cluster_bootstrap as boot

    bound = _kube(lambda: boot.request_token(client, namespace, seconds))
    text = kubeconfig.dump(boot.token_kubeconfig(admin, bound.token, namespace, name))
    clusters = backend(obj)
    pod = _pod_settings(pod_file) if pod_file else None
    if any(c.name == name for c in clusters.list()):
        changes: dict[str, Any] = {"kubeconfig": text, "context": name, "namespace": namespace}
        changes.update({k: v for k, v in (("image", image), ("pod", pod)) if v is not None})
        clusters.update(name, changes)
        done = "updated with a new token"
    else:
        clusters.register(name, text, name, namespace, image, pod)
        done = "registered"
    expires = bound.expires_at.strftime("%Y-%m-%d %H:%M UTC") if bound.expires_at else "unknown"
    console.print(
        f"[green]Cluster {name!r} {done}[/]: ServiceAccount {namespace}/{boot.ACCOUNT}, token valid until "
        f"{expires}; renew it with `concurrent cluster rotate-token {name}` before then."
    )
    if check:
        _check(clusters, name, fail=False)


def _admin_client(kubeconfig_file: Path | None, context: str | None) -> Any:
    """A client with the operator's own kubeconfig as kubectl would use it (exec plugins included)."""
    from kubernetes import config

    path = kubeconfig_file or _default_kubeconfig()
    try:
        return config.new_client_from_config(config_file=str(path), context=context, persist_config=False)
    except Exception as exc:  # the loader raises ConfigException, an exec plugin's failure, ...
        raise click.ClickException(f"Cannot use the kubeconfig {path}: {exc}") from None


def _kube(call: Callable[[], T]) -> T:
    """Run a call against the operator's cluster; its failure as one line naming what went wrong."""
    from concurrent_mlflow.kube import describe

    try:
        return call()
    except Exception as exc:
        raise click.ClickException(f"The cluster refused: {describe(exc)}") from None


def _seconds(duration: str) -> int:
    units = {"m": 60, "h": 3600, "d": 86400}
    text = duration.strip().lower()
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit():
        raise click.BadParameter(
            f"{duration!r}: a number and m, h or d, e.g. 90m, 12h, 30d", param_hint="--token-duration"
        )
    return int(text[:-1]) * units[text[-1]]


def _default_kubeconfig() -> Path:
    configured = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    path = Path(configured[0] if configured else "~/.kube/config").expanduser()
    if not path.is_file():
        raise click.UsageError(f"No kubeconfig at {path}; give one with --kubeconfig FILE.")
    return path


def _check(clusters: ClusterBackend, name: str, *, fail: bool) -> None:
    reachable, message = clusters.check(name)
    if reachable:
        console.print(f"[green]Cluster {name!r} is reachable[/]: {escape(message)}")
        return
    err.print(f"[red]Cluster {name!r} is not reachable[/]: {escape(message)}")
    if fail:
        sys.exit(1)


def _from_api(item: dict[str, Any]) -> Cluster:
    from concurrent_mlflow.store.clusters import Cluster

    fields = {**item}
    for key in ("created_at", "checked_at"):
        fields[key] = datetime.fromisoformat(item[key]) if item.get(key) else None
    return Cluster(**{k: fields[k] for k in Cluster.__dataclass_fields__})
