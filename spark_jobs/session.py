"""The one place a Spark session is built: master, s3a, jars and defaults from settings."""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from stocklake.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# The s3a jars of the embedded stack, from sagemaker-pyspark 1.4.5 (the one PyPI package
# that ships hadoop-aws; the Makefile installs it): hadoop-aws 3.3.1 and the SDK bundle it
# was built against. An older patch release of the Hadoop client's own line (pyspark 3.5.9
# bundles Hadoop 3.3.4) runs on it: the rule infra/docker/image_tools.py checks for the
# images (`hadoop_aws_problem`), and tests/infra/test_spark_s3a.py runs s3a with this pair.
S3A_JARS = ("hadoop-aws-3.3.1.jar", "aws-java-sdk-bundle-1.11.901.jar")


class SparkSetupError(RuntimeError):
    """Spark cannot be configured (missing jars, bad option)."""


def s3a_jars(settings: Settings) -> list[Path]:
    """The s3a jars: from SPARK_JARS_DIR, else the installed sagemaker_pyspark package.

    SPARK_JARS_DIR may hold any matching pair (e.g. hadoop-aws-3.3.4 with its SDK
    bundle 1.12.262 in the Docker images): exactly one of each kind is required.
    """
    if settings.spark_jars_dir is not None:
        return _jar_pair(settings.spark_jars_dir)
    # find_spec locates the package without importing it (its __init__ pulls pyspark).
    spec = importlib.util.find_spec("sagemaker_pyspark")
    if spec is None or not spec.submodule_search_locations:
        raise SparkSetupError(
            "the s3a jars are not installed: `pip install --no-deps sagemaker-pyspark==1.4.5`"
            " or set SPARK_JARS_DIR to a folder holding " + ", ".join(S3A_JARS)
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "jars"
    jars = [folder / name for name in S3A_JARS]
    missing = [str(jar) for jar in jars if not jar.is_file()]
    if missing:
        raise SparkSetupError(f"sagemaker_pyspark: missing jar(s) {', '.join(missing)}")
    return jars


def _jar_pair(folder: Path) -> list[Path]:
    jars = []
    for pattern in ("hadoop-aws-*.jar", "aws-java-sdk-bundle-*.jar"):
        found = sorted(folder.glob(pattern))
        if len(found) != 1:
            raise SparkSetupError(
                f"SPARK_JARS_DIR={folder} must hold exactly one {pattern}, found "
                f"{[jar.name for jar in found] or 'none'}"
            )
        jars.append(found[0])
    return jars


def spark_conf(settings: Settings, app_name: str) -> dict[str, str]:
    """Every Spark option the jobs rely on, as plain key/values (pure, testable)."""
    s3a = "spark.hadoop.fs.s3a."
    return {
        "spark.app.name": app_name,
        "spark.master": settings.spark_master,
        "spark.jars": ",".join(str(jar) for jar in s3a_jars(settings)),
        f"{s3a}endpoint": settings.s3_endpoint_url,
        f"{s3a}endpoint.region": settings.s3_region,
        f"{s3a}path.style.access": "true",
        f"{s3a}connection.ssl.enabled": str(settings.s3_use_ssl).lower(),
        f"{s3a}access.key": settings.s3_access_key,
        f"{s3a}secret.key": settings.s3_secret_key,
        f"{s3a}aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
        f"{s3a}impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        # Our data is small per run: the default 200 shuffle partitions cost more than they do.
        "spark.sql.shuffle.partitions": str(settings.spark_shuffle_partitions),
        # `overwrite` then replaces only the date partitions a run produced.
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
        # Dates and windows are UTC everywhere in the lake.
        "spark.sql.session.timeZone": "UTC",
        # The parallel collector keeps the driver's resident memory within the memory set
        # (bench_spark_daily, 10M bars, 4g: peak RSS 4.7 GB with G1, 3.9 GB with it; its
        # job times were the same). In local mode the driver is the executor too.
        "spark.driver.extraJavaOptions": "-Duser.timezone=UTC -XX:+UseParallelGC",
        "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
        # Reading many small folders (a backfill: one raw folder per date): Spark lists
        # them in one job of up to this many tasks. Its default (10,000) makes one task
        # per folder, which cost more than the listing itself (2,870 folders: 19 s -> 4 s).
        "spark.sql.sources.parallelPartitionDiscovery.parallelism": "32",
        # Readers (pyarrow, loaders) expect int64 microseconds, not legacy INT96.
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        # The FileOutputCommitter v2 would expose half-written partitions on failure.
        "spark.hadoop.mapreduce.fileoutputcommitter.algorithm.version": "1",
        "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
        **_local_binding(settings),
    }


def _local_binding(settings: Settings) -> dict[str, str]:
    """In local mode the driver and its block manager listen on BIND_HOST, like every service.

    Without it Spark binds to the address the host name resolves to (the machine's
    external interface). A cluster master needs a driver its executors can reach, so
    there the cluster's own networking settings apply.
    """
    if not settings.spark_master.startswith("local"):
        return {}
    return {
        "spark.driver.bindAddress": settings.bind_host,
        "spark.driver.host": settings.bind_host,
    }


def build_spark(
    settings: Settings,
    app_name: str = "stocklake",
    extra_conf: Mapping[str, str] | None = None,
) -> SparkSession:
    """A SparkSession for the lake: local[*] unless SPARK_MASTER names a cluster.

    `extra_conf` overrides any option (e.g. spark.driver.memory=4g); options that
    size the JVM only apply when this call starts it.
    """
    from pyspark.sql import SparkSession

    # py4j logs each closed connection at INFO, also from finalizers at interpreter exit,
    # when the log stream may be closed already ("Logging error ... closed file").
    logging.getLogger("py4j").setLevel(logging.WARNING)
    if settings.spark_master.startswith("local"):
        # Read by the JVM before any option: no "hostname resolves to a loopback" warning.
        os.environ.setdefault("SPARK_LOCAL_IP", settings.bind_host)
        # Python workers (mapInArrow in spark_jobs.partition_writer) run this interpreter,
        # with its packages (pyarrow, boto3), not whatever `python3` is first on PATH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder
    conf = spark_conf(settings, app_name)
    conf.update(extra_conf or {})
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    # getOrCreate returns a running session unchanged: re-apply the SQL options that may differ.
    for key, value in conf.items():
        if key.startswith("spark.sql."):
            spark.conf.set(key, value)
    return spark


def hadoop_fs(spark: SparkSession, uri: str):  # -> org.apache.hadoop.fs.FileSystem (py4j)
    """The Hadoop filesystem of a URI, through the session's own configuration."""
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(uri)
    return path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
