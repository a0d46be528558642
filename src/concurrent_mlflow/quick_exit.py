"""A command that has done its work exits at once, without a last garbage collection over MLflow's heap.

A process that imported MLflow (and with it pandas, pyarrow, SQLAlchemy) holds millions of objects. When it
exits, CPython's final collection walks them all: measured 5-6 s on a loaded 2-core machine (the issue's
"run end to CLI exit 2-6 s"), against 0.4 s with the heap frozen (`gc.freeze`) first. Freezing only skips
that walk; the exit handlers all still run (logging flushed, the store committed), and the operating
system frees the memory.
"""

from __future__ import annotations

import atexit
import gc


def skip_final_collection() -> None:
    """Freeze the heap as the process exits (an exit handler: it changes none of the others, it only makes
    the collection CPython runs after them all skip the objects alive then)."""
    atexit.register(gc.freeze)
