"""An S3-compatible snapshot store (Backblaze B2, AWS S3, MinIO...), through boto3: the ``s3`` extra.

The secret is registered with ``redact`` the moment the store is made and never appears in a repr, a message or a
report; errors name the ``DUMONT_S3_*`` setting to fix instead.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from typing import Any

from pytest_dumont.errors import SnapshotStoreError
from pytest_dumont.secrets.redact import register_secret

SPOOL_BYTES = 64 << 20  # a snapshot larger than this is spooled to a temporary file before its upload
_BAD_CREDENTIALS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidClientTokenId", "AccessDenied", "403"}


class S3Store:
    """Snapshots as objects in one bucket of an S3-compatible store."""

    def __init__(
        self, *, endpoint: str | None, bucket: str, key_id: str, secret: str, region: str = "us-east-1"
    ) -> None:
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            raise SnapshotStoreError(
                "the S3 snapshot store needs boto3: pip install 'pytest-dumont[s3]' (or unset DUMONT_S3_BUCKET)"
            ) from None
        register_secret(secret)
        self.endpoint = endpoint
        self.bucket = bucket
        self._client: Any = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            region_name=region,
            config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10, read_timeout=60),
        )

    def __repr__(self) -> str:
        return f"S3Store({self.describe()})"

    def describe(self) -> str:
        return f"s3://{self.bucket} at {self.endpoint or 'AWS S3'}"

    def check(self) -> None:
        """Fail now, before anything is rented, when the bucket cannot be reached with these credentials."""
        self._call("head_bucket", "", Bucket=self.bucket)

    def put(self, key: str, chunks: Iterable[bytes]) -> int:
        size = 0
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
            for chunk in chunks:
                spool.write(chunk)
                size += len(chunk)
            spool.seek(0)
            # One PUT (up to 5 GB): its errors are plain ClientErrors, which name the credentials problem.
            self._call("put_object", key, Bucket=self.bucket, Key=key, Body=spool, ContentLength=size)
        return size

    def get(self, key: str) -> Iterator[bytes]:
        body = self._call("get_object", key, Bucket=self.bucket, Key=key)["Body"]
        try:
            yield from body.iter_chunks(1 << 16)
        finally:
            body.close()

    def delete(self, key: str) -> None:
        self._call("delete_object", key, Bucket=self.bucket, Key=key)

    def _call(self, method: str, key: str, *args: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        where = f"{self.describe()}" + (f", object {key}" if key else "")
        try:
            return getattr(self._client, method)(*args, **kwargs)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in _BAD_CREDENTIALS or status == 403:
                raise SnapshotStoreError(
                    f"{where} rejected the credentials ({code or status}): check DUMONT_S3_KEY_ID and "
                    "DUMONT_S3_SECRET (the secret is never shown)"
                ) from None
            if code in ("NoSuchBucket", "404") and not key:
                raise SnapshotStoreError(f"{where}: no such bucket: check DUMONT_S3_BUCKET") from None
            if code in ("NoSuchKey", "404"):
                raise SnapshotStoreError(f"{where}: no such snapshot") from None
            raise SnapshotStoreError(f"{where}: {code or status}") from None
        except BotoCoreError as exc:
            raise SnapshotStoreError(f"{where}: {type(exc).__name__}: check DUMONT_S3_ENDPOINT") from None
