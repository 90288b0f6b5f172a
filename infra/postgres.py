"""The embedded PostgreSQL 15 cluster: the fallback warehouse and Airflow's metadata DB."""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from infra.postgres_roles import ProvisionError, ensure_passwords, provision_cluster
from infra.service import (
    HEALTH_TIMEOUT_S,
    Service,
    ServiceStatus,
    StackError,
    is_local_host,
    pid_alive,
    tail,
    terminate,
)

DEFAULT_PG_BIN = Path("/usr/lib/postgresql/15/bin")


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
    def embedded(self) -> bool:
        """The cluster is ours (its data folder is in the state folder): `up` provisions it."""
        return self.is_local and (self.data_dir / "PG_VERSION").exists()

    @property
    def is_local(self) -> bool:
        return is_local_host(self.settings.postgres_host)

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
            self._initdb(root, data)
        stale = data / "postmaster.pid"
        if stale.exists():
            with contextlib.suppress(ValueError, OSError):
                old = int(stale.read_text().splitlines()[0])
                if not pid_alive(old):
                    stale.unlink()
        # Durable unless POSTGRES_DURABLE=false (a test run may trade safety for speed):
        # a load reported "succeeded" must survive a kill -9 of the server.
        durable = "on" if self.settings.postgres_durable else "off"
        options = (
            f"-h {self.settings.bind_host} -p {self.settings.postgres_port} -k {data} "
            f"-c fsync={durable} -c full_page_writes={durable} -c synchronous_commit={durable} "
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
                f"pg_ctl start failed:\n{result.stdout}{result.stderr}\n{tail(self.server_log)}"
            )
        return int((data / "postmaster.pid").read_text().splitlines()[0])

    def _initdb(self, root: Path, data: Path) -> None:
        """A new cluster whose superuser logs in with its generated password only."""
        ensure_passwords(self.settings)
        user, password = self.settings.postgres_login("superuser")
        pwfile = root / ".initdb-password"
        pwfile.unlink(missing_ok=True)
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(password + "\n")
        if self.run_as_postgres:
            shutil.chown(pwfile, "postgres", "postgres")
        try:
            result = self._run(
                [
                    str(self.bin_dir / "initdb"),
                    "-D", str(data),
                    "-U", user,
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "-E", "UTF8",
                    "--no-locale",
                    "--no-sync",
                ]
            )  # fmt: skip
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise StackError(f"initdb failed for {data}:\n{result.stdout}{result.stderr}")

    def stop(self, pid: int) -> None:
        result = self._run(
            [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"]
        )
        if result.returncode != 0 and pid_alive(pid):
            terminate(pid)

    def reachable(self) -> bool:
        """The server accepts connections (whatever a login's password)."""
        from psycopg import pq

        dsn = self.settings.postgres_dsn("postgres").encode()
        return pq.PGconn.ping(dsn) == pq.Ping.OK

    def healthy(self) -> bool:
        """The pipeline's role logs in to the warehouse database."""
        import psycopg

        try:
            with psycopg.connect(self.settings.postgres_dsn(), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def provision(self) -> None:
        """Our cluster: roles, passwords, databases and grants (the superuser's only use).
        Another server: its databases must exist; the pipeline's role cannot create them."""
        if self.embedded:
            try:
                provision_cluster(self.settings, self.data_dir)
            except ProvisionError as error:
                raise StackError(f"postgres: {error}") from None
            return
        import psycopg

        try:
            psycopg.connect(self.settings.postgres_dsn(), connect_timeout=5).close()
        except psycopg.Error as error:
            s = self.settings
            raise StackError(
                f"postgres: {s.postgres_user} cannot log in to database {s.warehouse_db} on "
                f"{s.postgres_host}:{s.postgres_port} ({str(error).strip()}); create the "
                "database and role there, or check POSTGRES_USER/POSTGRES_PASSWORD"
            ) from None

    def status(self) -> ServiceStatus:
        status = super().status()
        s = self.settings
        status.extra = {
            "databases": f"{s.warehouse_db}, {s.airflow_db}",
            "roles": f"{s.postgres_user} (pipeline), {s.postgres_readonly_user} (stocklake sql), "
            f"{s.airflow_db_user} (Airflow)",
            "durable": "yes" if s.postgres_durable else "no (POSTGRES_DURABLE=false)",
        }
        if self.embedded:
            status.extra["passwords"] = _shown(s.postgres_passwords_file)
        if status.managed:
            status.extra["data_dir"] = str(self.data_dir)
        return status


def _shown(path: Path) -> str:
    """`path` relative to the working folder when inside it (shorter in a table)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


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
