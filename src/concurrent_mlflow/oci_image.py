"""OCI images built without Docker: a base image plus layers made here as tarballs, pushed with `oras`.

No daemon, no privileged pod, no Kaniko: a layer is a gzipped tar of a directory, written by Python's
tarfile with every entry owned by root, dated at the epoch and in sorted order, and gzip without a name or
a time in its header; so the same tree gives the same digest on any machine, and a rebuild pushes nothing.

An image is named by what went into it, not by when it was built: its tag is a hash of the base image's
manifest digest and the caller's `key` (for a project: its commit and its environment). `extend` looks
that tag up first and, when the registry has it, returns at once without making a layer (a cache hit);
otherwise it makes the layers, pushes the blobs the registry lacks, the config and the manifest. The base
image's layers are not downloaded: they are mounted from its repository when it is another one of the same
registry (copied blob by blob where the registry refuses the mount).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import logging
import stat
import tarfile
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from concurrent_mlflow.errors import ConcurrentError

log = logging.getLogger("concurrent.images")

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
ACCEPTED_MANIFESTS = [OCI_MANIFEST, DOCKER_MANIFEST]
TAG_PREFIX = "cm-"  # tags this module made: a hash, never a name a person chose


class ImageError(ConcurrentError):
    """A registry refused or lacked something an image build needs."""


@dataclass(frozen=True)
class Layer:
    """A layer's gzipped tar on disk, with the two digests an image records for it."""

    path: Path
    digest: str  # sha256 of the gzipped bytes: the blob's name in the registry
    diff_id: str  # sha256 of the tar itself: what the image config lists in rootfs.diff_ids
    size: int
    description: str  # the history entry, e.g. "project code at /opt/concurrent/project"

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": OCI_LAYER, "digest": self.digest, "size": self.size}


@dataclass(frozen=True)
class ImageRef:
    """`host[:port]/repository[:tag]`, as a pod's `image` names it."""

    registry: str
    repository: str
    tag: str | None = None

    @classmethod
    def parse(cls, text: str) -> ImageRef:
        host, sep, rest = text.partition("/")
        if not sep or not rest or ("." not in host and ":" not in host and host != "localhost"):
            raise ImageError(
                f"image {text!r}: name its registry, as in registry.example.com/team/project[:tag] "
                "(images are pushed there, so the registry cannot be implied)"
            )
        repository, tag = rest, None
        if ":" in rest.rsplit("/", 1)[-1]:
            repository, tag = rest.rsplit(":", 1)
        return cls(host, repository, tag)

    def with_tag(self, tag: str) -> ImageRef:
        return ImageRef(self.registry, self.repository, tag)

    def __str__(self) -> str:
        return f"{self.registry}/{self.repository}" + (f":{self.tag}" if self.tag else "")


@dataclass(frozen=True)
class BuiltImage:
    ref: ImageRef  # with its content tag
    digest: str  # of its manifest: `ref@digest` pins it
    built: bool  # False: the registry had it already (nothing was made or pushed)
    new_layers: tuple[str, ...] = ()  # the digests of the layers made for it (none on a cache hit)


def layer_from_directory(source: Path, target: str, out_dir: Path, description: str = "") -> Layer:
    """The files under `source` placed at `target` (absolute) in the image, as a reproducible layer.

    Symbolic links are kept as links (a venv's `bin/python`); sockets and devices are refused."""
    if not target.startswith("/"):
        raise ImageError(f"a layer's target must be an absolute path in the image, not {target!r}")
    tar_path = out_dir / f"layer-{hashlib.sha256(target.encode()).hexdigest()[:12]}.tar"
    with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as tar:
        for parent in _parents(target):  # the directories above `target`, so it unpacks anywhere
            tar.addfile(_entry(parent, tarfile.DIRTYPE, 0o755))
        for path in [source, *sorted(source.rglob("*"))]:
            name = target.strip("/") + ("/" + path.relative_to(source).as_posix() if path != source else "")
            _add(tar, path, name)
    return _gzip_layer(tar_path, description or f"{source.name} at {target}")


def _parents(target: str) -> list[str]:
    parts = target.strip("/").split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _entry(name: str, kind: bytes, mode: int, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size = kind, mode, size
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "root", "root"
    return info


def _add(tar: tarfile.TarFile, path: Path, name: str) -> None:
    mode = path.lstat().st_mode
    permissions = stat.S_IMODE(mode)
    if stat.S_ISLNK(mode):
        info = _entry(name, tarfile.SYMTYPE, 0o777)
        info.linkname = str(path.readlink())
        tar.addfile(info)
    elif stat.S_ISDIR(mode):
        tar.addfile(_entry(name, tarfile.DIRTYPE, permissions))
    elif stat.S_ISREG(mode):
        with path.open("rb") as content:
            tar.addfile(_entry(name, tarfile.REGTYPE, permissions, path.stat().st_size), content)
    else:
        raise ImageError(f"{path}: only files, directories and symbolic links go into an image layer")


def _gzip_layer(tar_path: Path, description: str) -> Layer:
    diff = hashlib.sha256()
    gz_path = tar_path.with_suffix(".tar.gz")
    # mtime=0 and no file name: the gzip header holds nothing that differs between builds
    with (
        tar_path.open("rb") as raw,
        gz_path.open("wb") as out,
        gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=6) as packed,
    ):
        while chunk := raw.read(1 << 20):
            diff.update(chunk)
            packed.write(chunk)
    tar_path.unlink()
    digest = _file_digest(gz_path)
    return Layer(gz_path, digest, f"sha256:{diff.hexdigest()}", gz_path.stat().st_size, description)


def _file_digest(path: Path) -> str:
    with path.open("rb") as content:
        return f"sha256:{hashlib.file_digest(content, 'sha256').hexdigest()}"


class Registry:
    """One registry, through `oras`'s client: manifests, blobs and tags."""

    def __init__(
        self,
        host: str,
        *,
        insecure: bool = False,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.host = host
        backend = "basic" if username is not None else "token"  # anonymous: a registry may hand out tokens
        self._client = _client_class()(hostname=host, insecure=insecure, auth_backend=backend)
        for scheme in ("http://", "https://"):
            self._client.session.mount(scheme, _adapter_class()())
        if username is not None:
            self._client.auth.set_basic_auth(username, password or "")
        self._scheme = "http" if insecure else "https"

    def manifest(self, ref: ImageRef) -> tuple[dict[str, Any], str] | None:
        """The image's manifest and its digest; None if the registry has no such tag."""
        url = f"{self._scheme}://{self.host}/v2/{ref.repository}/manifests/{ref.tag or 'latest'}"
        response = self._request(url, "GET", headers={"Accept": ", ".join(ACCEPTED_MANIFESTS)})
        if response.status_code == 404:
            return None
        self._check(response, f"read the manifest of {ref}")
        digest = response.headers.get("Docker-Content-Digest") or _bytes_digest(response.content)
        return response.json(), digest

    def blob(self, ref: ImageRef, digest: str) -> bytes:
        url = f"{self._scheme}://{self.host}/v2/{ref.repository}/blobs/{digest}"
        response = self._request(url, "GET")
        self._check(response, f"read blob {digest} of {ref.repository}")
        return bytes(response.content)

    def has_blob(self, repository: str, digest: str) -> bool:
        url = f"{self._scheme}://{self.host}/v2/{repository}/blobs/{digest}"
        return bool(self._request(url, "HEAD").status_code == 200)

    def push_blob(self, repository: str, path: Path, digest: str, size: int, media_type: str) -> bool:
        """Upload the blob unless the repository has it; True if it was uploaded."""
        if self.has_blob(repository, digest):
            return False
        layer = {"mediaType": media_type, "digest": digest, "size": size}
        container = self._client.get_container(f"{self.host}/{repository}")
        response = self._client.put_upload(str(path), container, layer)  # (upload_blob would HEAD again)
        self._check(response, f"push blob {digest} to {repository}")
        return True

    def mount_blob(self, repository: str, digest: str, source: str) -> bool:
        """Make a blob of `source` (same registry) part of `repository` without sending it; False if the
        registry refused (the caller then copies it)."""
        if self.has_blob(repository, digest):
            return True
        url = f"{self._scheme}://{self.host}/v2/{repository}/blobs/uploads/?mount={digest}&from={source}"
        return bool(self._request(url, "POST").status_code == 201)

    def push_manifest(self, ref: ImageRef, manifest: Mapping[str, Any]) -> str:
        """Store the manifest under `ref`'s tag; its digest."""
        body = _canonical(manifest)
        url = f"{self._scheme}://{self.host}/v2/{ref.repository}/manifests/{ref.tag}"
        headers = {"Content-Type": str(manifest.get("mediaType", OCI_MANIFEST))}
        response = self._request(url, "PUT", headers=headers, data=body)
        self._check(response, f"push the manifest of {ref}")
        return response.headers.get("Docker-Content-Digest") or _bytes_digest(body)

    def _request(self, url: str, method: str, **kwargs: Any) -> Any:
        import requests

        try:
            return self._client.do_request(url, method, **kwargs)
        except requests.RequestException as exc:
            raise ImageError(f"registry {self.host}: {method} failed: {exc}") from None

    def _check(self, response: Any, what: str) -> None:
        if response.status_code in (401, 403):
            raise ImageError(
                f"registry {self.host} refused to {what} (HTTP {response.status_code}): check the "
                "registry's user and password, and that they may push to this repository"
            )
        if response.status_code >= 300:
            detail = response.text[:300].strip()
            raise ImageError(f"registry {self.host} could not {what} (HTTP {response.status_code}): {detail}")


REQUEST_TIMEOUT = 60.0  # seconds for one request; a layer of hundreds of MB still goes in one PUT


@functools.cache
def _client_class() -> type[Any]:
    """oras's client, retrying a failed request once after 2 s instead of five times over two minutes
    (its default): a CLI command or an engine pass should say a registry is unreachable, not hang."""
    import oras.provider  # (first: oras.decorator imports it back)
    from oras.decorator import retry

    class Client(oras.provider.Registry):  # type: ignore[misc]
        do_request = retry(attempts=1, timeout=1)(oras.provider.Registry.do_request.__wrapped__)

    return Client


@functools.cache
def _adapter_class() -> type[Any]:
    """An HTTP adapter that gives every request a timeout (requests has none by default)."""
    from requests import PreparedRequest, Response
    from requests.adapters import HTTPAdapter

    class TimedAdapter(HTTPAdapter):
        def send(
            self,
            request: PreparedRequest,
            stream: bool = False,
            timeout: float | tuple[float | None, float | None] | None = None,
            verify: bool | str = True,
            cert: str | tuple[str, str] | None = None,
            proxies: dict[str, str] | None = None,
        ) -> Response:
            timeout = timeout or REQUEST_TIMEOUT
            return super().send(request, stream, timeout, verify, cert, proxies)

    return TimedAdapter


def _canonical(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def _bytes_digest(content: bytes) -> str:
    return f"sha256:{hashlib.sha256(content).hexdigest()}"


def content_tag(base_digest: str, key: str) -> str:
    """The tag of the image made from the base with that digest and whatever `key` names."""
    return TAG_PREFIX + hashlib.sha256(f"{base_digest}\n{key}".encode()).hexdigest()[:40]


def extend(
    registry: Registry,
    base: ImageRef,
    target: ImageRef,
    key: str,
    make_layers: Callable[[Path], Sequence[Layer]],
    *,
    env: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    working_dir: str | None = None,
) -> BuiltImage:
    """The image `base` + the layers `make_layers(scratch_dir)` returns, pushed as `target` with a content
    tag; when that tag exists already, nothing is made or pushed."""
    found = registry.manifest(base)
    if found is None:
        raise ImageError(f"base image {base} is not in its registry: push it there first")
    base_manifest, base_digest = found
    ref = target.with_tag(content_tag(base_digest, key))
    existing = registry.manifest(ref)
    if existing is not None:
        log.info("image %s exists: nothing to build", ref)
        return BuiltImage(ref, existing[1], built=False)
    base_config = json.loads(registry.blob(base, base_manifest["config"]["digest"]))
    with tempfile.TemporaryDirectory(prefix="concurrent-image-") as scratch:
        layers = tuple(make_layers(Path(scratch)))
        config = _config(base_config, layers, env or {}, labels or {}, working_dir)
        config_path = Path(scratch) / "config.json"
        config_path.write_bytes(_canonical(config))
        config_digest = _file_digest(config_path)
        _bring_base_layers(registry, base, target, base_manifest)
        for layer in layers:
            registry.push_blob(target.repository, layer.path, layer.digest, layer.size, OCI_LAYER)
        registry.push_blob(
            target.repository, config_path, config_digest, config_path.stat().st_size, OCI_CONFIG
        )
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_path.stat().st_size},
            "layers": [*base_manifest["layers"], *(layer.descriptor() for layer in layers)],
            "annotations": {
                "org.opencontainers.image.base.name": str(base),
                "org.opencontainers.image.base.digest": base_digest,
            },
        }
        digest = registry.push_manifest(ref, manifest)
    log.info("built image %s (%d new layer(s))", ref, len(layers))
    return BuiltImage(ref, digest, built=True, new_layers=tuple(layer.digest for layer in layers))


def _config(
    base: Mapping[str, Any],
    layers: Sequence[Layer],
    env: Mapping[str, str],
    labels: Mapping[str, str],
    working_dir: str | None,
) -> dict[str, Any]:
    """The base image's config with the layers appended and `env`, `labels` and `working_dir` set; no
    creation time (it would make every build differ)."""
    config: dict[str, Any] = json.loads(json.dumps(base))
    runtime = config.setdefault("config", {})
    variables = dict(item.split("=", 1) for item in runtime.get("Env") or [] if "=" in item)
    runtime["Env"] = [f"{k}={v}" for k, v in {**variables, **env}.items()]
    runtime["Labels"] = {**(runtime.get("Labels") or {}), **labels}
    if working_dir:
        runtime["WorkingDir"] = working_dir
    config.pop("created", None)
    rootfs = config.setdefault("rootfs", {"type": "layers", "diff_ids": []})
    rootfs["diff_ids"] = [*rootfs.get("diff_ids", []), *(layer.diff_id for layer in layers)]
    added = [{"created_by": f"concurrent-mlflow: {layer.description}"} for layer in layers]
    config["history"] = [*config.get("history", []), *added]
    return config


def _bring_base_layers(
    registry: Registry, base: ImageRef, target: ImageRef, base_manifest: Mapping[str, Any]
) -> None:
    """The base image's layers and nothing else in the target repository: mounted, or copied where the
    registry will not mount (a copy goes through a temporary file, one layer at a time)."""
    if base.repository == target.repository:
        return
    for layer in base_manifest["layers"]:
        if registry.mount_blob(target.repository, layer["digest"], base.repository):
            continue
        with tempfile.NamedTemporaryFile(prefix="concurrent-layer-") as copy:
            copy.write(registry.blob(base, layer["digest"]))
            copy.flush()
            path, media_type = Path(copy.name), layer["mediaType"]
            registry.push_blob(target.repository, path, layer["digest"], layer["size"], media_type)


__all__ = [
    "BuiltImage",
    "ImageError",
    "ImageRef",
    "Layer",
    "Registry",
    "content_tag",
    "extend",
    "layer_from_directory",
]
