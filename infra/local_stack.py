"""The embedded local stack: PostgreSQL, an S3 endpoint and a Kafka broker as processes.

`LocalStack(settings).up()` starts what is not already healthy, waits for
health, then provisions (databases, bucket and zones, topics); `down()` stops
only the processes that `up` started, found by the PID files it wrote.
An endpoint that is not on this machine (a real MinIO/S3, Kafka or PostgreSQL
server named in settings) is never started or stopped: it is only
health-checked and provisioned.
"""

from __future__ import annotations

import json
from dataclasses import asdict

from infra.kafka_broker import KafkaBroker, tansu_binary
from infra.postgres import Postgres
from infra.s3_server import S3Server
from infra.service import (
    LOCAL_HOSTS,
    Service,
    ServiceStatus,
    StackError,
    pid_alive,
    spawn,
    terminate,
)
from stocklake.settings import Settings

__all__ = [
    "KafkaBroker",
    "LocalStack",
    "Postgres",
    "S3Server",
    "ServiceStatus",
    "StackError",
    "pid_alive",
    "spawn",
    "statuses_json",
    "tansu_binary",
    "terminate",
]

# --------------------------------------------------------------------------- the stack


class LocalStack:
    """The three services, started in order and stopped in reverse."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.services: list[Service] = [
            Postgres(settings),
            S3Server(settings),
            KafkaBroker(settings),
        ]

    def _check_bind_host(self) -> None:
        if self.settings.bind_host not in LOCAL_HOSTS:
            raise StackError(
                f"BIND_HOST={self.settings.bind_host}: the embedded stack only listens on "
                "loopback (127.0.0.1)"
            )

    def up(self) -> list[ServiceStatus]:
        self._check_bind_host()
        self.settings.state_path.mkdir(parents=True, exist_ok=True)
        return [service.up() for service in self.services]

    def down(self) -> list[tuple[str, bool]]:
        return [(service.name, service.down()) for service in reversed(self.services)]

    def status(self) -> list[ServiceStatus]:
        return [service.status() for service in self.services]


def statuses_json(statuses: list[ServiceStatus]) -> str:
    return json.dumps([asdict(s) for s in statuses], indent=2)
