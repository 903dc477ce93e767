"""Services that go away and come back, on 127.0.0.1: a TCP proxy in front of PostgreSQL that can be
closed (every connection cut) and reopened on the same port, a webhook receiver and an SMTP server
that can be started later on a port chosen in advance."""

from __future__ import annotations

import asyncio
import email
import threading
import time
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from tests.hostile.proc import free_port


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; `close()` refuses new connections and cuts the open
    ones (the database "goes away"), `open()` listens again on the same port."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self.connections = 0

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(10)

    def open(self) -> None:
        self._call(self._listen())

    def close(self) -> None:
        self._call(self._shut())

    def stop(self) -> None:
        self.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, reuse_address=True
        )

    async def _shut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._open.update((writer, up_writer))
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        self._open.difference_update((writer, up_writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.transport.abort()


# -- a webhook receiver --------------------------------------------------------------------------


@dataclass
class Post:
    key: str
    headers: dict[str, str]
    body: bytes


class WebhookReceiver:
    """Records every POST (Idempotency-Key, headers, body) and answers `status` (200 by default)
    after `delay` seconds; `arrived` counts POSTs as they come in, before the answer."""

    def __init__(
        self, port: int = 0, status: int = 200, answer: bytes = b"{}", delay: float = 0.0
    ) -> None:
        self.posts: list[Post] = []
        self.arrived = 0
        self.delay = delay
        self.status = status
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                outer.arrived += 1
                time.sleep(outer.delay)
                headers = dict(self.headers)
                outer.posts.append(Post(headers.get("Idempotency-Key", ""), headers, body))
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- SMTP ---------------------------------------------------------------------------------------


class Mailbox:
    """aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.original_content, policy=policy.default)
        self.messages.append(message)  # type: ignore[arg-type]
        return "250 OK"


def smtp_server(
    port: int, mailbox: Mailbox, *, refuse_login: bool = False, logins: list[bytes] | None = None
) -> Controller:
    """A started SMTP server on 127.0.0.1:port; with `refuse_login` it offers AUTH and refuses
    every login (535), so a destination with a password fails after sending it. The passwords it
    was given are appended to `logins`."""
    options: dict[str, Any] = {}
    if refuse_login:

        def refuse(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
            if logins is not None:
                logins.append(bytes(getattr(data, "password", b"") or b""))
            return AuthResult(success=False, handled=False)

        options = {"authenticator": refuse, "auth_require_tls": False}
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, **options)
    controller.start()
    return controller
