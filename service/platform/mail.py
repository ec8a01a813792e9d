"""Outgoing mail: SMTP from ``SAMLENG_SMTP_URL``, or a folder of .eml files in the demo.

Mail is only sent to confirm email-verified signatures, so every message holds an address
that must not be kept: nothing here logs a message, an address or an SMTP error text
(smtplib's errors quote the recipient). A failure is one MailError with a fixed message.

URLs: ``smtp://host[:port]`` (plain, for a relay on the same machine or network),
``smtp+starttls://[user:pass@]host[:port]`` (STARTTLS required, certificate checked),
``smtps://[user:pass@]host[:port]`` (TLS from the start, certificate checked).
"""

from __future__ import annotations

import os
import secrets
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from samleng.service.platform.errors import ConfigError, Error

SMTP_TIMEOUT = 15
DEFAULT_PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}


class MailError(Error):
    """A message could not be handed over for delivery."""


class Mailer(Protocol):
    """Something that delivers a message or raises MailError."""

    def send(self, message: EmailMessage) -> None:
        """Hand ``message`` over for delivery."""


def compose(*, sender: str, recipient: str, subject: str, body: str, domain: str) -> EmailMessage:
    """A plain-text UTF-8 message. ``domain`` names the Message-ID (never the local host)."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = subject
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=domain)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(body, charset="utf-8")
    return message


class SmtpMailer:
    """Delivers through an SMTP server given by URL."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            raise ConfigError(
                "SAMLENG_SMTP_URL must look like smtp://host:port, smtp+starttls://user:pass@host"
                ":port or smtps://user:pass@host:port"
            )
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port or DEFAULT_PORTS[parts.scheme]
        self._user = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password or "")

    def send(self, message: EmailMessage) -> None:
        """Send over SMTP; MailError (without the server's text) on any failure."""
        context = ssl.create_default_context()
        try:
            client: smtplib.SMTP
            if self._scheme == "smtps":
                client = smtplib.SMTP_SSL(
                    self._host, self._port, timeout=SMTP_TIMEOUT, context=context
                )
            else:
                client = smtplib.SMTP(self._host, self._port, timeout=SMTP_TIMEOUT)
            with client:
                if self._scheme == "smtp+starttls":
                    client.starttls(context=context)
                if self._user is not None:
                    client.login(self._user, self._password)
                client.send_message(message)
        except (smtplib.SMTPException, OSError):
            raise MailError("the message could not be sent") from None


class FolderMailer:
    """The demo's mail server: each message becomes a .eml file (mode 0600) in a folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def send(self, message: EmailMessage) -> None:
        """Write the message to a new file with a random name (no time in it)."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            path = self.folder / f"{secrets.token_hex(8)}.eml"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(message.as_bytes())
        except OSError:
            raise MailError("the message could not be written") from None


def mailer_for(smtp_url: str | None, demo: bool, instance_path: Path) -> Mailer | None:
    """The mailer the configuration asks for; None when mail is not configured."""
    if smtp_url:
        return SmtpMailer(smtp_url)
    if demo:
        return FolderMailer(instance_path / "mail")
    return None
