"""The email form of a stored message (used by the SMTP and folder destinations).

Everything that identifies the message — Date, Message-ID, List-Id, Subject, both bodies, even
the MIME boundary — comes from the stored payload, so a resend is byte-identical apart from the
addresses (transport) and the headers the mail servers add.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any

from watcher import __version__


def build_email(
    payload: dict[str, Any],
    *,
    sender: str,
    to: Sequence[str] = (),
    cc: Sequence[str] = (),
) -> EmailMessage:
    """multipart/alternative (plain text first, HTML preferred) with the stored headers."""
    message = EmailMessage(policy=SMTP)
    message["Subject"] = payload["subject"]
    message["From"] = sender
    if to:
        message["To"] = ", ".join(to)
    if cc:
        message["Cc"] = ", ".join(cc)
    message["Date"] = payload["date"]
    message["Message-ID"] = payload["message_id"]
    message["List-Id"] = payload["list_id"]
    message["Auto-Submitted"] = "auto-generated"
    message["X-Auto-Response-Suppress"] = "All"
    message["X-Mailer"] = f"news-watcher {__version__}"
    message.set_content(payload["text"], subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(
        payload["html"], subtype="html", charset="utf-8", cte="quoted-printable"
    )
    digest = hashlib.sha256(payload["message_id"].encode()).hexdigest()[:24]
    message.set_boundary(f"=_news-watcher_{digest}")
    return message


def email_bytes(message: EmailMessage) -> bytes:
    return message.as_bytes(policy=SMTP)
