"""The `concurrent` command line: run DAGs here or on a server, read runs back, manage the service.

Subcommands are imported only when run (see `cli.lazy`); the short help beside each is what
`concurrent --help` lists, the first paragraph of that command's docstring.
"""

from concurrent_mlflow.cli.base import CliContext, main, run_url

COMMANDS = {
    "run": (
        "concurrent_mlflow.cli.runs:run",
        "Run a DAG (`concurrent run DAG.yaml`) or retry a failed run (`concurrent run retry RUN_ID`).",
    ),
    "runs": ("concurrent_mlflow.cli.runs:runs", "List, inspect and cancel DAG runs."),
    "logs": (
        "concurrent_mlflow.cli.runs:logs",
        "Print the log of task NODE[PARTITION] of RUN_ID (stdout and stderr of its worker).",
    ),
    "dag": (
        "concurrent_mlflow.cli.dags:dag",
        "Validate DAG documents, print their JSON Schema, import the original product's DAGs.",
    ),
    "schedule": (
        "concurrent_mlflow.cli.schedules:schedule",
        "Cron schedules of stored DAGs: micro-batch runs over the data that arrived since the last one.",
    ),
    "cluster": (
        "concurrent_mlflow.cli.clusters:cluster",
        "Kubernetes clusters that nodes can run on: credentials are stored encrypted, never shown.",
    ),
    "server": (
        "concurrent_mlflow.cli.service:server",
        "Serve the web UI (/) and the REST API (/api/v1, OpenAPI at /api/v1/openapi.json), with the engine.",
    ),
    "token": (
        "concurrent_mlflow.cli.service:token",
        "Create, list and revoke API bearer tokens (run on the server's machine, against its store).",
    ),
    "mlflow": (
        "concurrent_mlflow.cli.service:mlflow_group",
        "The local MLflow server used when MLFLOW_TRACKING_URI is not set.",
    ),
    "demo": (
        "concurrent_mlflow.cli.demo:demo",
        "Generate data, train and register a model, and run the bundled 4-stage DAG.",
    ),
}

main.add_lazy_commands(COMMANDS)

__all__ = ["COMMANDS", "CliContext", "main", "run_url"]
