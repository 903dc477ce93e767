"""A folder: each digest or alert becomes `<stem>.eml` (open it in any mail program) and
`<stem>.html` (open it in a browser).

The default destination when nothing is configured (`<data_dir>/outbox/`). File names derive from
the delivery's idempotency key and files are written atomically (temp file + rename), so a repeated
send replaces the same two files instead of adding copies.
"""

from __future__ import annotations

import asyncio
import errno
import os
import tempfile
from pathlib import Path
from typing import Any

from watcher.config import FolderDestination, Settings
from watcher.deliver.base import Outgoing, SendFailure, register
from watcher.deliver.mime import build_email, email_bytes

PERMANENT_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR}


def _write_atomically(path: Path, data: bytes) -> None:
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


class FolderWriter:
    def __init__(self, name: str, config: FolderDestination, settings: Settings) -> None:
        self.name = name
        self.path = config.path
        self.sender = settings.smtp.sender
        self.to = settings.smtp.to

    def files(self, message: Outgoing) -> tuple[Path, Path]:
        stem = message.payload["file_stem"]
        return self.path / f"{stem}.eml", self.path / f"{stem}.html"

    async def send(self, message: Outgoing) -> None:
        await asyncio.to_thread(self._write, message)

    def _write(self, message: Outgoing) -> None:
        eml, html = self.files(message)
        email = build_email(message.payload, sender=self.sender, to=self.to)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            _write_atomically(html, message.payload["html"].encode())
            _write_atomically(eml, email_bytes(email))
        except OSError as exc:
            raise SendFailure(
                f"cannot write to {self.path}: {exc.strerror or exc}",
                permanent=exc.errno in PERMANENT_ERRNOS,
            ) from None


@register("folder")
def _factory(name: str, config: Any, settings: Settings) -> FolderWriter:
    return FolderWriter(name, config, settings)
