"""Email by SMTP: plain, STARTTLS or implicit TLS, optional AUTH.

smtplib blocks, so each send runs in a worker thread and the daemon's loop keeps polling. SMTP reply
codes decide what happens next: 4xx and dropped connections are retried, 5xx is final (the
delivery goes dead with the server's answer).
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from typing import Any

from watcher.config import EmailDestination, Settings
from watcher.deliver.base import Outgoing, SendFailure, register
from watcher.deliver.mime import build_email

log = logging.getLogger("watcher.deliver.smtp")

DEFAULT_PORTS = {"tls": 465, "starttls": 587, "none": 25}


def tls_context(verify: bool) -> ssl.SSLContext:
    """The system's trust store (or $SSL_CERT_FILE); `verify_tls = false` for self-signed test
    servers accepts any certificate."""
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class SmtpDestination:
    def __init__(self, name: str, config: EmailDestination, settings: Settings) -> None:
        self.name = name
        self.config = config

    @property
    def where(self) -> str:
        port = self.config.port or DEFAULT_PORTS[self.config.security]
        return f"{self.config.host}:{port}"

    async def send(self, message: Outgoing) -> None:
        config = self.config
        if not config.host:
            raise SendFailure(f"destination {self.name!r}: no SMTP host set", permanent=True)
        recipients = [*config.to, *config.cc, *config.bcc]
        if not recipients:
            raise SendFailure(
                f"destination {self.name!r}: no recipients (set to = [...])", permanent=True
            )
        email = build_email(message.payload, sender=config.sender, to=config.to, cc=config.cc)
        refused = await asyncio.to_thread(self._transmit, email, recipients)
        if refused:
            log.warning(
                "%s refused some recipients: %s",
                self.where,
                _describe(refused),
                extra=message.log_extra,
            )

    def _transmit(self, email: Any, recipients: list[str]) -> dict[str, Any]:
        try:
            with self._connect() as client:
                return client.send_message(email, to_addrs=recipients)
        except smtplib.SMTPRecipientsRefused as exc:
            permanent = all(code >= 500 for code, _ in exc.recipients.values())
            raise SendFailure(
                f"{self.where} refused every recipient: {_describe(exc.recipients)}",
                permanent=permanent,
            ) from None
        except smtplib.SMTPResponseException as exc:
            answer = _text(exc.smtp_error)
            raise SendFailure(
                f"{self.where} answered {exc.smtp_code} {answer}", permanent=exc.smtp_code >= 500
            ) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise SendFailure(
                f"{self.where}: {exc} (check `security` for this destination)", permanent=True
            ) from None
        except ssl.SSLCertVerificationError as exc:
            raise SendFailure(
                f"{self.where}: TLS certificate not trusted ({exc.verify_message}); install the CA "
                "or set verify_tls = false",
                permanent=True,
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise SendFailure(f"{self.where}: {exc or type(exc).__name__}") from None

    def _connect(self) -> smtplib.SMTP:
        config = self.config
        port = config.port or DEFAULT_PORTS[config.security]
        context = tls_context(config.verify_tls)
        client: smtplib.SMTP
        if config.security == "tls":
            client = smtplib.SMTP_SSL(
                config.host or "", port, timeout=config.timeout, context=context
            )
        else:
            client = smtplib.SMTP(config.host or "", port, timeout=config.timeout)
        try:
            client.ehlo()
            if config.security == "starttls":
                client.starttls(context=context)
                client.ehlo()
            if config.username:
                password = config.password.get_secret_value() if config.password else ""
                _login(client, config.username, password)
        except BaseException:
            client.close()
            raise
        return client


def _login(client: smtplib.SMTP, username: str, password: str) -> None:
    """AUTH with the best mechanism both sides know, once: smtplib's `login` would try every
    mechanism in turn after a refusal, which some servers answer by hanging."""
    if not client.has_extn("auth"):
        raise smtplib.SMTPNotSupportedError("the server does not offer AUTH")
    offered = client.esmtp_features["auth"].upper().split()
    mechanism = next((m for m in ("CRAM-MD5", "PLAIN", "LOGIN") if m in offered), None)
    if mechanism is None:
        raise smtplib.SMTPNotSupportedError(f"no supported AUTH mechanism among {offered}")
    client.user, client.password = username, password
    method = getattr(client, "auth_" + mechanism.lower().replace("-", "_"))
    client.auth(mechanism, method)
    client.user = client.password = ""  # type: ignore[assignment]


def _text(answer: bytes | str) -> str:
    return answer.decode("utf-8", "replace") if isinstance(answer, bytes) else str(answer)


def _describe(refused: dict[str, Any]) -> str:
    return "; ".join(f"{rcpt}: {code} {_text(text)}" for rcpt, (code, text) in refused.items())


@register("email")
def _factory(name: str, config: Any, settings: Settings) -> SmtpDestination:
    return SmtpDestination(name, config, settings)
