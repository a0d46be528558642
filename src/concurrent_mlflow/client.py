"""A typed client for a `concurrent server`'s REST API, used by the CLI when `--server` is set.

Problem documents come back as our own exceptions (401 -> AuthenticationError, 404 -> NotFoundError, ...),
so the CLI reports a server's error exactly as it reports a local one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx

from concurrent_mlflow.errors import (
    AuthenticationError,
    ConcurrentError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
)
from concurrent_mlflow.settings import is_loopback
from concurrent_mlflow.store.queries import FailedAttempt, RunView, StageView

ERRORS: dict[int, type[ConcurrentError]] = {
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
}


class ApiClient:
    def __init__(self, url: str, token: str | None = None, timeout: float = 120.0) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=f"{self.url}/api/v1", headers=headers, timeout=timeout)

    @property
    def on_this_machine(self) -> bool:
        return is_loopback(urlsplit(self.url).hostname or "")

    def close(self) -> None:
        self._http.close()

    # -- DAGs and runs ----------------------------------------------------------------------------------
    def import_dag(self, yaml_text: str) -> dict[str, Any]:
        headers = {"content-type": "application/yaml"}
        return self._json("POST", "/dags/import", content=yaml_text.encode(), headers=headers)

    def start_run(self, dag: str, overrides: dict[str, str], base_dir: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"dag": dag, "overrides": overrides}
        if base_dir is not None:
            body["base_dir"] = base_dir
        return self._json("POST", "/runs", json=body)

    def run(self, run_id: str) -> dict[str, Any]:
        return self._json("GET", f"/runs/{run_id}")

    def runs(self, limit: int) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._json("GET", "/runs", params={"limit": limit})["items"]
        return items

    def cancel(self, run_id: str) -> dict[str, Any]:
        return self._json("POST", f"/runs/{run_id}/cancel")

    def retry(self, run_id: str) -> int:
        return int(self._json("POST", f"/runs/{run_id}/retry")["reset_tasks"])

    def failed_tasks(self, run_id: str, limit: int = 100) -> list[dict[str, Any]]:
        page = self._json("GET", f"/runs/{run_id}/tasks", params={"state": "failed", "limit": limit})
        items: list[dict[str, Any]] = page["items"]
        return items

    def log(
        self, run_id: str, node: str, partition: int, attempt: int | None, follow: bool
    ) -> Iterator[bytes]:
        params: dict[str, Any] = {"follow": str(follow).lower()}
        if attempt:
            params["attempt"] = attempt
        path = f"/runs/{run_id}/tasks/{node}/{partition}/log"
        with self._guard(), self._http.stream("GET", path, params=params, timeout=None) as response:
            if response.status_code >= 400:
                response.read()
                self._raise(response)
            yield from response.iter_bytes()

    # -- clusters ----------------------------------------------------------------------------------------
    def register_cluster(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._json("POST", "/clusters", json=body)

    def update_cluster(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._json("PATCH", f"/clusters/{name}", json=body)

    def clusters(self) -> list[dict[str, Any]]:
        with self._guard():
            response = self._http.get("/clusters")
        if response.status_code >= 400:
            self._raise(response)
        items: list[dict[str, Any]] = response.json()
        return items

    def cluster(self, name: str) -> dict[str, Any]:
        return self._json("GET", f"/clusters/{name}")

    def remove_cluster(self, name: str) -> None:
        with self._guard():
            response = self._http.delete(f"/clusters/{name}")
        if response.status_code >= 400:
            self._raise(response)

    def check_cluster(self, name: str) -> dict[str, Any]:
        return self._json("POST", f"/clusters/{name}/check")

    # -- schedules ---------------------------------------------------------------------------------------
    def create_schedule(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._json("POST", "/schedules", json=body)

    def schedules(self, dag: str | None, limit: int) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit, **({"dag": dag} if dag else {})}
        items: list[dict[str, Any]] = self._json("GET", "/schedules", params=params)["items"]
        return items

    def update_schedule(self, schedule_id: int, body: dict[str, Any]) -> dict[str, Any]:
        return self._json("PATCH", f"/schedules/{schedule_id}", json=body)

    def delete_schedule(self, schedule_id: int) -> None:
        with self._guard():
            response = self._http.delete(f"/schedules/{schedule_id}")
        if response.status_code >= 400:
            self._raise(response)

    # -- views the CLI shares with embedded mode ---------------------------------------------------------
    def run_view(self, run_id: str) -> RunView:
        return to_view(self.run(run_id))

    def failures(self, run_id: str) -> list[FailedAttempt]:
        return [
            FailedAttempt(t["node"], t["partition"], t["attempts"], t["error"], None, t["mlflow_run_id"])
            for t in self.failed_tasks(run_id)
        ]

    # -- plumbing ---------------------------------------------------------------------------------------
    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        with self._guard():
            response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            self._raise(response)
        body: dict[str, Any] = response.json()
        return body

    def _guard(self) -> Any:
        return _ConnectionErrors(self.url)

    @staticmethod
    def _raise(response: httpx.Response) -> None:
        try:
            problem = response.json()
            detail = str(problem.get("detail") or problem.get("title") or response.text)
        except ValueError:
            detail = response.text or response.reason_phrase
        raise ERRORS.get(response.status_code, ConcurrentError)(f"The server refused: {detail}")


class _ConnectionErrors:
    """Turns network failures into one clear message naming the server."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _tb: object) -> None:
        if isinstance(exc, httpx.TransportError):
            raise ConcurrentError(
                f"Cannot reach the Concurrent server at {self.url} ({exc}). Is `concurrent server` running "
                "there? Unset CONCURRENT_SERVER (or drop --server) to run on this machine instead."
            ) from exc


def to_view(run: dict[str, Any]) -> RunView:
    stages = [
        StageView(s["node"], s["state"], s["partitions"], s["counts"], s["error"]) for s in run["stages"]
    ]
    return RunView(
        run["id"], run["dag"], run["state"], run["mlflow_run_id"], run["experiment_id"], run["error"], stages
    )
