"""Where this machine keeps things: one data dir (`CONCURRENT_HOME`, default ~/.concurrent-mlflow)."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Paths:
    home: Path

    @classmethod
    def from_env(cls) -> Paths:
        return cls(Path(os.environ.get("CONCURRENT_HOME", Path.home() / ".concurrent-mlflow")).expanduser())

    @property
    def store(self) -> Path:
        return self.home / "concurrent.db"

    @property
    def store_url(self) -> str:
        """`CONCURRENT_STORE` (a SQLAlchemy URL: postgresql://...) or SQLite under the data dir."""
        return os.environ.get("CONCURRENT_STORE") or str(self.store)

    @property
    def cache(self) -> Path:
        return Path(os.environ.get("CONCURRENT_CACHE", self.home / "cache"))

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def scratch(self) -> Path:
        return self.home / "scratch"

    @property
    def mlflow(self) -> Path:
        return self.home / "mlflow"


def is_loopback(host: str) -> bool:
    """True for localhost and 127.0.0.0/8 or ::1: where auth is off by default."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
