"""What `stocklake up` provisions on the local services, and how it configures them.

The databases, the lake bucket with its zone markers and the topics with their partition
counts are there as the settings and the core say; the S3 server refuses a wrong key pair
and serves the lake through its S3 port only. How PostgreSQL, boto3 or kafka-python work
is not tested here: the stages' own tests use them on the same services.
"""

from __future__ import annotations

import pytest

from stocklake import lake
from stocklake.s3 import s3_client
from stocklake.settings import Settings

pytestmark = pytest.mark.services


def test_up_creates_the_warehouse_and_airflow_databases(stack: Settings) -> None:
    import psycopg

    with psycopg.connect(stack.postgres_dsn("postgres", "superuser")) as conn:
        owners = dict(conn.execute("SELECT datname, pg_get_userbyid(datdba) FROM pg_database"))
    assert stack.warehouse_db in owners
    # Airflow's metadata is its role's own database (tests/infra/test_least_privilege.py
    # checks what each role may do in them).
    assert owners.get(stack.airflow_db) == stack.airflow_db_user


def test_up_creates_the_lake_bucket_with_a_marker_per_zone(stack: Settings) -> None:
    s3 = s3_client(stack)
    for zone in lake.ZONES:
        marker = s3.head_object(Bucket=stack.lake_bucket, Key=f"{zone}/")
        assert marker["ContentLength"] == 0, zone
    listing = s3.list_objects_v2(Bucket=stack.lake_bucket, Delimiter="/")
    zones = {p["Prefix"].rstrip("/") for p in listing.get("CommonPrefixes", [])}
    assert set(lake.ZONES) <= zones


def test_up_creates_the_topics_with_their_partition_counts(stack: Settings) -> None:
    from infra.kafka_broker import KafkaBroker

    wanted = {
        stack.topic_historical: stack.topic_historical_partitions,
        stack.topic_realtime: stack.topic_realtime_partitions,
    }
    admin = KafkaBroker(stack).admin()
    try:
        described = admin.describe_topics(list(wanted))
    finally:
        admin.close()
    assert {topic["name"]: len(topic["partitions"]) for topic in described} == wanted


@pytest.mark.parametrize("change", ["secret", "key"])
def test_s3_refuses_wrong_credentials(stack: Settings, change: str) -> None:
    from botocore.exceptions import ClientError

    if change == "secret":
        wrong = stack.model_copy(update={"s3_secret_key": stack.s3_secret_key + "-wrong"})
    else:
        wrong = stack.model_copy(update={"s3_access_key": "not-" + stack.s3_access_key})
    client = s3_client(wrong, max_attempts=1)
    for call in (
        lambda: client.list_buckets(),
        lambda: client.get_object(Bucket=stack.lake_bucket, Key="raw/"),
        lambda: client.put_object(Bucket=stack.lake_bucket, Key="raw/intruder", Body=b"x"),
    ):
        with pytest.raises(ClientError) as refused:
            call()
        code = refused.value.response["Error"]["Code"]
        assert code in {"SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied"}, code


def test_seaweedfs_internal_ports_do_not_serve_the_lake(stack: Settings) -> None:
    """The filer's and volume server's own HTTP ports would bypass the S3 key pair."""
    import urllib.error
    import urllib.request

    if stack.s3_server != "seaweedfs":
        pytest.skip("S3_SERVER is not seaweedfs")
    filer = f"http://{stack.bind_host}:{stack.seaweedfs_ports_from + 4}"
    for path in (
        "/buckets/",
        f"/buckets/{stack.lake_bucket}/",
        f"/buckets/{stack.lake_bucket}/raw/",
    ):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(filer + path, timeout=5)
        assert refused.value.code == 401, path
