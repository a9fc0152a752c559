"""A killed fetch, real backends chosen by configuration, and the structured logs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from breadthflow.core.config import load_settings
from breadthflow.core.models import Timeframe
from breadthflow.data.lake import open_lake
from breadthflow.data.providers.synthetic import generate_bars
from tests.cli._run import run_cli

SAMPLE = ("--start", "2009-08-21", "--end", "2010-08-20")


@pytest.mark.slow
def test_fetch_killed_halfway_leaves_lake_consistent_and_refetch_completes(
    isolated_home: Path, capsys
):
    env = {**os.environ, "BREADTHFLOW_HOME": str(isolated_home)}
    args = ["--provider", "synthetic", "--universe", "synthetic-1500",
            "--start", "2012-01-02", "--end", "2019-12-31"]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "breadthflow", "data", "fetch", *args, "--format", "json"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    bars_dir = isolated_home / "lake" / "bars" / "timeframe=1d"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if bars_dir.exists() and len(list(bars_dir.glob("symbol=*/part-0.parquet"))) >= 250:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "fetch finished before it could be killed; make it bigger"
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    settings = load_settings(home=isolated_home)
    lake = open_lake(settings.resolved_lake_url, settings)
    stored = lake.symbols(Timeframe.D1)
    assert 0 < len(stored) < 1500
    # Every partition that is visible is complete and exactly what the provider gives.
    frame = lake.read(stored, Timeframe.D1)
    expected = generate_bars(stored, "2012-01-02", "2019-12-31", timeframe=Timeframe.D1)
    assert frame.height == expected.height
    cols = ["symbol", "date", "open", "high", "low", "close", "volume"]
    assert frame.select(cols).equals(expected.select(cols).sort("symbol", "date"))

    result = run_cli(capsys, "data", "fetch", *args, "--format", "json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["symbols_stored"] == 1500
    assert report["rows_unchanged"] == frame.height  # nothing already stored was rewritten
    assert lake.coverage(Timeframe.D1)["rows"].sum() == report["rows_received"]
    fetches = json.loads(run_cli(capsys, "data", "summary", "-f", "json").out)["recent_fetches"]
    assert [f["status"] for f in fetches[:2]] == ["succeeded", "running"]


@pytest.mark.s3
def test_fetch_and_export_through_an_s3_lake(capsys, s3_bucket: str, monkeypatch, tmp_path):
    monkeypatch.setenv("BREADTHFLOW_LAKE_URL", f"s3://{s3_bucket}/lake")
    result = run_cli(
        capsys, "data", "fetch", "-p", "sample", "-u", "demo_small", *SAMPLE, "-f", "json"
    )
    assert result.code == 0, result.err
    assert json.loads(result.out)["symbols_stored"] == 8
    out = tmp_path / "x.parquet"
    assert run_cli(capsys, "data", "export", "-u", "demo_small", *SAMPLE, "-o", str(out)).code == 0
    assert pl.read_parquet(out)["symbol"].n_unique() == 8
    summary = json.loads(run_cli(capsys, "data", "summary", "-f", "json").out)
    assert summary["lake"] == f"s3://{s3_bucket}/lake"
    assert summary["timeframes"][0]["symbols"] == 8


@pytest.mark.postgres
def test_fetch_records_ingestion_in_postgresql(capsys, postgres_url: str, monkeypatch):
    monkeypatch.setenv("BREADTHFLOW_DATABASE_URL", postgres_url)
    result = run_cli(
        capsys, "data", "fetch", "-p", "sample", "-s", "DHR,GIS", *SAMPLE, "-f", "json"
    )
    assert result.code == 0, result.err
    import sqlalchemy as sa

    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        status, stored = conn.execute(
            sa.text("select status, symbols_stored from ingestions")
        ).one()
        kinds = set(conn.execute(sa.text("select distinct kind from ingestion_issues")).scalars())
    engine.dispose()
    assert (status, stored) == ("succeeded", 2)
    assert {"split_adjusted", "missing_session"} <= kinds


def test_json_logs_use_ecs_fields_and_carry_the_run_id(capsys, isolated_home, monkeypatch):
    monkeypatch.setenv("BREADTHFLOW_LOG_JSON", "true")
    result = run_cli(capsys, "data", "fetch", "-p", "sample", "-s", "AAPL", *SAMPLE, "-f", "json")
    assert result.code == 0, result.err
    ingestion = json.loads(result.out)["ingestion_id"]
    lines = [
        json.loads(x)
        for x in (isolated_home / "logs" / "breadthflow.jsonl").read_text().splitlines()
    ]
    finished = [x for x in lines if x.get("message", "").startswith("fetch finished")]
    assert finished, lines
    record = finished[-1]
    assert {"@timestamp", "log.level", "message", "ecs.version"} <= set(_flatten(record))
    assert _flatten(record)["labels.run_id"] == f"ingest-{ingestion}"


def _flatten(record: dict, prefix: str = "") -> dict:
    flat: dict = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat
