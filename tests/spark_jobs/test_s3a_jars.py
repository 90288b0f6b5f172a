"""The embedded stack's s3a jars and the images' jar check follow one rule."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pyspark

from spark_jobs.session import S3A_JARS, s3a_jars
from stocklake.settings import get_settings

PYSPARK_JARS = Path(pyspark.__file__).parent / "jars"
# A build script, not a package module: loaded from its file.
_SPEC = importlib.util.spec_from_file_location(
    "image_tools", Path(__file__).resolve().parents[2] / "infra" / "docker" / "image_tools.py"
)
image_tools = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(image_tools)


def test_the_embedded_stacks_jars_pass_the_image_check() -> None:
    """The jars every local Spark session loads are ones the Docker build would accept."""
    installed = s3a_jars(get_settings().model_copy(update={"spark_jars_dir": None}))
    assert sorted(jar.name for jar in installed) == sorted(S3A_JARS)
    client = image_tools.hadoop_client_version(PYSPARK_JARS)
    assert image_tools.s3a_jar_problems(S3A_JARS, client) == []


def test_the_jar_check_refuses_another_line_or_a_newer_release() -> None:
    assert image_tools.hadoop_aws_problem("3.3.1", "3.3.4") is None
    assert image_tools.hadoop_aws_problem("3.3.4", "3.3.4") is None
    assert "no newer than 3.3.4" in image_tools.hadoop_aws_problem("3.3.5", "3.3.4")
    assert "3.3.x" in image_tools.hadoop_aws_problem("3.2.0", "3.3.4")
    problems = image_tools.s3a_jar_problems(
        ["hadoop-aws-3.3.1.jar", "aws-java-sdk-bundle-1.12.262.jar"], "3.3.4"
    )
    assert problems == [
        "aws-java-sdk-bundle jars ['aws-java-sdk-bundle-1.12.262.jar']: "
        "hadoop-aws 3.3.1 needs 1.11.901"
    ]
