"""`make bench`: benchmarks of this project against the plain limit and other tools (see harness.py)."""
