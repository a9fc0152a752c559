"""Real receivers on loopback for notification tests: a webhook and an SMTP server."""

from __future__ import annotations

import base64
import email
import json
import socket
import threading
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Webhook:
    """An HTTP server on loopback that records the JSON it is posted."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.status = 200
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                outer.received.append(json.loads(self.rfile.read(length)))
                self.send_response(outer.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/secret-token"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SmtpSink:
    """A minimal SMTP receiver on loopback (220/250/354/221, AUTH PLAIN): enough for
    smtplib. Logins are recorded in ``logins`` as (user, password)."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.logins: list[tuple[str, str]] = []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            with connection, connection.makefile("rb") as lines:
                self._session(connection, lines)

    def _session(self, connection: socket.socket, lines: Any) -> None:
        def reply(text: str) -> None:
            connection.sendall(text.encode() + b"\r\n")

        reply("220 sink ready")
        sender, recipients = "", []
        for raw in lines:
            command = raw.decode().strip()
            verb = command[:4].upper()
            if verb == "EHLO":
                reply("250-sink")
                reply("250 AUTH PLAIN")
            elif verb == "HELO":
                reply("250 sink")
            elif verb == "AUTH":
                _, _, encoded = command.partition(" PLAIN ")
                _, user, password = base64.b64decode(encoded).decode().split("\0")
                self.logins.append((user, password))
                reply("235 authenticated")
            elif verb == "MAIL":
                sender = command.split(":", 1)[1].strip(" <>")
                reply("250 ok")
            elif verb == "RCPT":
                recipients.append(command.split(":", 1)[1].strip(" <>"))
                reply("250 ok")
            elif verb == "DATA":
                reply("354 end with <CRLF>.<CRLF>")
                body = b"".join(iter(lambda: lines.readline(), b".\r\n"))
                self.messages.append(email.message_from_bytes(body))
                self.envelopes.append((sender, recipients))
                reply("250 queued")
            elif verb == "QUIT":
                reply("221 bye")
                return
            else:
                reply("250 ok")

    def close(self) -> None:
        self.server.close()
