"""The work of the P1 job, shared by every contender: SHA-256 of a file's bytes, fed `repeat` times.

repeat=1 is the light job (I/O and overhead bound); a few hundred make each file seconds of CPU in all (the
heavy job), so that orchestration overhead is small next to the work.
"""

import hashlib
from pathlib import Path


def digest(path: Path, repeat: int = 1) -> str:
    data = path.read_bytes()
    sha = hashlib.sha256()
    for _ in range(repeat):
        sha.update(data)
    return sha.hexdigest()
