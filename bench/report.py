"""bench/results.json and bench/RESULTS.md: merged by section, so a run of some sections keeps the others'.

RESULTS.md opens with the machine and versions of the latest run; each section's part sits between
`<!-- section: NAME -->` markers with the date it was measured, and is replaced only when NAME runs again.
"""

from __future__ import annotations

import json
import os
import platform
import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from bench import envs
from bench.harness import Section, today

BLOCK = re.compile(r"<!-- section: (\S+) -->\n(.*?)<!-- /section: \1 -->\n", re.DOTALL)


def machine(load_before: tuple[float, ...]) -> str:
    cpu = _first("/proc/cpuinfo", "model name") or platform.processor() or "unknown CPU"
    mem_kib = int((_first("/proc/meminfo", "MemTotal") or "0 kB").split()[0])
    load_after = os.getloadavg()
    return "\n".join(
        [
            f"- date: {today()}",
            f"- machine: {os.cpu_count()} cores ({cpu}), {mem_kib / 2**20:.1f} GiB memory, "
            f"{platform.system()}",
            f"- Python {platform.python_version()}, MLflow {_version('mlflow')}, "
            f"{envs.PREFECT.replace('==', ' ')}, {envs.PYSPARK.replace('==', ' ')} (contender envs, "
            "bench/envs.py)",
            f"- load average (1 min) at start / end: {load_before[0]:.1f} / {load_after[0]:.1f}: other jobs "
            "shared the machine, so contenders run interleaved round by round and each table gives the "
            "median and (min-max) over rounds",
        ]
    )


def merge_json(path: Path, sections: list[Section]) -> dict[str, Any]:
    stored: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    for section in sections:
        stored.update(section.figures)
    path.write_text(json.dumps(stored, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return stored


def merge_markdown(path: Path, sections: list[Section], order: list[str], header: str) -> str:
    blocks = dict(BLOCK.findall(path.read_text(encoding="utf-8"))) if path.exists() else {}
    for section in sections:
        plots = "".join(f"\n![{plot.stem}]({plot.name})\n" for plot in section.plots)
        blocks[section.name] = f"{section.markdown.strip()}\n{plots}\n_Measured {today()}._\n"
    known = [name for name in order if name in blocks] + sorted(set(blocks) - set(order))
    body = "".join(f"<!-- section: {name} -->\n{blocks[name]}<!-- /section: {name} -->\n\n" for name in known)
    text = (
        "# Benchmark results\n\nWritten by `make bench` (`python -m bench`, see bench/harness.py); every "
        "figure is also in results.json by name. The latest run:\n\n"
        f"{header}\n\n{body}"
    )
    path.write_text(text.rstrip() + "\n", encoding="utf-8")
    return text


def _first(path: str, key: str) -> str | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "absent"
