"""A real Kubernetes control plane on loopback, for tests and benches: `scripts/k8s-testbed up|down|...`.

There is no container runtime here, so the testbed runs etcd, kube-apiserver, kube-controller-manager and
kube-scheduler as local processes, all built from source through the Go module proxy, plus kwok, which
plays kubelet for a few simulated nodes (nodes become Ready, Job pods run and succeed at once). The test
harness (tests/k8s/kubelet.py) registers nodes of its own, tainted and labelled
`testbed.concurrent.invalid/kubelet=harness`, and really runs the command of each pod scheduled there.
Binaries are cached by version under the user's cache dir, so only the first `up` on a machine builds
(about 7 minutes on 2 cores); later ones start in seconds.

Each testbed has a name and a base port; two testbeds on different ports are two independent clusters.
Ports: apiserver P, etcd P+1 (peer P+2), kwok P+3, scheduler P+4, controller-manager P+5. Bearer tokens
the API server does not know itself go to a token webhook at http://127.0.0.1:P+6/tokenreview, which the
tests serve when they need it (cloud sign-in: EKS- and GKE-style tokens); nothing answers there otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fcntl
import hashlib
import ipaddress
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

HERE = Path(__file__).resolve().parent
KUBE_VERSION = "v1.36.3"
ETCD_VERSION = "v3.6.16"
KWOK_VERSION = "v0.8.0"
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
TENANT_NAMESPACE = "concurrent"
CONTROLLERS = [
    "job-controller",
    "ttl-after-finished-controller",
    "garbage-collector-controller",
    "pod-garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "node-lifecycle-controller",
]
_VERSION_PKG = "k8s.io/component-base/version"
LDFLAGS = {
    "kube": f"-s -w -X {_VERSION_PKG}.gitVersion={KUBE_VERSION} -X {_VERSION_PKG}.gitMajor=1"
    f" -X {_VERSION_PKG}.gitMinor={KUBE_VERSION.split('.')[1]} -X {_VERSION_PKG}.gitTreeState=clean",
    "etcd": "-s -w",
}
COMPONENTS = ["etcd", "apiserver", "controller-manager", "scheduler", "kwok"]


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(os.environ.get("CONCURRENT_TESTBED_CACHE", Path(base) / "concurrent-testbed"))


def state_dir(name: str) -> Path:
    return cache_root() / "clusters" / name


# -- binaries -----------------------------------------------------------------------------------------
def _source_hash(module: Path) -> str:
    """Part of a binary's cache key: its wrapper module and link flags, beside the version."""
    digest = hashlib.sha256(LDFLAGS.get(module.name, "").encode())
    for path in sorted(module.iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def _go(args: list[str], cwd: Path, env: dict[str, str]) -> None:
    full_env = {**os.environ, "CGO_ENABLED": "0", "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=readonly", **env}
    print(f"testbed: go {' '.join(args)}  (in {cwd.name})", file=sys.stderr, flush=True)
    subprocess.run(["go", *args], cwd=cwd, env=full_env, check=True)


def binaries() -> dict[str, Path]:
    """Paths of the kube, etcd and kwok binaries, building each one that is not cached yet."""
    root = cache_root() / "bin"
    root.mkdir(parents=True, exist_ok=True)
    kube = root / f"kube-{KUBE_VERSION}-{_source_hash(HERE / 'go' / 'kube')}" / "kube"
    etcd = root / f"etcd-{ETCD_VERSION}-{_source_hash(HERE / 'go' / 'etcd')}" / "etcd"
    kwok = root / f"kwok-{KWOK_VERSION}" / "kwok"
    with (root / ".lock").open("w") as lock:  # two testbeds started at once build once
        fcntl.flock(lock, fcntl.LOCK_EX)
        for target, module in ((kube, "kube"), (etcd, "etcd")):
            if not target.exists():
                tmp = target.with_name(target.name + ".partial")
                tmp.parent.mkdir(parents=True, exist_ok=True)
                flags = [
                    "build",
                    "-trimpath",
                    "-tags",
                    "selinux,notest",
                    "-ldflags",
                    LDFLAGS[module],
                    "-o",
                    str(tmp),
                    ".",
                ]
                _go(flags, HERE / "go" / module, {})
                tmp.rename(target)
        if not kwok.exists():
            gobin = kwok.parent / "partial"
            _go(["install", f"sigs.k8s.io/kwok/cmd/kwok@{KWOK_VERSION}"], HERE, {"GOBIN": str(gobin)})
            (gobin / "kwok").rename(kwok)
            gobin.rmdir()
    return {"kube": kube, "etcd": etcd, "kwok": kwok}


# -- certificates and credentials ---------------------------------------------------------------------
def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _certificate(
    subject: str, key: rsa.RSAPrivateKey, issuer: tuple[x509.Certificate, rsa.RSAPrivateKey] | None
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer[0].subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
    )
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    else:
        names: list[x509.GeneralName] = [
            x509.DNSName(n)
            for n in ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc")
        ]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ("127.0.0.1", "10.96.0.1")]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


def _write_credentials(state: Path) -> dict[str, str]:
    """CA, serving certificate, service-account key and the token file; returns the tokens by user."""
    pki = state / "pki"
    pki.mkdir(parents=True, exist_ok=True)
    ca_key, serving_key, sa_key = _key(), _key(), _key()
    ca = _certificate("concurrent-testbed-ca", ca_key, None)
    serving = _certificate("kube-apiserver", serving_key, (ca, ca_key))
    (pki / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (pki / "apiserver.crt").write_bytes(serving.public_bytes(serialization.Encoding.PEM))
    (pki / "apiserver.key").write_bytes(_pem_key(serving_key))
    (pki / "sa.key").write_bytes(_pem_key(sa_key))
    tokens = {"admin": secrets.token_hex(24), "tenant": secrets.token_hex(24)}
    (pki / "tokens.csv").write_text(
        f'{tokens["admin"]},admin,uid-admin,"system:masters"\n{tokens["tenant"]},tenant,uid-tenant\n'
    )
    for path in pki.iterdir():
        path.chmod(0o600)
    return tokens


def kubeconfig(server: str, ca_pem: str, token: str, user: str, namespace: str = "default") -> dict[str, Any]:
    import base64

    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "testbed",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_pem.encode()).decode(),
                },
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {"cluster": "testbed", "user": user, "namespace": namespace}}],
        "current-context": user,
    }


# -- processes ----------------------------------------------------------------------------------------
def _start(state: Path, component: str, argv: list[str]) -> None:
    with (state / "logs" / f"{component}.log").open("ab") as log:
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    (state / "pids" / component).write_text(str(process.pid))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _pids(state: Path) -> dict[str, int]:
    found = {}
    for component in COMPONENTS:
        path = state / "pids" / component
        if path.exists() and _alive(pid := int(path.read_text())):
            found[component] = pid
    return found


def _wait(what: str, probe: Any, state: Path, component: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        if component not in _pids(state):
            tail = (state / "logs" / f"{component}.log").read_text(errors="replace")[-3000:]
            raise SystemExit(f"testbed: {component} exited while starting; its log ends:\n{tail}")
        time.sleep(0.25)
    raise SystemExit(f"testbed: {what} not ready after {timeout:.0f}s; see {state / 'logs' / component}.log")


class Api:
    """Just enough of the Kubernetes REST API to bootstrap the testbed (as admin)."""

    def __init__(self, server: str, ca_file: Path, token: str) -> None:
        self.server, self.token = server, token
        self.context = ssl.create_default_context(cafile=str(ca_file))

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.server + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=10) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")
        except (urllib.error.URLError, OSError, ValueError):
            return 0, {}

    def ready(self) -> bool:
        request = urllib.request.Request(
            self.server + "/readyz", headers={"Authorization": f"Bearer {self.token}"}
        )
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=5) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def ensure(self, path: str, body: dict[str, Any]) -> None:
        status, answer = self.call("POST", path, body)
        if status not in (200, 201, 409):
            raise SystemExit(f"testbed: cannot create {path} {body['metadata']['name']}: {status} {answer}")


def up(name: str, port: int, nodes: int) -> Path:
    state = state_dir(name)
    if _pids(state):
        raise SystemExit(f"testbed {name!r} is already up (scripts/k8s-testbed down --name {name} first)")
    bins = binaries()
    shutil.rmtree(state, ignore_errors=True)
    for sub in ("logs", "pids", "etcd"):
        (state / sub).mkdir(parents=True)
    tokens = _write_credentials(state)
    pki = state / "pki"
    server = f"https://127.0.0.1:{port}"
    ca_pem = (pki / "ca.crt").read_text()
    admin_config = state / "admin.kubeconfig"
    admin_config.write_text(yaml.safe_dump(kubeconfig(server, ca_pem, tokens["admin"], "admin")))
    tenant_config = state / "tenant.kubeconfig"
    tenant_config.write_text(
        yaml.safe_dump(kubeconfig(server, ca_pem, tokens["tenant"], "tenant", TENANT_NAMESPACE))
    )
    for path in (admin_config, tenant_config):
        path.chmod(0o600)
    (state / "testbed.json").write_text(
        json.dumps({"name": name, "port": port, "server": server, "nodes": nodes})
    )

    etcd_url, peer_url = f"http://127.0.0.1:{port + 1}", f"http://127.0.0.1:{port + 2}"
    _start(state, "etcd", [
        str(bins["etcd"]), "--name", "testbed", "--data-dir", str(state / "etcd"),
        "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
        "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
        "--initial-cluster", f"testbed={peer_url}", "--unsafe-no-fsync",
        "--quota-backend-bytes", str(8 << 30),
        "--listen-metrics-urls", "",
    ])  # fmt: skip
    _wait("etcd", lambda: _http_ok(f"{etcd_url}/health"), state, "etcd")
    start_apiserver(state, bins["kube"], port)
    api = Api(server, pki / "ca.crt", tokens["admin"])
    _wait("kube-apiserver", api.ready, state, "apiserver")
    _bootstrap(api, nodes)
    kube = str(bins["kube"])
    _start(state, "controller-manager", [
        kube, "controller-manager", "--kubeconfig", str(admin_config),
        "--authentication-kubeconfig", str(admin_config), "--authorization-kubeconfig", str(admin_config),
        "--bind-address", "127.0.0.1", "--secure-port", str(port + 5), "--leader-elect=false",
        "--controllers", ",".join(CONTROLLERS), "--use-service-account-credentials=false",
        "--service-account-private-key-file", str(pki / "sa.key"), "--root-ca-file", str(pki / "ca.crt"),
        "--concurrent-job-syncs", "10", "--kube-api-qps", "200", "--kube-api-burst", "400",
    ])  # fmt: skip
    _start(state, "scheduler", [
        kube, "scheduler", "--kubeconfig", str(admin_config),
        "--authentication-kubeconfig", str(admin_config), "--authorization-kubeconfig", str(admin_config),
        "--bind-address", "127.0.0.1", "--secure-port", str(port + 4), "--leader-elect=false",
        "--kube-api-qps", "200", "--kube-api-burst", "400",
    ])  # fmt: skip
    _start(state, "kwok", [
        str(bins["kwok"]), "--kubeconfig", str(admin_config), "--config", str(HERE / "stages.yaml"),
        "--manage-all-nodes=false", f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
        "--node-lease-duration-seconds", "40", "--server-address", f"127.0.0.1:{port + 3}",
        "--node-ip", "127.0.0.1", "--cidr", "10.244.0.1/16",
    ])  # fmt: skip
    _wait("nodes", lambda: _nodes_ready(api, nodes), state, "kwok")
    _wait("the default service account", lambda: _has_default_account(api), state, "controller-manager")
    return state


def start_apiserver(state: Path, kube: Path, port: int) -> None:
    """Start (or, after `restart apiserver`, start again) the API server of a testbed."""
    pki = state / "pki"
    webhook = pki / "token-webhook.kubeconfig"
    webhook.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "webhook", "cluster": {"server": f"http://127.0.0.1:{port + 6}/tokenreview"}}],
        "users": [{"name": "apiserver", "user": {}}],
        "contexts": [{"name": "webhook", "context": {"cluster": "webhook", "user": "apiserver"}}],
        "current-context": "webhook",
    }))  # fmt: skip
    _start(state, "apiserver", [
        str(kube), "apiserver", "--etcd-servers", f"http://127.0.0.1:{port + 1}",
        "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", str(port),
        "--tls-cert-file", str(pki / "apiserver.crt"), "--tls-private-key-file", str(pki / "apiserver.key"),
        "--token-auth-file", str(pki / "tokens.csv"), "--authorization-mode", "RBAC",
        "--authentication-token-webhook-config-file", str(webhook),
        "--authentication-token-webhook-version", "v1", "--authentication-token-webhook-cache-ttl", "5s",
        "--service-account-issuer", "https://kubernetes.default.svc",
        "--service-account-key-file", str(pki / "sa.key"),
        "--service-account-signing-key-file", str(pki / "sa.key"),
        "--service-cluster-ip-range", "10.96.0.0/16", "--endpoint-reconciler-type", "none",
        "--kubelet-preferred-address-types", "InternalIP",
        "--cert-dir", str(pki), "--max-requests-inflight", "800", "--max-mutating-requests-inflight", "400",
    ])  # fmt: skip


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _bootstrap(api: Api, nodes: int) -> None:
    api.ensure("/api/v1/namespaces", {"metadata": {"name": TENANT_NAMESPACE}})
    for index in range(nodes):
        name = f"kwok-node-{index}"
        api.ensure("/api/v1/nodes", {
            "metadata": {
                "name": name,
                "annotations": {KWOK_NODE_ANNOTATION: "fake"},
                "labels": {"type": "kwok", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux"},
            },
        })  # fmt: skip


def _nodes_ready(api: Api, count: int) -> bool:
    status, answer = api.call("GET", "/api/v1/nodes?labelSelector=type%3Dkwok")
    ready = [
        n
        for n in answer.get("items", [])
        if any(
            c["type"] == "Ready" and c["status"] == "True" for c in n.get("status", {}).get("conditions", [])
        )
    ]
    return status == 200 and len(ready) >= count


def _has_default_account(api: Api) -> bool:
    status, _ = api.call("GET", f"/api/v1/namespaces/{TENANT_NAMESPACE}/serviceaccounts/default")
    return status == 200


def stop(state: Path, components: list[str]) -> None:
    """SIGTERM each component's process group, then SIGKILL what is left after 10 s."""
    pids = {c: p for c, p in _pids(state).items() if c in components}
    for pid in pids.values():
        _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in pids.values():
        _signal_group(pid, signal.SIGKILL)
    for component in pids:
        (state / "pids" / component).unlink(missing_ok=True)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def down(name: str, keep: bool) -> None:
    state = state_dir(name)
    stop(state, list(reversed(COMPONENTS)))
    if not keep:
        shutil.rmtree(state, ignore_errors=True)


def restart(name: str, component: str) -> None:
    """Stop and start one component (tests restart the API server mid-run)."""
    state = state_dir(name)
    info = json.loads((state / "testbed.json").read_text())
    stop(state, [component])
    if component != "apiserver":
        raise SystemExit("testbed: only the apiserver can be restarted on its own")
    start_apiserver(state, binaries()["kube"], info["port"])
    tokens = (state / "pki" / "tokens.csv").read_text().split(",", 1)[0]
    api = Api(info["server"], state / "pki" / "ca.crt", tokens)
    _wait("kube-apiserver", api.ready, state, "apiserver")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="k8s-testbed", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["build", "up", "down", "env", "status", "restart-apiserver"])
    parser.add_argument("--name", default="a", help="testbed name (its state is under the cache dir)")
    parser.add_argument("--port", type=int, default=16443, help="API server port; the others follow it")
    parser.add_argument("--nodes", type=int, default=4, help="simulated (kwok) nodes")
    parser.add_argument("--keep", action="store_true", help="down: keep the state dir (logs) for a look")
    parser.add_argument("--json", action="store_true", help="env: print the paths as JSON")
    args = parser.parse_args(argv)
    state = state_dir(args.name)
    if args.command == "build":
        for tool, path in binaries().items():
            print(f"{tool}: {path}")
    elif args.command == "up":
        up(args.name, args.port, args.nodes)
        print(f"export KUBECONFIG={state / 'admin.kubeconfig'}")
    elif args.command == "down":
        down(args.name, args.keep)
    elif args.command == "env" and args.json:
        print(json.dumps({"state": str(state), "kubeconfig": str(state / "admin.kubeconfig")}))
    elif args.command == "env":
        print(f"export KUBECONFIG={state / 'admin.kubeconfig'}")
        print(f"export CONCURRENT_TESTBED_TENANT_KUBECONFIG={state / 'tenant.kubeconfig'}")
    elif args.command == "restart-apiserver":
        restart(args.name, "apiserver")
    else:
        running = _pids(state)
        for component in COMPONENTS:
            pid = running.get(component)
            print(f"{component}: {f'running, pid {pid}' if pid else 'stopped'}")
        sys.exit(0 if len(running) == len(COMPONENTS) else 1)


if __name__ == "__main__":
    main()
