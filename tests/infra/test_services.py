"""The real local services behave as the pipeline needs (PostgreSQL, S3, Kafka)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import uuid

import pytest

from stocklake.settings import Settings

pytestmark = pytest.mark.services


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def test_postgres_create_and_merge(stack: Settings) -> None:
    import psycopg

    table = f"merge_check_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(stack.postgres_dsn()) as conn:
        conn.execute(f"CREATE TEMP TABLE {table} (symbol text PRIMARY KEY, close float8)")
        conn.execute(f"INSERT INTO {table} VALUES ('AAPL', 1.0), ('MSFT', 2.0)")
        conn.execute(f"CREATE TEMP TABLE {table}_src (symbol text, close float8)")
        conn.execute(f"INSERT INTO {table}_src VALUES ('AAPL', 10.0), ('TSLA', 3.0)")
        merged = conn.execute(
            f"""MERGE INTO {table} t USING {table}_src s ON t.symbol = s.symbol
                WHEN MATCHED THEN UPDATE SET close = s.close
                WHEN NOT MATCHED THEN INSERT (symbol, close) VALUES (s.symbol, s.close)"""
        )
        assert merged.rowcount == 2
        rows = conn.execute(f"SELECT symbol, close FROM {table} ORDER BY symbol").fetchall()
    assert rows == [("AAPL", 10.0), ("MSFT", 2.0), ("TSLA", 3.0)]


def test_both_databases_exist(stack: Settings) -> None:
    import psycopg

    with psycopg.connect(stack.postgres_dsn()) as conn:
        names = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
    assert {stack.warehouse_db, stack.airflow_db} <= names


@pytest.fixture
def scratch_bucket(stack: Settings):
    import boto3

    s3 = boto3.client(
        "s3",
        **stack.boto3_s3_kwargs(),
    )
    bucket = _unique("scratch")
    s3.create_bucket(Bucket=bucket)
    yield s3, bucket
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=obj["Key"])
    s3.delete_bucket(Bucket=bucket)


def test_lake_bucket_and_zones_exist(stack: Settings, scratch_bucket) -> None:
    s3, _ = scratch_bucket
    listing = s3.list_objects_v2(Bucket=stack.lake_bucket, Delimiter="/")
    zones = {p["Prefix"] for p in listing.get("CommonPrefixes", [])}
    assert {"raw/", "processed/", "quarantine/", "checkpoints/"} <= zones


def test_s3_boto3_put_list_get(scratch_bucket) -> None:
    s3, bucket = scratch_bucket
    s3.put_object(Bucket=bucket, Key="raw/a=1/x.json", Body=b'{"x": 1}')
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="raw/")["Contents"]]
    assert keys == ["raw/a=1/x.json"]
    assert s3.get_object(Bucket=bucket, Key="raw/a=1/x.json")["Body"].read() == b'{"x": 1}'


def test_s3_multipart_upload_20mb(scratch_bucket) -> None:
    from boto3.s3.transfer import TransferConfig

    s3, bucket = scratch_bucket
    payload = os.urandom(20 * 2**20)
    config = TransferConfig(multipart_threshold=5 * 2**20, multipart_chunksize=5 * 2**20)
    s3.upload_fileobj(io.BytesIO(payload), bucket, "big/blob.bin", Config=config)
    head = s3.head_object(Bucket=bucket, Key="big/blob.bin")
    assert head["ContentLength"] == len(payload)
    assert "-" in head["ETag"], "expected a multipart ETag"
    body = s3.get_object(Bucket=bucket, Key="big/blob.bin")["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(payload).digest()


def test_s3fs_roundtrip(stack: Settings, scratch_bucket) -> None:
    import s3fs

    _, bucket = scratch_bucket
    fs = s3fs.S3FileSystem(**stack.storage_options())
    with fs.open(f"{bucket}/processed/date=2020-01-02/part.txt", "wb") as handle:
        handle.write(b"hello lake")
    assert fs.ls(f"{bucket}/processed") == [f"{bucket}/processed/date=2020-01-02"]
    assert fs.cat(f"{bucket}/processed/date=2020-01-02/part.txt") == b"hello lake"


def test_minio_client_roundtrip(stack: Settings, scratch_bucket) -> None:
    from minio import Minio

    _, bucket = scratch_bucket
    client = Minio(
        stack.s3_hostport,
        access_key=stack.s3_access_key,
        secret_key=stack.s3_secret_key,
        secure=stack.s3_use_ssl,
        region=stack.s3_region,
    )
    assert client.bucket_exists(bucket)
    client.put_object(bucket, "quarantine/x.jsonl", io.BytesIO(b"bad\n"), length=4)
    names = [o.object_name for o in client.list_objects(bucket, prefix="quarantine/")]
    assert names == ["quarantine/x.jsonl"]
    assert client.get_object(bucket, "quarantine/x.jsonl").read() == b"bad\n"


def test_kafka_10k_records_through_a_consumer_group(stack: Settings) -> None:
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    topic = _unique("roundtrip")
    admin = KafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap_servers)
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    try:
        described = admin.describe_topics([topic])[0]
        assert len(described["partitions"]) == 3

        producer = KafkaProducer(
            bootstrap_servers=stack.kafka_bootstrap_servers,
            acks="all",
            linger_ms=5,
        )
        for i in range(10_000):
            producer.send(topic, key=f"SYM{i % 7}".encode(), value=json.dumps({"n": i}).encode())
        producer.flush()
        producer.close()

        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=stack.kafka_bootstrap_servers,
            group_id=_unique("group"),
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            consumer_timeout_ms=30_000,
            # Tansu holds a first JoinGroup for half the session timeout
            # (kafka-python's default is 45 s); 6 s is the smallest Kafka allows.
            session_timeout_ms=6000,
            heartbeat_interval_ms=1000,
        )
        seen: list[int] = []
        partitions: set[int] = set()
        for message in consumer:
            seen.append(json.loads(message.value)["n"])
            partitions.add(message.partition)
            if len(seen) >= 10_000:
                break
        consumer.commit()
        consumer.close()
    finally:
        admin.delete_topics([topic])
        admin.close()
    assert len(seen) == 10_000, "lost or duplicated records"
    assert sorted(seen) == list(range(10_000))
    assert len(partitions) == 3


@pytest.mark.parametrize("change", ["secret", "key"])
def test_s3_refuses_wrong_credentials(stack: Settings, change: str) -> None:
    import boto3
    from botocore.exceptions import ClientError

    kwargs = stack.boto3_s3_kwargs()
    if change == "secret":
        kwargs["aws_secret_access_key"] = stack.s3_secret_key + "-wrong"
    else:
        kwargs["aws_access_key_id"] = "not-" + stack.s3_access_key
    client = boto3.client("s3", **kwargs)
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
