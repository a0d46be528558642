"""deploy/kubernetes and docker/: every manifest is validated by the testbed's real API server (server-side
dry-run with strict field validation), the Deployment's pod by its real Pod Security admission, the RBAC by
real access reviews and a real service-account token, and the Dockerfile against the repository it builds.

The namespaces the manifests name are created for real (a dry-run inside a missing namespace fails) and
deleted at the end of the module; objects created for real inside them are deleted by the test that made them.
"""

from __future__ import annotations

import copy
import re
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml
from kubernetes import client, config, utils
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from concurrent_mlflow import kube, kubeconfig
from concurrent_mlflow.cli.service import server as server_command
from concurrent_mlflow.executors.jobspec import JobRequest, PodSettings, build_job
from concurrent_mlflow.server.app import API_PREFIX
from concurrent_mlflow.server.routes import meta
from tests.k8s.conftest import Testbed

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "kubernetes"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
SYSTEM, TASKS = "concurrent-system", "concurrent-tasks"
CONTROL_PLANE = f"system:serviceaccount:{SYSTEM}:concurrent"
TASK_ACCOUNT = f"system:serviceaccount:{TASKS}:concurrent-task"


# -- reading the manifests ------------------------------------------------------------------------------
def _kustomization() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    return document


def _listed() -> list[Path]:
    return [DEPLOY / name for name in _kustomization()["resources"]]


def _examples() -> list[Path]:
    return sorted(DEPLOY.glob("*.example.yaml"))


def _documents(paths: list[Path]) -> list[tuple[str, dict[str, Any]]]:
    """(file name, document) for every YAML document of `paths`, in order."""
    found = []
    for path in paths:
        for document in yaml.safe_load_all(path.read_text()):
            if document is not None:
                found.append((path.name, document))
    return found


def _one(kind: str, name: str) -> dict[str, Any]:
    matches = [d for _, d in _documents(_listed()) if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name!r} in the kustomization, found {len(matches)}"
    return matches[0]


def _label(document: dict[str, Any]) -> str:
    metadata = document.get("metadata", {})
    where = f"{metadata['namespace']}/" if metadata.get("namespace") else ""
    return f"{document.get('kind')} {where}{metadata.get('name')}"


# -- talking to the testbed -----------------------------------------------------------------------------
def _dry_run(api: ApiClient, document: dict[str, Any]) -> str | None:
    """None if the API server accepts `document` (server-side dry-run, unknown fields refused); else why not."""
    try:
        utils.create_from_dict(api, copy.deepcopy(document), dry_run="All", field_validation="Strict")
    except utils.FailToCreateError as exc:
        return "; ".join(f"HTTP {e.status}: {_message(e)}" for e in exc.api_exceptions)
    except ApiException as exc:
        return f"HTTP {exc.status}: {_message(exc)}"
    except pydantic.ValidationError as exc:  # this client checks bodies against its models before sending
        return f"refused by the client's schema: {exc}"
    return None


def _message(exc: ApiException) -> str:
    try:
        return str(yaml.safe_load(exc.body or "{}").get("message", exc.reason))
    except (yaml.YAMLError, AttributeError):
        return str(exc.reason)


@contextmanager
def _created(api: ApiClient, documents: list[dict[str, Any]]) -> Iterator[None]:
    """Create `documents` for real; delete them (in reverse order) on the way out."""
    made: list[dict[str, Any]] = []
    try:
        for document in documents:
            utils.create_from_dict(api, copy.deepcopy(document))
            made.append(document)
        yield
    finally:
        for document in reversed(made):
            _delete(api, document)


def _delete(api: ApiClient, document: dict[str, Any]) -> None:
    name, namespace = document["metadata"]["name"], document["metadata"].get("namespace")
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    delete = {
        "ServiceAccount": lambda: core.delete_namespaced_service_account(name, namespace),
        "Role": lambda: rbac.delete_namespaced_role(name, namespace),
        "RoleBinding": lambda: rbac.delete_namespaced_role_binding(name, namespace),
    }[document["kind"]]
    try:
        delete()
    except ApiException as exc:
        if exc.status != 404:
            raise


def _namespace_phase(core: client.CoreV1Api, name: str) -> str | None:
    try:
        return str(core.read_namespace(name).status.phase)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def _delete_namespace_and_wait(core: client.CoreV1Api, name: str, timeout: float = 120) -> None:
    """Delete (if there) and wait until the namespace controller has finished: a Terminating namespace
    accepts no new objects, and a later run must be able to create it again."""
    if _namespace_phase(core, name) == "Active":
        core.delete_namespace(name)
    deadline = time.monotonic() + timeout
    while _namespace_phase(core, name) is not None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"namespace {name} still there {timeout:.0f}s after its deletion")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def api(testbed: Testbed) -> Iterator[ApiClient]:
    api_client = config.new_client_from_config(str(testbed.admin_kubeconfig))
    try:
        yield api_client
    finally:
        api_client.close()


@pytest.fixture(scope="module")
def namespaces(api: ApiClient) -> Iterator[list[dict[str, Any]]]:
    """The Namespace documents of the kustomization, created for real (that validates them too)."""
    core = client.CoreV1Api(api)
    documents = [d for _, d in _documents(_listed()) if d["kind"] == "Namespace"]
    for document in documents:  # leftovers of an interrupted run would hide what the manifest says
        _delete_namespace_and_wait(core, document["metadata"]["name"])
    try:
        for document in documents:
            core.create_namespace(copy.deepcopy(document), field_validation="Strict")
        yield documents
    finally:
        for document in documents:
            _delete_namespace_and_wait(core, document["metadata"]["name"])


# -- the kustomization ----------------------------------------------------------------------------------
def test_the_kustomization_lists_every_manifest_but_the_examples() -> None:
    listed = _kustomization()["resources"]
    assert len(listed) == len(set(listed)), f"listed twice: {listed}"
    manifests = {p.name for p in DEPLOY.iterdir() if p.suffix in (".yaml", ".yml")}
    examples = {p.name for p in _examples()}
    assert examples, "the Secret / ConfigMap examples are missing"
    assert set(listed) == manifests - examples - {"kustomization.yaml"}
    assert not set(listed) & examples, "an example with placeholder values would be applied"
    assert all((DEPLOY / name).is_file() for name in listed)


def test_the_manifests_name_what_the_design_expects() -> None:
    kinds = {
        (d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for _, d in _documents(_listed())
    }
    assert kinds == {
        ("Namespace", None, SYSTEM),
        ("Namespace", None, TASKS),
        ("ServiceAccount", SYSTEM, "concurrent"),
        ("ServiceAccount", TASKS, "concurrent-task"),
        ("Deployment", SYSTEM, "concurrent-server"),
        ("Service", SYSTEM, "concurrent-server"),
        ("Role", TASKS, "concurrent-executor"),
        ("RoleBinding", TASKS, "concurrent-executor"),
    }


# -- server-side dry-run --------------------------------------------------------------------------------
def test_every_listed_manifest_passes_server_side_dry_run(
    api: ApiClient, namespaces: list[dict[str, Any]]
) -> None:
    core = client.CoreV1Api(api)
    assert {n["metadata"]["name"] for n in namespaces} == {SYSTEM, TASKS}
    for document in namespaces:  # created for real by the fixture, with the labels of the manifest
        labels = core.read_namespace(document["metadata"]["name"]).metadata.labels
        assert document["metadata"]["labels"].items() <= labels.items()
    others = [(f, d) for f, d in _documents(_listed()) if d["kind"] != "Namespace"]
    assert len(others) >= 6
    failures = {f"{name}: {_label(d)}": _dry_run(api, d) for name, d in others}
    assert {k: v for k, v in failures.items() if v} == {}


def test_the_dry_run_really_validates(api: ApiClient, namespaces: list[dict[str, Any]]) -> None:
    """The controls for the test above: a rule only the API server knows (a liveness probe succeeds after
    one success) is enforced, and a misspelt field is refused (by the client's schema, before sending)."""
    deployment = copy.deepcopy(_one("Deployment", "concurrent-server"))
    assert _dry_run(api, deployment) is None
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["livenessProbe"]["successThreshold"] = 2
    problem = _dry_run(api, deployment)
    assert problem is not None and "HTTP 422" in problem and "livenessProbe.successThreshold" in problem

    container["livenessProbe"]["successThreshold"] = 1
    container["readinesProbe"] = container.pop("readinessProbe")
    problem = _dry_run(api, deployment)
    assert problem is not None and "readinesProbe" in problem


def test_the_examples_pass_dry_run_and_provide_what_the_deployment_reads(
    api: ApiClient, namespaces: list[dict[str, Any]]
) -> None:
    examples = _documents(_examples())
    failures = {f"{name}: {_label(d)}": _dry_run(api, d) for name, d in examples}
    assert {k: v for k, v in failures.items() if v} == {}

    provided = set()
    for _, document in examples:
        data = {**document.get("data", {}), **document.get("stringData", {})}
        provided |= {(document["kind"], document["metadata"]["name"], key) for key in data}
    container = _one("Deployment", "concurrent-server")["spec"]["template"]["spec"]["containers"][0]
    needed = set()
    for variable in container["env"]:
        source = variable.get("valueFrom", {})
        for kind, ref in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
            if ref in source:
                needed.add((kind, source[ref]["name"], source[ref]["key"]))
    assert needed == {
        ("Secret", "concurrent-store", "url"),
        ("Secret", "concurrent-secret-key", "key"),
        ("ConfigMap", "concurrent-config", "mlflow-tracking-uri"),
    }
    assert needed == provided


def test_the_server_pod_meets_the_restricted_pod_security_standard(
    api: ApiClient, namespaces: list[dict[str, Any]]
) -> None:
    """concurrent-system enforces `restricted` (from its manifest); the Deployment's pod, dry-run as a Pod,
    passes the API server's Pod Security admission. The control: the same pod allowed to escalate fails."""
    deployment = _one("Deployment", "concurrent-server")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "pod-security-probe", "namespace": SYSTEM},
        "spec": copy.deepcopy(deployment["spec"]["template"]["spec"]),
    }
    with _created(api, [_one("ServiceAccount", "concurrent")]):  # a pod's service account must exist
        assert _dry_run(api, pod) is None
        weaker = copy.deepcopy(pod)
        weaker["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
        problem = _dry_run(api, weaker)
    assert problem is not None and "PodSecurity" in problem and "restricted" in problem


def test_the_executors_task_pod_meets_the_tasks_namespaces_restricted_standard(
    api: ApiClient, namespaces: list[dict[str, Any]]
) -> None:
    """concurrent-tasks enforces `restricted`: the pod of a Job the executor builds for it (as the cluster's
    pod settings name its service account) passes; the control, the same pod run as root, fails."""
    manifest = {d["kind"]: d for _, d in _documents([DEPLOY / "tasks-namespace.yaml"])}
    assert manifest["Namespace"]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    request = JobRequest(
        run_id="r1",
        node_id="score",
        cluster="prod",
        attempt=1,
        partitions=[0, 1],
        parallelism=2,
        retries=1,
        timeout=600,
        tracking_uri="http://mlflow.ml.svc:5000",
        parent_run_id="p1",
        env={},
        pod=PodSettings(namespace=TASKS, service_account="concurrent-task", cpu="1", memory="1Gi"),
    )
    template = build_job(request)["spec"]["template"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "task-probe", "namespace": TASKS}}
    pod["spec"] = template["spec"]
    with _created(api, [manifest["ServiceAccount"]]):
        assert _dry_run(api, pod) is None
        as_root = copy.deepcopy(pod)
        as_root["spec"]["securityContext"].update(runAsNonRoot=False, runAsUser=0)
        problem = _dry_run(api, as_root)
    assert problem is not None and "PodSecurity" in problem and "restricted" in problem


# -- the Deployment against the code it runs ------------------------------------------------------------
def test_the_deployment_runs_a_command_and_probes_a_path_that_exist() -> None:
    deployment = _one("Deployment", "concurrent-server")
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    command = container["command"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert command[:2] == ["concurrent", "server"] and "concurrent" in scripts
    params = server_command.make_context("server", command[2:]).params  # the real CLI parses it
    assert params["host"] == "0.0.0.0" and params["auth"] is True
    # Production runs user code on Kubernetes only: no local paths, no local tasks (README "Security model").
    assert params["local_roots"] == () and params["allow_local_execution"] is False
    (port,) = container["ports"]
    assert port["containerPort"] == params["port"] == 8765

    health = {
        f"{API_PREFIX}{route.path}"
        for route in meta.router.routes
        if "GET" in getattr(route, "methods", set()) and route.path == "/health"
    }
    assert health == {"/api/v1/health"}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        http = container[probe]["httpGet"]
        assert http["path"] in health, probe
        assert http["port"] in (port["name"], port["containerPort"]), probe

    service = _one("Service", "concurrent-server")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(8765, port["name"])]

    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert spec["securityContext"]["runAsNonRoot"] and spec["securityContext"]["runAsUser"] != 0
    # a read-only root: every place the server writes is a volume
    env = {v["name"]: v.get("value") for v in container["env"]}
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {env["CONCURRENT_HOME"], env["HOME"], "/tmp", "/cache"} <= mounts


# -- RBAC -----------------------------------------------------------------------------------------------
# (namespace, verb, group, resource, subresource): what the control plane may do, and nothing more.
GRANTED = [
    *[(TASKS, verb, "batch", "jobs", "") for verb in ("create", "get", "list", "watch", "delete", "patch")],
    *[(TASKS, verb, "", "pods", "") for verb in ("get", "list", "watch")],
    (TASKS, "get", "", "pods", "log"),
    *[(TASKS, verb, "", "events", "") for verb in ("get", "list", "watch")],
    (TASKS, "create", "", "secrets", ""),  # a Job's git credentials; it may not read any Secret back
]
REFUSED = [
    ("default", "create", "batch", "jobs", ""),  # a namespace without the RoleBinding
    (SYSTEM, "create", "batch", "jobs", ""),  # not even its own
    (TASKS, "update", "batch", "jobs", ""),
    (TASKS, "deletecollection", "batch", "jobs", ""),
    (TASKS, "create", "batch", "cronjobs", ""),
    (TASKS, "list", "", "secrets", ""),
    (TASKS, "get", "", "secrets", ""),
    (TASKS, "update", "", "secrets", ""),
    (TASKS, "patch", "", "secrets", ""),
    (TASKS, "delete", "", "secrets", ""),
    (TASKS, "get", "", "configmaps", ""),
    (TASKS, "create", "", "pods", ""),
    (TASKS, "delete", "", "pods", ""),
    (TASKS, "create", "", "pods", "exec"),
    (TASKS, "create", "", "serviceaccounts", "token"),
    (TASKS, "create", "rbac.authorization.k8s.io", "roles", ""),
    (TASKS, "create", "rbac.authorization.k8s.io", "rolebindings", ""),
    ("", "list", "", "nodes", ""),  # cluster-scoped
    ("", "get", "", "namespaces", ""),
    ("", "create", "", "namespaces", ""),
]


def _allowed(api: ApiClient, user: str, attributes: tuple[str, str, str, str, str]) -> bool:
    namespace, verb, group, resource, subresource = attributes
    groups = [
        "system:serviceaccounts",
        f"system:serviceaccounts:{user.split(':')[2]}",
        "system:authenticated",
    ]
    review = client.V1SubjectAccessReview(
        spec=client.V1SubjectAccessReviewSpec(
            user=user,
            groups=groups,
            resource_attributes=client.V1ResourceAttributes(
                namespace=namespace or None,
                verb=verb,
                group=group,
                resource=resource,
                subresource=subresource or None,
            ),
        )
    )
    answer = client.AuthorizationV1Api(api).create_subject_access_review(review)
    return bool(answer.status.allowed)


def _settle(api: ApiClient, user: str, attributes: tuple[str, str, str, str, str], allowed: bool) -> None:
    """Wait until the API server's authorizer (fed by a watch) has seen a RoleBinding come or go."""
    deadline = time.monotonic() + 30
    while _allowed(api, user, attributes) != allowed:
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{user} {'still not' if allowed else 'still'} allowed {attributes} after 30s"
            )
        time.sleep(0.1)


def _rbac_documents() -> list[dict[str, Any]]:
    return [d for _, d in _documents(_listed()) if d["kind"] in ("ServiceAccount", "Role", "RoleBinding")]


def test_nothing_is_granted_cluster_wide() -> None:
    documents = [d for _, d in _documents([*_listed(), *_examples()])]
    assert not [d for d in documents if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    bindings = [d for d in documents if d["kind"] == "RoleBinding"]
    assert bindings and all(b["roleRef"]["kind"] == "Role" for b in bindings)
    assert all(b["metadata"]["namespace"] != SYSTEM for b in bindings)


def test_the_control_plane_gets_exactly_the_executor_rights_in_task_namespaces(
    api: ApiClient, namespaces: list[dict[str, Any]]
) -> None:
    with _created(api, _rbac_documents()):
        _settle(api, CONTROL_PLANE, GRANTED[0], allowed=True)
        wrong = {
            attributes: allowed
            for attributes, expected in [*((a, True) for a in GRANTED), *((a, False) for a in REFUSED)]
            if (allowed := _allowed(api, CONTROL_PLANE, attributes)) != expected
        }
        assert wrong == {}, "(namespace, verb, group, resource, subresource): allowed"
        # The task pods' identity has no Kubernetes rights at all.
        assert not any(_allowed(api, TASK_ACCOUNT, attributes) for attributes in GRANTED)
    # And the grant really comes from these manifests: once they are gone, so is the right.
    _settle(api, CONTROL_PLANE, GRANTED[0], allowed=False)


def test_a_token_of_the_control_plane_account_passes_the_cluster_check(
    api: ApiClient, testbed: Testbed, namespaces: list[dict[str, Any]]
) -> None:
    """The README's "register this cluster" recipe, end to end: a token of `concurrent-system:concurrent`
    in a kubeconfig that `concurrent cluster add` accepts, checked the way `concurrent cluster check` does."""
    core = client.CoreV1Api(api)
    clusters: Any = testbed.kubeconfig_document("admin")["clusters"]
    cluster = clusters[0]["cluster"]
    with _created(api, _rbac_documents()):
        _settle(api, CONTROL_PLANE, GRANTED[0], allowed=True)
        request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}
        token = core.create_namespaced_service_account_token("concurrent", SYSTEM, request).status.token
        document = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "in-cluster", "cluster": cluster}],
            "users": [{"name": "concurrent", "user": {"token": token}}],
            "contexts": [
                {
                    "name": "in-cluster",
                    "context": {"cluster": "in-cluster", "user": "concurrent", "namespace": TASKS},
                }
            ],
            "current-context": "in-cluster",
        }
        loaded = kubeconfig.load(kubeconfig.dump(document), None, None)
        assert (loaded.namespace, loaded.auth) == (TASKS, "token")

        result = kube.check(loaded.document, loaded.namespace)
        assert result.reachable, result.message
        assert "may create Jobs there" in result.message
        assert "not readable with these credentials" in result.message  # no cluster-scoped rights
        assert token not in result.message

        job = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "rights-probe"},
            "spec": {
                "template": {
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}
                }
            },
        }
        with kube.api_client(loaded.document) as as_control_plane:
            batch = client.BatchV1Api(as_control_plane)
            batch.create_namespaced_job(TASKS, job, dry_run="All")
            for call in (
                lambda: batch.create_namespaced_job("default", job, dry_run="All"),
                lambda: client.CoreV1Api(as_control_plane).list_namespaced_secret(TASKS),
            ):
                with pytest.raises(ApiException) as refused:
                    call()
                assert refused.value.status == 403


# -- the image ------------------------------------------------------------------------------------------
def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    logical, pending = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends in a continuation line"
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in logical]


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore excludes `path` (or a directory above it): Docker's `*`, `?` and `**`."""
    for pattern in patterns:
        regex = re.escape(pattern.strip("/")).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        parts = path.split("/")
        if any(re.fullmatch(regex, "/".join(parts[:i])) for i in range(1, len(parts) + 1)):
            return True
    return False


def test_the_dockerfile_matches_the_repository() -> None:
    instructions = _instructions()
    kinds = [kind for kind, _ in instructions]
    assert [args for kind, args in instructions if kind == "FROM"] == ["python:3.11-slim"]
    assert "ENTRYPOINT" not in kinds

    makefile = (ROOT / "Makefile").read_text()
    (uv_version,) = re.findall(r"^UV_VERSION\s*:=\s*(\S+)", makefile, re.M)
    pins = [m for kind, args in instructions if kind == "RUN" for m in re.findall(r"\buv==(\S+)", args)]
    assert pins == [uv_version]
    installs = " ".join(args for kind, args in instructions if kind == "RUN")
    assert "git" in installs.split() and "uv pip install --system" in installs

    users = [args for kind, args in instructions if kind == "USER"]
    assert users, "the image runs as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "USER must be a numeric non-root uid for runAsNonRoot"
    pod = _one("Deployment", "concurrent-server")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == int(uid)

    env = " ".join(args for kind, args in instructions if kind == "ENV")
    for setting in (
        "UV_CACHE_DIR=/cache/uv",
        "MLFLOW_ENV_ROOT=/cache/envs",
        "CONCURRENT_CACHE=/cache/concurrent",
    ):
        assert setting in env.split()
    assert ("VOLUME", "/cache") in instructions
    assert [args for kind, args in instructions if kind == "WORKDIR"][-1] == "/work"

    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert not [p for p in patterns if p.startswith("!")], "re-inclusions are not modelled by this test"
    assert {".venv", ".git", ".tools", "**/node_modules", "**/mlruns"} <= set(patterns)
    copies = [args.split() for kind, args in instructions if kind == "COPY"]
    assert copies
    sources = [s for words in copies for s in [w for w in words if not w.startswith("--")][:-1]]
    assert {"pyproject.toml", "uv.lock", "README.md", "src/"} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
        assert not _ignored(source.rstrip("/"), patterns), f"COPY {source}: excluded by .dockerignore"
    shipped = [
        p.relative_to(ROOT).as_posix() for p in (ROOT / "src").rglob("*.py") if "__pycache__" not in p.parts
    ]
    assert shipped and not [p for p in shipped if _ignored(p, patterns)]
    assert _ignored(".venv/bin/python", patterns) and _ignored(
        "src/concurrent_mlflow/__pycache__/x.pyc", patterns
    )
