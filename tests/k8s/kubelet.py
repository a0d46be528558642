"""A stand-in kubelet for the testbed: really runs the pods scheduled onto its node, as local processes.

There is no container runtime here. This harness registers a node of its own (tainted and labelled
`testbed.concurrent.invalid/kubelet=harness`, so only pods that ask for it land there), keeps the node's
Lease fresh, and for each pod the real scheduler binds to it: resolves the container's environment (values,
downward-API fields such as the Job's completion index, Secrets and ConfigMaps), runs `command + args`
with the image's filesystem replaced by `overrides` (environment variables pointing at local dirs), and
reports Running, then Succeeded or Failed with the real exit code, through the pod status subresource. It
also serves the kubelet's `/containerLogs` endpoint, so `kubectl logs` (the API server's pod log proxy)
works for real. `evict()` does what a kubelet under memory pressure does.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import itertools
import os
import re
import signal
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

LABEL = "testbed.concurrent.invalid/kubelet"
SELECTOR = {LABEL: "harness"}
TOLERATION = {"key": LABEL, "operator": "Equal", "value": "harness", "effect": "NoSchedule"}
_pod_ips = itertools.count(2)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Kubelet:
    def __init__(
        self,
        kubeconfig: Path,
        workdir: Path,
        *,
        node: str = "harness-node-0",
        overrides: Mapping[str, str] | None = None,
        gpus: int = 0,
    ) -> None:
        self.node, self.workdir, self.gpus = node, workdir, gpus
        self.overrides = dict(overrides or {})
        self.api = client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))
        self.leases = client.CoordinationV1Api(self.api.api_client)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}  # pod uid -> process
        self.settled: set[str] = set()  # pods whose end the harness reported itself (evicted, deadline)
        self.started: list[str] = []  # pod names, in the order they were started
        self._lock = threading.Lock()
        self._starting = threading.Lock()  # one start per pod, whoever asks (see _on_pod)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle ----------------------------------------------------------------------------------------
    def start(self) -> Kubelet:
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        port = self._serve_logs()
        self._register(port)
        for target in (self._heartbeat, self._watch_pods):
            thread = threading.Thread(target=target, daemon=True, name=f"kubelet-{target.__name__}")
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            for process in self.processes.values():
                _kill(process)
        if self._server:
            self._server.shutdown()
        for thread in self._threads:
            thread.join(timeout=10)

    def __enter__(self) -> Kubelet:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- the node -----------------------------------------------------------------------------------------
    def _register(self, port: int) -> None:
        body = {
            "metadata": {"name": self.node, "labels": {**SELECTOR, "kubernetes.io/hostname": self.node}},
            "spec": {"taints": [{"key": LABEL, "value": "harness", "effect": "NoSchedule"}]},
        }
        try:
            self.api.create_node(body)
        except ApiException as exc:
            if exc.status != 409:
                raise
        capacity = {"cpu": "16", "memory": "64Gi", "pods": "110", "nvidia.com/gpu": str(self.gpus)}
        status = {
            "conditions": [self._ready_condition()],
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": self.node},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
            "capacity": capacity,
            "allocatable": capacity,
            "nodeInfo": {"kubeletVersion": "harness", "operatingSystem": "linux", "architecture": "amd64"},
        }
        self.api.patch_node_status(self.node, {"status": status})

    def _ready_condition(self) -> dict[str, str]:
        now = _now()
        return {
            "type": "Ready",
            "status": "True",
            "reason": "KubeletReady",
            "message": "test harness",
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }

    def _heartbeat(self) -> None:
        """Renew the node's Lease (what the node-lifecycle controller watches) every few seconds."""
        while not self._stop.wait(0 if not self._threads else 5):
            now = datetime.datetime.now(datetime.UTC)
            body = {
                "metadata": {"name": self.node, "namespace": "kube-node-lease"},
                "spec": {"holderIdentity": self.node, "leaseDurationSeconds": 40, "renewTime": now},
            }
            try:
                try:
                    self.leases.replace_namespaced_lease(self.node, "kube-node-lease", body)
                except ApiException as exc:
                    if exc.status != 404:
                        raise
                    self.leases.create_namespaced_lease("kube-node-lease", body)
                self.api.patch_node_status(self.node, {"status": {"conditions": [self._ready_condition()]}})
            except Exception:  # the API server may be restarting; try again next beat
                continue

    # -- pods ---------------------------------------------------------------------------------------------
    def _watch_pods(self) -> None:
        selector = f"spec.nodeName={self.node}"
        while not self._stop.is_set():
            try:
                for event in watch.Watch().stream(
                    self.api.list_pod_for_all_namespaces, field_selector=selector, timeout_seconds=5
                ):
                    self._on_pod(event["type"], event["object"])
            except Exception:  # API server restarting, 410 Gone: list and watch again
                time.sleep(0.5)

    def _on_pod(self, kind: str, pod: Any) -> None:
        uid, phase = pod.metadata.uid, pod.status.phase
        with self._lock:
            running = self.processes.get(uid)
        if kind == "DELETED" or pod.metadata.deletion_timestamp is not None:
            if running:
                _kill(running)
            if kind != "DELETED":
                self._confirm_deletion(pod)
            return
        if running is None and phase == "Pending" and uid not in self.settled:
            with self._starting:  # the watch and a retry for a missing Secret may both get here
                with self._lock:
                    if uid in self.processes:
                        return
                self._run(pod)

    def _confirm_deletion(self, pod: Any) -> None:
        try:
            self.api.delete_namespaced_pod(
                pod.metadata.name,
                pod.metadata.namespace,
                grace_period_seconds=0,
                propagation_policy="Background",
            )
        except ApiException as exc:
            if exc.status != 404:
                raise

    def _run(self, pod: Any) -> None:
        container = pod.spec.containers[0]
        cwd = self.workdir / "pods" / pod.metadata.uid
        cwd.mkdir(parents=True, exist_ok=True)
        try:
            env = {**self._base_env(), **self._resolve_env(pod, container.env or []), **self.overrides}
        except ApiException as exc:
            if exc.status != 404:
                raise
            # A Secret or ConfigMap it needs is not there yet: a kubelet holds the container
            # (CreateContainerConfigError) and tries again, and so does this one.
            retry = threading.Timer(0.5, self._retry, args=(pod.metadata.namespace, pod.metadata.name))
            retry.daemon = True
            retry.start()
            return
        # The container's termination-message file, which a kubelet would mount, is a file of this pod here.
        mounted = container.termination_message_path or "/dev/termination-log"
        env = {k: str(cwd / "termination-log") if v == mounted else v for k, v in env.items()}
        log_path = self._log_path(pod.metadata.namespace, pod.metadata.name)
        argv = [*(container.command or []), *(container.args or [])]
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        with self._lock:
            self.processes[pod.metadata.uid] = process
            self.started.append(pod.metadata.name)
        started = _now()
        self._patch_status(pod, self._running_status(pod, container.name, started))
        if pod.spec.active_deadline_seconds:
            timer = threading.Timer(pod.spec.active_deadline_seconds, self._deadline, args=(pod,))
            timer.daemon = True
            timer.start()
        threading.Thread(target=self._reap, args=(pod, container.name, process, started), daemon=True).start()

    def _retry(self, namespace: str, name: str) -> None:
        if self._stop.is_set():
            return
        try:
            pod = self.api.read_namespaced_pod(name, namespace)
        except ApiException:
            return  # deleted meanwhile
        self._on_pod("MODIFIED", pod)

    def _reap(self, pod: Any, container: str, process: subprocess.Popen[bytes], started: str) -> None:
        code = process.wait()
        with self._lock:
            self.processes.pop(pod.metadata.uid, None)
            settled = pod.metadata.uid in self.settled
        if settled or self._stop.is_set():
            return
        terminated = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": started,
            "finishedAt": _now(),
        }
        message_file = self.workdir / "pods" / pod.metadata.uid / "termination-log"
        if message_file.exists():
            terminated["message"] = message_file.read_text(errors="replace")[:4096]
        self._patch_status(pod, {
            "phase": "Succeeded" if code == 0 else "Failed",
            "conditions": [{"type": "Ready", "status": "False", "reason": "PodCompleted", "lastTransitionTime": _now()}],
            "containerStatuses": [_container_status(container, pod, {"terminated": terminated})],
        })  # fmt: skip

    def evict(self, pod_name: str, namespace: str) -> None:
        """What a kubelet under node pressure does: kill the pod and mark it Failed, reason Evicted."""
        message = "The node was low on resource: memory. (evicted by the test harness)"
        self._end_early(
            self.api.read_namespaced_pod(pod_name, namespace), "Evicted", message, disruption=True
        )

    def _deadline(self, pod: Any) -> None:
        """The kubelet's enforcement of `activeDeadlineSeconds`."""
        seconds = pod.spec.active_deadline_seconds
        self._end_early(pod, "DeadlineExceeded", f"Pod was active on the node longer than {seconds} seconds")

    def _end_early(self, pod: Any, reason: str, message: str, disruption: bool = False) -> None:
        with self._lock:
            if pod.metadata.uid in self.settled:
                return
            self.settled.add(pod.metadata.uid)
            process = self.processes.get(pod.metadata.uid)
        if process:
            _kill(process)
        now = _now()
        terminated = {"exitCode": 137, "reason": "Error", "startedAt": now, "finishedAt": now}
        conditions = [{"type": "Ready", "status": "False", "reason": "PodFailed", "lastTransitionTime": now}]
        if disruption:
            conditions.append({
                "type": "DisruptionTarget", "status": "True", "reason": "TerminationByKubelet",
                "message": message, "lastTransitionTime": now,
            })  # fmt: skip
        self._patch_status(pod, {
            "phase": "Failed",
            "reason": reason,
            "message": message,
            "conditions": conditions,
            "containerStatuses": [_container_status(pod.spec.containers[0].name, pod, {"terminated": terminated})],
        })  # fmt: skip

    def _running_status(self, pod: Any, container: str, started: str) -> dict[str, Any]:
        ip = str(ipaddress.ip_address("10.244.0.0") + next(_pod_ips))
        return {
            "phase": "Running",
            "startTime": started,
            "hostIP": "127.0.0.1",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "conditions": [
                {"type": cond, "status": "True", "lastTransitionTime": started}
                for cond in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
            ],
            "containerStatuses": [
                _container_status(container, pod, {"running": {"startedAt": started}}, ready=True)
            ],
        }

    def _patch_status(self, pod: Any, status: dict[str, Any]) -> None:
        for _ in range(60):  # through an API server restart
            try:
                self.api.patch_namespaced_pod_status(
                    pod.metadata.name, pod.metadata.namespace, {"status": status}
                )
                return
            except ApiException as exc:
                if exc.status == 404:
                    return
            except Exception:
                pass
            time.sleep(0.5)

    def _base_env(self) -> dict[str, str]:
        keep = ("PATH", "HOME", "LANG", "TMPDIR", "UV_CACHE_DIR", "UV_PYTHON", "VIRTUAL_ENV")
        return {k: os.environ[k] for k in keep if k in os.environ}

    def _resolve_env(self, pod: Any, variables: list[Any]) -> dict[str, str]:
        resolved: dict[str, str] = {}
        for variable in variables:
            if variable.value is not None:
                resolved[variable.name] = re.sub(
                    r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: resolved.get(m[1], m[0]), variable.value
                )
            elif variable.value_from is not None:
                resolved[variable.name] = self._value_from(pod, variable.value_from)
        return resolved

    def _value_from(self, pod: Any, source: Any) -> str:
        if source.field_ref is not None:
            return _field(pod, source.field_ref.field_path)
        namespace = pod.metadata.namespace
        if source.secret_key_ref is not None:
            import base64

            ref = source.secret_key_ref
            data = self.api.read_namespaced_secret(ref.name, namespace).data or {}
            return base64.b64decode(data[ref.key]).decode()
        if source.config_map_key_ref is not None:
            ref = source.config_map_key_ref
            return str((self.api.read_namespaced_config_map(ref.name, namespace).data or {})[ref.key])
        raise ValueError(f"the harness cannot resolve {source}")

    # -- the kubelet's log endpoint -----------------------------------------------------------------------
    def _log_path(self, namespace: str, pod: str) -> Path:
        return self.workdir / "logs" / f"{namespace}_{pod}.log"

    def _serve_logs(self) -> int:
        kubelet = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlparse(self.path)
                parts = url.path.strip("/").split("/")
                if len(parts) != 4 or parts[0] != "containerLogs":
                    self.send_error(404)
                    return
                path = kubelet._log_path(parts[1], parts[2])
                if not path.exists():
                    self.send_error(404, "no such container log")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                follow = parse_qs(url.query).get("follow") == ["true"]
                kubelet._stream(path, parts[2], self.wfile, follow)

            def log_message(self, *_: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.socket = _tls_context().wrap_socket(server.socket, server_side=True)
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True, name="kubelet-logs").start()
        return int(server.server_address[1])

    def _stream(self, path: Path, pod: str, out: Any, follow: bool) -> None:
        with path.open("rb") as log:
            while True:
                chunk = log.read(65536)
                if chunk:
                    out.write(chunk)
                    out.flush()
                    continue
                if not follow or self._stop.is_set() or not self._is_running(pod):
                    return
                time.sleep(0.2)

    def _is_running(self, pod_name: str) -> bool:
        with self._lock:
            return pod_name in self.started and any(p.poll() is None for p in self.processes.values())


def _field(pod: Any, path: str) -> str:
    match = re.fullmatch(r"metadata\.(annotations|labels)\['(.+)'\]", path)
    if match:
        return str(getattr(pod.metadata, match[1]).get(match[2], ""))
    simple = {
        "metadata.name": pod.metadata.name,
        "metadata.namespace": pod.metadata.namespace,
        "metadata.uid": pod.metadata.uid,
        "spec.nodeName": pod.spec.node_name,
        "spec.serviceAccountName": pod.spec.service_account_name,
        "status.hostIP": "127.0.0.1",
    }
    return str(simple[path])


def _container_status(name: str, pod: Any, state: dict[str, Any], ready: bool = False) -> dict[str, Any]:
    image = pod.spec.containers[0].image
    return {"name": name, "image": image, "imageID": "", "ready": ready, "restartCount": 0, "state": state}


def _kill(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


_TLS: ssl.SSLContext | None = None


def _tls_context() -> ssl.SSLContext:
    """A self-signed serving certificate (the API server does not verify kubelets without a CA flag)."""
    global _TLS
    if _TLS is None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "harness-kubelet")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
            )
            .sign(key, hashes.SHA256())
        )
        with tempfile.TemporaryDirectory() as tmp:
            cert_file, key_file = Path(tmp) / "tls.crt", Path(tmp) / "tls.key"
            cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            key_file.write_bytes(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert_file, key_file)
        _TLS = context
    return _TLS
