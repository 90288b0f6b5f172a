"""Entrypoint of the stack's Airflow containers.

Adds the `AIRFLOW_CONN_*` connections the DAGs use (built by infra.airflow_env from the
one settings object, exactly as on the embedded stack), then hands over to the Airflow
image's own entrypoint with the container's command (`scheduler`, `api-server`, ...).
Tasks inherit the connections from the scheduler; nothing is stored in the metadata DB.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from infra.airflow_env import connections
from stocklake.settings import SettingsError, load_settings

# The apache/airflow image's ENTRYPOINT: dumb-init reaps children and forwards signals.
IMAGE_ENTRYPOINT = ("/usr/bin/dumb-init", "--", "/entrypoint")


def connection_env() -> dict[str, str]:
    """The DAGs' connections for the settings in this process's environment."""
    return connections(load_settings())


def main(argv: Sequence[str]) -> None:
    try:
        os.environ.update(connection_env())
    except SettingsError as error:
        sys.exit(f"stocklake: {error}")
    os.execv(IMAGE_ENTRYPOINT[0], [*IMAGE_ENTRYPOINT, *argv])


if __name__ == "__main__":
    main(sys.argv[1:])
