"""The Celery executor: queued runs become Celery tasks for ``breadthflow worker`` processes.

``BREADTHFLOW_EXECUTOR_URL=celery+redis://host:6379/0`` (``celery+rediss://`` for TLS;
``user:password@`` allowed). Options go in the query string, all optional::

    celery+redis://redis:6379/0?queue=breadthflow&visibility_timeout=3600&max_attempts=3

======================  =======  ==========================================================
option                  default  meaning
======================  =======  ==========================================================
``queue``               breadthflow  Celery queue the runs are sent to
``visibility_timeout``  3600     seconds before Redis hands an unacknowledged task (its
                                 worker died) to another worker
``resubmit_after``      300      seconds before the runner sends a run that is still queued
                                 again (a lost message; duplicates are harmless)
``stale_after``         120      seconds without a heartbeat after which a running run's
                                 worker counts as dead (same host: at once, by its pid)
``max_attempts``        3        attempts of a run whose worker died before it fails
``max_retries``         20       task retries (backoff 2 s doubling to 60 s, jittered) while
                                 its pipeline is busy or the metadata DB is unreachable
``pipeline_limit``      1        running runs of one pipeline at once
``heartbeat``           5        seconds between a running run's heartbeats
======================  =======  ==========================================================

How a run travels: the scheduler, the trigger dispatcher or the API *enqueue* it in the
metadata DB as before; the runner (``breadthflow pipeline start``), instead of executing
queued runs itself, *forwards* each one as task ``breadthflow.execute_run(run_id)``
(:meth:`CeleryExecutor.forward`); a worker executes it through
:func:`execute_run` — the same :func:`~breadthflow.services.pipelines.lifecycle_for` path as
the local pool. Workers need the same metadata DB and lake settings as the runner.

Delivery is at least once, and the task is idempotent by run id: it claims the run
``queued → running`` atomically, and a task for a run that is running (on a live worker)
or finished does nothing. Tasks are acknowledged late (after the run) and rejected back
to the queue if their worker process is lost, so a ``kill -9`` does not lose a run: the
redelivered task finds the run ``running`` under a dead worker and requeues it as its next
attempt (resuming from its checkpoints), or fails it after ``max_attempts``.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from sqlalchemy import select

from breadthflow.core.config import mask_url
from breadthflow.core.errors import BackendUnavailableError, ConfigError, NotFoundError
from breadthflow.execution.claims import Claim, claim_run, holder_is_dead, recover_run
from breadthflow.store.models import PipelineRunRow
from breadthflow.store.runs import FINISHED_STATUSES, RunRepository

if TYPE_CHECKING:
    from celery import Celery

    from breadthflow.pipelines.shutdown import GracefulShutdown
    from breadthflow.services.context import AppContext
    from breadthflow.store.db import Database

log = logging.getLogger("breadthflow.execution.celery")

TASK_NAME = "breadthflow.execute_run"
SUBMITTED_KEY = "breadthflow:submitted:{run_id}:{attempt}"
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
#: Runs forwarded per pass of the runner's forwarder (the rest go on the next pass).
FORWARD_BATCH = 1000

_INT_OPTIONS: dict[str, tuple[int, int]] = {  # name: (default, minimum)
    "visibility_timeout": (3600, 1),
    "resubmit_after": (300, 1),
    "stale_after": (120, 1),
    "max_attempts": (3, 1),
    "max_retries": (20, 0),
    "pipeline_limit": (1, 1),
}
_FLOAT_OPTIONS: dict[str, tuple[float, float]] = {"heartbeat": (5.0, 0.1)}


class RetryLater(Exception):
    """The run cannot start yet (its pipeline is busy): the task retries with backoff."""


@dataclass(frozen=True)
class CeleryConfig:
    """A parsed ``celery+redis://`` URL."""

    url: str
    broker_url: str
    queue: str = "breadthflow"
    visibility_timeout: int = 3600
    resubmit_after: int = 300
    stale_after: int = 120
    max_attempts: int = 3
    max_retries: int = 20
    pipeline_limit: int = 1
    heartbeat: float = 5.0

    @classmethod
    def parse(cls, url: str) -> CeleryConfig:
        """Parse and check a URL; a mistake is one :class:`ConfigError` line."""
        shown = mask_url(url)
        where = "BREADTHFLOW_EXECUTOR_URL"
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError as exc:
            raise ConfigError(f"invalid executor URL '{shown}' ({where}): {exc}") from None
        scheme = parts.scheme.lower()
        if scheme not in ("celery+redis", "celery+rediss"):
            raise ConfigError(
                f"invalid executor URL '{shown}' ({where}) — expected celery+redis://host:port/db"
            )
        if not parts.hostname:
            raise ConfigError(
                f"invalid executor URL '{shown}' ({where}) — no host; expected "
                "celery+redis://host:port/db, e.g. celery+redis://127.0.0.1:6379/0"
            )
        db = parts.path.strip("/") or "0"
        if not db.isdigit():
            raise ConfigError(
                f"invalid executor URL '{shown}' ({where}) — Redis database '{db}' is not a "
                "number (e.g. /0)"
            )
        options: dict[str, Any] = {}
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            options[key] = _option(key, value, shown)
        del port  # read only to validate it (urlsplit raises on a bad port)
        # credentials, host and port go to the broker as given
        broker = urlunsplit((scheme.removeprefix("celery+"), parts.netloc, f"/{db}", "", ""))
        return cls(url=url.strip(), broker_url=broker, **options)


def _option(key: str, value: str, shown: str) -> Any:
    where = f"executor URL '{shown}'"
    if key == "queue":
        if not _QUEUE_NAME.match(value):
            raise ConfigError(
                f"invalid queue '{value}' in {where} — expected letters, digits and _.:-"
            )
        return value
    if key in _INT_OPTIONS:
        default, minimum = _INT_OPTIONS[key]
        if not value.isdigit() or int(value) < minimum:
            raise ConfigError(
                f"invalid {key} '{value}' in {where} — expected a whole number >= {minimum} "
                f"(default {default})"
            )
        return int(value)
    if key in _FLOAT_OPTIONS:
        default_f, low = _FLOAT_OPTIONS[key]
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if not number >= low:
            raise ConfigError(
                f"invalid {key} '{value}' in {where} — expected a number >= {low} "
                f"(default {default_f})"
            )
        return number
    known = ", ".join(["queue", *_INT_OPTIONS, *_FLOAT_OPTIONS])
    raise ConfigError(f"unknown option '{key}' in {where} — known: {known}")


@dataclass
class CeleryExecutor:
    """Send queued runs to Celery workers; see the module docstring."""

    config: CeleryConfig
    scheme: str = "celery+redis"
    in_process: bool = False

    @classmethod
    def from_url(cls, url: str) -> CeleryExecutor:
        config = CeleryConfig.parse(url)
        return cls(config, scheme=urlsplit(config.url).scheme.lower())

    @cached_property
    def app(self) -> Celery:
        return make_app(self.config)

    def describe(self) -> str:
        return f"celery (broker {mask_url(self.config.broker_url)}, queue {self.config.queue})"

    # --- sending ----------------------------------------------------------------------------

    def submit(self, run_id: str, attempt: int = 1) -> bool:
        """Send ``breadthflow.execute_run(run_id)``; a duplicate is harmless."""
        try:
            self.app.send_task(
                TASK_NAME,
                args=[run_id],
                task_id=f"{run_id}.{attempt}",
                queue=self.config.queue,
            )
        except Exception as exc:  # kombu wraps connection failures in many types
            raise BackendUnavailableError(
                f"cannot send run {run_id} to {mask_url(self.config.broker_url)}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        return True

    def forward_once(self, db: Database) -> list[str]:
        """Send every queued run not sent in the last ``resubmit_after`` seconds (oldest
        first); returns the ids sent. A Redis key per (run, attempt) remembers what was
        sent, so several runners forward each run once, and a run requeued as its next
        attempt is sent again."""
        query = (
            select(PipelineRunRow.run_id, PipelineRunRow.attempt)
            .where(PipelineRunRow.status == "queued")
            .order_by(PipelineRunRow.queued_at, PipelineRunRow.run_id)
            .limit(FORWARD_BATCH)
        )
        with db.session() as session:
            queued = [(run_id, attempt) for run_id, attempt in session.execute(query).all()]
        sent: list[str] = []
        client = self._redis
        for run_id, attempt in queued:
            key = SUBMITTED_KEY.format(run_id=run_id, attempt=attempt)
            if not client.set(key, "1", nx=True, ex=self.config.resubmit_after):
                continue
            try:
                self.submit(run_id, attempt)
            except BaseException:
                client.delete(key)  # not sent: the next pass tries again
                raise
            sent.append(run_id)
        return sent

    def forward(self, db: Database, shutdown: GracefulShutdown, poll: float = 1.0) -> None:
        """The runner's forwarder thread: :meth:`forward_once` every ``poll`` seconds until
        ``shutdown``; a broker or DB outage is logged and retried with backoff."""
        log.info("forwarding queued runs to %s", self.describe())
        pause = poll
        while not shutdown.requested:
            try:
                sent = self.forward_once(db)
            except Exception as exc:
                log.warning("forwarding queued runs failed (%s) — retrying in %.0fs", exc, pause)
                shutdown.wait(pause)
                pause = min(pause * 2, 30.0)
                continue
            pause = poll
            if sent:
                log.info("sent %d run(s) to Celery: %s", len(sent), ", ".join(sent))
            shutdown.wait(poll)

    @cached_property
    def _redis(self) -> Any:
        import redis

        return redis.Redis.from_url(self.config.broker_url, socket_timeout=10)

    # --- the worker -------------------------------------------------------------------------

    def run_worker(
        self,
        concurrency: int = 2,
        queues: list[str] | None = None,
        pool: str = "prefork",
        loglevel: str = "INFO",
    ) -> None:
        """Start a Celery worker in this process (blocks until it is shut down)."""
        wanted = queues or [self.config.queue]
        argv = [
            "worker",
            f"--concurrency={concurrency}",
            f"--queues={','.join(wanted)}",
            f"--pool={pool}",
            f"--loglevel={loglevel}",
            f"--hostname=breadthflow-{os.getpid()}@%h",  # unique per worker process
            "--without-mingle",
        ]
        self.app.worker_main(argv=argv)


def make_app(config: CeleryConfig) -> Celery:
    """A Celery app for ``config`` with the ``breadthflow.execute_run`` task registered.

    JSON only (no pickle), late acknowledgement, one task prefetched per process (a run is
    long: a prefetched one would wait behind it instead of going to an idle worker).
    """
    from celery import Celery

    app = Celery("breadthflow", set_as_current=False)
    restore_every = max(1, min(10, config.visibility_timeout // 2))
    app.conf.update(
        broker_url=config.broker_url,
        result_backend=config.broker_url,
        result_expires=24 * 3600,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_default_queue=config.queue,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": config.visibility_timeout,
            "unacked_restore_interval": restore_every,
            "unacked_restore_throttle": 1,
        },
        result_backend_transport_options={"visibility_timeout": config.visibility_timeout},
    )

    @app.task(
        name=TASK_NAME,
        bind=True,
        acks_late=True,
        reject_on_worker_lost=True,
        autoretry_for=(RetryLater, BackendUnavailableError),
        retry_backoff=2,
        retry_backoff_max=60,
        retry_jitter=True,
        max_retries=config.max_retries,
    )
    def execute_run_task(self: Any, run_id: str) -> str:
        return execute_run(_worker_context(), run_id, config)

    return app


_CONTEXT: dict[int, AppContext] = {}


def _worker_context() -> AppContext:
    """One :class:`AppContext` per worker process (prefork children each open their own
    DB engine — a connection pool must not cross a fork)."""
    from breadthflow.services.context import AppContext

    pid = os.getpid()
    if pid not in _CONTEXT:
        _CONTEXT.clear()
        _CONTEXT[pid] = AppContext()
    return _CONTEXT[pid]


def execute_run(ctx: AppContext, run_id: str, config: CeleryConfig) -> str:
    """What one task does: execute ``run_id`` unless it is not this task's to run.

    Returns the run's final status, or ``skipped: …`` when another delivery has it or it
    is finished, ``missing`` for an unknown run, ``failed`` when its dead worker's run
    used its last attempt. Raises :class:`RetryLater` while its pipeline is busy.
    """
    from breadthflow.pipelines.lifecycle import default_worker, describe
    from breadthflow.pipelines.shutdown import GracefulShutdown
    from breadthflow.services.pipelines import lifecycle_for
    from breadthflow.store.pipelines import PipelineRepository

    repo = RunRepository(ctx.db)
    try:
        run = repo.get(run_id)
    except NotFoundError:
        log.warning("task for unknown run %s ignored", run_id)
        return "missing"
    if run.status in FINISHED_STATUSES:
        return f"skipped: {run.status}"
    if run.status == "running":
        if not holder_is_dead(run, dt.timedelta(seconds=config.stale_after)):
            return f"skipped: running on {run.worker}"
        outcome = recover_run(ctx.db, run, config.max_attempts)
        log.warning("run %s: worker %s is dead — %s", run_id, run.worker, outcome)
        if outcome == "failed":
            return "failed"
        if outcome == "raced":
            return "skipped: recovered elsewhere"
    worker = f"{default_worker()}/celery"
    claim = claim_run(ctx.db, run_id, worker, config.pipeline_limit)
    if claim is Claim.BUSY:
        raise RetryLater(f"pipeline of run {run_id} is busy")
    if claim is Claim.GONE:
        return "skipped: not queued"
    try:
        stored = PipelineRepository(ctx.db).get_by_id(run.pipeline_id)
        lifecycle = lifecycle_for(ctx, stored, run_id, GracefulShutdown(), config.heartbeat)
        lifecycle.worker = worker
        outcome_status = lifecycle.run().status
    except Exception as exc:  # recorded on the run; a redelivery would find it failed
        log.exception("run %s could not be executed", run_id)
        repo.mark_failed(run_id, describe(exc))
        return "failed"
    log.info("run %s of %s: %s", run_id, stored.name, outcome_status)
    return outcome_status
