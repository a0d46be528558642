"""The `concurrent` command line: run DAGs here or on a server, read runs back, manage the service."""

from concurrent_mlflow.cli.base import CliContext, main, run_url
from concurrent_mlflow.cli.clusters import cluster
from concurrent_mlflow.cli.dags import dag
from concurrent_mlflow.cli.demo import demo
from concurrent_mlflow.cli.runs import logs, run, runs
from concurrent_mlflow.cli.schedules import schedule
from concurrent_mlflow.cli.service import mlflow_group, server, token

for command in (run, runs, logs, dag, schedule, cluster, server, token, mlflow_group, demo):
    main.add_command(command)

__all__ = ["CliContext", "main", "run_url"]
