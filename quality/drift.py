"""Drift detection: per symbol, a day's volume, range, return and tick count against the
symbol's trailing DRIFT_WINDOW_DAYS trading days in the lake, as z-scores.

`zscore_alerts` is pure (a frame of daily values in, DRIFT_ALERTS_COLUMNS rows out);
`drift_alerts` reads the window from the lake (processed/historical daily metrics; raw
ticks for tick counts) and hands it over.
"""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from quality.lake_read import PartitionNotFoundError
from stocklake import lake, trading_calendar
from stocklake.governance import DRIFT_ALERTS_COLUMNS, Dataset, DriftMetric
from stocklake.s3 import lake_filesystem
from stocklake.settings import Settings

if TYPE_CHECKING:
    from s3fs import S3FileSystem

# Fewer past values than this (or than the window, if shorter) and a standard deviation
# says little: no z-score.
MIN_HISTORY = 20


class DriftError(RuntimeError):
    """Drift alerts with DRIFT_SEVERITY=fail; the message names each alert."""


def daily_values(metrics: pd.DataFrame) -> pd.DataFrame:
    """(symbol, trade_date, volume, range, return) of daily_metrics rows."""
    return pd.DataFrame(
        {
            "symbol": metrics["symbol"],
            "trade_date": pd.to_datetime(metrics["trade_date"]).dt.date,
            DriftMetric.VOLUME.value: metrics["daily_volume"].astype("float64"),
            DriftMetric.RANGE.value: (metrics["daily_high"] - metrics["daily_low"])
            / metrics["daily_close"],
            DriftMetric.RETURN.value: metrics["return_pct"] / 100,
        }
    )


def tick_counts(ticks: pd.DataFrame) -> pd.DataFrame:
    """(symbol, trade_date, tick_count) of raw ticks (symbol, event_time)."""
    days = pd.to_datetime(ticks["event_time"], utc=True).dt.date
    counts = ticks.groupby([ticks["symbol"], days.rename("trade_date")]).size()
    return counts.rename(DriftMetric.TICK_COUNT.value).astype("float64").reset_index()


def _alert(
    observed: float, past: pd.Series, threshold: float, needed: int
) -> tuple[float, float, float] | None:
    """(mean, stddev, zscore) when `observed` is beyond `threshold` deviations, else None."""
    past = past.dropna()
    if len(past) < needed or pd.isna(observed):
        return None
    mean, stddev = float(past.mean()), float(past.std(ddof=1))
    if not stddev > 0:
        return None
    zscore = (observed - mean) / stddev
    return (mean, stddev, zscore) if abs(zscore) > threshold else None


def zscore_alerts(
    values: pd.DataFrame,
    day: date,
    *,
    dataset: Dataset,
    run_id: str,
    threshold: float,
    window_days: int,
) -> list[dict[str, Any]]:
    """Alerts for `day`: each symbol's metric columns of `values` (symbol, trade_date,
    metric...) against its last `window_days` rows before `day`."""
    metrics = [column for column in values.columns if column in set(DriftMetric)]
    created_at = datetime.now(UTC)
    alerts = []
    for symbol, rows in values.sort_values("trade_date").groupby("symbol", sort=True):
        today = rows[rows["trade_date"] == day]
        past = rows[rows["trade_date"] < day].tail(window_days)
        if today.empty:
            continue
        for metric in metrics:
            observed = float(today[metric].iloc[-1])
            found = _alert(observed, past[metric], threshold, min(MIN_HISTORY, window_days))
            if found is None:
                continue
            mean, stddev, zscore = found
            row = {
                "run_id": run_id,
                "dataset": dataset.value,
                "symbol": str(symbol),
                "trade_date": day,
                "metric": metric,
                "observed": observed,
                "mean": mean,
                "stddev": stddev,
                "zscore": zscore,
                "threshold": float(threshold),
                "window_days": window_days,
                "created_at": created_at,
            }
            assert tuple(row) == tuple(name for name, _ in DRIFT_ALERTS_COLUMNS)
            alerts.append(row)
    return alerts


def window_dates(day: date, window_days: int) -> list[date]:
    """The `window_days` trading days before `day`, then `day`."""
    span = timedelta(days=window_days * 7 // 5 + 21)  # calendar days holding them
    return [*trading_calendar.trading_days(day - span, day)[-window_days:], day]


def _objects(
    fs: S3FileSystem, bucket: str, zone: str, days: set[date], suffix: str
) -> dict[str, bytes]:
    """The objects of a zone whose partition date is one of `days` (one listing, then one
    concurrent fetch)."""
    try:
        paths = [p for p in fs.find(f"{bucket}/{zone}/") if p.endswith(suffix)]
    except FileNotFoundError:
        return {}
    wanted = [p for p in paths if lake.partition_date(p) in days]
    return fs.cat(wanted) if wanted else {}


def read_daily_metrics(fs: S3FileSystem, bucket: str, days: set[date]) -> pd.DataFrame:
    columns = ["symbol", "trade_date", "daily_volume", "daily_high", "daily_low"]
    columns += ["daily_close", "return_pct"]
    objects = _objects(fs, bucket, lake.PROCESSED_HISTORICAL, days, ".parquet")
    tables = [pq.read_table(io.BytesIO(data), columns=columns) for data in objects.values()]
    return pa.concat_tables(tables).to_pandas() if tables else pd.DataFrame(columns=columns)


def read_ticks(fs: S3FileSystem, bucket: str, days: set[date]) -> pd.DataFrame:
    schema = pa.schema([("symbol", pa.string()), ("event_time", pa.timestamp("us", tz="UTC"))])
    options = pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    objects = _objects(fs, bucket, lake.RAW_REALTIME, days, lake.RAW_SUFFIX)
    tables = [
        pa_json.read_json(io.BytesIO(data), parse_options=options) for data in objects.values()
    ]
    return pa.concat_tables(tables).to_pandas() if tables else schema.empty_table().to_pandas()


def drift_alerts(settings: Settings, day: date, run_id: str) -> list[dict[str, Any]]:
    """Drift alerts for `day` (DRIFT_ALERTS_COLUMNS rows): daily metrics' volume, range and
    return, and raw ticks' count, per symbol, beyond DRIFT_Z_THRESHOLD."""
    fs = lake_filesystem(settings)
    fs.invalidate_cache()
    days = set(window_dates(day, settings.drift_window_days))
    metrics = read_daily_metrics(fs, settings.lake_bucket, days)
    ticks = read_ticks(fs, settings.lake_bucket, days)
    values = {
        Dataset.DAILY_METRICS: daily_values(metrics),
        Dataset.RAW_TICKS: tick_counts(ticks),
    }
    if not any((frame["trade_date"] == day).any() for frame in values.values()):
        metrics_at = lake.s3_uri(settings.lake_bucket, lake.processed_historical_prefix(day))
        ticks_at = lake.s3_uri(settings.lake_bucket, lake.raw_realtime_day_prefix(day))
        raise PartitionNotFoundError(
            f"no daily metrics at {metrics_at} and no raw ticks at {ticks_at}: no values "
            f"of {day} to compare (compute the date first)"
        )
    alerts = []
    for dataset, frame in values.items():
        alerts += zscore_alerts(
            frame,
            day,
            dataset=dataset,
            run_id=run_id,
            threshold=settings.drift_z_threshold,
            window_days=settings.drift_window_days,
        )
    return alerts


def raise_on_drift(settings: Settings, alerts: list[dict[str, Any]]) -> None:
    """DriftError when there are alerts and DRIFT_SEVERITY is fail."""
    if alerts and settings.drift_severity == "fail":
        named = "; ".join(
            f"{a['symbol']} {a['trade_date']} {a['metric']}={a['observed']:.6g} "
            f"(z={a['zscore']:.2f}, mean {a['mean']:.6g}, stddev {a['stddev']:.6g})"
            for a in alerts
        )
        raise DriftError(f"drift beyond z={settings.drift_z_threshold}: {named}")
