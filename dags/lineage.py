"""Lineage: the Airflow Assets the DAG tasks read (inlets) and write (outlets).

Airflow's Assets view draws the pipeline from them: the Kafka topics, the lake's zones
(`stocklake.lake`'s folders in LAKE_BUCKET) and the warehouse tables. Cheap to import:
the names come from the settings and the core, never from a stage package.

URIs, in the forms Airflow's providers normalise:
- a topic: kafka://<first bootstrap server>/<topic>
- a lake folder: s3://<bucket>/<folder>
- a table: postgres://<host>:<port>/<database>/<schema>/<table>, or with WAREHOUSE=snowflake
  snowflake://<account>/<database>/<schema>/<table>
"""

from __future__ import annotations

from airflow.sdk import Asset

from dags.common import settings
from stocklake import lake
from stocklake.schemas import RecordKind, WarehouseKind

# The warehouse tables the DAGs write, as `loaders/tables.py` names them (importing that
# module would import the loaders stage while parsing; tests/dags keeps the two equal).
DAILY_METRICS = "daily_metrics"
DAILY_FEATURES = "daily_features"
INTRADAY_FEATURES = "intraday_features"
REALTIME_WINDOW_METRICS = "realtime_window_metrics"
QUALITY_RESULTS = "quality_results"
DRIFT_ALERTS = "drift_alerts"
TABLES = (
    DAILY_METRICS,
    DAILY_FEATURES,
    INTRADAY_FEATURES,
    REALTIME_WINDOW_METRICS,
    QUALITY_RESULTS,
    DRIFT_ALERTS,
)


def topic(kind: RecordKind | str) -> Asset:
    """The Kafka topic of historical bars or realtime ticks."""
    config = settings()
    name = {
        RecordKind.HISTORICAL: config.topic_historical,
        RecordKind.REALTIME: config.topic_realtime,
    }[RecordKind(kind)]
    broker = config.kafka_bootstrap_servers.split(",")[0].strip()
    return Asset(uri=f"kafka://{broker}/{name}")


def lake_folder(folder: str) -> Asset:
    """A folder of the lake (a zone's dataset: `lake.RAW_HISTORICAL`, ...)."""
    return Asset(uri=lake.s3_uri(settings().lake_bucket, folder))


def table(name: str) -> Asset:
    """A warehouse table on the configured warehouse."""
    if name not in TABLES:
        raise ValueError(f"{name!r} is not one of the DAGs' warehouse tables {TABLES}")
    config = settings()
    if config.warehouse_kind == WarehouseKind.SNOWFLAKE:
        where = f"{config.snowflake_account}/{config.snowflake_database}/{config.snowflake_schema}"
        return Asset(uri=f"snowflake://{where}/{name}")
    where = f"{config.postgres_host}:{config.postgres_port}/{config.warehouse_db}"
    return Asset(uri=f"postgres://{where}/{config.warehouse_schema}/{name}")
