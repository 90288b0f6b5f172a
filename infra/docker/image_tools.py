"""Build-time helpers of infra/docker/Dockerfile (standard library only, Python 3.11).

image_tools.py deps PYPROJECT
    print the project's dependencies, one per line (installed before the code is copied,
    so a code change does not rebuild the dependency layer)
image_tools.py fetch-jar --dest DIR [--sha256 HEX] URL
    download a Maven artifact and verify it against the repository's published .sha1
    (and against a pinned sha256 when one is given)
image_tools.py verify --constraints LOCK --hadoop-version V --jars-dir DIR
    fail the build when an installed package disagrees with the lock, or when the
    s3a jars do not fit the Hadoop client bundled in pyspark (see hadoop_aws_problem)
image_tools.py airflow-passwords --file PATH --user NAME
    write the simple auth manager's passwords file; the password is read from the
    AIRFLOW_ADMIN_PASSWORD environment variable (never from the command line)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import tempfile
import tomllib
import urllib.request
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path

# The aws-java-sdk-bundle each hadoop-aws release was built against (its pom's
# aws-java-sdk.version); a different bundle is the classic s3a NoSuchMethodError.
SDK_BUNDLE_FOR_HADOOP_AWS = {
    "3.3.1": "1.11.901",
    "3.3.4": "1.12.262",
}

_CHUNK = 1 << 20


class ImageCheckError(RuntimeError):
    """The image would not be what the lock and the Hadoop version say."""


def normalize_name(name: str) -> str:
    """PEP 503 normalized distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def project_dependencies(pyproject: Path) -> list[str]:
    """The [project].dependencies of a pyproject.toml, as requirement strings."""
    with pyproject.open("rb") as stream:
        data = tomllib.load(stream)
    try:
        return list(data["project"]["dependencies"])
    except KeyError:
        raise ImageCheckError(f"{pyproject}: no [project].dependencies") from None


def lock_pins(text: str, source: str = "constraints.txt") -> dict[str, str]:
    """`name==version` pins of a constraints/lock file, by normalized name."""
    pins: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep or not name.strip() or not version.strip():
            raise ImageCheckError(f"{source}:{number}: {raw!r} is not name==version")
        pins[normalize_name(name.strip())] = version.strip()
    return pins


def installed_versions() -> dict[str, str]:
    """Installed distributions as Python imports them (first on sys.path wins)."""
    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(normalize_name(name), dist.version)
    return found


def lock_mismatches(pins: Mapping[str, str], installed: Mapping[str, str]) -> list[str]:
    """Installed packages whose version differs from the lock (absent ones are fine)."""
    return [
        f"{name}: installed {installed[name]}, lock says {version}"
        for name, version in sorted(pins.items())
        if name in installed and installed[name] != version
    ]


def hadoop_client_version(pyspark_jars: Path) -> str:
    """The Hadoop client version bundled with pyspark (from hadoop-client-api-X.jar)."""
    versions = sorted(
        match.group(1)
        for jar in pyspark_jars.glob("hadoop-client-api-*.jar")
        if (match := re.fullmatch(r"hadoop-client-api-(.+)\.jar", jar.name))
    )
    if len(versions) != 1:
        raise ImageCheckError(
            f"{pyspark_jars}: expected one hadoop-client-api-*.jar, found {versions or 'none'}"
        )
    return versions[0]


def _version(text: str) -> tuple[int, ...] | None:
    """'3.3.4' -> (3, 3, 4); None when it is not a plain dotted release number."""
    parts = text.split(".")
    return tuple(int(part) for part in parts) if all(p.isdigit() for p in parts) else None


def hadoop_aws_problem(hadoop_aws_version: str, hadoop_version: str) -> str | None:
    """Why a hadoop-aws release cannot run on a Hadoop client (None when it can).

    hadoop-aws is compiled against hadoop-common, which the client jars provide: it must
    come from the client's release line (same major.minor) and be no newer than the
    client, or it may call methods the client lacks (NoSuchMethodError at the first s3a
    call). An older patch release of the line works: the embedded stack runs hadoop-aws
    3.3.1 (the one on PyPI, inside sagemaker-pyspark 1.4.5) on pyspark 3.5.9's Hadoop
    3.3.4 client, and tests/infra/test_spark_s3a.py and tests/spark_jobs exercise it.
    """
    aws, client = _version(hadoop_aws_version), _version(hadoop_version)
    if aws is None or client is None or len(aws) < 2 or len(client) < 2:
        return f"hadoop-aws {hadoop_aws_version} or Hadoop {hadoop_version} is not a version"
    if aws[:2] != client[:2] or aws > client:
        return (
            f"hadoop-aws {hadoop_aws_version} does not fit Hadoop {hadoop_version}: it must be "
            f"a {client[0]}.{client[1]}.x release no newer than {hadoop_version}"
        )
    return None


def s3a_jar_problems(jar_names: Iterable[str], hadoop_version: str) -> list[str]:
    """Why a set of s3a jars does not fit a Hadoop client version (empty when it does):
    exactly one hadoop-aws that fits (`hadoop_aws_problem`) and exactly one
    aws-java-sdk-bundle, the one that hadoop-aws release was built against."""
    names = set(jar_names)
    aws = sorted(match[1] for n in names if (match := re.fullmatch(r"hadoop-aws-(.+)\.jar", n)))
    sdk = sorted(n for n in names if re.fullmatch(r"aws-java-sdk-bundle-.+\.jar", n))
    if len(aws) != 1:
        return [f"expected one hadoop-aws jar, found {aws or 'none'}"]
    problems = []
    if problem := hadoop_aws_problem(aws[0], hadoop_version):
        problems.append(problem)
    expected_sdk = SDK_BUNDLE_FOR_HADOOP_AWS.get(aws[0])
    if expected_sdk is None:
        problems.append(
            f"no known aws-java-sdk-bundle for hadoop-aws {aws[0]}:"
            " add it to SDK_BUNDLE_FOR_HADOOP_AWS from that release's pom"
        )
    elif sdk != [f"aws-java-sdk-bundle-{expected_sdk}.jar"]:
        problems.append(f"aws-java-sdk-bundle jars {sdk}: hadoop-aws {aws[0]} needs {expected_sdk}")
    return problems


def _download(url: str, dest: Path) -> tuple[str, str]:
    """Stream `url` into `dest`; returns (sha1, sha256) hex digests."""
    sha1, sha256 = hashlib.sha1(), hashlib.sha256()
    with urllib.request.urlopen(url, timeout=120) as response, dest.open("wb") as out:
        while chunk := response.read(_CHUNK):
            sha1.update(chunk)
            sha256.update(chunk)
            out.write(chunk)
    return sha1.hexdigest(), sha256.hexdigest()


def fetch_jar(url: str, dest_dir: Path, sha256: str = "") -> Path:
    """Download a Maven artifact into dest_dir, verified; a bad one is deleted and raised."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / url.rsplit("/", 1)[-1]
    with urllib.request.urlopen(url + ".sha1", timeout=60) as response:
        published = response.read().decode("ascii", "replace").split()
    if not published or not re.fullmatch(r"[0-9a-f]{40}", published[0].lower()):
        raise ImageCheckError(f"{url}.sha1: not a sha1 checksum: {published[:1]}")
    got_sha1, got_sha256 = _download(url, target)
    problems = []
    if got_sha1 != published[0].lower():
        problems.append(f"sha1 {got_sha1} != published {published[0]}")
    if sha256 and got_sha256 != sha256.lower():
        problems.append(f"sha256 {got_sha256} != pinned {sha256}")
    if problems:
        target.unlink()
        raise ImageCheckError(f"{url}: " + "; ".join(problems))
    print(f"{target.name}: sha1 {got_sha1} sha256 {got_sha256}")
    return target


def verify_image(constraints: Path, hadoop_version: str, jars_dir: Path) -> list[str]:
    """Every reason the running Python environment is not the image we meant to build."""
    problems = lock_mismatches(
        lock_pins(constraints.read_text(), str(constraints)), installed_versions()
    )
    import pyspark  # the image's own, located without starting a JVM

    pyspark_jars = Path(pyspark.__file__).parent / "jars"
    bundled = hadoop_client_version(pyspark_jars)
    if bundled != hadoop_version:
        problems.append(f"pyspark bundles Hadoop {bundled}, the Dockerfile says {hadoop_version}")
    problems += s3a_jar_problems((p.name for p in jars_dir.glob("*.jar")), hadoop_version)
    return problems


def write_passwords(path: Path, user: str, password: str) -> None:
    """Set one user's password in the simple auth manager's JSON file, atomically."""
    if not user or ":" in user or "," in user:
        raise ImageCheckError(f"AIRFLOW_ADMIN_USER={user!r}: needs a name without ':' or ','")
    if len(password) < 8:
        raise ImageCheckError("AIRFLOW_ADMIN_PASSWORD is shorter than 8 characters")
    passwords = {}
    if path.exists() and path.read_text().strip():
        try:
            passwords = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ImageCheckError(f"{path}: not JSON ({error}); delete it to start over") from None
    passwords[user] = password
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".passwords-")
    with os.fdopen(fd, "w") as out:
        json.dump(passwords, out)
        out.write("\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="image_tools.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    deps = sub.add_parser("deps")
    deps.add_argument("pyproject", type=Path)
    fetch = sub.add_parser("fetch-jar")
    fetch.add_argument("url")
    fetch.add_argument("--dest", type=Path, required=True)
    fetch.add_argument("--sha256", default="")
    verify = sub.add_parser("verify")
    verify.add_argument("--constraints", type=Path, required=True)
    verify.add_argument("--hadoop-version", required=True)
    verify.add_argument("--jars-dir", type=Path, required=True)
    passwords = sub.add_parser("airflow-passwords")
    passwords.add_argument("--file", type=Path, required=True)
    passwords.add_argument("--user", required=True)
    args = parser.parse_args(argv)

    try:
        if args.command == "deps":
            print("\n".join(project_dependencies(args.pyproject)))
        elif args.command == "fetch-jar":
            fetch_jar(args.url, args.dest, args.sha256)
        elif args.command == "verify":
            problems = verify_image(args.constraints, args.hadoop_version, args.jars_dir)
            if problems:
                raise ImageCheckError("image check failed:\n  " + "\n  ".join(problems))
            print(f"image check: lock, Hadoop {args.hadoop_version} and s3a jars agree")
        elif args.command == "airflow-passwords":
            password = os.environ.get("AIRFLOW_ADMIN_PASSWORD", "")
            write_passwords(args.file, args.user, password)
            print(f"{args.file}: password set for Airflow user {args.user!r}")
    except (ImageCheckError, OSError) as error:
        print(f"image_tools {args.command}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
