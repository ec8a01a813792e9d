"""Email-verified signing, end to end through a real local SMTP server (aiosmtpd).

Sign → receive the message → open the link (a GET that changes nothing) → confirm (POST) →
receipt; then reuse, expiry, forgery, a repeated address, a mail server that is down, and
the promise that the address is stored and logged nowhere.
"""

from __future__ import annotations

import base64
import email
import logging
import re
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, func, select

from samleng.crypto.leaf import LeafKind, decode_leaf
from samleng.service.app import create_app
from samleng.service.petitions.lifecycle import close_petition, forget_petition
from samleng.service.platform.context import services
from samleng.service.platform.db import upgrade
from samleng.service.platform.dbsession import get_session
from samleng.service.platform.errors import PetitionStateError
from samleng.service.platform.keys import derive_key
from samleng.service.platform.mail import FolderMailer, MailError, SmtpMailer, compose
from samleng.service.platform.models import DedupToken, Leaf, PendingSignature, get_petition
from samleng.service.signing.confirmation import LINK_KEY_PURPOSE, request_confirmation
from samleng.service.signing.signatures import Submission, petition_key, signing_material
from samleng.service.tlog.store import seal_all
from tests.components import PrivateRedis, free_port, require, require_program
from tests.conftest import (
    ORIGIN,
    RECEIPT,
    TEXTS,
    add_petition,
    make_config,
    pending_records,
    receipt_of,
    sign,
)

try:
    from aiosmtpd.controller import Controller
except ImportError:  # pragma: no cover - reported by require() below
    Controller = None

ADDRESS = "Sok.Dara+petition@Example.org"
LINK = re.compile(r"(https?://\S+/confirm/\S+)")


@dataclass
class Inbox:
    """An aiosmtpd handler that keeps what it receives."""

    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(message, EmailMessage)
        self.messages.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def last(self) -> tuple[list[str], EmailMessage]:
        deadline = time.monotonic() + 5
        while not self.messages and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.messages, "no message arrived"
        return self.messages[-1]


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    """A real SMTP server on 127.0.0.1 for the duration of a test."""
    require("aiosmtpd", Controller is not None, "pip install -e '.[dev]'")
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def add_email_petition(app: Flask, slug: str = "mail") -> None:
    add_petition(app, slug=slug, identifier_mode="email", verification_mode="email")


def make_mail_app(tmp_path: Path, database_url: str, port: int, **overrides: Any) -> Flask:
    config = make_config(tmp_path, database_url, smtp_url=f"smtp://127.0.0.1:{port}", **overrides)
    application = create_app(config)
    upgrade(services(application).engine)
    add_email_petition(application)
    add_email_petition(application, "other")
    return application


@pytest.fixture
def mail_app(tmp_path: Path, database_url: str, smtp: tuple[Inbox, int]) -> Iterator[Flask]:
    application = make_mail_app(tmp_path, database_url, smtp[1])
    yield application
    services(application).engine.dispose()


def stored(app: Flask) -> tuple[int, int]:
    """(dedup tokens, pending signatures) in the database."""
    with app.app_context():
        session = get_session()
        tokens = session.scalar(select(func.count()).select_from(DedupToken))
        pending = session.scalar(select(func.count()).select_from(PendingSignature))
        return int(tokens or 0), int(pending or 0)


def link_path(message: EmailMessage) -> str:
    body = message.get_content()
    match = LINK.search(body)
    assert match, body
    return urlsplit(match.group(1)).path


def test_sign_receive_confirm_receipt(
    mail_app: Flask, smtp: tuple[Inbox, int], client: FlaskClient
) -> None:
    inbox, _ = smtp
    client = mail_app.test_client()
    answer = sign(client, "mail", identifier=ADDRESS, name="Sok Dara", locality="Kampot")
    assert answer.status_code == 200
    assert "Check your email" in answer.get_data(as_text=True)
    assert "Set-Cookie" not in answer.headers
    assert stored(mail_app) == (0, 0), "nothing is stored before the confirmation"

    recipients, message = inbox.last()
    assert recipients == [ADDRESS] and message["To"] == ADDRESS
    assert message["Subject"] == "Confirm your signature"
    assert message["Message-ID"].endswith("@petitions.example.org>")
    assert TEXTS["en"]["title"] in message.get_content()
    path = link_path(message)
    assert path.startswith("/en/p/mail/confirm/")

    # Opening the link (or a mail scanner fetching it) counts nothing.
    for _ in range(2):
        page = client.get(path)
        assert page.status_code == 200
        assert 'method="post"' in page.get_data(as_text=True)
        assert page.headers["Cache-Control"] == "no-store"
        assert "Set-Cookie" not in page.headers
    assert stored(mail_app) == (0, 0)

    confirmed = client.post(path)
    assert confirmed.status_code == 200
    assert confirmed.headers["Cache-Control"] == "no-store"
    receipt = receipt_of(confirmed)
    assert stored(mail_app) == (0, 1)
    assert [p.kind for p in pending_records(mail_app)] == [LeafKind.VERIFIED_SIGNATURE]

    seal_all(services(mail_app).engine, services(mail_app).vault)
    with mail_app.app_context():
        session = get_session()
        mail_id = get_petition(session, "mail").id
        leaves = session.scalars(
            select(Leaf.leaf).where(Leaf.petition_id == mail_id).order_by(Leaf.index)
        ).all()
    assert [decode_leaf(leaf).kind for leaf in leaves if leaf] == [
        LeafKind.HEADER,
        LeafKind.VERIFIED_SIGNATURE,
    ]
    check = client.post("/en/p/mail/receipt", data={"receipt": receipt})
    assert check.status_code == 200 and "counted" in check.get_data(as_text=True).lower()
    assert client.get("/p/mail/count.json").get_json()["count"] == 1
    assert stored(mail_app) == (1, 0)

    # The same link again: the same thank-you page with a code that is never stored (so a
    # mailbox reader learns nothing from it), and nothing is added.
    again = client.post(path)
    assert again.status_code == 200
    assert receipt_of(again) != receipt
    assert without_receipt(again, path) == without_receipt(confirmed, path)
    assert client.get(path).status_code == 200
    seal_all(services(mail_app).engine, services(mail_app).vault)
    assert client.get("/p/mail/count.json").get_json()["count"] == 1
    assert stored(mail_app) == (1, 0)


def without_receipt(response: Any, path: str) -> str:
    """A thank-you page with its receipt code and its link (``path``) taken out."""
    page = response.get_data(as_text=True).replace(path.rsplit("/", 1)[1], "LINK")
    return RECEIPT.sub("", page)


def mail_body(message: EmailMessage) -> str:
    """A confirmation message's text with its link (different every time) taken out."""
    return LINK.sub("LINK", message.get_content())


def test_a_repeated_address_gets_the_same_mail_and_the_same_pages(
    mail_app: Flask, smtp: tuple[Inbox, int]
) -> None:
    inbox, _ = smtp
    client = mail_app.test_client()
    first = sign(client, "mail", identifier=ADDRESS)
    # Two links for the same address before either is confirmed: only one can count.
    second = sign(client, "mail", identifier=ADDRESS.lower())
    links = [link_path(message) for _, message in inbox.messages]
    assert len(links) == 2 and links[0] != links[1]
    opened = [client.get(link) for link in links]
    counted = client.post(links[0])
    assert counted.status_code == 200
    assert stored(mail_app) == (0, 1)  # waits, sealed, like any signature
    seal_all(services(mail_app).engine, services(mail_app).vault)
    assert stored(mail_app) == (1, 0)

    # After the address was counted: the same form page, the same message with a link, the
    # same confirmation page, and the same thank-you page (its code is never stored).
    repeat = sign(client, "mail", identifier="sok.dara@example.org")
    assert repeat.status_code == 200
    assert repeat.get_data() == first.get_data() == second.get_data()
    assert len(inbox.messages) == 3
    bodies = {mail_body(message) for _, message in inbox.messages}
    assert len(bodies) == 1 and "LINK" in bodies.pop()
    assert {message["Subject"] for _, message in inbox.messages} == {"Confirm your signature"}
    later = link_path(inbox.last()[1])
    for link, before in zip(links, opened, strict=True):
        after = client.get(link)
        assert (after.status_code, after.get_data()) == (before.status_code, before.get_data())
    # The confirmation page of each link: the same but for the link itself.
    pages = {
        client.get(link).get_data(as_text=True).replace(link.rsplit("/", 1)[1], "LINK")
        for link in (*links, later)
    }
    assert len(pages) == 1
    for link in (links[1], later, links[0]):
        answer = client.post(link)
        assert answer.status_code == 200
        assert without_receipt(answer, link) == without_receipt(counted, links[0])
        assert receipt_of(answer) != receipt_of(counted)
    assert stored(mail_app) == (1, 0)


def test_opening_a_link_reads_no_token(mail_app: Flask, smtp: tuple[Inbox, int]) -> None:
    """A GET reads the link alone: not the tokens, which say whether the address signed."""
    inbox, _ = smtp
    client = mail_app.test_client()
    sign(client, "mail", identifier=ADDRESS)
    path = link_path(inbox.last()[1])
    client.post(path)
    statements: list[str] = []
    engine = services(mail_app).engine

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        assert client.get(path).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert statements, "the page read the petition"
    assert not [sql for sql in statements if "dedup_token" in sql], statements


def test_expired_link_is_refused(mail_app: Flask) -> None:
    with mail_app.app_context():
        session = get_session()
        request = request_confirmation(
            session,
            signing_material(get_petition(session, "mail"), services(mail_app).vault),
            Submission(identifier=ADDRESS),
            now=time.time() - 48 * 3600 - 60,
        )
    client = mail_app.test_client()
    path = f"/km/p/mail/confirm/{request.link}"
    for answer in (client.get(path), client.post(path)):
        assert answer.status_code == 410
        assert answer.headers["Cache-Control"] == "no-store"
    english = client.post(f"/en/p/mail/confirm/{request.link}")
    assert "expired" in english.get_data(as_text=True)
    assert stored(mail_app) == (0, 0)


def test_forged_and_foreign_links_are_refused(mail_app: Flask, smtp: tuple[Inbox, int]) -> None:
    inbox, _ = smtp
    client = mail_app.test_client()
    sign(client, "mail", identifier=ADDRESS)
    path = link_path(inbox.last()[1])
    blob = path.rsplit("/", 1)[1]
    flipped = blob[:40] + ("A" if blob[40] != "A" else "B") + blob[41:]
    for bad in (
        f"/en/p/mail/confirm/{flipped}",
        f"/en/p/mail/confirm/{blob[:-10]}",
        "/en/p/mail/confirm/not-a-link",
        f"/en/p/mail/confirm/{'A' * 5000}",
        f"/en/p/other/confirm/{blob}",
    ):
        answer = client.post(bad)
        assert answer.status_code == 400, bad
        assert "not valid" in answer.get_data(as_text=True)
    assert stored(mail_app) == (0, 0)


def test_confirming_after_the_petition_closed_is_refused(
    mail_app: Flask, smtp: tuple[Inbox, int]
) -> None:
    inbox, _ = smtp
    client = mail_app.test_client()
    sign(client, "mail", identifier=ADDRESS)
    path = link_path(inbox.last()[1])
    with mail_app.app_context():
        session = get_session()
        close_petition(session, get_petition(session, "mail"))
        session.commit()
    assert client.post(path).status_code == 409
    assert stored(mail_app) == (0, 0)


def test_mail_server_down(tmp_path: Path, database_url: str, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    application = make_mail_app(tmp_path, database_url, free_port())
    answer = sign(application.test_client(), "mail", identifier=ADDRESS)
    assert answer.status_code == 503
    assert "could not send" in answer.get_data(as_text=True)
    assert stored(application) == (0, 0)
    logged = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("mail"))
    assert ADDRESS.lower() not in logged.lower()
    services(application).engine.dispose()


def test_links_point_at_the_configured_origin(
    tmp_path: Path, database_url: str, smtp: tuple[Inbox, int]
) -> None:
    # Outside tests and the demo, a forged Host header cannot redirect confirmation links.
    inbox, port = smtp
    application = make_mail_app(tmp_path, database_url, port, testing=False, seal_interval=0)
    client = application.test_client()
    sign(client, "mail", identifier=ADDRESS)
    body = inbox.last()[1].get_content()
    match = LINK.search(body)
    assert match and match.group(1).startswith(f"https://{ORIGIN}/en/p/mail/confirm/")
    services(application).engine.dispose()


def test_the_address_is_stored_and_logged_nowhere(
    mail_app: Flask,
    smtp: tuple[Inbox, int],
    database_url: str,
    tmp_path: Path,
    caplog: Any,
) -> None:
    caplog.set_level(logging.DEBUG)
    inbox, _ = smtp
    client = mail_app.test_client()
    sign(client, "mail", identifier=ADDRESS, comment="UniqueComment4417")
    client.post(link_path(inbox.last()[1]))
    sign(client, "mail", identifier=ADDRESS)
    seal_all(services(mail_app).engine, services(mail_app).vault)
    services(mail_app).engine.dispose()
    needles = [ADDRESS, ADDRESS.lower(), "sokdara@example.org", "sok.dara@example.org"]
    needles.append("UniqueComment4417")
    if database_url.startswith("sqlite"):
        data = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    else:
        pg_dump = require_program("pg_dump", "install postgresql-client")
        data = subprocess.run(
            [pg_dump, "--data-only", "--inserts", database_url], capture_output=True, check=True
        ).stdout
    # What the app logged (the test's own SMTP server logs under "mail.log"; it is not ours).
    logged = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("mail"))
    for needle in needles:
        assert needle.lower().encode() not in data.lower(), needle
        assert needle.lower() not in logged.lower(), needle


def test_khmer_signer_gets_the_khmer_title(mail_app: Flask, smtp: tuple[Inbox, int]) -> None:
    inbox, _ = smtp
    client = mail_app.test_client()
    answer = sign(client, "mail", "km", identifier=ADDRESS)
    assert answer.status_code == 200 and '<html lang="km">' in answer.get_data(as_text=True)
    message = inbox.last()[1]
    assert message.get_content_charset() == "utf-8"
    assert TEXTS["km"]["title"] in message.get_content()
    assert link_path(message).startswith("/km/p/mail/confirm/")


def test_folder_mailer_writes_private_files(tmp_path: Path) -> None:
    folder = tmp_path / "mail"
    mailer = FolderMailer(folder)
    message = compose(
        sender="Samleng <noreply@example.org>",
        recipient="a@example.org",
        subject="Confirm your signature",
        body="ស្វាគមន៍\n",
        domain="example.org",
    )
    mailer.send(message)
    mailer.send(message)
    files = sorted(folder.glob("*.eml"))
    assert len(files) == 2
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        parsed = email.message_from_bytes(path.read_bytes(), policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        assert parsed.get_content() == "ស្វាគមន៍\n"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_smtp_errors_say_nothing_of_the_address() -> None:
    mailer = SmtpMailer(f"smtp://127.0.0.1:{free_port()}")
    message = compose(
        sender="s@example.org", recipient=ADDRESS, subject="x", body="x", domain="example.org"
    )
    with pytest.raises(MailError) as raised:
        mailer.send(message)
    assert ADDRESS not in str(raised.value)
    with pytest.raises(Exception, match="SAMLENG_SMTP_URL"):
        SmtpMailer("http://example.org")


@pytest.fixture(params=["memory", "redis"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PrivateRedis | None]:
    """The limiter's storage: each process's memory (None), or a real Redis."""
    if request.param == "memory":
        yield None
        return
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


def test_mails_to_one_address_are_bounded_per_day(
    tmp_path: Path, database_url: str, smtp: tuple[Inbox, int], storage: PrivateRedis | None
) -> None:
    """Anyone can ask for a confirmation mail to any address: at most 3 a day reach it,
    however the address is written and for whichever petition, and the page never says."""
    inbox, port = smtp
    uri = "memory://" if storage is None else storage.url
    application = make_mail_app(
        tmp_path, database_url, port, ratelimit_storage_uri=uri, ratelimit_mail="3 per day"
    )
    client = application.test_client()
    variants = [ADDRESS, "sok.dara@example.org", "Sok.Dara+x@EXAMPLE.org", "sok.dara+y@example.org"]
    pages = [sign(client, "mail", identifier=variant) for variant in variants]
    pages.append(sign(client, "other", identifier=ADDRESS))
    assert [page.status_code for page in pages] == [200] * 5
    assert len({page.get_data() for page in pages[:4]}) == 1
    assert "at most 3" in pages[0].get_data(as_text=True)
    time.sleep(0.3)
    assert [recipients for recipients, _ in inbox.messages] == [[v] for v in variants[:3]]
    assert stored(application) == (0, 0)
    # Another address is not held back.
    assert sign(client, "mail", identifier="dara@example.org").status_code == 200
    assert inbox.last()[0] == ["dara@example.org"]
    if storage is not None:
        everything = storage.dump_everything()
        assert b"mail" in everything  # the bound really is in Redis
        for needle in ("sok.dara", "sokdara", "example.org"):
            assert needle.encode() not in everything.lower(), needle
    services(application).engine.dispose()


def test_links_cannot_be_opened_once_the_petition_is_forgotten(
    mail_app: Flask, smtp: tuple[Inbox, int]
) -> None:
    """A link is sealed under a key of the petition's own secret, which forget destroys:
    with the database and the master key, a link kept in a mailbox opens no more."""
    inbox, _ = smtp
    sign(mail_app.test_client(), "mail", identifier=ADDRESS, name="Sok Dara")
    blob = link_path(inbox.last()[1]).rsplit("/", 1)[1]
    raw = base64.urlsafe_b64decode(blob + "=" * (-len(blob) % 4))
    with mail_app.app_context():
        session = get_session()
        petition = get_petition(session, "mail")
        keys = signing_material(petition, services(mail_app).vault)
        aad = b"samleng-confirm/v1\n" + petition.origin.encode()
        # While the petition lives, its own key opens the link.
        link_key = petition_key(keys, LINK_KEY_PURPOSE)
        assert ChaCha20Poly1305(link_key).decrypt(raw[:12], raw[12:], aad)
        close_petition(session, petition)
        forget_petition(session, petition, services(mail_app).vault)
        session.commit()
        with pytest.raises(PetitionStateError):
            signing_material(get_petition(session, "mail"), services(mail_app).vault)
    # No key the master key derives opens it: the link is not under an instance-wide key.
    for purpose in ("confirm-link", "form-token", "rate-limit", LINK_KEY_PURPOSE):
        with pytest.raises(InvalidTag):
            ChaCha20Poly1305(derive_key(services(mail_app).vault.master_key, purpose)).decrypt(
                raw[:12], raw[12:], aad
            )
