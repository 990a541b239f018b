"""A real S3 server on loopback (moto's server mode) with IAM credentials enforced, for the snapshot store tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest


@dataclass(frozen=True)
class S3Server:
    url: str
    bucket: str
    key_id: str
    secret: str

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=self.key_id,
            aws_secret_access_key=self.secret,
            region_name="us-east-1",
        )


@pytest.fixture
def s3_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    """moto on 127.0.0.1 with a bucket and an IAM user allowed s3:*; requests are then authenticated."""
    import boto3
    import requests
    from moto import settings as moto_settings
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{server.get_host_and_port()[1]}"
    bootstrap = {"endpoint_url": url, "aws_access_key_id": "bootstrap", "aws_secret_access_key": "bootstrap"}
    iam = boto3.client("iam", region_name="us-east-1", **bootstrap)
    iam.create_user(UserName="dumont")
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    iam.put_user_policy(UserName="dumont", PolicyName="s3", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="dumont")["AccessKey"]
    boto3.client("s3", region_name="us-east-1", **bootstrap).create_bucket(Bucket="dumont-snapshots")
    monkeypatch.setattr(moto_settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # from now on, credentials are checked
    try:
        yield S3Server(url, "dumont-snapshots", key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        requests.post(f"{url}/moto-api/reset", timeout=10)
        server.stop()


def point_at_s3(monkeypatch: pytest.MonkeyPatch, server: S3Server, *, secret: str | None = None) -> None:
    """The ``DUMONT_S3_*`` variables a user sets, pointing at ``server``."""
    monkeypatch.setenv("DUMONT_S3_ENDPOINT", server.url)
    monkeypatch.setenv("DUMONT_S3_BUCKET", server.bucket)
    monkeypatch.setenv("DUMONT_S3_KEY_ID", server.key_id)
    monkeypatch.setenv("DUMONT_S3_SECRET", secret or server.secret)
