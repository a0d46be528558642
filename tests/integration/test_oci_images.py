"""Project images built without Docker (oci_image.py), against a real registry.

The base image is written by the test as an OCI layout by hand and pushed with skopeo, and what the builder
pushes is read back with skopeo and unpacked with Python's tarfile: the checks never go through the code
under test.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from concurrent_mlflow import oci_image
from concurrent_mlflow.oci_image import ImageError, ImageRef, Registry, extend, layer_from_directory
from concurrent_mlflow.project import resolve_project
from concurrent_mlflow.project_image import (
    CODE_DIR,
    ENV_DIR,
    PROJECT_DIR_VARIABLE,
    PROJECT_ENV_VARIABLE,
    Platform,
    build_project_image,
)
from tests.fixtures.oci_registry import OciRegistry

pytestmark = pytest.mark.integration


def _blob(layout: Path, content: bytes) -> dict[str, object]:
    digest = hashlib.sha256(content).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(content)
    return {"digest": f"sha256:{digest}", "size": len(content)}


def push_base(registry: OciRegistry, tmp: Path, ref: str) -> None:
    """A one-layer base image (a release file, an Env and a label), as an OCI layout, copied by skopeo."""
    layout = tmp / "base-layout"
    (layout / "blobs" / "sha256").mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        content = b"tiny base 1\n"
        info = tarfile.TarInfo("etc/base-release")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    layer = {"mediaType": oci_image.OCI_LAYER, **_blob(layout, gzip.compress(raw.getvalue(), mtime=0))}
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "BASE=tiny"], "Labels": {"base": "tiny"}},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(raw.getvalue()).hexdigest()}"]},
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": oci_image.OCI_MANIFEST,
        "config": {"mediaType": oci_image.OCI_CONFIG, **_blob(layout, json.dumps(config).encode())},
        "layers": [layer],
    }
    described = {"mediaType": oci_image.OCI_MANIFEST, **_blob(layout, json.dumps(manifest).encode())}
    index = {
        "schemaVersion": 2,
        "manifests": [{**described, "annotations": {"org.opencontainers.image.ref.name": "1"}}],
    }
    (layout / "index.json").write_text(json.dumps(index))
    registry.skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:1", f"docker://{ref}")


def make_project(root: Path, greeting: str) -> Path:
    project = root / "project"
    (project / "pkg").mkdir(parents=True, exist_ok=True)
    (project / "MLproject").write_text("name: hello\nentry_points:\n  main:\n    command: python main.py\n")
    (project / "main.py").write_text(
        "import os, pathlib\n"
        "here = pathlib.Path(__file__).parent\n"
        "print((here / 'pkg' / 'greeting.txt').read_text().strip(), os.environ.get('GREETED', '?'))\n"
    )
    (project / "pkg" / "greeting.txt").write_text(greeting + "\n")
    (project / "run.sh").write_text('#!/bin/sh\nexec python "$(dirname "$0")/main.py"\n')
    (project / "run.sh").chmod(0o755)
    link = project / "current"
    if not link.is_symlink():
        link.symlink_to("pkg")  # relative links stay links in the layer
    return project


def unpack_with_skopeo(registry: OciRegistry, ref: str, tmp: Path) -> Path:
    """skopeo copies the image into an OCI layout; tarfile extracts its layers in order."""
    layout = tmp / f"copy-{hashlib.sha256(ref.encode()).hexdigest()[:8]}"
    registry.skopeo("copy", "--src-tls-verify=false", f"docker://{ref}", f"oci:{layout}:x")
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"].split(":", 1)[1]
    manifest = json.loads((layout / "blobs" / "sha256" / digest).read_text())
    root = layout / "rootfs"
    root.mkdir()
    for layer in manifest["layers"]:
        blob = layout / "blobs" / "sha256" / layer["digest"].split(":", 1)[1]
        with tarfile.open(blob, mode="r:gz") as tar:
            tar.extractall(root, filter="tar")
    return root


def test_a_project_image_is_built_on_a_base_reused_while_unchanged_and_runs_from_its_layers(
    oci_registry: OciRegistry, tmp_path: Path
) -> None:
    base = f"{oci_registry.host}/base/tiny:1"
    push_base(oci_registry, tmp_path, base)
    registry = Registry(oci_registry.host, insecure=True)
    project = make_project(tmp_path, "hello from the image")
    target = ImageRef.parse(f"{oci_registry.host}/projects/hello")

    def layers(scratch: Path) -> list[oci_image.Layer]:
        return [
            layer_from_directory(project, "/opt/concurrent/project", scratch, "project hello at commit c1")
        ]

    built = extend(
        registry,
        ImageRef.parse(base),
        target,
        "commit c1",
        layers,
        env={"GREETED": "pod"},
        labels={"org.concurrent.project": "hello"},
        working_dir="/opt/concurrent/project",
    )

    assert built.built and built.ref.tag and built.ref.tag.startswith("cm-")
    seen = oci_registry.inspect(str(built.ref))
    assert seen["Digest"] == built.digest
    assert len(seen["Layers"]) == 2  # type: ignore[arg-type]  # the base's layer, then the project's
    assert seen["Labels"] == {"base": "tiny", "org.concurrent.project": "hello"}
    config = oci_registry.inspect(str(built.ref), config=True)["config"]
    assert isinstance(config, dict)
    assert "BASE=tiny" in config["Env"] and "GREETED=pod" in config["Env"]
    assert config["WorkingDir"] == "/opt/concurrent/project"

    root = unpack_with_skopeo(oci_registry, str(built.ref), tmp_path)
    assert (root / "etc" / "base-release").read_text() == "tiny base 1\n"
    app = root / "opt" / "concurrent" / "project"
    assert (app / "current").is_symlink() and (app / "current").readlink() == Path("pkg")
    assert os.access(app / "run.sh", os.X_OK)  # modes survive
    env = {**os.environ, "GREETED": "pod", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    ran = subprocess.run([str(app / "run.sh")], capture_output=True, text=True, env=env, check=True)
    assert ran.stdout.strip() == "hello from the image pod"

    made: list[int] = []

    def counted(scratch: Path) -> list[oci_image.Layer]:
        made.append(1)
        return layers(scratch)

    again = extend(registry, ImageRef.parse(base), target, "commit c1", counted, env={"GREETED": "pod"})
    assert not again.built and again.ref == built.ref and again.digest == built.digest
    assert made == []  # a cache hit makes no layer at all

    make_project(tmp_path, "hello again")
    changed = extend(registry, ImageRef.parse(base), target, "commit c2", layers)
    assert changed.built and changed.ref.tag != built.ref.tag
    root = unpack_with_skopeo(oci_registry, str(changed.ref), tmp_path)
    assert (root / "opt/concurrent/project/pkg/greeting.txt").read_text() == "hello again\n"


def test_a_layer_is_the_same_bytes_whatever_the_files_dates_owners_or_listing_order(tmp_path: Path) -> None:
    project = make_project(tmp_path / "a", "same")
    first = layer_from_directory(project, "/opt/p", tmp_path / "a")
    for path in project.rglob("*"):
        if not path.is_symlink():
            os.utime(path, (1_000_000, 1_000_000))  # another checkout, another day
    (tmp_path / "b").mkdir()
    second = layer_from_directory(project, "/opt/p", tmp_path / "b")
    assert (first.digest, first.diff_id, first.size) == (second.digest, second.diff_id, second.size)
    with tarfile.open(second.path) as tar:
        members = tar.getmembers()
    assert [m.name for m in members][:3] == ["opt", "opt/p", "opt/p/MLproject"]
    assert {(m.uid, m.gid, m.mtime) for m in members} == {(0, 0, 0)}


def test_hostile_or_wrong_inputs_are_refused_with_what_to_do(
    oci_registry: OciRegistry, tmp_path: Path
) -> None:
    project = make_project(tmp_path, "x")
    os.mkfifo(project / "pipe")
    with pytest.raises(ImageError, match="pipe: only files, directories and symbolic links"):
        layer_from_directory(project, "/opt/p", tmp_path)
    with pytest.raises(ImageError, match="absolute path"):
        layer_from_directory(project, "opt/p", tmp_path)
    with pytest.raises(ImageError, match="name its registry"):
        ImageRef.parse("ubuntu:22.04")
    registry = Registry(oci_registry.host, insecure=True)
    missing = ImageRef.parse(f"{oci_registry.host}/base/absent:1")
    with pytest.raises(ImageError, match="is not in its registry: push it there first"):
        extend(registry, missing, ImageRef.parse(f"{oci_registry.host}/p/q"), "k", lambda _: [])
    closed = Registry("127.0.0.1:9", insecure=True)  # nothing listens on the discard port
    with pytest.raises(ImageError, match=r"registry 127\.0\.0\.1:9"):
        closed.manifest(missing)


def make_wheel(directory: Path, name: str = "tinydep", version: str = "1.0") -> None:
    """A pure-Python wheel written by hand (no index is reached): `tinydep.ANSWER == 42`."""
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": b"ANSWER = 42\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [
        f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}"
        for path, data in files.items()
    ]
    files[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
    directory.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(directory / f"{name}-{version}-py3-none-any.whl", "w") as wheel:
        for path, data in files.items():
            wheel.writestr(path, data)


def test_a_project_image_holds_its_code_and_a_venv_for_the_cluster_that_runs_the_entry_point(
    oci_registry: OciRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = f"{oci_registry.host}/base/tiny:1"
    push_base(oci_registry, tmp_path, base)
    make_wheel(tmp_path / "wheels")
    monkeypatch.setenv("UV_FIND_LINKS", str(tmp_path / "wheels"))
    monkeypatch.setenv("UV_NO_INDEX", "1")  # the test's wheel only: uv's index settings are the operator's
    project = tmp_path / "scorer"
    project.mkdir()
    (project / "MLproject").write_text(
        "name: scorer\npython_env: python_env.yaml\nentry_points:\n  main:\n    command: python main.py\n"
    )
    (project / "python_env.yaml").write_text("python: '3.11.4'\ndependencies: ['tinydep==1.0']\n")
    (project / "main.py").write_text(
        "import importlib.util, sys, tinydep\n"
        "print(tinydep.ANSWER, sys.prefix, importlib.util.find_spec('mlflow') is None)\n"
    )
    resolved = resolve_project(str(project), None, base_dir=tmp_path, cache_dir=tmp_path / "cache")
    interpreter = str(Path(sys.executable).resolve())  # the base image's Python is this machine's here
    platform = Platform("x86_64-manylinux_2_28", interpreter, "3.11")
    registry = Registry(oci_registry.host, insecure=True)
    target = ImageRef.parse(f"{oci_registry.host}/projects/scorer")

    built = build_project_image(registry, ImageRef.parse(base), target, resolved, platform)

    assert built.built and len(built.new_layers) == 2  # the code, then the environment
    config = oci_registry.inspect(str(built.ref), config=True)["config"]
    assert isinstance(config, dict)
    assert (
        f"{PROJECT_ENV_VARIABLE}={ENV_DIR}" in config["Env"]
        and f"{PROJECT_DIR_VARIABLE}={CODE_DIR}" in config["Env"]
    )
    assert (
        oci_registry.inspect(str(built.ref))["Labels"]["org.concurrent-mlflow.platform"]
        == "x86_64-manylinux_2_28"
    )  # type: ignore[index]
    root = unpack_with_skopeo(oci_registry, str(built.ref), tmp_path)
    venv = root / ENV_DIR.lstrip("/")
    assert (venv / "bin" / "python").readlink() == Path(interpreter)  # the base image's Python
    ran = subprocess.run(
        [str(venv / "bin" / "python"), str(root / CODE_DIR.lstrip("/") / "main.py")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    answer, prefix, isolated = ran.stdout.split()
    assert (
        answer == "42" and Path(prefix) == venv and isolated == "True"
    )  # its venv, not the worker's packages

    again = build_project_image(registry, ImageRef.parse(base), target, resolved, platform)
    assert not again.built and again.digest == built.digest

    (project / "python_env.yaml").write_text("python: '3.10'\ndependencies: ['tinydep==1.0']\n")
    other = resolve_project(str(project), None, base_dir=tmp_path, cache_dir=tmp_path / "cache")
    with pytest.raises(ImageError, match=r"asks for Python 3\.10, but the base image .* has Python 3\.11"):
        build_project_image(registry, ImageRef.parse(base), target, other, platform)
