"""`stocklake clean-state`: the one command that erases the embedded stack's data."""

from __future__ import annotations

import shutil
from pathlib import Path

import typer
from rich.console import Console

from infra.local_stack import LocalStack
from stocklake.settings import get_settings

console = Console(highlight=False)


def _size_mb(path: Path) -> float:
    if path.is_file():
        return path.stat().st_size / 2**20
    total = sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
    return total / 2**20


def _what_is_kept(state: Path) -> list[tuple[Path, str]]:
    """Every folder the stack keeps data in, with what it holds."""
    described = {
        "postgres": "PostgreSQL cluster: the warehouse and Airflow's metadata",
        "s3": "the S3 server's data: the lake bucket and the Kafka log bucket",
        "kafka": "the Kafka broker's own files",
        "airflow": "Airflow's home: task logs, config",
        "logs": "service logs",
        "pids": "PID files",
    }
    found = [(child, described.get(child.name, "")) for child in sorted(state.iterdir())]
    pointer = state / "postgres" / "cluster-root"
    if pointer.exists():
        found.append((Path(pointer.read_text().strip()), "PostgreSQL cluster (outside STATE_DIR)"))
    return found


def register(app: typer.Typer) -> None:
    @app.command("clean-state")
    def clean_state(
        yes: bool = typer.Option(False, "--yes", help="Delete without asking."),
    ) -> None:
        """Stop the stack and delete all its data: lake, topics, warehouse, Airflow runs."""
        settings = get_settings()
        state = settings.state_path
        if not state.exists():
            console.print(f"nothing to delete: {state} does not exist")
            return
        targets = _what_is_kept(state)
        console.print(f"clean-state deletes {state} and everything the stack kept:")
        for path, what in targets:
            if path.exists():
                console.print(f"  {path}  {_size_mb(path):,.1f} MB  {what}")
        if not yes and not typer.confirm("Delete all of it?", default=False):
            raise typer.Exit(1)
        from infra.airflow_ui import stop as stop_airflow

        stop_airflow(settings)
        LocalStack(settings).down()
        for path, _ in targets:
            if path.is_dir() and not path.is_relative_to(state):
                shutil.rmtree(path, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)
        console.print(f"deleted {state}")
