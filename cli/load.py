"""`stocklake load` and `stocklake sql`: filled in by the loaders stage."""

import typer


def register(app: typer.Typer) -> None:
    """Add the warehouse commands to the main app."""
