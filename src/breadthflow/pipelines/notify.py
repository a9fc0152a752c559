"""Notifications of pipeline failures and recoveries: a webhook and e-mail.

Configured per pipeline (:class:`~breadthflow.pipelines.definitions.Notifications`):
``webhook_url`` gets a JSON POST, ``email_to`` an e-mail through an SMTP relay, and
only the events listed in ``on`` (``failure``, ``recovery``) are sent. A notification
that cannot be delivered is logged and never fails the run it reports on.

The SMTP relay (host, port, login, sender, STARTTLS) comes from the ``smtp_*`` settings
(:meth:`Notifier.from_settings`). Alerts (:mod:`breadthflow.pipelines.alerts`) go out as
``failure`` events, with the fired alerts in the webhook body's ``alerts`` list.

The webhook body carries ``text`` (what Slack, Mattermost and Teams incoming webhooks
show) next to structured fields::

    {"event": "failure", "subject": "...", "text": "...", "pipeline": "daily", ...}
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Mapping
from email.message import EmailMessage
from typing import Any, Literal

import httpx

from breadthflow.pipelines.definitions import Notifications
from breadthflow.store._json import json_safe

logger = logging.getLogger("breadthflow.pipelines")

Event = Literal["failure", "recovery"]
EVENTS = ("failure", "recovery")


class Notifier:
    """Send a pipeline's notifications.

    >>> notifier = Notifier(Notifications(webhook_url="https://hooks.example/x"))  # doctest: +SKIP
    >>> notifier.send("failure", "pipeline daily failed", "error: …")              # doctest: +SKIP
    ['webhook']
    """

    def __init__(
        self,
        notifications: Notifications,
        smtp_host: str = "localhost",
        smtp_port: int = 25,
        *,
        sender: str = "breadthflow@localhost",
        smtp_username: str | None = None,
        smtp_password: str | None = None,
        smtp_starttls: bool = False,
        timeout: float = 10.0,
    ) -> None:
        self.notifications = notifications
        self.smtp_host = smtp_host
        self.smtp_port = smtp_port
        self.sender = sender
        self.smtp_username = smtp_username
        self.smtp_password = smtp_password
        self.smtp_starttls = smtp_starttls
        self.timeout = timeout

    @classmethod
    def from_settings(cls, notifications: Notifications, settings: Any) -> Notifier:
        """A notifier for one pipeline with the SMTP relay of
        :class:`~breadthflow.core.config.Settings` (``smtp_*``, ``notify_timeout``)."""
        password = settings.smtp_password
        return cls(
            notifications,
            settings.smtp_host,
            settings.smtp_port,
            sender=settings.smtp_from,
            smtp_username=settings.smtp_username,
            smtp_password=password.get_secret_value() if password is not None else None,
            smtp_starttls=settings.smtp_starttls,
            timeout=settings.notify_timeout,
        )

    def wants(self, event: str) -> bool:
        """Whether ``event`` is configured and has somewhere to go."""
        has_channel = bool(self.notifications.webhook_url or self.notifications.email_to)
        return has_channel and event in self.notifications.on

    def send(
        self,
        event: Event,
        subject: str,
        body: str,
        data: Mapping[str, Any] | None = None,
    ) -> list[str]:
        """Deliver one notification; returns the channels that accepted it."""
        if event not in EVENTS:
            raise ValueError(f"unknown notification event {event!r}")
        if not self.wants(event):
            return []
        delivered = []
        if self.notifications.webhook_url and self._post(event, subject, body, data):
            delivered.append("webhook")
        if self.notifications.email_to and self._mail(subject, body):
            delivered.append("email")
        return delivered

    def _post(self, event: str, subject: str, body: str, data: Mapping[str, Any] | None) -> bool:
        url = str(self.notifications.webhook_url)
        payload = {"event": event, "subject": subject, "text": f"{subject}\n{body}"}
        payload.update(json_safe(dict(data or {})))
        try:
            response = httpx.post(url, json=payload, timeout=self.timeout)
            response.raise_for_status()
        except httpx.HTTPStatusError as error:
            # Not str(error): it repeats the URL, and webhook URLs often embed a token.
            status = error.response.status_code
            logger.warning("notification webhook %s failed: HTTP %s", _host(url), status)
            return False
        except httpx.HTTPError as error:
            reason = f"{type(error).__name__}: {error}".rstrip(": ")
            logger.warning("notification webhook %s failed: %s", _host(url), reason)
            return False
        except httpx.InvalidURL:
            logger.warning("notification webhook %s failed: invalid URL", _host(url))
            return False
        return True

    def _mail(self, subject: str, body: str) -> bool:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = ", ".join(self.notifications.email_to)
        message["Subject"] = subject
        message.set_content(body)
        try:
            with smtplib.SMTP(self.smtp_host, self.smtp_port, timeout=self.timeout) as smtp:
                if self.smtp_starttls:
                    smtp.starttls()
                if self.smtp_username:
                    smtp.login(self.smtp_username, self.smtp_password or "")
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as error:
            logger.warning(
                "notification e-mail via %s:%s failed: %s", self.smtp_host, self.smtp_port, error
            )
            return False
        return True


def _host(url: str) -> str:
    """The URL without path and query: webhook URLs often embed a secret token."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return "(invalid URL)"
    return f"{parsed.scheme}://{parsed.host}" + (f":{parsed.port}" if parsed.port else "")
