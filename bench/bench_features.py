"""Benchmark: the rolling features (spark_jobs/features.py) against DuckDB window functions.

On generated data written once as local parquet, in one run:
  daily:    N years x M symbols of daily metrics rows (sizes 10 y x 50, 150, 500 symbols:
            126k, 378k, 1.26M rows)
  intraday: D sessions x S symbols of 1-minute bars (21 sessions x 2, 6, 20 symbols)
each computed by Spark (the project's functions, local[*]) and by DuckDB SQL (the same
definitions) from the same files, both writing parquet. Prints wall time, rows/s and the
Spark/DuckDB ratio, checks the two agree, and writes the figures as JSON
(bench/results/bench_features.json).

    python bench/bench_features.py [--years 10 --symbols 50,150,500 --minute-symbols 2,6,20]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.results import per_record_us, save  # noqa: E402
from stocklake.schemas import (  # noqa: E402
    DAILY_FEATURES_COLUMNS,
    INTRADAY_FEATURES_COLUMNS,
    INTRADAY_WINDOWS_MINUTES,
    SMA_WINDOWS,
)
from stocklake.settings import get_settings  # noqa: E402


def daily_metrics(years: int, symbols: int, seed: int = 7) -> pa.Table:
    """Daily metrics rows (the features' input) on weekdays, a GBM close per symbol."""
    days = pd.bdate_range("2010-01-04", periods=252 * years).date
    rng = np.random.default_rng(seed)
    n = len(days)
    returns = rng.normal(0.0003, 0.02, size=(symbols, n))
    close = 100 * np.exp(np.cumsum(returns, axis=1))
    prev = np.concatenate([np.full((symbols, 1), np.nan), close[:, :-1]], axis=1)
    volume = rng.integers(10_000, 5_000_000, size=(symbols, n))
    return pa.table(
        {
            "symbol": np.repeat([f"S{i:04d}" for i in range(symbols)], n),
            "trade_date": np.tile(np.array(days, dtype="datetime64[D]"), symbols),
            "daily_close": close.ravel(),
            "daily_volume": volume.ravel(),
            "vwap": (close * (1 + rng.normal(0, 0.002, size=close.shape))).ravel(),
            "prev_close": prev.ravel(),
            "return_pct": ((close - prev) / prev * 100).ravel(),
        }
    )


def minute_bars(sessions: int, symbols: int, seed: int = 11) -> pa.Table:
    days = pd.bdate_range("2024-03-04", periods=sessions)
    rng = np.random.default_rng(seed)
    minutes = pd.to_timedelta(np.arange(390) * 60 + 13 * 3600 + 30 * 60, unit="s")
    stamps = np.array([day + minute for day in days for minute in minutes], dtype="datetime64[us]")
    n = len(stamps)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.001, size=(symbols, n)), axis=1))
    spread = np.abs(rng.normal(0, 0.0005, size=close.shape)) * close
    return pa.table(
        {
            "symbol": np.repeat([f"M{i:03d}" for i in range(symbols)], n),
            "interval": np.full(symbols * n, "1m"),
            "ts": pa.array(np.tile(stamps, symbols), type=pa.timestamp("us", tz="UTC")),
            "trade_date": np.tile(stamps.astype("datetime64[D]"), symbols),
            "high": (close + spread).ravel(),
            "low": (close - spread).ravel(),
            "close": close.ravel(),
            "volume": rng.integers(100, 50_000, size=symbols * n),
        }
    )


def duckdb_daily_sql(source: str) -> str:
    rows = "PARTITION BY symbol ORDER BY trade_date ROWS BETWEEN {} PRECEDING AND CURRENT ROW"
    smas = ",\n".join(
        f"CASE WHEN count(close) OVER w{n} = {n} THEN avg(close) OVER w{n} END AS sma_{n}"
        for n in SMA_WINDOWS
    )
    windows = ", ".join(f"w{n} AS ({rows.format(n - 1)})" for n in (*SMA_WINDOWS, 20))
    return f"""
    WITH base AS (
        SELECT symbol, trade_date, daily_close AS close, daily_volume AS volume, return_pct,
               CASE WHEN prev_close > 0 THEN ln(daily_close / prev_close) END AS log_return,
               coalesce(vwap * daily_volume, 0) AS pv
        FROM read_parquet('{source}'))
    SELECT symbol, trade_date, close, volume, return_pct, log_return,
        {smas},
        CASE WHEN count(log_return) OVER w20 = 20
             THEN stddev_samp(log_return) OVER w20 * sqrt(252) END AS volatility_20d,
        CASE WHEN count(close) OVER w20 = 20 AND sum(volume::DOUBLE) OVER w20 > 0
             THEN sum(pv) OVER w20 / sum(volume::DOUBLE) OVER w20 END AS vwap_20d,
        (close / max(close) OVER (PARTITION BY symbol ORDER BY trade_date
             ROWS UNBOUNDED PRECEDING) - 1) * 100 AS drawdown_pct,
        CASE WHEN count(return_pct) OVER p60 = 60 AND stddev_samp(return_pct) OVER p60 > 0
             THEN (return_pct - avg(return_pct) OVER p60) / stddev_samp(return_pct) OVER p60
        END AS return_zscore_60d
    FROM base
    WINDOW {windows},
        p60 AS (PARTITION BY symbol ORDER BY trade_date ROWS BETWEEN 60 PRECEDING AND 1 PRECEDING)
    """


def duckdb_intraday_sql(source: str) -> str:
    session = "PARTITION BY symbol, trade_date ORDER BY s"
    parts = []
    for n in INTRADAY_WINDOWS_MINUTES:
        span = n * 60
        before = f"RANGE BETWEEN UNBOUNDED PRECEDING AND {span} PRECEDING"
        anchor = f"last_value(close) OVER ({session} {before})"
        window = f"({session} RANGE BETWEEN {span - 1} PRECEDING AND CURRENT ROW)"
        parts.append(
            f"(close / {anchor} - 1) * 100 AS return_{n}m, "
            f"CASE WHEN {anchor} IS NOT NULL THEN sqrt(sum(r * r) OVER {window}) END "
            f"AS realized_vol_{n}m, "
            f"CASE WHEN {anchor} IS NOT NULL AND sum(volume::DOUBLE) OVER {window} > 0 "
            f"THEN sum(pv) OVER {window} / sum(volume::DOUBLE) OVER {window} END AS vwap_{n}m"
        )
    return f"""
    WITH bars AS (
        SELECT *, epoch(ts)::BIGINT AS s,
               ln(close / lag(close) OVER (PARTITION BY symbol, trade_date ORDER BY ts)) AS r,
               (high + low + close) / 3 * volume AS pv
        FROM read_parquet('{source}') WHERE interval = '1m')
    SELECT symbol, trade_date, ts AS bar_ts, close, volume, {", ".join(parts)},
        (close / max(high) OVER ({session} ROWS UNBOUNDED PRECEDING) - 1) * 100
            AS drawdown_from_high_pct
    FROM bars
    """


def run_spark(spark, kind: str, source: Path, target: Path) -> float:
    from spark_jobs.features import daily_features, intraday_features

    compute = daily_features if kind == "daily" else intraday_features
    began = time.perf_counter()
    compute(spark.read.parquet(str(source))).write.mode("overwrite").parquet(str(target))
    return time.perf_counter() - began


def run_duckdb(kind: str, source: Path, target: Path, threads: int) -> float:
    import duckdb

    sql = duckdb_daily_sql(str(source)) if kind == "daily" else duckdb_intraday_sql(str(source))
    began = time.perf_counter()
    with duckdb.connect() as con:
        con.execute(f"SET threads = {threads}")
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"COPY ({sql}) TO '{target}' (FORMAT parquet)")
    return time.perf_counter() - began


def agree(
    spark_out: Path, duck_out: Path, columns: tuple[tuple[str, str], ...], key: list[str]
) -> None:
    names = [name for name, _ in columns]
    a = pq.read_table(spark_out).to_pandas()[names].sort_values(key).reset_index(drop=True)
    b = pq.read_table(duck_out).to_pandas()[names].sort_values(key).reset_index(drop=True)
    for name, kind in columns:
        if kind == "double":
            x, y = a[name].to_numpy(float), b[name].to_numpy(float)
            if not (
                (np.isnan(x) == np.isnan(y)).all() and np.allclose(x, y, rtol=1e-9, equal_nan=True)
            ):
                raise SystemExit(f"Spark and DuckDB disagree on {name}")
    if len(a) != len(b):
        raise SystemExit(f"row counts differ: Spark {len(a)}, DuckDB {len(b)}")


def measure_size(spark, tmp: Path, inputs: dict, cores: int) -> dict[str, dict]:
    """Spark then DuckDB on each kind's parquet at one size; they must agree."""
    figures: dict[str, dict] = {}
    for kind, (table, columns, key) in inputs.items():
        source = tmp / f"{kind}.parquet"
        pq.write_table(table, source)
        run_spark(spark, kind, source, tmp / f"{kind}-warmup")  # JIT and session warm-up
        spark_s = run_spark(spark, kind, source, tmp / f"{kind}-spark")
        duck_s = run_duckdb(kind, source, tmp / f"{kind}-duckdb.parquet", cores)
        agree(tmp / f"{kind}-spark", tmp / f"{kind}-duckdb.parquet", columns, key)
        figures[kind] = {"rows": table.num_rows, "spark": spark_s, "duckdb": duck_s}
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument(
        "--symbols", default="50,150,500", help="comma-separated: one size per value"
    )
    parser.add_argument("--sessions", type=int, default=21)
    parser.add_argument("--minute-symbols", default="2,6,20", help="one per size, same count")
    parser.add_argument("--cores", type=int, default=2, help="Spark local[N] and DuckDB threads")
    args = parser.parse_args(argv)
    symbols = [int(value) for value in args.symbols.split(",")]
    minute_symbols = [int(value) for value in args.minute_symbols.split(",")]
    if len(symbols) != len(minute_symbols):
        parser.error("--symbols and --minute-symbols need the same number of sizes")
    from spark_jobs.session import build_spark

    settings = get_settings().model_copy(update={"spark_master": f"local[{args.cores}]"})
    spark = build_spark(settings, "bench-features", {"spark.driver.memory": "2g"})
    sizes = []
    try:
        for daily_symbols, minute_count in zip(symbols, minute_symbols, strict=True):
            inputs = {
                "daily": (
                    daily_metrics(args.years, daily_symbols),
                    DAILY_FEATURES_COLUMNS,
                    ["symbol", "trade_date"],
                ),
                "intraday": (
                    minute_bars(args.sessions, minute_count),
                    INTRADAY_FEATURES_COLUMNS,
                    ["symbol", "bar_ts"],
                ),
            }
            with tempfile.TemporaryDirectory(prefix="bench-features-") as folder:
                figures = measure_size(spark, Path(folder), inputs, args.cores)
            sizes.extend(size_rows(figures, daily_symbols, minute_count, args))
    finally:
        spark.stop()
    print("Spark and DuckDB agree on every feature at every size (rtol 1e-9).")
    daily_top = [size for size in sizes if size["label"].startswith("daily")][-1]
    intraday_top = [size for size in sizes if size["label"].startswith("intraday")][-1]
    save(
        "bench_features",
        {
            "cores": args.cores,
            "sizes": sizes,
            "ratios": {
                "daily_spark_over_duckdb": daily_top["ratio"],
                "intraday_spark_over_duckdb": intraday_top["ratio"],
            },
        },
    )
    return 0


def size_rows(figures: dict[str, dict], daily_symbols: int, minute_count: int, args) -> list:
    """One row per kind at this size, printed as measured."""
    rows = []
    labels = {
        "daily": f"daily, {args.years} y x {daily_symbols} symbols",
        "intraday": f"intraday, {args.sessions} sessions x {minute_count} symbols",
    }
    for kind, figure in figures.items():
        records, spark_s, duck_s = figure["rows"], figure["spark"], figure["duckdb"]
        row = {
            "label": labels[kind],
            "records": records,
            "seconds": {"spark": round(spark_s, 2), "duckdb": round(duck_s, 2)},
            "us_per_record": {
                "spark": per_record_us(spark_s, records),
                "duckdb": per_record_us(duck_s, records),
            },
            "ratio": round(spark_s / duck_s, 2),
        }
        print(
            f"{row['label']:<36} {records:>10,} rows  Spark {spark_s:6.2f} s"
            f"  DuckDB {duck_s:6.2f} s  ratio {row['ratio']:5.2f}"
        )
        rows.append(row)
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
