"""Ingestion stage: producers that put contract records on Kafka (key = symbol).

- `producer`: the entry points `produce_historical`, `produce_realtime` and
  `produce_ticks` (unpaced, for benchmarks).
- `sources`: `collect_historical`, one collector per historical source.
- `realtime_plan`: `plan_realtime`, `plan_interval`, `plan_scheduled_run` (pure).
- `kafka_sink`: the Kafka producer, `send_records` and `ProduceSummary`.
- `yahoo`, `csv_source`, `synthetic`: the historical sources.
- `simulator`: `simulate_ticks`, the pure real-time tick generator.
- `market_hours`, `gbm`: session calendar, date ranges and GBM pieces.
"""
