"""The one place a warehouse backend is chosen: PostgreSQL or Snowflake, by settings.

Apart from `loaders.warehouse` (the protocol and types the backends import), so the
backends never import the module that builds them.
"""

from __future__ import annotations

from loaders.warehouse import Warehouse, WarehouseLogin
from stocklake.schemas import WarehouseKind
from stocklake.settings import Settings


def connect_warehouse(
    settings: Settings, schema: str | None = None, login: WarehouseLogin = "pipeline"
) -> Warehouse:
    """The configured warehouse (settings.warehouse_kind), connected as `login`.

    `schema`: PostgreSQL schema to use (default WAREHOUSE_SCHEMA); for Snowflake the
    schema is SNOWFLAKE_SCHEMA unless given here. It must exist: SchemaNotFoundError.
    """
    # Imported here: each backend pulls its own client library (psycopg, or pandas and
    # the Snowflake connector), and a command needs only the configured one.
    if settings.warehouse_kind == WarehouseKind.SNOWFLAKE:
        from loaders.snowflake_backend import SnowflakeWarehouse

        return SnowflakeWarehouse(settings, schema=schema)
    from loaders.postgres_backend import PostgresWarehouse

    return PostgresWarehouse(settings, schema=schema or settings.warehouse_schema, login=login)
