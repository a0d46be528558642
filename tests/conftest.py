"""Shared fixtures. Fixture modules live in tests/fixtures and are loaded here as plugins."""

pytest_plugins = [
    "tests.fixtures.mlflow_server",
    "tests.fixtures.git_server",
    "tests.fixtures.s3_server",
    "tests.fixtures.postgres",
    "tests.fixtures.control_plane",
]
