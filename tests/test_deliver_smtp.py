"""Email against a real SMTP server (aiosmtpd on 127.0.0.1): plain, STARTTLS and implicit TLS with
a self-signed certificate (trustme), AUTH, the message itself, and a server that is down a while."""

from __future__ import annotations

import asyncio
import email
import hashlib
import socket
import ssl
from datetime import timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.deliverkit import NOW, Corpus, deliveries, open_engine, rule, ruleset, settings_for
from watcher.deliver.service import DeliveryService

pytestmark = pytest.mark.usefixtures("each_backend")  # SQLite and PostgreSQL


class Mailbox:
    """aiosmtpd handler: keeps what it receives; answers DATA with scripted replies, then 250."""

    def __init__(self, replies: list[str] | None = None) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []
        self.replies = list(replies or [])

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.replies:
            return self.replies.pop(0)
        parsed = email.message_from_bytes(envelope.original_content, policy=policy.default)
        self.messages.append((list(envelope.rcpt_tos), parsed))  # type: ignore[arg-type]
        return "250 OK"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, Path]:
    """A server TLS context with a self-signed chain, and the CA file that trusts it."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server)
    ca_file = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return server, ca_file


def start(mailbox: Mailbox, port: int | None = None, **options: Any) -> Controller:
    controller = Controller(mailbox, hostname="127.0.0.1", port=port or free_port(), **options)
    controller.start()
    return controller


def setup(tmp_path: Path, port: int, **mail: Any):
    config = {
        "type": "email",
        "host": "127.0.0.1",
        "port": port,
        "timeout": 5,
        "from": "watcher <watcher@example.org>",
        "to": ["analyst@example.org"],
        **mail,
    }
    settings = settings_for(tmp_path, timezone="Asia/Seoul", destinations={"mail": config})
    engine = open_engine(settings)
    return settings, engine, Corpus(engine)


def tick(settings, engine, rules, now=NOW):
    return asyncio.run(DeliveryService(engine, settings, owner="t").tick(rules, now=now)).results


RULES = ruleset(rule("gsomia", "GSOMIA"), rule("dokdo", "Dokdo/Takeshima", priority="high"))


def seed(corpus: Corpus) -> None:
    corpus.story(
        "GSOMIA <script>alert('x')</script> stays",
        ["Yonhap", "Kyodo", "NHK"],
        ["gsomia"],
        term="GSOMIA",
        snippet="Seoul keeps the GSOMIA pact & more <b>news</b>.",
    )
    corpus.story("Dokdo patrol", ["KBS"], ["dokdo"], term="Dokdo")
    corpus.story("Takeshima day", ["Asahi"], ["dokdo"], term="Takeshima")


def test_a_digest_by_plain_smtp_is_a_well_formed_grouped_escaped_message(tmp_path: Path):
    mailbox = Mailbox()
    server = start(mailbox)
    try:
        settings, engine, corpus = setup(
            tmp_path, server.port, cc=["desk@example.org"], bcc=["archive@example.org"]
        )
        seed(corpus)
        assert [r.status for r in tick(settings, engine, RULES)] == ["sent"]
    finally:
        server.stop()
    ((recipients, message),) = mailbox.messages
    assert sorted(recipients) == ["analyst@example.org", "archive@example.org", "desk@example.org"]
    assert message["Bcc"] is None and message["Cc"] == "desk@example.org"
    key = deliveries(engine)[0].idempotency_key
    assert (
        message["Message-ID"] == f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@news-watcher>"
    )
    assert message["Subject"] == ("news-watcher: 5 new — Dokdo/Takeshima 2 · GSOMIA 3 (21 Nov)")
    assert message["Date"] == "Sat, 21 Nov 2026 09:10:00 +0900"
    assert message["List-Id"] == "news-watcher digests <digest.mail.news-watcher>"
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    # grouped by rule (high priority first), one story shown once with its other outlets
    assert text.index("== Dokdo/Takeshima") < text.index("== GSOMIA")
    assert text.count("GSOMIA <script>") == 1 and "also in: Kyodo, NHK" in text
    assert html.index("Dokdo/Takeshima") < html.index("GSOMIA")
    assert html.count("stays</a>") == 1
    # feed text is escaped in the HTML part
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<b>news</b>" not in html and "&lt;b&gt;news&lt;/b&gt;" in html
    assert "<mark" in html and ">GSOMIA</strong></mark>" in html


@pytest.mark.parametrize("trust", ["verify_tls=false", "custom CA"])
def test_starttls_with_a_self_signed_certificate(tmp_path: Path, certificate, monkeypatch, trust):
    server_context, ca_file = certificate
    mailbox = Mailbox()
    server = start(mailbox, tls_context=server_context, require_starttls=True)
    try:
        if trust == "custom CA":
            monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
            settings, engine, corpus = setup(tmp_path, server.port, security="starttls")
        else:
            settings, engine, corpus = setup(
                tmp_path, server.port, security="starttls", verify_tls=False
            )
        seed(corpus)
        assert [r.status for r in tick(settings, engine, RULES)] == ["sent"]
    finally:
        server.stop()
    assert len(mailbox.messages) == 1


def test_an_untrusted_certificate_is_dead_at_once_and_says_why(tmp_path: Path, certificate):
    server_context, _ = certificate
    server = start(Mailbox(), tls_context=server_context, require_starttls=True)
    try:
        settings, engine, corpus = setup(tmp_path, server.port, security="starttls")
        seed(corpus)
        (result,) = tick(settings, engine, RULES)
    finally:
        server.stop()
    assert result.status == "dead" and "certificate not trusted" in result.error


def test_implicit_tls(tmp_path: Path, certificate):
    server_context, _ = certificate
    mailbox = Mailbox()
    server = start(mailbox, ssl_context=server_context)
    try:
        settings, engine, corpus = setup(tmp_path, server.port, security="tls", verify_tls=False)
        seed(corpus)
        assert [r.status for r in tick(settings, engine, RULES)] == ["sent"]
    finally:
        server.stop()
    assert len(mailbox.messages) == 1


def _authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"watcher",
        b"right horse",
    )
    return AuthResult(success=ok, handled=False)  # unhandled failure: aiosmtpd answers 535


@pytest.mark.parametrize(("password", "status"), [("right horse", "sent"), ("wrong", "dead")])
def test_smtp_auth(tmp_path: Path, password: str, status: str):
    mailbox = Mailbox()
    server = start(
        mailbox, authenticator=_authenticator, auth_required=True, auth_require_tls=False
    )
    try:
        settings, engine, corpus = setup(
            tmp_path, server.port, username="watcher", password=password
        )
        seed(corpus)
        (result,) = tick(settings, engine, RULES)
    finally:
        server.stop()
    assert result.status == status
    assert len(mailbox.messages) == (1 if status == "sent" else 0)
    if status == "dead":
        assert "535" in result.error


def test_4xx_is_retried_and_5xx_is_dead_with_the_answer(tmp_path: Path):
    mailbox = Mailbox(["451 4.3.0 try again later", "550 5.7.1 relaying denied"])
    server = start(mailbox)
    try:
        settings, engine, corpus = setup(tmp_path, server.port)
        seed(corpus)
        (first,) = tick(settings, engine, RULES)
        (second,) = tick(settings, engine, RULES, NOW + timedelta(hours=1))
    finally:
        server.stop()
    assert first.status == "retrying" and "451" in first.error
    assert second.status == "dead" and "550 5.7.1 relaying denied" in second.error
    assert deliveries(engine)[0].last_error == second.error


def test_server_down_then_up_every_digest_arrives_exactly_once(tmp_path: Path):
    port = free_port()
    settings, engine, corpus = setup(tmp_path, port)
    seed(corpus)
    down = [r.status for r in tick(settings, engine, RULES)]  # day 1: no listener
    corpus.now = NOW + timedelta(days=1)
    corpus.story("GSOMIA again", ["Yonhap"], ["gsomia"])
    down += [r.status for r in tick(settings, engine, RULES, NOW + timedelta(days=1))]
    assert down == ["retrying"] * 3  # day 2 retries day 1's digest and tries its own
    assert "refused" in (deliveries(engine)[0].last_error or "").lower()
    mailbox = Mailbox()
    server = start(mailbox, port=port)
    try:
        later = NOW + timedelta(days=1, hours=2)
        up = [r.status for r in tick(settings, engine, RULES, later)]
        again = tick(settings, engine, RULES, later + timedelta(hours=2))
    finally:
        server.stop()
    assert up == ["sent", "sent"] and again == []
    ids = [message["Message-ID"] for _, message in mailbox.messages]
    assert len(ids) == len(set(ids)) == 2
    assert {d.status for d in deliveries(engine)} == {"sent"}
