#!/usr/bin/env bash
# One-shot (kafka-init): create the stocklake topics on the compose broker.
# Idempotent: an existing topic is kept, but one with fewer partitions than asked fails
# the job, because producers would silently use fewer partitions than configured.
set -euo pipefail

: "${KAFKA_BOOTSTRAP_SERVERS:?KAFKA_BOOTSTRAP_SERVERS is not set}"
: "${TOPIC_HISTORICAL:?TOPIC_HISTORICAL is not set}"
: "${TOPIC_REALTIME:?TOPIC_REALTIME is not set}"
: "${TOPIC_HISTORICAL_PARTITIONS:?TOPIC_HISTORICAL_PARTITIONS is not set}"
: "${TOPIC_REALTIME_PARTITIONS:?TOPIC_REALTIME_PARTITIONS is not set}"
KAFKA_TOPICS_BIN="${KAFKA_TOPICS_BIN:-/opt/kafka/bin/kafka-topics.sh}"

ensure_topic() {
  local topic="$1" partitions="$2" described count
  if ! [[ "$partitions" =~ ^[1-9][0-9]*$ ]]; then
    echo "kafka-init: partitions for topic '$topic' must be a positive integer, got '$partitions'" >&2
    exit 1
  fi
  "$KAFKA_TOPICS_BIN" --bootstrap-server "$KAFKA_BOOTSTRAP_SERVERS" --create --if-not-exists \
    --topic "$topic" --partitions "$partitions" --replication-factor 1
  described="$("$KAFKA_TOPICS_BIN" --bootstrap-server "$KAFKA_BOOTSTRAP_SERVERS" --describe --topic "$topic")"
  echo "$described"
  # One line per partition, each carrying "Partition: N".
  count="$(grep -c 'Partition: ' <<<"$described" || true)"
  if (( count < partitions )); then
    echo "kafka-init: topic '$topic' has $count partitions, settings ask for $partitions;" \
      "raise it with kafka-topics.sh --alter --partitions $partitions" >&2
    exit 1
  fi
}

ensure_topic "$TOPIC_HISTORICAL" "$TOPIC_HISTORICAL_PARTITIONS"
ensure_topic "$TOPIC_REALTIME" "$TOPIC_REALTIME_PARTITIONS"
echo "kafka-init: topics ready on $KAFKA_BOOTSTRAP_SERVERS"
