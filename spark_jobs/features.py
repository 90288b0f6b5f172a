"""Rolling features, computed once in the lake: daily (from the daily metrics) and intraday
(from 1-minute bars). Each is a pure function of a DataFrame; `spark_jobs/features_job.py`
reads and writes the lake.

Daily features, per symbol over its rows in the lake (trading days present, so a gap
uses the previous trading day present), in trade-date order:
    log_return          ln(daily_close / prev_close) (null when prev_close is)
    sma_N               mean of the last N closes, today's included; null until N rows
    volatility_20d      sample std of the last 20 log returns x sqrt(252); null until 20
    vwap_20d            sum(vwap x volume) / sum(volume) over the last 20 rows; null until 20
    drawdown_pct        (close / max close since the symbol's first row - 1) x 100
    return_zscore_60d   (return_pct - mean) / sample std of the previous 60 return_pct
                        values (today's excluded); null until 60 exist or when std is 0

Intraday features, per symbol within one session (trade date), at each 1-minute bar t,
over event time (a missing minute is not filled):
    return_Nm           (close_t / close_b - 1) x 100, b = the latest bar at or before
                        t - N minutes; null when the session has no such bar
    realized_vol_Nm     sqrt(sum of squared 1-minute log returns) over bars in (t - N min, t]
    vwap_Nm             sum(typical price x volume) / sum(volume) over bars in (t - N min, t]
    drawdown_from_high_pct  (close / highest high of the session so far - 1) x 100
realized_vol_Nm and vwap_Nm are null wherever return_Nm is (the window is not full yet).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from stocklake.schemas import (
    DAILY_FEATURES_COLUMNS,
    INTRADAY_FEATURES_COLUMNS,
    INTRADAY_WINDOWS_MINUTES,
    SMA_WINDOWS,
    TRADING_DAYS_PER_YEAR,
    VOLATILITY_WINDOW,
    VWAP_WINDOW,
    ZSCORE_WINDOW,
    Interval,
    spark_type,
)

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, WindowSpec

# The most rows before a date that any daily feature looks at (the z-score's 60 + today).
DAILY_HISTORY_ROWS = max(*SMA_WINDOWS, VOLATILITY_WINDOW + 1, VWAP_WINDOW, ZSCORE_WINDOW + 1)


def _typed(frame: DataFrame, columns: tuple[tuple[str, str], ...]) -> DataFrame:
    from pyspark.sql import functions as F

    return frame.select(*[F.col(name).cast(spark_type(kind)) for name, kind in columns])


def _last_rows(by_date: WindowSpec, n: int) -> WindowSpec:
    return by_date.rowsBetween(-(n - 1), 0)


def _full(column: str, frame: WindowSpec, n: int) -> Column:
    """Whether the frame holds `n` non-null values of `column`."""
    from pyspark.sql import functions as F

    return F.count(column).over(frame) == n


def daily_features(metrics: DataFrame) -> DataFrame:
    """Daily features (DAILY_FEATURES_COLUMNS) from daily metrics rows (all history needed:
    drawdown looks back to each symbol's first row)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    by_date = Window.partitionBy("symbol").orderBy("trade_date")
    base = metrics.select(
        "symbol",
        "trade_date",
        F.col("daily_close").alias("close"),
        F.col("daily_volume").alias("volume"),
        "return_pct",
        F.when(F.col("prev_close") > 0, F.log(F.col("daily_close") / F.col("prev_close"))).alias(
            "log_return"
        ),
        F.coalesce(F.col("vwap") * F.col("daily_volume"), F.lit(0.0)).alias("_price_volume"),
    )
    columns: dict[str, Column] = {}
    for n in SMA_WINDOWS:
        frame = _last_rows(by_date, n)
        columns[f"sma_{n}"] = F.when(_full("close", frame, n), F.avg("close").over(frame))
    vol = _last_rows(by_date, VOLATILITY_WINDOW)
    columns[f"volatility_{VOLATILITY_WINDOW}d"] = F.when(
        _full("log_return", vol, VOLATILITY_WINDOW),
        F.stddev_samp("log_return").over(vol) * math.sqrt(TRADING_DAYS_PER_YEAR),
    )
    vwap = _last_rows(by_date, VWAP_WINDOW)
    volume = F.sum(F.col("volume").cast("double")).over(vwap)
    columns[f"vwap_{VWAP_WINDOW}d"] = F.when(
        _full("close", vwap, VWAP_WINDOW) & (volume > 0),
        F.sum("_price_volume").over(vwap) / volume,
    )
    running = by_date.rowsBetween(Window.unboundedPreceding, 0)
    columns["drawdown_pct"] = (F.col("close") / F.max("close").over(running) - 1) * 100
    columns[f"return_zscore_{ZSCORE_WINDOW}d"] = _zscore(by_date)
    return _typed(base.withColumns(columns), DAILY_FEATURES_COLUMNS)


def _zscore(by_date: WindowSpec) -> Column:
    from pyspark.sql import functions as F

    previous = by_date.rowsBetween(-ZSCORE_WINDOW, -1)
    spread = F.stddev_samp("return_pct").over(previous)
    return F.when(
        _full("return_pct", previous, ZSCORE_WINDOW) & (spread > 0),
        (F.col("return_pct") - F.avg("return_pct").over(previous)) / spread,
    )


def intraday_features(bars: DataFrame) -> DataFrame:
    """Intraday features (INTRADAY_FEATURES_COLUMNS) from deduplicated 1-minute bars
    (symbol, trade_date, ts, high, low, close, volume); other intervals are ignored."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    minutes = bars.where(F.col("interval") == Interval.M1.value).withColumn(
        "_second", F.col("ts").cast("long")
    )
    session = Window.partitionBy("symbol", "trade_date").orderBy("_second")
    minutes = minutes.withColumns(
        {
            "_log_return": F.log(F.col("close") / F.lag("close").over(session)),
            "_price_volume": (F.col("high") + F.col("low") + F.col("close")) / 3 * F.col("volume"),
        }
    )
    columns: dict[str, Column] = {}
    for n in INTRADAY_WINDOWS_MINUTES:
        span = n * 60
        anchor = F.last("close").over(session.rangeBetween(Window.unboundedPreceding, -span))
        window = session.rangeBetween(-(span - 1), 0)
        volume = F.sum(F.col("volume").cast("double")).over(window)
        full = anchor.isNotNull()
        columns[f"return_{n}m"] = F.when(full, (F.col("close") / anchor - 1) * 100)
        columns[f"realized_vol_{n}m"] = F.when(
            full, F.sqrt(F.sum(F.col("_log_return") * F.col("_log_return")).over(window))
        )
        columns[f"vwap_{n}m"] = F.when(
            full & (volume > 0), F.sum("_price_volume").over(window) / volume
        )
    high = F.max("high").over(session.rowsBetween(Window.unboundedPreceding, 0))
    columns["drawdown_from_high_pct"] = (F.col("close") / high - 1) * 100
    columns["bar_ts"] = F.col("ts")
    return _typed(minutes.withColumns(columns), INTRADAY_FEATURES_COLUMNS)
