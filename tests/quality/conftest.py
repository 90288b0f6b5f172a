"""The loaders' fixtures, for the end-to-end CLI test: a bucket of its own and a
PostgreSQL schema of its own, both removed afterwards."""

from tests.loaders.conftest import cli, lake, postgres

__all__ = ["cli", "lake", "postgres"]
