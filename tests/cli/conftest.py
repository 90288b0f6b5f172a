"""The loaders' fixtures for the commands that record their runs: the `stocklake` command
on a bucket and a PostgreSQL schema of the test's own, both removed afterwards."""

from tests.loaders.conftest import cli, lake, postgres

__all__ = ["cli", "lake", "postgres"]
