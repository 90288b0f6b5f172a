"""Model versions in the lake: `models/<name>/v<N>/` and the `models/<name>/latest` pointer.

    models/<name>/v<N>/model.joblib   the fitted model (joblib; its SHA-256 is in the card
                                      and checked before it is loaded)
    models/<name>/v<N>/metrics.json   the card's metrics
    models/<name>/v<N>/card.json      the card, written last: a version is published
                                      once its card exists
    models/<name>/latest              the newest published version's number (text)

Versions only grow. A new version is claimed by creating its model file with
If-None-Match: * after checking that no object of that version exists (check, then a
conditional create): on a server that honours the condition (SeaweedFS, MinIO, AWS S3)
two trainers can never claim the same number, the loser takes the next one; on one that
ignores it, the check still keeps sequential trainers apart (two trainers racing within
the same instant could then collide). `latest` is moved with If-Match on the ETag read
(If-None-Match for the first version) and never backwards.

The model file is a pickle (joblib): load only models from a lake you trust (your own).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from typing import Any

import joblib
from botocore.exceptions import ClientError

from stocklake import lake
from stocklake.settings import Settings

# The lake prefix of every model artifact (one place; a candidate for stocklake/lake.py).
MODELS_PREFIX = lake.MODELS
MODEL_FILE = "model.joblib"
CARD_FILE = "card.json"
METRICS_FILE = "metrics.json"
LATEST = "latest"
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_REFUSED = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})
_CLAIM_ATTEMPTS = 20


class RegistryError(RuntimeError):
    """A model or version that is not in the lake, or an artifact that does not verify."""


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def model_prefix(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise RegistryError(f"bad model name {name!r}: lower-case letters, digits and '_'")
    return f"{MODELS_PREFIX}/{name}/"


def version_prefix(name: str, version: int) -> str:
    return f"{model_prefix(name)}v{version}/"


def model_bytes(model: Any) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return buffer.getvalue()


class ModelRegistry:
    """The models of one bucket (an S3 client from `stocklake.s3.s3_client`)."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelRegistry:
        from stocklake.s3 import s3_client

        return cls(s3_client(settings), settings.lake_bucket)

    # -- reading -------------------------------------------------------------------------

    def _keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            keys.extend(item["Key"] for item in page.get("Contents", []))
        return keys

    def _get(self, key: str) -> tuple[bytes | None, str | None]:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if _code(error) in _MISSING:
                return None, None
            raise
        return answer["Body"].read(), answer["ETag"]

    def _exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if _code(error) in _MISSING:
                return False
            raise
        return True

    def _version_numbers(self, name: str, published: bool) -> list[int]:
        found: set[int] = set()
        pattern = re.compile(rf"^{re.escape(model_prefix(name))}v(\d+)/(.+)$")
        for key in self._keys(model_prefix(name)):
            match = pattern.match(key)
            if match and (not published or match.group(2) == CARD_FILE):
                found.add(int(match.group(1)))
        return sorted(found)

    def names(self) -> list[str]:
        names = {
            key.split("/")[1] for key in self._keys(f"{MODELS_PREFIX}/") if key.count("/") >= 2
        }
        return sorted(name for name in names if NAME_PATTERN.match(name))

    def versions(self, name: str) -> list[int]:
        """The published versions of a model (those with a card), oldest first."""
        return self._version_numbers(name, published=True)

    def latest(self, name: str) -> int | None:
        body, _ = self._get(model_prefix(name) + LATEST)
        return int(body.decode().strip()) if body else None

    def card(self, name: str, version: int) -> dict[str, Any]:
        body, _ = self._get(version_prefix(name, version) + CARD_FILE)
        if body is None:
            known = self.versions(name)
            raise RegistryError(
                f"model {name!r} has no version {version} in s3://{self.bucket}/"
                f"{model_prefix(name)} (versions: {', '.join(map(str, known)) or 'none'})"
            )
        return json.loads(body)

    def load(self, name: str, version: int | None = None) -> tuple[Any, dict[str, Any]]:
        """The model object and its card: `version`, or the latest when None."""
        if version is None:
            version = self.latest(name)
            if version is None:
                raise RegistryError(
                    f"no model {name!r} in s3://{self.bucket}/{MODELS_PREFIX}/: "
                    f"train one first (`stocklake train {name.split('_')[0]}`)"
                )
        card = self.card(name, version)
        body, _ = self._get(version_prefix(name, version) + MODEL_FILE)
        if body is None:
            raise RegistryError(f"model {name!r} v{version} has a card but no {MODEL_FILE}")
        digest = hashlib.sha256(body).hexdigest()
        if digest != card.get("model_sha256"):
            raise RegistryError(
                f"model {name!r} v{version}: {MODEL_FILE} has SHA-256 {digest}, the card "
                f"says {card.get('model_sha256')}: refusing to load it"
            )
        return joblib.load(io.BytesIO(body)), card

    # -- writing -------------------------------------------------------------------------

    def _create(self, key: str, body: bytes) -> bool:
        """Create `key` only if absent (checked, then If-None-Match: *); False if taken."""
        if self._exists(key):
            return False
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body, IfNoneMatch="*")
        except ClientError as error:
            if _code(error) in _REFUSED:
                return False
            raise
        return True

    def _put_json(self, key: str, value: Any) -> None:
        body = json.dumps(value, indent=2, sort_keys=True).encode()
        self.client.put_object(
            Bucket=self.bucket, Key=key, Body=body, ContentType="application/json"
        )

    def publish(self, name: str, model: Any, card: dict[str, Any]) -> dict[str, Any]:
        """Store a new version (the next number) and move `latest` to it; its card."""
        body = model_bytes(model)
        for _ in range(_CLAIM_ATTEMPTS):
            taken = self._version_numbers(name, published=False)
            version = max([*taken, self.latest(name) or 0], default=0) + 1
            if self._create(version_prefix(name, version) + MODEL_FILE, body):
                break
        else:
            raise RegistryError(f"could not claim a new version of {name!r}: too much contention")
        card = {
            **card,
            "name": name,
            "version": version,
            "model_file": f"s3://{self.bucket}/{version_prefix(name, version)}{MODEL_FILE}",
            "model_sha256": hashlib.sha256(body).hexdigest(),
        }
        prefix = version_prefix(name, version)
        self._put_json(prefix + METRICS_FILE, card["metrics"])
        self._put_json(prefix + CARD_FILE, card)
        self._advance_latest(name, version)
        return card

    def _advance_latest(self, name: str, version: int) -> None:
        key = model_prefix(name) + LATEST
        for _ in range(_CLAIM_ATTEMPTS):
            body, etag = self._get(key)
            if body is not None and int(body.decode().strip()) >= version:
                return  # a newer version got there first: never move backwards
            condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
            try:
                self.client.put_object(
                    Bucket=self.bucket, Key=key, Body=f"{version}\n".encode(), **condition
                )
                return
            except ClientError as error:
                if _code(error) not in _REFUSED and _code(error) not in _MISSING:
                    raise
        raise RegistryError(f"could not move {key} to v{version}: too much contention")
