"""Fixtures for the models: the bundled real data as feature frames, a private bucket,
and a private warehouse schema holding daily_features (for the API's lookups)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pandas as pd
import pytest

from models.direction import DirectionResult, train_direction
from models.registry import ModelRegistry
from stocklake.s3 import s3_client
from stocklake.settings import Settings
from tests.models import data
from tests.warehouse import copy_rows, drop_schema


@pytest.fixture(scope="session")
def daily() -> pd.DataFrame:
    return data.daily_features()


@pytest.fixture(scope="session")
def intraday() -> pd.DataFrame:
    return data.intraday_features()


@pytest.fixture(scope="session")
def direction(daily: pd.DataFrame) -> DirectionResult:
    return train_direction(daily)


def _empty_and_delete(client, bucket: str) -> None:
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys})
    client.delete_bucket(Bucket=bucket)


@pytest.fixture(scope="module")
def lake_settings(stack: Settings) -> Iterator[Settings]:
    """The stack's settings with a bucket of the module's own, removed afterwards."""
    bucket = f"sl-models-{uuid.uuid4().hex[:10]}"
    client = s3_client(stack)
    client.create_bucket(Bucket=bucket)
    try:
        yield stack.model_copy(update={"lake_bucket": bucket})
    finally:
        _empty_and_delete(client, bucket)


@pytest.fixture
def registry(lake_settings: Settings) -> Iterator[ModelRegistry]:
    """A registry over the module's bucket, emptied of models after each test."""
    found = ModelRegistry.from_settings(lake_settings)
    yield found
    keys = found._keys("models/")
    for start in range(0, len(keys), 1000):
        found.client.delete_objects(
            Bucket=found.bucket,
            Delete={"Objects": [{"Key": key} for key in keys[start : start + 1000]]},
        )


@pytest.fixture(scope="module")
def warehouse_schema(stack: Settings, daily: pd.DataFrame, intraday: pd.DataFrame) -> Iterator[str]:
    """A private PostgreSQL schema, migrated, with the bundled daily and intraday
    features."""
    import loaders
    from infra.postgres_roles import create_warehouse_schema

    schema = f"models_{uuid.uuid4().hex[:12]}"
    settings = stack.model_copy(update={"warehouse": "postgres"})
    create_warehouse_schema(settings, schema)
    try:
        with loaders.connect_warehouse(settings, schema=schema) as warehouse:
            warehouse.migrate()
        load = {"loaded_at": pd.Timestamp.now(tz="UTC"), "run_id": "tests-models"}
        copy_rows(settings, schema, loaders.DAILY_FEATURES.name, daily.assign(**load))
        copy_rows(settings, schema, loaders.INTRADAY_FEATURES.name, intraday.assign(**load))
        yield schema
    finally:
        drop_schema(settings, schema)
