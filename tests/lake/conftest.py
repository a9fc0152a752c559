"""Fixtures for the lake contract tests: one store per implementation."""

from __future__ import annotations

from pathlib import Path

import pytest

from breadthflow.core.config import Settings, load_settings
from tests.lake._helpers import Store, local_store, s3_store


def s3_client(settings: Settings):
    import boto3

    assert settings.s3_secret_access_key is not None
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        aws_access_key_id=settings.s3_access_key_id,
        aws_secret_access_key=settings.s3_secret_access_key.get_secret_value(),
        region_name=settings.s3_region,
    )


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """The same tests run against the local lake and the S3 lake (on moto_server)."""
    if request.param == "local":
        return local_store(tmp_path / "lake", load_settings())
    bucket = request.getfixturevalue("s3_bucket")
    settings = load_settings()
    client = s3_client(settings)
    # With versioning on, every PUT gets a new VersionId: a reliable "was it rewritten?"
    # (an ETag alone is a hash of the bytes and would not change for equal content).
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    return s3_store(client, bucket, "lake", settings)


@pytest.fixture
def s3_settings(s3_bucket: str) -> Settings:
    return load_settings()
