"""`config show` and `db upgrade|current`."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli._run import assert_one_line_error, run_cli


def test_config_show_masks_secrets(capsys, monkeypatch):
    monkeypatch.setenv("BREADTHFLOW_DATABASE_URL", "postgresql+psycopg://app:s3cr3t@db:5432/bf")
    monkeypatch.setenv("BREADTHFLOW_S3_SECRET_ACCESS_KEY", "very-secret-key")
    monkeypatch.setenv("BREADTHFLOW_BUS_URL", "redis://:redispass@cache:6379/0")
    result = run_cli(capsys, "config", "show", "--format", "json")
    assert result.code == 0, result.err
    shown = json.loads(result.out)
    assert shown["database_url"] == "postgresql+psycopg://app:***@db:5432/bf"
    assert shown["s3_secret_access_key"] == "********"
    assert shown["bus_url"] == "redis://:***@cache:6379/0"
    for secret in ("s3cr3t", "very-secret-key", "redispass"):
        assert secret not in result.out


def test_toml_file_is_read_and_env_overrides_it(capsys, monkeypatch, isolated_home: Path):
    isolated_home.mkdir(parents=True)
    (isolated_home / "config.toml").write_text(
        'lake_url = "s3://bucket/prefix"\nengine = "spark-local[2]"\nfetch_workers = 7\n'
    )
    monkeypatch.setenv("BREADTHFLOW_FETCH_WORKERS", "3")
    shown = json.loads(run_cli(capsys, "config", "show", "-f", "json").out)
    assert shown["lake_url"] == "s3://bucket/prefix"
    assert shown["engine"] == "spark-local[2]"
    assert shown["fetch_workers"] == 3
    assert shown["config_file_exists"] is True


def test_defaults_live_under_home(capsys, isolated_home: Path):
    shown = json.loads(run_cli(capsys, "config", "show", "-f", "json").out)
    assert shown["database_url"] == f"sqlite:///{isolated_home / 'breadthflow.db'}"
    assert shown["lake_url"] == (isolated_home / "lake").as_uri()


def test_bad_setting_is_one_line(capsys, monkeypatch):
    monkeypatch.setenv("BREADTHFLOW_FETCH_WORKERS", "many")
    assert_one_line_error(run_cli(capsys, "config", "show"), "fetch_workers")


def test_malformed_toml_is_one_line(capsys, isolated_home: Path):
    isolated_home.mkdir(parents=True)
    (isolated_home / "config.toml").write_text("lake_url = [unclosed\n")
    assert_one_line_error(run_cli(capsys, "config", "show"), "config")


def test_db_upgrade_then_current_is_head(capsys, db_url: str, monkeypatch):
    monkeypatch.setenv("BREADTHFLOW_DATABASE_URL", db_url)
    result = run_cli(capsys, "db", "upgrade")
    assert result.code == 0, result.err
    assert "upgraded empty →" in result.err
    again = run_cli(capsys, "db", "upgrade")
    assert "already at" in again.err
    current = json.loads(run_cli(capsys, "db", "current", "-f", "json").out)
    assert current["revision"] == current["head"] is not None
