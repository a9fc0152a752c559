"""Settings: defaults, then a TOML file, then ``BREADTHFLOW_*`` environment variables.

The TOML file is ``$BREADTHFLOW_CONFIG`` if set, else ``$BREADTHFLOW_HOME/config.toml``
(``~/.breadthflow/config.toml``). Keys are the field names below, e.g.::

    database_url = "postgresql+psycopg://app@db:5432/breadthflow"
    lake_url = "s3://market-data/breadthflow"
    s3_endpoint_url = "http://minio:9000"

Every setting is documented in docs/configuration.md.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from breadthflow.core.errors import ConfigError

ENV_PREFIX = "BREADTHFLOW_"


def default_home() -> Path:
    return Path(os.environ.get(f"{ENV_PREFIX}HOME", "~/.breadthflow")).expanduser()


def config_file_path() -> Path:
    explicit = os.environ.get(f"{ENV_PREFIX}CONFIG")
    return Path(explicit).expanduser() if explicit else default_home() / "config.toml"


class Settings(BaseSettings):
    """The effective configuration. Build it with :func:`get_settings`."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    home: Path = Field(default_factory=default_home, description="Folder for the DB, lake and logs")
    database_url: str = Field("", description="SQLAlchemy URL of the metadata DB")
    lake_url: str = Field("", description="Where bars are stored: file://… or s3://bucket/prefix")
    bus_url: str = Field(
        "sqlite", description="Event bus: sqlite, postgres, redis://, kafka://, nats://"
    )
    executor_url: str = Field("local", description="Run executor: local or celery+redis://…")
    engine: str = Field("polars", description="Compute engine: polars, spark-local[N], spark://…")
    s3_endpoint_url: str | None = Field(None, description="S3 endpoint override (MinIO, moto)")
    s3_region: str = Field("us-east-1", description="S3 region")
    s3_access_key_id: str | None = Field(
        None, description="S3 access key (else AWS_* env / profile)"
    )
    s3_secret_access_key: SecretStr | None = Field(None, description="S3 secret key")
    yahoo_base_url: str = Field(
        "https://query2.finance.yahoo.com", description="Base URL of the Yahoo chart API"
    )
    fetch_workers: int = Field(4, ge=1, le=64, description="Parallel symbol fetches/writes")
    lake_snapshot: bool = Field(
        True, description="Keep a read snapshot of the daily partitions (local lake)"
    )
    lake_snapshot_min_symbols: int = Field(
        64, ge=1, description="Partitions (and wanted symbols) for the snapshot to be used"
    )
    lake_snapshot_row_group_rows: int = Field(
        0,
        ge=0,
        description="Bars per record batch of the read snapshot (bounds a refresh's memory); "
        "0: from the machine's memory",
    )
    strategies_file: Path | None = Field(
        None,
        description="TOML of strategy parameters over the packaged defaults "
        "(default: $home/strategies.toml when it exists)",
    )
    dispatcher_batch_size: int = Field(
        20, ge=1, le=100_000, description="Trading signals the dispatcher takes per batch"
    )
    dispatcher_batch_timeout: float = Field(
        0.5, gt=0, le=60, description="Seconds the dispatcher waits to fill a batch"
    )
    dispatcher_cache_refresh: float = Field(
        30.0, gt=0, description="Seconds between rebuilds of the ticker → pipelines index"
    )
    dispatcher_group: str = Field(
        "dispatcher", description="Consumer group the dispatchers share on trading-signals"
    )
    log_level: str = Field("WARNING", description="Terminal log level")
    log_json: bool = Field(True, description="Also write JSON (ECS) logs to $home/logs/")
    alert_rules: list[str] = Field(
        default_factory=lambda: ["run_failed", "error_rate", "slow_run", "late"],
        description="Alert rules evaluated for every pipeline (a pipeline may narrow them)",
    )
    alert_error_rate_threshold: float = Field(
        0.5, gt=0, le=1, description="error_rate fires when failed/finished runs is above this"
    )
    alert_error_rate_window: int = Field(
        10, ge=1, le=1000, description="error_rate looks at this many latest finished runs"
    )
    alert_error_rate_min_runs: int = Field(
        3, ge=1, le=1000, description="error_rate needs at least this many finished runs"
    )
    alert_slow_run_factor: float = Field(
        2.0, gt=0, description="slow_run fires above p95 of earlier successful durations × this"
    )
    alert_slow_run_window: int = Field(
        20, ge=1, le=1000, description="slow_run takes p95 over this many earlier successful runs"
    )
    alert_slow_run_min_runs: int = Field(
        5, ge=1, le=1000, description="slow_run needs at least this many earlier successful runs"
    )
    alert_late_intervals: int = Field(
        2, ge=1, le=100, description="late fires when this many schedule slots pass with no run"
    )
    smtp_host: str = Field("localhost", description="SMTP relay for e-mail notifications")
    smtp_port: int = Field(25, ge=1, le=65535, description="Port of the SMTP relay")
    smtp_username: str | None = Field(None, description="SMTP login (none: no AUTH)")
    smtp_password: SecretStr | None = Field(None, description="SMTP password")
    smtp_from: str = Field("breadthflow@localhost", description="Sender of notification e-mails")
    smtp_starttls: bool = Field(False, description="Upgrade the SMTP connection with STARTTLS")
    notify_timeout: float = Field(
        10.0, gt=0, le=300, description="Seconds a webhook or SMTP delivery may take"
    )
    api_host: str = Field("127.0.0.1", description="Address `breadthflow serve` listens on")
    api_port: int = Field(8083, ge=1, le=65535, description="Port `breadthflow serve` listens on")
    api_cors_origins: str = Field(
        "", description="Comma-separated origins allowed by CORS (none by default; never '*')"
    )
    api_read_requires_token: bool = Field(
        False, description="Also require a bearer token for API reads (writes always need one)"
    )
    api_events_poll_seconds: float = Field(
        1.0, gt=0, le=60, description="How often the SSE stream looks for new events"
    )

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("api_cors_origins")
    @classmethod
    def _origins(cls, value: str) -> str:
        for origin in (o.strip() for o in value.split(",")):
            if origin == "*":
                raise ValueError("a wildcard origin is not allowed — list the origins")
            if origin and not origin.startswith(("http://", "https://")):
                raise ValueError(f"origin '{origin}' must start with http:// or https://")
        return value

    @field_validator("alert_rules")
    @classmethod
    def _alert_rules(cls, value: list[str]) -> list[str]:
        known = ("run_failed", "error_rate", "slow_run", "late")  # pipelines/alerts.py RULES
        unknown = [rule for rule in value if rule not in known]
        if unknown:
            raise ValueError(f"unknown alert rule '{unknown[0]}' — known: {', '.join(known)}")
        return value

    @field_validator("lake_snapshot_row_group_rows")
    @classmethod
    def _row_group(cls, value: int) -> int:
        if 0 < value < 1024:
            raise ValueError("expected 0 (from the machine's memory) or at least 1024")
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("expected DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return level

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Precedence, highest first: explicit arguments, environment, TOML file.
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=config_file_path()),
        )

    # Resolved URLs: the defaults live under ``home`` so one variable moves everything.
    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'breadthflow.db'}"

    @property
    def resolved_lake_url(self) -> str:
        return self.lake_url or (self.home / "lake").resolve().as_uri()

    @property
    def resolved_strategies_file(self) -> Path | None:
        """The user's strategy-parameter file, if one is configured or present in home."""
        if self.strategies_file is not None:
            return self.strategies_file.expanduser()
        default = self.home / "strategies.toml"
        return default if default.exists() else None

    @property
    def cors_origins(self) -> list[str]:
        """The CORS origins as a list (``api_cors_origins`` split on commas)."""
        return [o.strip().rstrip("/") for o in self.api_cors_origins.split(",") if o.strip()]

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    def public_view(self) -> dict[str, Any]:
        """The effective settings with every secret masked, for ``config show``."""
        view: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name == "database_url":
                value = self.resolved_database_url
            elif name == "lake_url":
                value = self.resolved_lake_url
            if isinstance(value, SecretStr):
                value = "********" if value.get_secret_value() else ""
            elif isinstance(value, str):
                value = mask_url(value)
            elif isinstance(value, Path):
                value = str(value)
            view[name] = value
        view["config_file"] = str(config_file_path())
        view["config_file_exists"] = config_file_path().exists()
        return view


def mask_url(value: str) -> str:
    """Hide the password in a URL (``postgresql://u:secret@h/db`` → ``postgresql://u:***@h/db``)."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return value
    if parts.password is None:
        return value
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username or ''}:***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def load_settings(**overrides: Any) -> Settings:
    """Build settings, turning a bad file or variable into one clear line."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "?"
        env = f"{ENV_PREFIX}{field.upper()}"
        raise ConfigError(
            f"invalid setting '{field}' ({env} or {config_file_path()}): {first['msg']}"
        ) from None
    except (OSError, ValueError) as exc:  # unreadable or malformed TOML
        raise ConfigError(f"cannot read config file {config_file_path()}: {exc}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings (cached). Tests call ``get_settings.cache_clear()``."""
    return load_settings()
