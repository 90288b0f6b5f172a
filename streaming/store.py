"""The lake bucket as the landing stage uses it: put, get, delete, with retries.

A put_object that returns is durable (S3, MinIO and the embedded server all
acknowledge only stored objects), which is what the commit order relies on.

Markers are written conditionally (`put_if`): If-Match the ETag the writer last
saw, or If-None-Match: * for a new key; a refused condition raises
`ConditionFailed`. SeaweedFS, MinIO, AWS S3 and moto 5.2 honour both headers;
where a server ignores them (probed once per store), the condition is checked
by a read before the write and the write is verified by a read after it.

Retries are botocore's own (standard mode: throttling, 5xx and connection errors, with
jittered exponential backoff), held to the policy's attempts and logged per retry; what
still fails after them is a LandingError naming the key, the endpoint and the attempts.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from stocklake import lake
from stocklake.s3 import s3_client
from stocklake.settings import Settings
from streaming.errors import LandingError
from streaming.retry import RetryPolicy, gave_up

log = logging.getLogger(__name__)
T = TypeVar("T")

_HINT = (
    "Is the S3 endpoint up (`stocklake status`)? Nothing was committed past the last "
    "durable object; rerun to resume."
)


class _BoundedRetries:
    """botocore's standard retries of one client, bounded at `attempts` and logged.

    botocore decides what is transient and how long to wait; this stops it at the policy's
    attempts, logs each retry as a warning, and counts the attempts of the calling
    thread's last call (the uploads run in several threads on one client).
    """

    def __init__(self, client: Any, attempts: int) -> None:
        self.attempts = attempts
        self._local = threading.local()
        events = client.meta.events
        # First: a False answer stops botocore's own handler from retrying again.
        events.register_first("needs-retry.s3", self._needs_retry)
        events.register("request-created.s3", self._request_created)

    def start(self) -> None:
        self._local.attempts = 0

    @property
    def made(self) -> int:
        """Attempts of this thread's last call (since `start`)."""
        return getattr(self._local, "attempts", 0)

    def _needs_retry(
        self,
        attempts: int,
        request_dict: dict[str, Any],
        caught_exception: Exception | None = None,
        response: tuple[Any, dict[str, Any]] | None = None,
        **_: Any,
    ) -> bool | None:
        self._local.attempts = attempts
        failure = _failure(caught_exception, response)
        if failure is not None:
            request_dict["context"]["stocklake_failure"] = (failure, time.monotonic())
        return False if attempts >= self.attempts else None

    def _request_created(self, request: Any, operation_name: str, **_: Any) -> None:
        attempt = request.context.get("retries", {}).get("attempt", 1)
        if attempt > 1:
            failure, at = request.context.get("stocklake_failure", ("unknown", time.monotonic()))
            log.warning(
                "S3 %s %s failed (attempt %d of %d, retrying after %.1f s): %s",
                operation_name,
                request.url,
                attempt - 1,
                self.attempts,
                time.monotonic() - at,
                failure,
            )


def _failure(error: Exception | None, response: tuple[Any, dict[str, Any]] | None) -> str | None:
    """What went wrong with one attempt, or None when it succeeded."""
    if error is not None:
        return f"{type(error).__name__}: {error}"
    if response is None or response[0].status_code < 300:
        return None
    return f"HTTP {response[0].status_code} {response[1].get('Error', {}).get('Code', '')}"


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
        # botocore retries (standard mode); _BoundedRetries holds it to the policy's attempts.
        self._client = s3_client(
            settings, max_attempts=self.policy.attempts, max_pool_connections=16
        )
        self._retries = _BoundedRetries(self._client, self.policy.attempts)

    def _call(self, what: str, action: Callable[[], T]) -> T:
        started = time.monotonic()
        self._retries.start()
        try:
            return action()
        except ClientError as error:
            if _code(error) == "NoSuchBucket":
                raise LandingError(
                    f"{what}: lake bucket {self.bucket!r} at {self.endpoint} does not exist "
                    "(deleted?): create it (`stocklake up` does) or fix LAKE_BUCKET"
                ) from None
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            if self._retries.made <= 1 and status < 500:
                raise  # an answer, not a fault: the caller decides (e.g. a refused condition)
            failure: Exception = error
        except BotoCoreError as error:  # no answer: connection refused, reset, timed out
            failure = error
        raise LandingError(
            gave_up(
                f"{what} (S3 endpoint {self.endpoint})",
                max(self._retries.made, 1),
                time.monotonic() - started,
                failure,
                _HINT,
            )
        ) from failure

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
            key = f"{lake.CHECKPOINTS}/.conditional-write-probe-{uuid.uuid4().hex}"
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
