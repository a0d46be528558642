"""A git URL's credentials: taken off the URL, given back to git through its environment only."""

from __future__ import annotations

import subprocess

import pytest

from concurrent_mlflow import git_credentials


@pytest.mark.parametrize(
    ("url", "bare", "userinfo"),
    [
        ("https://bot:tok@git.example/ml/repo.git", "https://git.example/ml/repo.git", "bot:tok"),
        ("http://x:y@127.0.0.1:8080/r.git", "http://127.0.0.1:8080/r.git", "x:y"),
        ("https://git.example/ml/repo.git", "https://git.example/ml/repo.git", None),
        ("ssh://git@git.example/ml/repo.git", "ssh://git@git.example/ml/repo.git", None),  # a user, no secret
        ("git@github.com:org/repo.git", "git@github.com:org/repo.git", None),
        ("file:///srv/repo.git", "file:///srv/repo.git", None),
    ],
)
def test_split(url: str, bare: str, userinfo: str | None) -> None:
    assert git_credentials.split(url) == (bare, userinfo)


def test_git_puts_the_credentials_back_for_that_repository_only() -> None:
    env = git_credentials.git_env(
        ["https://bot:tok@git.example/ml/repo.git", "https://git.example/public.git"], {}
    )
    assert env == {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "url.https://bot:tok@git.example/ml/repo.git.insteadOf",
        "GIT_CONFIG_VALUE_0": "https://git.example/ml/repo.git",
    }

    def rewritten(url: str) -> str:
        # `ls-remote --get-url` applies url.<base>.insteadOf as a fetch would, without the network.
        done = subprocess.run(
            ["git", "ls-remote", "--get-url", url],
            env={**env, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip()

    assert rewritten("https://git.example/ml/repo.git") == "https://bot:tok@git.example/ml/repo.git"
    assert rewritten("https://git.example/other.git") == "https://git.example/other.git"


def test_configuration_already_in_the_environment_is_kept() -> None:
    env = git_credentials.git_env(["https://a:b@h/r.git"], {"GIT_CONFIG_COUNT": "2"})
    assert env["GIT_CONFIG_COUNT"] == "3" and env["GIT_CONFIG_KEY_2"] == "url.https://a:b@h/r.git.insteadOf"
    assert git_credentials.git_env(["https://h/r.git"], {}) == {}
