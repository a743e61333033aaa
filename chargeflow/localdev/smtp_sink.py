"""An SMTP sink that keeps every received message on disk (development and tests only).

Standalone: aiosmtpd and the standard library, never Django or project code.

Run it::

    python -m chargeflow.localdev.smtp_sink --host 127.0.0.1 --port 1025 --dir var/mailbox

or from Python::

    sink = start_smtp_sink(tmp_path / "mailbox")  # port=0 picks a free port: sink.port
    ...
    messages = read_mailbox(sink.directory)
    sink.stop()

Each message is written to ``<dir>/<UTC timestamp>-<uuid4 hex>.eml`` (first to a hidden temp file
in the same directory, then ``os.replace``d, so readers never see half-written files). The SMTP
envelope is recorded in two headers added on top: ``X-Envelope-From`` and ``X-Envelope-To``
(the latter lists every RCPT TO, so Bcc recipients are visible too).
"""

from __future__ import annotations

import argparse
import email.policy
import os
import signal
import sys
import tempfile
import threading
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

EML_SUFFIX = ".eml"


def _log(line: str) -> None:
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    sys.stderr.write(f"{stamp} smtp-sink {line}\n")
    sys.stderr.flush()


def _header_safe(value: str) -> str:
    return value.replace("\r", " ").replace("\n", " ")


class MailboxHandler:
    """aiosmtpd handler: accept any sender/recipient, store each message as an .eml file."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.original_content or envelope.content or b""
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogateescape")
        recipients = ", ".join(envelope.rcpt_tos)
        prefix = (
            f"X-Envelope-From: {_header_safe(envelope.mail_from or '')}\r\n"
            f"X-Envelope-To: {_header_safe(recipients)}\r\n"
        ).encode()
        try:
            path = self.store(prefix + content)
        except OSError as exc:
            _log(f"cannot store message from {envelope.mail_from}: {exc}")
            return "451 Requested action aborted: cannot store message"
        peer = session.peer[0] if session.peer else "-"
        _log(
            f"{peer} MAIL FROM:<{envelope.mail_from}> RCPT TO:<{recipients}> "
            f"{len(content)} bytes -> {path.name}"
        )
        return "250 Message accepted for delivery"

    def store(self, data: bytes) -> Path:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        final = self.directory / f"{stamp}-{uuid.uuid4().hex}{EML_SUFFIX}"
        fd, tmp = tempfile.mkstemp(prefix=".incoming-", suffix=".tmp", dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, final)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        return final


class _Controller(Controller):
    """aiosmtpd's Controller, able to listen on port 0 (it would probe port 0 otherwise)."""

    def _trigger_server(self) -> None:
        if self.port == 0 and self.server is not None:
            self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SmtpSink:
    """A running sink: ``.host``, ``.port``, ``.directory``, ``.stop()``; a context manager."""

    def __init__(self, controller: _Controller, directory: Path) -> None:
        self._controller = controller
        self.host = controller.hostname
        self.port = controller.port
        self.directory = directory
        self._lock = threading.Lock()
        self._stopped = False

    def messages(self) -> list[EmailMessage]:
        return read_mailbox(self.directory)

    def stop(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._controller.stop()

    def __enter__(self) -> SmtpSink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_smtp_sink(
    directory: str | os.PathLike[str], host: str = "127.0.0.1", port: int = 0
) -> SmtpSink:
    """Start the sink in a background thread; ``port=0`` picks a free port (see ``.port``)."""
    handler = MailboxHandler(directory)
    controller = _Controller(
        handler,
        hostname=host,
        port=port,
        server_hostname="smtp-sink.localhost",
        data_size_limit=50 * 1024 * 1024,
        enable_SMTPUTF8=True,
    )
    controller.start()
    return SmtpSink(controller, handler.directory)


def mailbox_files(directory: str | os.PathLike[str]) -> list[Path]:
    """The stored ``.eml`` files, oldest first (file names start with a UTC timestamp)."""
    path = Path(directory)
    if not path.is_dir():
        return []
    return sorted(
        (p for p in path.iterdir() if p.name.endswith(EML_SUFFIX) and not p.name.startswith(".")),
        key=lambda p: p.name,
    )


def read_message(path: str | os.PathLike[str]) -> EmailMessage:
    with open(path, "rb") as f:
        message = BytesParser(policy=email.policy.default).parse(f)
    assert isinstance(message, EmailMessage)
    return message


def read_mailbox(directory: str | os.PathLike[str]) -> list[EmailMessage]:
    """Every stored message as an ``EmailMessage``, sorted by file name (oldest first)."""
    messages = []
    for path in mailbox_files(directory):
        try:
            messages.append(read_message(path))
        except FileNotFoundError:  # deleted meanwhile
            continue
    return messages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chargeflow.localdev.smtp_sink",
        description="SMTP sink storing every message as an .eml file.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=1025, help="port (default 1025, 0 = any)")
    parser.add_argument("--dir", default="var/mailbox", help="mailbox directory")
    args = parser.parse_args(argv)

    try:
        sink = start_smtp_sink(args.dir, host=args.host, port=args.port)
    except OSError as exc:
        _log(f"cannot listen on {args.host}:{args.port}: {exc}")
        return 1

    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    _log(f"listening on {sink.host}:{sink.port}, storing into {sink.directory.resolve()}")
    while not stop.wait(0.5):
        pass
    _log("shutting down")
    sink.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
