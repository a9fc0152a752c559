"""Behaviour specific to the S3 lake: missing buckets, dead endpoints, failed uploads."""

from __future__ import annotations

import time

import pyarrow.fs as pafs
import pytest
from polars.testing import assert_frame_equal

from breadthflow.core.config import Settings, load_settings
from breadthflow.core.errors import BackendUnavailableError, ConfigError
from breadthflow.core.models import Timeframe
from breadthflow.data.lake import open_lake
from breadthflow.data.lake.s3 import S3Lake, parse_s3_url, s3_filesystem
from tests.conftest import free_port
from tests.lake._helpers import make_bars

pytestmark = pytest.mark.s3


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_check_on_a_missing_bucket_fails_with_one_line(s3_settings: Settings) -> None:
    lake = open_lake("s3://no-such-bucket-here/lake", s3_settings)

    with pytest.raises(BackendUnavailableError) as caught:
        lake.check()

    assert one_line(caught).startswith("lake s3://no-such-bucket-here/lake is not writable: ")
    assert "bucket 'no-such-bucket-here' does not exist" in str(caught.value)


@pytest.mark.parametrize(
    "operation",
    [
        lambda lake: lake.read(),
        lambda lake: lake.read(["AAPL"]),
        lambda lake: lake.symbols(),
        lambda lake: lake.timeframes(),
        lambda lake: lake.coverage(),
        lambda lake: lake.upsert(make_bars(["AAPL"]), Timeframe.D1),
    ],
    ids=["read-all", "read-symbols", "symbols", "timeframes", "coverage", "upsert"],
)
def test_using_a_missing_bucket_fails_with_one_line(s3_settings: Settings, operation) -> None:
    lake = open_lake("s3://no-such-bucket-here/lake", s3_settings)

    with pytest.raises(BackendUnavailableError) as caught:
        operation(lake)

    assert "bucket 'no-such-bucket-here' does not exist" in one_line(caught)


def test_an_unreachable_endpoint_fails_within_seconds_with_one_line(s3_settings: Settings) -> None:
    dead = load_settings(
        s3_endpoint_url=f"http://127.0.0.1:{free_port()}",
        s3_access_key_id="testing",
        s3_secret_access_key="testing-secret",
    )
    lake = open_lake("s3://some-bucket/lake", dead)
    operations = {
        "check": lake.check,
        "read": lambda: lake.read(["AAPL"]),
        "symbols": lake.symbols,
        "upsert": lambda: lake.upsert(make_bars(["AAPL", "MSFT"]), Timeframe.D1),
    }
    for name, operation in operations.items():
        started = time.monotonic()
        with pytest.raises(BackendUnavailableError) as caught:
            operation()
        assert time.monotonic() - started < 10, name
        assert "cannot connect to the S3 endpoint at http://127.0.0.1:" in one_line(caught)


class _PutsGoNowhere:
    """A filesystem that reads from the real store but uploads to a dead endpoint."""

    def __init__(self, real: pafs.FileSystem, dead: pafs.FileSystem) -> None:
        self._real, self._dead = real, dead

    def open_output_stream(self, path: str, *args, **kwargs):
        return self._dead.open_output_stream(path, *args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._real, name)


def test_a_failed_upload_leaves_the_previous_object(s3_bucket: str, s3_settings: Settings) -> None:
    lake = open_lake(f"s3://{s3_bucket}/lake", s3_settings)
    assert isinstance(lake, S3Lake)
    v1 = make_bars(["AAPL"], count=20)
    lake.upsert(v1, Timeframe.D1)
    dead = s3_settings.model_copy(update={"s3_endpoint_url": f"http://127.0.0.1:{free_port()}"})
    lake._fs = _PutsGoNowhere(lake._fs, s3_filesystem(dead))  # type: ignore[assignment]

    with pytest.raises(BackendUnavailableError, match="cannot connect"):
        lake.upsert(make_bars(["AAPL"], count=25, seed=4), Timeframe.D1)

    assert_frame_equal(open_lake(f"s3://{s3_bucket}/lake", s3_settings).read(), v1)


def test_a_lake_at_the_root_of_a_bucket_works(s3_bucket: str, s3_settings: Settings) -> None:
    lake = open_lake(f"s3://{s3_bucket}", s3_settings)
    bars = make_bars(["AAPL"], count=3)
    lake.check()
    lake.upsert(bars, Timeframe.D1)
    assert lake.url == f"s3://{s3_bucket}"
    assert_frame_equal(lake.read(), bars)


def test_s3_urls_are_parsed_into_bucket_and_prefix() -> None:
    assert parse_s3_url("s3://market-data") == ("market-data", "")
    assert parse_s3_url("s3://market-data/a/b/") == ("market-data", "a/b")


@pytest.mark.parametrize(
    ("url", "overrides", "message"),
    [
        ("s3:///lake", {}, "expected s3://bucket/prefix"),
        ("s3://key:secret@bucket/lake", {}, "credentials go in"),
        ("s3://bucket/a//b", {}, "empty, '.' or '..' part"),
        ("s3://bucket/lake", {"s3_endpoint_url": "localhost:9000"}, "invalid s3_endpoint_url"),
        ("s3://bucket/lake", {"s3_access_key_id": "key"}, "s3_secret_access_key is not"),
    ],
)
def test_bad_s3_configuration_is_a_config_error(url: str, overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        open_lake(url, load_settings(**overrides))
