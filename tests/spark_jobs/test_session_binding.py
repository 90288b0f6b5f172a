"""A running Spark job listens on 127.0.0.1 only, like every other service of the stack."""

from __future__ import annotations

import psutil
import pytest

from spark_jobs.session import spark_conf
from stocklake.settings import Settings

pytestmark = pytest.mark.spark


def _listening_addresses_of_children() -> dict[int, set[str]]:
    found: dict[int, set[str]] = {}
    for child in psutil.Process().children(recursive=True):
        try:
            sockets = child.net_connections(kind="tcp")
        except psutil.Error:
            continue
        # Java listens on IPv4-mapped IPv6 sockets: ::ffff:127.0.0.1 is 127.0.0.1.
        addresses = {
            f"{c.laddr.ip.removeprefix('::ffff:')}:{c.laddr.port}"
            for c in sockets
            if c.status == "LISTEN"
        }
        if addresses:
            found[child.pid] = addresses
    return found


def test_a_running_job_listens_on_loopback_only(spark, lake_settings: Settings) -> None:
    # Run a job with a shuffle, so the block manager and driver RPC are in use.
    rows = spark.range(0, 20_000).selectExpr("id % 7 AS k", "id").groupBy("k").count().collect()
    assert len(rows) == 7
    listening = _listening_addresses_of_children()
    assert listening, "the Spark JVM listens nowhere?"
    for pid, addresses in listening.items():
        assert all(a.startswith("127.0.0.1:") for a in addresses), (pid, addresses)
    assert spark.conf.get("spark.driver.host") == lake_settings.bind_host


def test_a_cluster_master_keeps_its_own_networking(lake_settings: Settings) -> None:
    cluster = lake_settings.model_copy(update={"spark_master": "spark://spark-master:7077"})
    conf = spark_conf(cluster, "x")
    assert "spark.driver.bindAddress" not in conf
    assert spark_conf(lake_settings, "x")["spark.driver.bindAddress"] == lake_settings.bind_host
