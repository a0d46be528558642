"""How the server hands out the UI's index.html: base set to the mount point, a rebuild picked up at once,
and a clear page when the UI was never built."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from concurrent_mlflow.server import ui


@pytest.fixture
def static(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(ui, "STATIC", tmp_path)
    return tmp_path


def test_the_base_is_the_mount_point(static: Path) -> None:
    (static / "index.html").write_text('<head><base href="/" /><script src="./assets/a.js"></script></head>')
    assert '<base href="/" />' in ui.index_html("")
    assert '<base href="/concurrent/" />' in ui.index_html("/concurrent")
    assert '<base href="/x&quot;&gt;/" />' in ui.index_html('/x">')


def test_a_rebuilt_index_is_served_without_a_restart(static: Path) -> None:
    index = static / "index.html"
    index.write_text('<base href="/" /><script src="./assets/old.js"></script>')
    assert "old.js" in ui.index_html("")
    index.write_text('<base href="/" /><script src="./assets/new.js"></script>')
    os.utime(index, ns=(index.stat().st_atime_ns, index.stat().st_mtime_ns + 1_000_000))
    assert "new.js" in ui.index_html("")


def test_without_a_build_the_page_says_how_to_build_it(static: Path) -> None:
    page = ui.index_html("/concurrent")
    assert "make ui" in page and 'href="/concurrent/api/v1/docs"' in page
