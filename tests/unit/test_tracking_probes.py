"""MLflow's per-call context probes: absent modules fail at once, installed ones are untouched."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
from concurrent_mlflow import tracking
from mlflow.tracking.request_header.registry import resolve_request_headers

tracking.Tracking("http://127.0.0.1:9")  # makes no call
resolve_request_headers()
scans = []

class Recorder:  # first in line: sees every module the import system goes looking for
    @staticmethod
    def find_spec(name, *args, **kwargs):
        scans.append(name)

sys.meta_path.insert(0, Recorder)
resolve_request_headers()  # what every MLflow REST call does first
sys.meta_path.remove(Recorder)

tracking.CONTEXT_PROBES = ("concurrent_no_such_module", "csv")
tracking.skip_absent_probes()
import csv  # an installed probe still imports
try:
    import concurrent_no_such_module  # noqa: F401
    imported = True
except ModuleNotFoundError:
    imported = False
print(json.dumps({"scans": scans, "imported_absent": imported, "csv": sys.modules["csv"] is not None}))
"""


def test_absent_probes_are_not_searched_for_on_every_mlflow_call() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    # Before: dbruntime five times, IPython four and pyspark once per call, each a scan of sys.path.
    assert seen["scans"] == []
    assert seen == {"scans": [], "imported_absent": False, "csv": True}
