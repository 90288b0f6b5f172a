"""Offline checks of the Docker stack: docker-compose.yml, infra/docker/ and .env.example.

No Docker engine can build the stack here, so only what can fail for a real reason is
checked: the compose file against the vendored Compose Specification schema (and
`docker compose config` where a CLI is installed), published ports on loopback, the
variables (every one documented in .env.example, every setting passed to the pipeline's
containers, defaults that agree, secrets that are never written down), what the
containers mount (the DAGs and the bundled data/), and the project's own scripts:
make_env.py, the Airflow launcher, the init scripts (run against fake `mc` /
`kafka-topics.sh` / `airflow`, and for the PostgreSQL roles against the embedded
stack's server) and image_tools.py.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib.util
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest
import yaml
from dotenv import dotenv_values

from stocklake.settings import Settings, get_settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKER = ROOT / "infra" / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
SCHEMA_DIR = Path(__file__).resolve().parent / "compose_spec"
GIB = 1024**3


# --- helpers ---------------------------------------------------------------------------


def _load_module(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


image_tools = _load_module("stocklake_image_tools", DOCKER / "image_tools.py")
airflow_launch = _load_module("stocklake_airflow_launch", DOCKER / "airflow" / "launch.py")
make_env = _load_module("stocklake_make_env", DOCKER / "make_env.py")


class InterpolationError(ValueError):
    """A `${VAR:?message}` whose variable is unset or empty."""


# $$ | ${NAME} | ${NAME<op>arg} | $NAME, as in the Compose Specification's interpolation.
_TOKEN = re.compile(
    r"\$(?:(?P<escape>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate_text(text: str, env: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group("escape"):
            return "$"
        name = match.group("braced") or match.group("bare")
        op, arg = match.group("op"), match.group("arg") or ""
        value = env.get(name)
        if op is None:
            return value or ""
        missing = value is None or (op.startswith(":") and value == "")
        if op.endswith("-"):
            return arg if missing else value
        if op.endswith("?"):
            if missing:
                raise InterpolationError(f"{name}: {arg}")
            return value
        return "" if missing else arg  # ':+' / '+'

    return _TOKEN.sub(replace, text)


def interpolate(node: Any, env: Mapping[str, str]) -> Any:
    """Compose interpolation of every string value (keys are left alone, as compose does)."""
    if isinstance(node, str):
        return interpolate_text(node, env)
    if isinstance(node, list):
        return [interpolate(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    return node


def _strings(node: Any) -> list[str]:
    """Every string value of a parsed YAML document (comments are not values)."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [text for item in node for text in _strings(item)]
    if isinstance(node, dict):
        return [text for value in node.values() for text in _strings(value)]
    return []


def referenced_variables(document: Any) -> set[str]:
    """Every variable a compose document interpolates (`$$` is a literal dollar)."""
    names = set()
    for text in _strings(document):
        for match in _TOKEN.finditer(text):
            if not match.group("escape"):
                names.add(match.group("braced") or match.group("bare"))
    return names


def defaults(document: Any) -> dict[str, set[str]]:
    """`${VAR:-default}` defaults written in the compose file, by variable."""
    found: dict[str, set[str]] = {}
    for text in _strings(document):
        for match in _TOKEN.finditer(text):
            if match.group("op") in (":-", "-"):
                found.setdefault(match.group("braced"), set()).add(match.group("arg"))
    return found


def memory_bytes(value: str | int) -> int:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmg]?)b?", str(value).strip().lower())
    assert match, f"unreadable memory size {value!r}"
    unit = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[match.group(2)]
    return int(float(match.group(1)) * unit)


@functools.cache
def compose_text() -> str:
    return COMPOSE.read_text()


@functools.cache
def compose_raw() -> dict[str, Any]:
    return yaml.safe_load(compose_text())


@functools.cache
def env_example() -> dict[str, str]:
    return {key: value or "" for key, value in dotenv_values(ENV_EXAMPLE).items()}


@functools.cache
def stack_env() -> dict[str, str]:
    """The .env that `make_env.py` writes from .env.example (secrets generated)."""
    text, _ = make_env.fill_env(
        ENV_EXAMPLE.read_text(), None, make_env.required_variables(compose_text())
    )
    return make_env.env_values(text)


@functools.cache
def compose() -> dict[str, Any]:
    """The compose file as `docker compose` sees it with the generated .env."""
    return interpolate(compose_raw(), stack_env())


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def settings_variables() -> set[str]:
    return {field.alias for field in Settings.model_fields.values() if field.alias}


@functools.cache
def dockerfile_lines() -> list[str]:
    """Dockerfile instructions, one per line (continuations joined, comments dropped)."""
    joined, current = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        joined.append(current + line)
        current = ""
    return joined


def dockerfile_global_args() -> dict[str, str]:
    """ARGs declared before the first FROM, with their default values."""
    args = {}
    for line in dockerfile_lines():
        if line.upper().startswith("FROM "):
            break
        match = re.fullmatch(r"ARG\s+([A-Za-z_][A-Za-z0-9_]*)(?:=(.*))?", line)
        if match:
            args[match.group(1)] = (match.group(2) or "").strip()
    return args


def dockerfile_stages() -> dict[str, list[str]]:
    """Instructions of each named stage (`FROM image AS name`)."""
    stages: dict[str, list[str]] = {}
    current = None
    for line in dockerfile_lines():
        match = re.fullmatch(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, flags=re.IGNORECASE)
        if match:
            current = match.group(2) or match.group(1)
            stages[current] = [line]
        elif current:
            stages[current].append(line)
    return stages


@functools.cache
def lock() -> dict[str, str]:
    return image_tools.lock_pins((ROOT / "constraints.txt").read_text())


@functools.cache
def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


# --- the Compose Specification ---------------------------------------------------------


@functools.cache
def compose_validator() -> jsonschema.protocols.Validator:
    schema = json.loads((SCHEMA_DIR / "compose-spec.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def schema_errors(document: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in compose_validator().iter_errors(document)
    ]


def test_compose_file_validates_against_the_compose_spec() -> None:
    assert schema_errors(compose_raw()) == []
    assert schema_errors(compose()) == []
    # The vendored schema is strict enough to matter: it rejects each of these.
    for break_it in (_unknown_service_key, _bad_interval_type, _bad_condition, _unknown_top_level):
        broken = copy.deepcopy(compose())
        break_it(broken)
        assert schema_errors(broken), f"the schema accepted a broken file ({break_it.__name__})"


def _unknown_service_key(doc: dict) -> None:
    doc["services"]["kafka"]["restartt"] = "always"


def _bad_interval_type(doc: dict) -> None:
    doc["services"]["minio"]["healthcheck"]["interval"] = ["10s"]


def _bad_condition(doc: dict) -> None:
    doc["services"]["minio-init"]["depends_on"]["minio"]["condition"] = "up"


def _unknown_top_level(doc: dict) -> None:
    doc["volumez"] = {}


def _compose_cli() -> list[str] | None:
    """`docker compose` (v2) when installed, else Debian's `docker-compose` (v1.29)."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


@pytest.mark.skipif(_compose_cli() is None, reason="no docker compose CLI on this machine")
def test_the_compose_cli_accepts_the_file(tmp_path) -> None:
    """A second opinion from compose itself (`config` needs no engine)."""
    cli = _compose_cli()
    text = compose_text()
    if cli == ["docker-compose"]:  # v1 predates the top-level `name`
        text = text.replace("\nname: stocklake\n", "\n")
    shutil.copytree(ROOT / "infra" / "docker", tmp_path / "infra" / "docker")
    (tmp_path / "dags").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "docker-compose.yml").write_text(text)
    env = "\n".join(f"{k}={v}" for k, v in stack_env().items()) + "\n"
    (tmp_path / ".env").write_text(env)
    ok = subprocess.run([*cli, "config"], cwd=tmp_path, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    resolved = yaml.safe_load(ok.stdout)["services"]
    assert set(resolved) == set(services())
    for service in resolved.values():  # v1 prints short port syntax, v2 the long one
        assert all("127.0.0.1" in str(port) for port in service.get("ports", []))
    (tmp_path / ".env").write_text(env.replace("AIRFLOW_FERNET_KEY=", "UNUSED="))
    missing = subprocess.run([*cli, "config"], cwd=tmp_path, capture_output=True, text=True)
    assert missing.returncode != 0 and "set AIRFLOW_FERNET_KEY in .env" in missing.stderr


# --- variables: compose, .env.example and the settings object ----------------------------


def test_every_compose_variable_is_documented_in_env_example() -> None:
    undocumented = sorted(referenced_variables(compose_raw()) - set(env_example()))
    assert undocumented == [], f"add these to .env.example: {undocumented}"


def test_every_settings_variable_is_in_env_example_and_the_compose_file() -> None:
    assert settings_variables() - set(env_example()) == set()
    anchor = compose_raw()["x-stocklake-env"]
    assert settings_variables() - set(anchor) == set(), "missing from x-stocklake-env"
    for name, service in services().items():
        if "stocklake-airflow" in str(service.get("image")):
            missing = settings_variables() - set(service["environment"])
            assert missing == set(), f"{name} lacks {sorted(missing)}"


def test_compose_defaults_agree_with_env_example() -> None:
    env = env_example()
    for name, written in defaults(compose_raw()).items():
        assert written == {env[name]}, f"{name}: compose default {written} != .env.example"


def test_required_secrets_have_no_value_in_env_example() -> None:
    lead_owned = settings_variables()  # local-only defaults of the embedded stack
    for name in make_env.required_variables(compose_text()) - lead_owned:
        if re.search(r"PASSWORD|SECRET|FERNET|JWT", name):
            assert env_example()[name] == "", f"{name} must be empty in .env.example"


@pytest.fixture
def inside_the_stack(monkeypatch, tmp_path) -> dict[str, str]:
    """This process's environment as an Airflow container of the stack gets it."""
    environment = {k: str(v) for k, v in services()["airflow-scheduler"]["environment"].items()}
    for name in list(os.environ):
        if name.upper() in settings_variables():
            monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("STOCKLAKE_HOME", str(tmp_path))  # no .env files: env vars only
    get_settings.cache_clear()
    yield environment
    get_settings.cache_clear()


def test_settings_object_accepts_the_stack_environment(inside_the_stack) -> None:
    """Inside the stack the same settings load, with service names as addresses."""
    settings = load_settings()
    assert settings.kafka_bootstrap_servers == "kafka:9092"
    assert settings.s3_endpoint_url == "http://minio:9000"
    assert settings.spark_master == "spark://spark-master:7077"
    assert (settings.postgres_host, settings.postgres_port) == ("postgres", 5432)
    assert settings.postgres_user == stack_env()["WAREHOUSE_DB_USER"]
    assert settings.postgres_password == stack_env()["WAREHOUSE_DB_PASSWORD"]
    assert settings.s3_access_key == stack_env()["S3_ACCESS_KEY"]
    assert settings.warehouse_kind == "postgres"
    assert settings.postgres_bin_dir is None and settings.kafka_home is None


def test_addresses_inside_the_stack_name_real_services() -> None:
    """Every address the pipeline is given inside the stack is a service of the file."""
    from urllib.parse import urlsplit

    settings = load_settings(**compose()["x-stocklake-env"])
    hosts = {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers.rsplit(":", 1)[0],
        "S3_ENDPOINT_URL": urlsplit(settings.s3_endpoint_url).hostname,
        "SPARK_MASTER": urlsplit(settings.spark_master).hostname,
        "POSTGRES_HOST": settings.postgres_host,
    }
    for variable, host in hosts.items():
        assert host in services(), f"{variable} names {host!r}, which is not a service"


# --- services: ports, health, dependencies, volumes, memory ---------------------------------


def test_published_ports_bind_to_loopback_only() -> None:
    for name, service in services().items():
        for port in service.get("ports", []):
            if isinstance(port, dict):
                assert port.get("host_ip") == "127.0.0.1", f"{name}: {port}"
            else:
                assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"


def test_bind_mounted_files_exist_and_scripts_are_executable() -> None:
    for name, service in services().items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("./"):
                path = ROOT / source
                assert path.exists(), f"{name} mounts missing {source}"
                if path.suffix == ".sh":
                    assert path.stat().st_mode & stat.S_IXUSR, f"{source} is not executable"


def test_memory_limits_fit_in_8_gib() -> None:
    limits = {}
    for name, service in services().items():
        assert "mem_limit" in service, f"{name} has no mem_limit"
        limits[name] = memory_bytes(service["mem_limit"])
    total = sum(limits.values())
    assert total <= 8 * GIB, f"{total / GIB:.2f} GiB: {limits}"


def test_no_literal_secret_in_the_compose_file() -> None:
    # A *_FILE or *_PATH names where a secret is, not the secret.
    secretish = re.compile(r"^(?!.*_(?:FILE|PATH)$).*(?:PASSWORD|SECRET|_KEY$|TOKEN|FERNET)")
    for name, service in compose_raw()["services"].items():
        environment = service.get("environment") or {}
        for key, value in environment.items():
            if secretish.search(key) and value not in ("", None):
                assert re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*[^}]*\}", str(value)), (
                    f"{name}.{key} must come from .env"
                )
    for key, value in compose_raw()["x-stocklake-env"].items():
        if secretish.search(key) and value:
            assert str(value).startswith("${"), key
    for key, value in compose_raw()["x-airflow-env"].items():
        if secretish.search(key):
            assert str(value).startswith("${"), key
    # Passwords inside URLs come from variables too.
    for user_password in re.findall(r"://([^@/\s]+)@", compose_text()):
        password = user_password.split(":", 1)[1] if ":" in user_password else ""
        assert password.startswith("${"), f"literal password in URL: {user_password}"


def test_airflow_containers_get_the_dags_connections(inside_the_stack, monkeypatch) -> None:
    for name in [n for n in os.environ if n.startswith("AIRFLOW_CONN_")]:
        monkeypatch.delenv(name)
    executed = []
    monkeypatch.setattr(airflow_launch.os, "execv", lambda *args: executed.append(args))
    airflow_launch.main(["scheduler"])
    path, argv = executed[0]
    assert (path, argv) == (
        "/usr/bin/dumb-init",
        ["/usr/bin/dumb-init", "--", "/entrypoint", "scheduler"],
    )
    spark = json.loads(os.environ["AIRFLOW_CONN_STOCKLAKE_SPARK"])
    assert (spark["host"], spark["port"]) == ("spark://spark-master", 7077)
    s3 = json.loads(os.environ["AIRFLOW_CONN_STOCKLAKE_S3"])
    assert s3["extra"]["endpoint_url"] == "http://minio:9000"
    assert s3["login"] == stack_env()["S3_ACCESS_KEY"]
    postgres = json.loads(os.environ["AIRFLOW_CONN_STOCKLAKE_POSTGRES"])
    assert (postgres["host"], postgres["login"]) == ("postgres", stack_env()["WAREHOUSE_DB_USER"])
    assert services()["airflow-scheduler"]["entrypoint"][-1].endswith("airflow/launch.py")


def test_airflow_launch_names_a_bad_setting(inside_the_stack, monkeypatch) -> None:
    monkeypatch.setenv("POSTGRES_PORT", "not-a-port")
    monkeypatch.setattr(airflow_launch.os, "execv", lambda *args: pytest.fail("must not start"))
    with pytest.raises(SystemExit, match="POSTGRES_PORT"):
        airflow_launch.main(["scheduler"])


def _bind_mounts(service: Mapping[str, Any]) -> dict[str, tuple[str, bool]]:
    """A service's bind mounts from this folder: source -> (target, read-only)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target, *mode = str(volume).split(":")
        if source.startswith("./"):
            mounts[source.rstrip("/")] = (target, mode == ["ro"])
    return mounts


def test_airflow_containers_mount_the_dags_and_the_bundled_data() -> None:
    """Tasks import `dags.common` and read the bundled CSV files (the batch DAG's default
    source) from the project root they import the project from."""
    from ingestion import csv_source
    from stocklake.settings import PROJECT_ROOT

    # The CSV source looks for data/ next to the imported project.
    assert csv_source.BUNDLED_DATA_DIR == PROJECT_ROOT / "data"
    assert all(bundled.path.is_file() for bundled in csv_source.BUNDLED_FILES)
    airflow = {n: s for n, s in services().items() if "stocklake-airflow" in str(s.get("image"))}
    assert {"airflow-scheduler", "airflow-dag-processor", "airflow-apiserver"} <= set(airflow)
    for name, service in airflow.items():
        mounts = _bind_mounts(service)
        path = service["environment"]["PYTHONPATH"].split(":")
        dags_target, dags_read_only = mounts["./dags"]
        assert dags_read_only and str(Path(dags_target).parent) in path, name
        data_target, data_read_only = mounts.get("./data", (None, False))
        assert data_target, f"{name} does not mount ./data"
        assert data_read_only, f"{name} must mount ./data read-only"
        # Python imports stocklake from the first path entry that holds it: data/ sits
        # next to that copy, not next to the pip-installed one in site-packages.
        project_root = Path(data_target).parent
        assert str(project_root) in path, f"{name}: {project_root} is not on PYTHONPATH"


# --- images: Dockerfile vs the lock and the Hadoop version ----------------------------------


def test_s3a_jars_match_the_images_hadoop_version() -> None:
    args = dockerfile_global_args()
    assert args["HADOOP_AWS_VERSION"] == args["HADOOP_VERSION"]
    expected_sdk = image_tools.SDK_BUNDLE_FOR_HADOOP_AWS[args["HADOOP_AWS_VERSION"]]
    assert args["AWS_SDK_BUNDLE_VERSION"] == expected_sdk
    # The images' Spark is the locked pyspark: its bundled Hadoop client is the one here.
    import pyspark

    assert pyspark.__version__ == lock()["pyspark"]
    bundled = image_tools.hadoop_client_version(Path(pyspark.__file__).parent / "jars")
    assert bundled == args["HADOOP_VERSION"]
    jar_names = [
        f"hadoop-aws-{args['HADOOP_AWS_VERSION']}.jar",
        f"aws-java-sdk-bundle-{args['AWS_SDK_BUNDLE_VERSION']}.jar",
    ]
    assert image_tools.s3a_jar_problems(jar_names, bundled) == []


def test_jar_downloads_use_the_declared_versions() -> None:
    stage = " ".join(dockerfile_stages()["s3a-jars"])
    assert "hadoop-aws-${HADOOP_AWS_VERSION}.jar" in stage
    assert "aws-java-sdk-bundle-${AWS_SDK_BUNDLE_VERSION}.jar" in stage
    assert stage.count("image_tools.py fetch-jar") == 2  # each verified against its .sha1
    for image in ("spark", "airflow"):
        copies = [line for line in dockerfile_stages()[image] if "--from=s3a-jars" in line]
        assert copies == ["COPY --from=s3a-jars /jars /opt/stocklake/jars"], image
    assert compose()["x-stocklake-env"]["SPARK_JARS_DIR"] == "/opt/stocklake/jars"


def test_spark_sessions_find_the_images_jars(tmp_path) -> None:
    """spark_jobs.session must accept the jars the images put under SPARK_JARS_DIR."""
    from spark_jobs import session

    args = dockerfile_global_args()
    for name in (
        f"hadoop-aws-{args['HADOOP_AWS_VERSION']}.jar",
        f"aws-java-sdk-bundle-{args['AWS_SDK_BUNDLE_VERSION']}.jar",
    ):
        (tmp_path / name).write_bytes(b"")
    jars = session.s3a_jars(load_settings(SPARK_JARS_DIR=str(tmp_path)))
    assert sorted(jar.name for jar in jars) == sorted(p.name for p in tmp_path.iterdir())


# --- image_tools.py -------------------------------------------------------------------------


def test_lock_pins_and_mismatches() -> None:
    pins = image_tools.lock_pins(
        "Apache_Airflow==3.3.2\n# comment\npyspark==3.5.9 ; python_version>'3'\n"
    )
    assert pins == {"apache-airflow": "3.3.2", "pyspark": "3.5.9"}
    assert image_tools.lock_mismatches(pins, {"pyspark": "3.5.9", "other": "1"}) == []
    assert image_tools.lock_mismatches(pins, {"pyspark": "4.0.0"}) == [
        "pyspark: installed 4.0.0, lock says 3.5.9"
    ]
    with pytest.raises(image_tools.ImageCheckError, match=r"constraints\.txt:1"):
        image_tools.lock_pins("pyspark>=3\n")


def test_verify_accepts_this_environment_and_rejects_wrong_jars(tmp_path) -> None:
    args = dockerfile_global_args()
    (tmp_path / f"hadoop-aws-{args['HADOOP_AWS_VERSION']}.jar").write_bytes(b"")
    (tmp_path / f"aws-java-sdk-bundle-{args['AWS_SDK_BUNDLE_VERSION']}.jar").write_bytes(b"")
    constraints = ROOT / "constraints.txt"
    assert image_tools.verify_image(constraints, args["HADOOP_VERSION"], tmp_path) == []
    problems = image_tools.verify_image(constraints, "3.3.1", tmp_path)
    assert any("pyspark bundles Hadoop" in p for p in problems)
    (tmp_path / "aws-java-sdk-bundle-1.11.901.jar").write_bytes(b"")
    problems = image_tools.verify_image(constraints, args["HADOOP_VERSION"], tmp_path)
    assert any("aws-java-sdk-bundle" in p for p in problems)


def test_fetch_jar_verifies_the_published_sha1_and_a_pinned_sha256(tmp_path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    jar = repo / "thing-1.0.jar"
    jar.write_bytes(b"jar bytes")
    (repo / "thing-1.0.jar.sha1").write_text(hashlib.sha1(b"jar bytes").hexdigest() + "  x\n")
    sha256 = hashlib.sha256(b"jar bytes").hexdigest()
    dest = tmp_path / "jars"
    got = image_tools.fetch_jar(jar.as_uri(), dest, sha256)
    assert got.read_bytes() == b"jar bytes"
    with pytest.raises(image_tools.ImageCheckError, match="sha256"):
        image_tools.fetch_jar(jar.as_uri(), dest, "0" * 64)
    assert not (dest / "thing-1.0.jar").exists(), "a jar that failed its check must go"
    (repo / "thing-1.0.jar.sha1").write_text("0" * 40)
    with pytest.raises(image_tools.ImageCheckError, match="sha1"):
        image_tools.fetch_jar(jar.as_uri(), dest)


def test_project_dependencies_come_from_pyproject() -> None:
    deps = image_tools.project_dependencies(ROOT / "pyproject.toml")
    assert deps == pyproject()["project"]["dependencies"]


def test_airflow_passwords_file(tmp_path) -> None:
    path = tmp_path / "auth" / "passwords.json"
    path.parent.mkdir()
    path.write_text('{"viewer": "kept-password"}\n')
    image_tools.write_passwords(path, "admin", "s3cret-password")
    assert json.loads(path.read_text()) == {"viewer": "kept-password", "admin": "s3cret-password"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(image_tools.ImageCheckError, match="shorter than 8"):
        image_tools.write_passwords(path, "admin", "short")
    with pytest.raises(image_tools.ImageCheckError, match="AIRFLOW_ADMIN_USER"):
        image_tools.write_passwords(path, "ad:min", "long-enough-password")


# --- make_env.py ----------------------------------------------------------------------------


def test_make_env_generates_every_required_secret(tmp_path) -> None:
    env_file = tmp_path / ".env"
    assert make_env.main(["--env", str(env_file)]) == 0
    values = make_env.env_values(env_file.read_text())
    interpolate(compose_raw(), values)  # raises if anything required is still empty
    required = make_env.required_variables(compose_text())
    assert all(values[name] for name in required)
    import base64

    assert len(base64.urlsafe_b64decode(values["AIRFLOW_FERNET_KEY"])) == 32
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    # A second run keeps every value and generates nothing.
    text, generated = make_env.fill_env(ENV_EXAMPLE.read_text(), env_file.read_text(), required)
    assert generated == [] and make_env.env_values(text) == values


def test_make_env_keeps_user_values_and_adds_missing_ones() -> None:
    required = {"MINIO_ROOT_PASSWORD", "S3_ACCESS_KEY", "AIRFLOW_JWT_SECRET"}
    example = "S3_ACCESS_KEY=pipeline\nMINIO_ROOT_PASSWORD=\nAIRFLOW_JWT_SECRET=\n"
    current = "# mine\nMINIO_ROOT_PASSWORD=chosen-by-me\nEXTRA=1\n"
    text, generated = make_env.fill_env(example, current, required)
    values = make_env.env_values(text)
    assert values["MINIO_ROOT_PASSWORD"] == "chosen-by-me"
    assert values["S3_ACCESS_KEY"] == "pipeline" and values["EXTRA"] == "1"
    assert generated == ["AIRFLOW_JWT_SECRET"] and len(values["AIRFLOW_JWT_SECRET"]) >= 32
    assert text.startswith("# mine\n")


# --- init scripts, run against fake tools ------------------------------------------------------


def _fake_tool(folder: Path, name: str, body: str) -> None:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


def _run(script: Path, env: Mapping[str, str], shell: str) -> subprocess.CompletedProcess:
    base = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(
        [shell, str(script)], env={**base, **env}, capture_output=True, text=True, timeout=60
    )


MINIO_ENV = {
    "MINIO_ENDPOINT": "http://minio:9000",
    "MINIO_ROOT_USER": "root-user",
    "MINIO_ROOT_PASSWORD": "root-password",
    "LAKE_BUCKET": "lake-bucket",
    "S3_ACCESS_KEY": "pipeline",
    "S3_SECRET_KEY": "pipeline-secret",
}


def _fake_mc(tmp_path: Path, attach_output: str = "", attach_status: int = 0) -> dict[str, str]:
    log = tmp_path / "mc.log"
    _fake_tool(
        tmp_path / "bin",
        "mc",
        f'echo "$*" >> {log}\n'
        f'if [ "$1 $2 $3" = "admin policy create" ]; then cp "$6" {tmp_path}/policy.json; fi\n'
        f'if [ "$1 $2 $3" = "admin policy attach" ]; then echo "{attach_output}"; '
        f"exit {attach_status}; fi\n",
    )
    return {
        **MINIO_ENV,
        "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}",
        "POLICY_FILE": str(tmp_path / "policy-out.json"),
    }


def test_minio_init_creates_bucket_policy_and_pipeline_key(tmp_path) -> None:
    result = _run(DOCKER / "minio" / "init.sh", _fake_mc(tmp_path), "sh")
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "mc.log").read_text().splitlines()
    assert calls[0] == "alias set stack http://minio:9000 root-user root-password"
    assert calls[1] == "mb --ignore-existing stack/lake-bucket"
    assert calls[2].startswith("admin policy create stack stocklake-pipeline ")
    assert calls[3] == "admin user add stack pipeline pipeline-secret"
    assert calls[4] == "admin policy attach stack stocklake-pipeline --user pipeline"
    policy = json.loads((tmp_path / "policy.json").read_text())
    resources = {r for statement in policy["Statement"] for r in statement["Resource"]}
    assert resources == {"arn:aws:s3:::lake-bucket", "arn:aws:s3:::lake-bucket/*"}
    actions = {a for statement in policy["Statement"] for a in statement["Action"]}
    assert all(a.startswith("s3:") and "*" not in a for a in actions)
    assert not actions & {"s3:CreateBucket", "s3:DeleteBucket", "s3:PutBucketPolicy"}
    assert {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"} <= actions


def test_minio_init_is_idempotent_but_reports_real_failures(tmp_path) -> None:
    again = _fake_mc(tmp_path, "The specified policy change is already in effect.", 1)
    assert _run(DOCKER / "minio" / "init.sh", again, "sh").returncode == 0
    broken = _fake_mc(tmp_path, "Unable to attach: connection refused", 1)
    result = _run(DOCKER / "minio" / "init.sh", broken, "sh")
    assert result.returncode != 0 and "connection refused" in result.stderr


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"S3_ACCESS_KEY": "root-user"}, "must differ from MINIO_ROOT_USER"),
        ({"S3_SECRET_KEY": "short"}, "at least 8 characters"),
        ({"LAKE_BUCKET": ""}, "LAKE_BUCKET"),
    ],
)
def test_minio_init_refuses_bad_settings(tmp_path, override, message) -> None:
    env = {**_fake_mc(tmp_path), **override}
    result = _run(DOCKER / "minio" / "init.sh", env, "sh")
    assert result.returncode != 0 and message in result.stderr
    assert not (tmp_path / "mc.log").exists(), "nothing may reach MinIO before the checks"


TOPIC_ENV = {
    "KAFKA_BOOTSTRAP_SERVERS": "kafka:9092",
    "TOPIC_HISTORICAL": "hist",
    "TOPIC_REALTIME": "rt",
    "TOPIC_HISTORICAL_PARTITIONS": "3",
    "TOPIC_REALTIME_PARTITIONS": "2",
}


def _fake_kafka_topics(tmp_path: Path, partitions_reported: int) -> dict[str, str]:
    """kafka-topics.sh that logs its arguments and describes N partitions."""
    log = tmp_path / "topics.log"
    describe = "".join(
        f'printf "\\tTopic: x\\tPartition: {i}\\tLeader: 1\\n"; '
        for i in range(partitions_reported)
    )
    body = f'echo "$*" >> {log}\ncase "$*" in *--describe*) {describe};; esac\n'
    _fake_tool(tmp_path / "bin", "kafka-topics.sh", body)
    return {**TOPIC_ENV, "KAFKA_TOPICS_BIN": str(tmp_path / "bin" / "kafka-topics.sh")}


def test_kafka_init_creates_both_topics_with_their_partitions(tmp_path) -> None:
    result = _run(DOCKER / "kafka" / "create-topics.sh", _fake_kafka_topics(tmp_path, 3), "bash")
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "topics.log").read_text().splitlines()
    creates = [c for c in calls if "--create" in c]
    assert creates == [
        "--bootstrap-server kafka:9092 --create --if-not-exists --topic hist --partitions 3"
        " --replication-factor 1",
        "--bootstrap-server kafka:9092 --create --if-not-exists --topic rt --partitions 2"
        " --replication-factor 1",
    ]


def test_kafka_init_fails_when_an_existing_topic_has_too_few_partitions(tmp_path) -> None:
    result = _run(DOCKER / "kafka" / "create-topics.sh", _fake_kafka_topics(tmp_path, 1), "bash")
    assert result.returncode != 0
    assert "topic 'hist' has 1 partitions, settings ask for 3" in result.stderr


def test_kafka_init_uses_the_settings_topics() -> None:
    init_env = services()["kafka-init"]["environment"]
    anchor = compose()["x-stocklake-env"]
    for name in ("TOPIC_HISTORICAL", "TOPIC_REALTIME"):
        assert init_env[name] == anchor[name]
        assert init_env[f"{name}_PARTITIONS"] == anchor[f"{name}_PARTITIONS"]
    assert init_env["KAFKA_BOOTSTRAP_SERVERS"] == anchor["KAFKA_BOOTSTRAP_SERVERS"]


def test_airflow_init_migrates_then_writes_the_admin_password(tmp_path) -> None:
    log = tmp_path / "airflow.log"
    _fake_tool(tmp_path / "bin", "airflow", f'echo "$*" >> {log}\n')
    passwords = tmp_path / "auth" / "passwords.json"
    env = {
        "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}",
        "AIRFLOW_ADMIN_USER": "admin",
        "AIRFLOW_ADMIN_PASSWORD": "a-long-admin-password",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "IMAGE_TOOLS": str(DOCKER / "image_tools.py"),
    }
    env["PYTHON"] = sys.executable
    result = _run(DOCKER / "airflow" / "init.sh", env, "bash")
    assert result.returncode == 0, result.stderr
    assert log.read_text().splitlines() == ["db migrate"]
    assert json.loads(passwords.read_text()) == {"admin": "a-long-admin-password"}
    assert "a-long-admin-password" not in result.stdout + result.stderr


# --- PostgreSQL roles, run for real on the embedded stack's server -------------------------


@pytest.mark.services
def test_postgres_init_creates_separate_roles_and_databases(stack) -> None:
    psql = shutil.which("psql")
    if psql is None:
        pytest.skip("psql is not installed")
    tag = uuid.uuid4().hex[:8]
    names = {
        "STOCKLAKE_AIRFLOW_DB": f"t_{tag}_airflow",
        "STOCKLAKE_AIRFLOW_DB_USER": f"t_{tag}_airflow_role",
        "STOCKLAKE_AIRFLOW_DB_PASSWORD": 'it\'s a "quoted" password',
        "STOCKLAKE_WAREHOUSE_DB": f"t_{tag}_warehouse",
        "STOCKLAKE_WAREHOUSE_DB_USER": f"t_{tag}_Warehouse-Role",
        "STOCKLAKE_WAREHOUSE_DB_PASSWORD": "another password",
    }
    env = {
        **names,
        "STOCKLAKE_ROLES_SQL": str(DOCKER / "postgres" / "roles.sql"),
        "PGHOST": stack.postgres_host,
        "PGPORT": str(stack.postgres_port),
    }
    # The compose stack's init job runs as the superuser; so does this test of it.
    superuser, password = stack.postgres_login("superuser")
    env.update(POSTGRES_USER=superuser, PGUSER=superuser, PGPASSWORD=password)

    def query(sql: str) -> str:
        out = subprocess.run(
            [psql, "-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", "postgres", "-c", sql],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    try:
        for _ in range(2):  # the second run must change nothing and not fail
            result = _run(DOCKER / "postgres" / "init-roles.sh", env, "sh")
            assert result.returncode == 0, result.stderr
        airflow_db, airflow_role = names["STOCKLAKE_AIRFLOW_DB"], names["STOCKLAKE_AIRFLOW_DB_USER"]
        warehouse_db = names["STOCKLAKE_WAREHOUSE_DB"]
        warehouse_role = names["STOCKLAKE_WAREHOUSE_DB_USER"]
        owners = query(
            "SELECT datname || '=' || pg_get_userbyid(datdba) FROM pg_database "
            f"WHERE datname IN ('{airflow_db}', '{warehouse_db}') ORDER BY datname"
        )
        assert owners.splitlines() == [
            f"{airflow_db}={airflow_role}",
            f"{warehouse_db}={warehouse_role}",
        ]
        access = query(
            f"SELECT has_database_privilege('{airflow_role}', '{warehouse_db}', 'CONNECT'),"
            f" has_database_privilege('{warehouse_role}', '{airflow_db}', 'CONNECT'),"
            f" has_database_privilege('{warehouse_role}', '{warehouse_db}', 'CONNECT'),"
            " (SELECT rolcanlogin AND NOT rolsuper FROM pg_roles"
            f" WHERE rolname = '{warehouse_role}')"
        )
        assert access == "f|f|t|t"
    finally:
        for database in (names["STOCKLAKE_AIRFLOW_DB"], names["STOCKLAKE_WAREHOUSE_DB"]):
            query(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        for role in (names["STOCKLAKE_AIRFLOW_DB_USER"], names["STOCKLAKE_WAREHOUSE_DB_USER"]):
            query(f'DROP ROLE IF EXISTS "{role}"')


def test_the_spark_image_has_what_its_python_workers_import() -> None:
    """The partition writer runs in the executors' Python workers (mapInArrow): every
    library it and the core modules it uses import must be in the Spark image."""
    import ast

    listed = {
        line.split("#")[0].strip().lower()
        for line in (ROOT / "infra/docker/spark-requirements.txt").read_text().splitlines()
    }
    distribution = {"yaml": "pyyaml", "dotenv": "python-dotenv"}
    worker_modules = ("spark_jobs/partition_writer.py", "stocklake/s3.py", "stocklake/settings.py")
    for module in worker_modules:
        tree = ast.parse((ROOT / module).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in {"stocklake", "__future__", "s3fs"} or top in sys.stdlib_module_names:
                    continue
                assert distribution.get(top, top).replace("_", "-") in listed | {"botocore"}, (
                    f"{module} imports {top}: add it to infra/docker/spark-requirements.txt"
                )
