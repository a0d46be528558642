"""Git credentials kept out of everything stored or shown: `https://user:token@host/repo.git` is used as
`https://host/repo.git`, and git is told the credentials through its environment.

A stage's spec (which every pod reads from MLflow), tags, cache directory names, the mirrors' git config and
logs all carry the URL without its credentials. The processes that fetch the repository (the engine when
it plans, each worker) get `url.<URL with credentials>.insteadOf = <URL without>` through git's
`GIT_CONFIG_COUNT` / `GIT_CONFIG_KEY_n` / `GIT_CONFIG_VALUE_n` variables (git 2.31+): git puts the
credentials back for that repository only, and nothing writes them down. Configuration already in the
environment is kept (the entries are appended after it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@(?P<rest>.*)$")


def split(url: str) -> tuple[str, str | None]:
    """(`url` without its `user:password@`, that userinfo or None). SSH's `git@host:...` and
    `ssh://git@host/...` name a user, not a secret: a userinfo without a password is left in place."""
    found = _USERINFO.match(url)
    if found is None or ":" not in found["userinfo"]:
        return url, None
    return found["scheme"] + found["rest"], found["userinfo"]


def without(url: str) -> str:
    return split(url)[0]


def git_env(urls: Iterable[str], environ: Mapping[str, str]) -> dict[str, str]:
    """The variables that give git the credentials of `urls` (repository URLs; those without credentials
    add nothing), after the configuration `environ` already holds; {} when there is nothing to add."""
    rewrites = sorted({(url, bare) for url in urls if (bare := split(url)[0]) != url})
    if not rewrites:
        return {}
    first = _count(environ)
    env = {"GIT_CONFIG_COUNT": str(first + len(rewrites))}
    for index, (url, bare) in enumerate(rewrites, start=first):
        env[f"GIT_CONFIG_KEY_{index}"] = f"url.{url}.insteadOf"
        env[f"GIT_CONFIG_VALUE_{index}"] = bare
    return env


def _count(environ: Mapping[str, str]) -> int:
    value = environ.get("GIT_CONFIG_COUNT", "")
    return int(value) if value.isdigit() else 0
