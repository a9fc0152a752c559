"""The model registry table: one row per trained model version.

Versions count up per model name (1, 2, …). At most one version of a name is in
``production``; promoting another archives it, in one transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from breadthflow.core.errors import NotFoundError
from breadthflow.store._json import json_safe
from breadthflow.store.db import Database
from breadthflow.store.models import ModelVersionRow, utcnow


class ModelVersion(BaseModel):
    """A stored model version, as ``models list`` / ``models show`` print it."""

    model_config = ConfigDict(frozen=True)

    id: int
    name: str
    version: int
    status: str
    estimator: str
    task: str
    params: dict[str, Any]
    features: list[str]
    horizon: int
    universe: str
    symbols: list[str]
    data_start: dt.date
    data_end: dt.date
    folds: list[dict[str, Any]]
    metrics: dict[str, Any]
    sklearn_version: str
    artifact: str
    sha256: str
    size_bytes: int
    pipeline_run_id: str | None
    created_at: dt.datetime
    promoted_at: dt.datetime | None


class ModelRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, name: str, values: Mapping[str, Any], attempts: int = 5) -> ModelVersion:
        """Record a new version of ``name`` (the next number), as a candidate."""
        for attempt in range(attempts):
            try:
                with self.db.session() as session:
                    latest = session.scalar(
                        select(func.max(ModelVersionRow.version)).where(
                            ModelVersionRow.name == name
                        )
                    )
                    row = ModelVersionRow(
                        name=name,
                        version=int(latest or 0) + 1,
                        status="candidate",
                        created_at=utcnow(),
                        **{k: json_safe(v) if isinstance(v, dict | list) else v
                           for k, v in values.items()},
                    )  # fmt: skip
                    session.add(row)
                    session.flush()
                    return _summary(row)
            except IntegrityError:  # another trainer took the number: take the next
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def next_version(self, name: str) -> int:
        with self.db.session() as session:
            latest = session.scalar(
                select(func.max(ModelVersionRow.version)).where(ModelVersionRow.name == name)
            )
            return int(latest or 0) + 1

    def get(self, name: str, version: int | None = None) -> ModelVersion:
        """A version; without one, the production version, else the newest."""
        with self.db.session() as session:
            return _summary(self._row(session, name, version))

    def list(self, name: str | None = None) -> list[ModelVersion]:
        query = select(ModelVersionRow).order_by(
            ModelVersionRow.name, ModelVersionRow.version.desc()
        )
        if name:
            query = query.where(ModelVersionRow.name == name)
        with self.db.session() as session:
            return [_summary(r) for r in session.scalars(query).all()]

    def promote(self, name: str, version: int) -> ModelVersion:
        """Make ``version`` the production one; the previous production is archived."""
        with self.db.session() as session:
            row = self._row(session, name, version)
            current: Sequence[ModelVersionRow] = session.scalars(
                select(ModelVersionRow).where(
                    ModelVersionRow.name == name,
                    ModelVersionRow.status == "production",
                    ModelVersionRow.id != row.id,
                )
            ).all()
            for other in current:
                other.status = "archived"
            row.status, row.promoted_at = "production", utcnow()
            session.flush()
            return _summary(row)

    @staticmethod
    def _row(session: Session, name: str, version: int | None) -> ModelVersionRow:
        query = select(ModelVersionRow).where(ModelVersionRow.name == name)
        if version is not None:
            row = session.scalar(query.where(ModelVersionRow.version == version))
        else:
            row = session.scalar(
                query.where(ModelVersionRow.status == "production")
            ) or session.scalar(query.order_by(ModelVersionRow.version.desc()).limit(1))
        if row is None:
            names = sorted(set(session.scalars(select(ModelVersionRow.name)).all()))
            known = f" — known models: {', '.join(names)}" if names else " — train one first"
            what = f"model '{name}' version {version}" if version is not None else f"model '{name}'"
            raise NotFoundError(f"no {what}{known}")
        return row


def _summary(row: ModelVersionRow) -> ModelVersion:
    return ModelVersion(
        id=row.id,
        name=row.name,
        version=row.version,
        status=row.status,
        estimator=row.estimator,
        task=row.task,
        params=row.params or {},
        features=list(row.features or []),
        horizon=row.horizon,
        universe=row.universe,
        symbols=list(row.symbols or []),
        data_start=row.data_start,
        data_end=row.data_end,
        folds=list(row.folds or []),
        metrics=row.metrics or {},
        sklearn_version=row.sklearn_version,
        artifact=row.artifact,
        sha256=row.sha256,
        size_bytes=row.size_bytes,
        pipeline_run_id=row.pipeline_run_id or None,
        created_at=row.created_at,
        promoted_at=row.promoted_at,
    )
