#!/usr/bin/env python3
"""Take the README's screenshots of the web UI: docs/images/designer.png and docs/images/monitor.png.

Starts a throwaway `concurrent server` (its own data dir and local MLflow server), stores the bundled demo
DAG for the designer and a small DAG of the test toolbox project (40 partitions, one of which fails) for the
monitor, runs the latter to its end, and photographs both pages in Debian's Chromium.

Usage: uv run python scripts/ui_screenshots.py [--out docs/images]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "src" / "concurrent_mlflow" / "demo"
TOOLBOX = ROOT / "tests" / "projects" / "toolbox"
MONITORED = f"""name: word-counts
description: upper-case every file (one partition fails), then count them all
nodes:
  - {{id: texts, kind: source, uri: data, pattern: "*.txt"}}
  - id: upper
    kind: project
    project: "{TOOLBOX}"
    entry_point: transform
    partitions: 40
    parameters: {{fail_on_partition: 17}}
  - {{id: total, kind: project, project: "{TOOLBOX}", entry_point: count}}
edges:
  - {{from: texts, to: upper, input: text, partitioner: file}}
  - {{from: upper, to: total, input: upper, partitioner: gather}}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ui-shots-") as tmp:
        work = Path(tmp)
        (work / "data").mkdir()
        for i in range(80):
            (work / "data" / f"doc-{i:03d}.txt").write_text(f"text number {i}\n" * (i + 1))
        (work / "projects").symlink_to(DEMO / "projects")
        port = _free_port()
        server = _start_server(work, port)
        try:
            url = f"http://127.0.0.1:{port}"
            run_id = _prepare(url)
            _photograph(url, run_id, out)
        finally:
            server.terminate()
            server.wait(timeout=60)
    print(f"wrote {out / 'designer.png'} and {out / 'monitor.png'}")


def _start_server(work: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CONCURRENT_HOME": str(work / "home")}
    env.pop("MLFLOW_TRACKING_URI", None)
    argv = [sys.executable, "-m", "concurrent_mlflow.cli", "server", "--port", str(port)]
    argv += ["--work-dir", str(work)]
    server = subprocess.Popen(argv, env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.5)
    server.kill()
    raise SystemExit("concurrent server did not start")


def _prepare(url: str) -> str:
    demo = (DEMO / "dag.yaml").read_text().replace("partitions: PARTITIONS", "partitions: 8")
    with httpx.Client(base_url=f"{url}/api/v1", timeout=60) as api:
        api.post("/dags", json={"yaml": demo}).raise_for_status()
        api.post("/dags", json={"yaml": MONITORED}).raise_for_status()
        run_id: str = api.post("/runs", json={"dag": "word-counts"}).raise_for_status().json()["id"]
        while api.get(f"/runs/{run_id}").json()["state"] not in ("succeeded", "failed", "cancelled"):
            time.sleep(1)
    return run_id


def _photograph(url: str, run_id: str, out: Path) -> None:
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1920, "height": 980})
        page.goto(f"{url}/dags/sensor-demo")
        page.get_by_test_id("node-preprocess").click()
        page.get_by_label("Entry point").wait_for()
        page.wait_for_timeout(1500)  # the validation round trip and the entry points settle
        page.screenshot(path=str(out / "designer.png"))
        page.set_viewport_size({"width": 1440, "height": 1180})
        page.goto(f"{url}/runs/{run_id}?node=upper")
        page.get_by_role("button", name="Log of partition 17").click()
        page.get_by_role("dialog").get_by_text("exit code").first.wait_for()
        page.get_by_role("button", name="Close").click()
        page.wait_for_timeout(500)
        page.screenshot(path=str(out / "monitor.png"))
        browser.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if __name__ == "__main__":
    main()
