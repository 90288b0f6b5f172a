"""The core's column contracts in Spark terms, shared by the daily and the streaming job.

Types come from the core's one column-type table (`stocklake.schemas.spark_type`); a row
that would break its contract when written (a sum past int64, an inf or NaN) is held
back with its reason instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stocklake.schemas import INT64_MAX, Columns, spark_type

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

# Why a metrics row is held back (not written): null when the row is good.
HOLD_REASON = "_hold_reason"


def any_null(columns: tuple[str, ...]) -> Column:
    """True when any of `columns` is null: a raw line without a required field."""
    from pyspark.sql import functions as F

    condition = F.lit(False)
    for name in columns:
        condition = condition | F.col(name).isNull()
    return condition


def with_hold_reason(metrics: DataFrame, columns: Columns, volume: str) -> DataFrame:
    """The contract's columns, cast to their Spark types, plus HOLD_REASON: why a row
    must not be written, or null.

    `volume` (a decimal sum) beyond int64 is `<volume>_overflow` and becomes null before
    the cast; a double that is inf or NaN is `non_finite_<column>`.
    """
    from pyspark.sql import functions as F

    overflow = F.col(volume) > F.lit(INT64_MAX).cast("decimal(38,0)")
    checks = [F.when(overflow, F.lit(f"{volume}_overflow"))]
    for name, kind in columns:
        if kind == "double":
            value = F.col(name).cast("double")
            bad = F.isnan(value) | (F.abs(value) == float("inf"))
            checks.append(F.when(bad, F.lit(f"non_finite_{name}")))
    return (
        metrics.withColumn(HOLD_REASON, F.coalesce(*checks))
        .withColumn(volume, F.when(~overflow, F.col(volume)))
        .select(*[F.col(name).cast(spark_type(kind)) for name, kind in columns], HOLD_REASON)
    )
