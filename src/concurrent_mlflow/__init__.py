"""Concurrent for MLflow."""


def __getattr__(name: str) -> str:
    # `__version__` reads the installed metadata on first use: importlib.metadata alone costs about as much
    # as starting the interpreter, and every `concurrent` command imports this package.
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("concurrent-mlflow")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0.0.0"
