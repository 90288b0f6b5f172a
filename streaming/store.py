"""The lake bucket as the landing stage uses it: put, get, delete, with retries.

A put_object that returns is durable (S3, MinIO and the embedded server all
acknowledge only stored objects), which is what the commit order relies on.

Markers are written conditionally (`put_if`): If-Match the ETag the writer last
saw, or If-None-Match: * for a new key; a refused condition raises
`ConditionFailed`. SeaweedFS, MinIO, AWS S3 and moto 5.2 honour both headers;
where a server ignores them (probed once per store), the condition is checked
by a read before the write and the write is verified by a read after it.
"""

from __future__ import annotations

import uuid

from botocore.exceptions import BotoCoreError, ClientError

from stocklake.s3 import s3_client
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


_REFUSED_CODES = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})
_MISSING_KEY_CODES = frozenset({"NoSuchKey", "404"})


class ConditionFailed(LandingError):
    """A conditional write was refused: someone else wrote the key since we read it."""


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


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
        self._honoured: bool | None = None
        # Our own backoff decides how long to wait; botocore tries once.
        self._client = s3_client(settings, max_attempts=1, max_pool_connections=16)

    def _call(self, what: str, action):
        try:
            return call_with_retries(
                action,
                what=f"{what} (S3 endpoint {self.endpoint})",
                policy=self.policy,
                retryable=is_transient_s3_error,
                hint="Is the S3 endpoint up (`stocklake status`)? Nothing was committed past "
                "the last durable object; rerun to resume.",
            )
        except ClientError as error:
            if _code(error) != "NoSuchBucket":
                raise
            raise LandingError(
                f"{what}: lake bucket {self.bucket!r} at {self.endpoint} does not exist "
                "(deleted?): create it (`stocklake up` does) or fix LAKE_BUCKET"
            ) from None

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

    def conditions_honoured(self) -> bool:
        """Whether the server refuses a second If-None-Match: * write of one key."""
        if self._honoured is None:
            key = f"checkpoints/.conditional-write-probe-{uuid.uuid4().hex}"
            put = self._client.put_object
            self._call(f"probing s3://{self.bucket}/{key}", lambda: put(
                Bucket=self.bucket, Key=key, Body=b"1", IfNoneMatch="*"
            ))  # fmt: skip
            try:
                put(Bucket=self.bucket, Key=key, Body=b"2", IfNoneMatch="*")
                self._honoured = False
            except ClientError as error:
                self._honoured = _code(error) in _REFUSED_CODES
            finally:
                self.delete([key])
        return self._honoured

    def get_tagged(self, key: str) -> tuple[bytes | None, str | None]:
        """The object's bytes and ETag, or (None, None) when there is no such key."""

        def action() -> tuple[bytes | None, str | None]:
            try:
                answer = self._client.get_object(Bucket=self.bucket, Key=key)
            except ClientError as error:
                if _code(error) in _MISSING_KEY_CODES:
                    return None, None
                raise
            return answer["Body"].read(), answer["ETag"]

        return self._call(f"reading s3://{self.bucket}/{key}", action)

    def put_if(self, key: str, body: bytes, etag: str | None) -> str:
        """Write only if the key's ETag is still `etag` (None: the key must not exist).

        Returns the new ETag; raises ConditionFailed when the condition does not hold.
        """
        if not self.conditions_honoured():
            return self._put_checked(key, body, etag)
        condition = {"IfNoneMatch": "*"} if etag is None else {"IfMatch": etag}

        def action() -> str:
            try:
                answer = self._client.put_object(
                    Bucket=self.bucket, Key=key, Body=body, **condition
                )
            except ClientError as error:
                if _code(error) in _REFUSED_CODES or _code(error) in _MISSING_KEY_CODES:
                    raise ConditionFailed(f"s3://{self.bucket}/{key} changed since read") from None
                raise
            return answer["ETag"]

        return self._call(f"writing s3://{self.bucket}/{key}", action)

    def _put_checked(self, key: str, body: bytes, etag: str | None) -> str:
        """put_if for a server that ignores conditions: check, write, read back."""
        if self.get_tagged(key)[1] != etag:
            raise ConditionFailed(f"s3://{self.bucket}/{key} changed since read")
        self.put(key, body)
        written, new_etag = self.get_tagged(key)
        if written != body or new_etag is None:
            raise ConditionFailed(f"s3://{self.bucket}/{key} was overwritten while written")
        return new_etag

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

    def exists(self, key: str) -> bool:
        def action() -> bool:
            try:
                self._client.head_object(Bucket=self.bucket, Key=key)
            except ClientError as error:
                if _code(error) in _MISSING_KEY_CODES or _code(error) == "NotFound":
                    return False
                raise
            return True

        return self._call(f"looking for s3://{self.bucket}/{key}", action)

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
