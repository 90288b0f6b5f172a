"""Ingestion stage: producers that put contract records on Kafka (key = symbol).

- `producer`: `produce_historical`, `plan_realtime` + `produce_realtime`,
  `produce_ticks` (unpaced, for benchmarks) and `ProduceSummary`.
- `yahoo`, `csv_source`, `synthetic`: the historical sources.
- `simulator`: `simulate_ticks`, the pure real-time tick generator.
- `market_hours`, `gbm`: session calendar, date ranges and GBM pieces.
"""
