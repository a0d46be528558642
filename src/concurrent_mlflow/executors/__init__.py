"""Where tasks run. Each executor implements the `Executor` protocol in `base`."""

from concurrent_mlflow.executors.base import Executor, Observation, TaskLaunch

__all__ = ["Executor", "Observation", "TaskLaunch"]
