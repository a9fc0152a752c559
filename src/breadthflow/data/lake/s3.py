"""The lake on S3-compatible object storage (``s3://bucket/prefix``: AWS, MinIO, moto).

Configuration: ``s3_endpoint_url`` (MinIO/moto; its http/https scheme is used),
``s3_region``, and ``s3_access_key_id`` + ``s3_secret_access_key`` — or, when the key id
is unset, the default AWS chain (``AWS_*`` variables, ``~/.aws``, instance metadata).
The bucket must exist; the lake never creates buckets.

**Atomicity.** A partition is encoded to Parquet in memory first, so nothing is sent
until the whole file exists. Objects below the multipart threshold (the normal case —
a daily partition is about 100 KB) are then handed to the output stream in one write,
which only buffers them, and sent as a single PutObject when the stream closes. S3
applies a PUT atomically: readers see the old object or the new one, never a mix, and a
failed PUT leaves the old one in place. pyarrow exposes no ``abort()`` in Python —
closing (or destroying) a half-written stream would upload the half — so a stream whose
write failed is never closed (see :meth:`S3Lake._put`). Bigger objects need a multipart
upload, whose parts leave the process while it is written; they are uploaded to a hidden
``.tmp-…`` key beside the partition and then copied into place server-side (CopyObject
is atomic too); a failed upload leaves at most that hidden key, which is deleted at once
or, failing that, ignored by readers and removed by a later large write.

**No cross-process lock.** S3 has no lock primitive, so two processes upserting the
*same* symbol at the same moment race: the last PUT wins and the other's new rows for
that partition are lost (each object is still whole). Run one writer per symbol set —
the pipelines do — or use the local lake when several writers share a symbol.
"""

from __future__ import annotations

import contextlib
import posixpath
import re
import time
import uuid
from collections.abc import Mapping
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs

from breadthflow.core.config import Settings
from breadthflow.core.errors import ConfigError
from breadthflow.core.models import Timeframe
from breadthflow.data.lake import register_lake
from breadthflow.data.lake._base import (
    STALE_TMP_SECONDS,
    TMP_PREFIX,
    ParquetLake,
    encode_parquet,
    short_reason,
)

# Low timeouts so a dead endpoint fails within seconds instead of the SDK's minutes.
CONNECT_TIMEOUT_SECONDS = 2.0
REQUEST_TIMEOUT_SECONDS = 30.0
MAX_ATTEMPTS = 3
# pyarrow sends objects up to 10 MiB - 1 byte as one PutObject; keep a safety margin.
SINGLE_PUT_LIMIT = 8 * 1024 * 1024
# Checking that many explicit paths costs one HEAD each; one listing is cheaper.
LIST_INSTEAD_OF_HEAD = 32

# Upload streams whose write failed, kept unclosed on purpose (see S3Lake._put).
_ABANDONED_UPLOADS: list[pa.NativeFile] = []


class S3Lake(ParquetLake):
    """Parquet partitions under ``s3://bucket/prefix``."""

    def __init__(
        self,
        bucket: str,
        prefix: str,
        filesystem: pafs.FileSystem,
        *,
        endpoint: str | None = None,
        workers: int = 4,
    ) -> None:
        root = f"{bucket}/{prefix}" if prefix else bucket
        # Footer reads are latency-bound (a HEAD and a ranged GET per file): many threads.
        super().__init__(
            f"s3://{root}", filesystem, root, workers=workers, metadata_workers=max(16, workers)
        )
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint = endpoint

    # --- commit -----------------------------------------------------------------------

    def _commit(self, path: str, table: pa.Table) -> None:
        data = encode_parquet(table)
        if data.size <= SINGLE_PUT_LIMIT:
            self._put(path, data, temporary=False)
            return
        folder = posixpath.dirname(path)
        self._remove_stale_tmp(folder)
        tmp = f"{folder}/{TMP_PREFIX}{uuid.uuid4().hex}.parquet"
        try:
            self._put(tmp, data, temporary=True)
            self._fs.move(tmp, path)  # CopyObject + DeleteObject
        except BaseException:
            with contextlib.suppress(OSError):
                self._fs.delete_file(tmp)
            raise

    def _put(self, path: str, data: pa.Buffer, *, temporary: bool) -> None:
        """Upload ``data`` to ``path``: one PutObject when small, multipart otherwise.

        With ``allow_delayed_open`` nothing is sent before ``close()``. pyarrow cannot
        abort an upload from Python, and closing — or merely destroying — a stream whose
        write failed would send the bytes written so far. So a failed stream for a final
        key is never closed: it is parked until exit, when pyarrow has already shut S3
        down (its atexit hook) and destroying the stream can send nothing. A failed temp
        upload is closed normally; the caller deletes the temp object.
        """
        stream = self._fs.open_output_stream(path)
        try:
            _write_bytes(stream, data)
        except BaseException:
            if temporary:
                with contextlib.suppress(Exception):
                    stream.close()
            else:
                _ABANDONED_UPLOADS.append(stream)
            raise
        stream.close()

    def _remove_stale_tmp(self, folder: str) -> None:
        cutoff = time.time() - STALE_TMP_SECONDS
        selector = pafs.FileSelector(folder, allow_not_found=True)
        for info in self._fs.get_file_info(selector):
            if (
                info.type == pafs.FileType.File
                and info.base_name.startswith(TMP_PREFIX)
                and info.mtime is not None
                and info.mtime.timestamp() < cutoff
            ):
                with contextlib.suppress(FileNotFoundError):
                    self._fs.delete_file(info.path)

    # --- hooks ------------------------------------------------------------------------

    def _prepare_root(self) -> None:
        """Object stores have no folders to create; only the bucket has to exist."""

    def _root_problem(self) -> str | None:
        if self._fs.get_file_info(self.bucket).type == pafs.FileType.NotFound:
            where = f" at {self.endpoint}" if self.endpoint else ""
            return f"bucket '{self.bucket}' does not exist{where} — create it first"
        return None

    def _existing(self, timeframe: Timeframe, paths: Mapping[str, str]) -> dict[str, str]:
        if len(paths) <= LIST_INSTEAD_OF_HEAD:
            return super()._existing(timeframe, paths)
        stored = self._list(timeframe).get(timeframe, {})
        return {symbol: stored[symbol] for symbol in paths if symbol in stored}

    def _describe(self, exc: BaseException) -> str:
        text = short_reason(exc)
        code = re.search(r"AWS Error ([A-Z_]+)", text)
        where = f" at {self.endpoint}" if self.endpoint else ""
        if code is None:
            return text
        name = code.group(1)
        if name == "NO_SUCH_BUCKET":
            return f"bucket '{self.bucket}' does not exist{where}"
        if name == "NETWORK_CONNECTION":
            return f"cannot connect to the S3 endpoint{where or ' (default AWS endpoint)'}"
        if name in ("ACCESS_DENIED", "INVALID_ACCESS_KEY_ID", "SIGNATURE_DOES_NOT_MATCH"):
            return f"access denied to bucket '{self.bucket}'{where} — check the S3 credentials"
        # Keep the SDK's own explanation, minus the "When doing X for key Y:" preamble.
        return text[code.start() :]


def _write_bytes(stream: pa.NativeFile, data: pa.Buffer) -> None:
    """Hand the encoded partition to the upload stream (a seam for crash tests)."""
    stream.write(data)


def s3_filesystem(settings: Settings) -> pafs.S3FileSystem:
    """A pyarrow S3 filesystem configured from settings, with short timeouts."""
    options: dict[str, object] = {
        "region": settings.s3_region,
        "connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "request_timeout": REQUEST_TIMEOUT_SECONDS,
        "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=MAX_ATTEMPTS),
        # Send small objects as one PutObject at close() instead of opening a
        # multipart upload up front (see the module docstring).
        "allow_delayed_open": True,
        # Upload in the calling thread: errors surface from write()/close(), and the
        # lake's own thread pool provides the parallelism.
        "background_writes": False,
    }
    if settings.s3_endpoint_url:
        endpoint = urlsplit(settings.s3_endpoint_url)
        if endpoint.scheme not in ("http", "https") or not endpoint.netloc:
            raise ConfigError(
                f"invalid s3_endpoint_url '{settings.s3_endpoint_url}' — "
                "expected http(s)://host[:port], e.g. http://localhost:9000"
            )
        options["scheme"] = endpoint.scheme
        options["endpoint_override"] = endpoint.netloc
    if settings.s3_access_key_id:
        if settings.s3_secret_access_key is None:
            raise ConfigError(
                "s3_access_key_id is set but s3_secret_access_key is not — "
                "set BREADTHFLOW_S3_SECRET_ACCESS_KEY too"
            )
        options["access_key"] = settings.s3_access_key_id
        options["secret_key"] = settings.s3_secret_access_key.get_secret_value()
    try:
        return pafs.S3FileSystem(**options)  # type: ignore[arg-type]
    except (OSError, pa.ArrowException) as exc:
        raise ConfigError(f"cannot configure S3: {short_reason(exc)}") from exc


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` → ``("bucket", "some/prefix")``.

    >>> parse_s3_url("s3://market-data/breadthflow/")
    ('market-data', 'breadthflow')
    """
    parts = urlsplit(url)
    bucket, prefix = parts.netloc, parts.path.strip("/")
    if not bucket or "@" in bucket:
        raise ConfigError(
            f"invalid lake URL '{url}' — expected s3://bucket/prefix "
            "(credentials go in s3_access_key_id / s3_secret_access_key, not the URL)"
        )
    if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
        raise ConfigError(f"invalid lake URL '{url}' — the prefix has an empty, '.' or '..' part")
    return bucket, prefix


@register_lake("s3")
def open_s3_lake(url: str, settings: Settings) -> S3Lake:
    """Open the S3 lake named by ``s3://bucket/prefix`` (see ``open_lake``)."""
    bucket, prefix = parse_s3_url(url)
    return S3Lake(
        bucket,
        prefix,
        s3_filesystem(settings),
        endpoint=settings.s3_endpoint_url,
        workers=settings.fetch_workers,
    )
