"""Airflow's REST API v2 as `make run` uses it: log in, runs, task instances, task logs."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import httpx


class AirflowApiError(Exception):
    """A call to Airflow's API failed; the message says which."""


class AirflowApi:
    """Airflow's REST API v2, logged in as the generated admin (a JWT from /auth/token)."""

    def __init__(self, base_url: str, user: str, password: str) -> None:
        login = httpx.post(
            f"{base_url}/auth/token", json={"username": user, "password": password}, timeout=30
        )
        if login.status_code != 201:
            raise AirflowApiError(
                f"Airflow login as {user} failed: {login.status_code} {login.text}"
            )
        self.client = httpx.Client(
            base_url=f"{base_url}/api/v2",
            headers={"Authorization": f"Bearer {login.json()['access_token']}"},
            timeout=60,
        )

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self.client.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise AirflowApiError(
                f"Airflow API {method} {path}: {response.status_code} {response.text[:600]}"
            )
        return response

    def runs(self, dag_id: str, **params: Any) -> list[dict[str, Any]]:
        return self.call("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100, **params}).json()[
            "dag_runs"
        ]

    def run_path(self, run: dict[str, Any]) -> str:
        return f"/dags/{run['dag_id']}/dagRuns/{quote(run['dag_run_id'], safe='')}"

    def task_instances(self, run: dict[str, Any]) -> list[dict[str, Any]]:
        return self.call("GET", f"{self.run_path(run)}/taskInstances").json()["task_instances"]

    def task_log(self, run: dict[str, Any], task: dict[str, Any]) -> list[dict[str, Any]]:
        """The task's log as the UI reads it (the api-server reads the local log file)."""
        path = f"{self.run_path(run)}/taskInstances/{task['task_id']}/logs/{task['try_number']}"
        response = self.call(
            "GET", path, params={"full_content": True}, headers={"Accept": "application/json"}
        )
        return response.json()["content"]

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.call("PATCH", f"/dags/{dag_id}", json={"is_paused": paused})

    def is_paused(self, dag_id: str) -> bool:
        return bool(self.call("GET", f"/dags/{dag_id}").json()["is_paused"])


def wait_for_dags(api: AirflowApi, dag_ids: tuple[str, ...], timeout: float = 180) -> None:
    """The dag-processor has parsed the DAG files (a backfill needs the serialized DAG)."""
    deadline = time.monotonic() + timeout
    for dag_id in dag_ids:
        while api.client.get(f"/dags/{dag_id}").status_code == 404:
            if time.monotonic() > deadline:
                raise AirflowApiError(
                    f"Airflow has not parsed {dag_id} after {timeout:.0f} s; see the "
                    "dag-processor log under $AIRFLOW_HOME/logs/dag_processor/"
                )
            time.sleep(1)


def log_lines(entries: list[dict[str, Any]]) -> list[str]:
    """Structured log entries as text lines (time, level, message, exception)."""
    lines: list[str] = []
    for entry in entries:
        event = str(entry.get("event", ""))
        if event.startswith("::"):  # the UI's folding markers
            continue
        first, *rest = event.splitlines() or [""]
        lines.append(f"{entry.get('timestamp', '')[11:19]} {entry.get('level', ''):<7} {first}")
        lines.extend(f"    {line}" for line in rest)
        for error in entry.get("error_detail") or []:
            lines.append(f"    {error.get('exc_type')}: {error.get('exc_value')}")
    return lines
