"""The lake bucket as the landing stage uses it: put, get, delete, with retries.

A put_object that returns is durable (S3, MinIO and the embedded server all
acknowledge only stored objects), which is what the commit order relies on.
"""

from __future__ import annotations

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from stocklake.settings import Settings
from streaming.errors import LandingError
from streaming.retry import RetryPolicy, call_with_retries

_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "InternalError",
        "ServiceUnavailable",
        "503",
        "500",
        "502",
        "504",
    }
)


def is_transient_s3_error(error: Exception) -> bool:
    """Connection trouble and 5xx/throttling answers are worth a retry; 4xx are not."""
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0
        return code in _TRANSIENT_CODES or status >= 500
    return isinstance(error, BotoCoreError)


class LakeStore:
    """One bucket of the lake; every call retries transient faults, then raises LandingError."""

    def __init__(
        self,
        settings: Settings,
        *,
        bucket: str | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.bucket = bucket or settings.lake_bucket
        self.endpoint = settings.s3_endpoint_url
        self.policy = policy or RetryPolicy()
        self._client = boto3.client(
            "s3",
            **settings.boto3_s3_kwargs(),
            config=Config(
                s3={"addressing_style": "path"},
                # Our own backoff decides how long to wait; botocore tries once.
                retries={"total_max_attempts": 1},
                connect_timeout=5,
                read_timeout=60,
                max_pool_connections=16,
            ),
        )

    def _call(self, what: str, action):
        return call_with_retries(
            action,
            what=f"{what} (S3 endpoint {self.endpoint})",
            policy=self.policy,
            retryable=is_transient_s3_error,
            hint="Is the S3 endpoint up (`stocklake status`)? Nothing was committed past "
            "the last durable object; rerun to resume.",
        )

    def check_bucket(self) -> None:
        """Fail early, naming the bucket, when it does not exist or is not ours."""
        try:
            self._call(
                f"checking bucket {self.bucket}",
                lambda: self._client.head_bucket(Bucket=self.bucket),
            )
        except ClientError as error:
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            raise LandingError(
                f"lake bucket {self.bucket!r} at {self.endpoint} is not usable "
                f"(HTTP {status}): create it (`stocklake up` does) or fix LAKE_BUCKET"
            ) from error

    def put(self, key: str, body: bytes) -> None:
        self._call(
            f"writing s3://{self.bucket}/{key}",
            lambda: self._client.put_object(Bucket=self.bucket, Key=key, Body=body),
        )

    def get(self, key: str) -> bytes | None:
        """The object's bytes, or None when there is no such key."""

        def action() -> bytes | None:
            try:
                return self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    return None
                raise

        return self._call(f"reading s3://{self.bucket}/{key}", action)

    def delete(self, keys: list[str]) -> None:
        """Remove keys (missing ones are fine: deleting is idempotent)."""
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]

            def action(chunk: list[str] = chunk) -> None:
                answer = self._client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": key} for key in chunk], "Quiet": True},
                )
                if answer.get("Errors"):
                    first = answer["Errors"][0]
                    raise LandingError(
                        f"could not delete s3://{self.bucket}/{first.get('Key')}: "
                        f"{first.get('Code')} {first.get('Message')}"
                    )

            self._call(f"deleting {len(chunk)} objects in s3://{self.bucket}/", action)
