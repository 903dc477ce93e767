"""Private-address guard for article links (SSRF defence).

Article links come from third-party feeds, so a hostile feed could point the daemon at
`http://127.0.0.1:5432/`, a cloud metadata service (169.254.169.254) or an intranet host. The guard
resolves the host itself, refuses non-public addresses, and then connects to the very address it
checked, so a DNS answer that changes between check and connect (DNS rebinding) cannot slip through.
It sits in the connection layer (an httpcore network backend), so every redirect hop and every new
keep-alive connection is checked, including literal IPs in URLs.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable, Iterable
from typing import Any

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class BlockedAddressError(Exception):
    """A host resolved to an address the guard refuses; `reason` names the kind ("loopback")."""

    def __init__(self, host: str, address: str, reason: str) -> None:
        literal = host.strip("[]") == address
        text = f"{address} is a {reason} address" if literal else f"{host} resolves to {address}"
        super().__init__(text if literal else f"{text} ({reason} address)")
        self.host = host
        self.address = address
        self.reason = reason


def address_problem(address: str | IPAddress) -> str | None:
    """Why `address` must not be fetched ("loopback", "private", ...), or None when it is public.

    IPv6 forms that embed an IPv4 address (IPv4-mapped, 6to4, NAT64) are judged by that address.
    """
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return address_problem(embedded)
    checks = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
        ("non-public", not ip.is_global),  # e.g. 100.64.0.0/10 carrier-grade NAT
    )
    return next((name for name, hit in checks if hit), None)


def _strip_zone(address: str) -> str:
    return address.split("%", 1)[0]


async def resolve_public(
    host: str,
    port: int,
    *,
    problem: Callable[[str], str | None] = address_problem,
) -> list[str]:
    """The addresses of `host`, all public, or BlockedAddressError naming the first bad one.

    Every answer must be public: a name that resolves to one public and one private address is
    refused, because the connection could land on either.
    """
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = _unique(str(info[4][0]) for info in infos)
    for address in addresses:
        reason = problem(_strip_zone(address))
        if reason is not None:
            raise BlockedAddressError(host, address, reason)
    return addresses


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore backend that connects only to addresses `problem` has no objection to."""

    def __init__(
        self,
        inner: httpcore.AsyncNetworkBackend | None = None,
        *,
        problem: Callable[[str], str | None] = address_problem,
    ) -> None:
        self._inner = inner or httpcore.AnyIOBackend()
        self._problem = problem

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await resolve_public(host, port, problem=self._problem)
        except OSError as exc:  # socket.gaierror: keep httpcore's error contract
            raise httpcore.ConnectError(str(exc)) from exc
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None  # getaddrinfo never returns an empty list without raising
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError(f"unix socket {path} refused by the private-address guard")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (exception mapping, streaming) over a GuardedBackend connection pool.

    httpx has no public hook for the network backend, so the pool it builds is replaced by an
    identical one that uses the guard; the constructor fails loudly if httpx changes underneath.
    """

    def __init__(
        self,
        *,
        ssl_context: Any,
        limits: httpx.Limits,
        problem: Callable[[str], str | None] = address_problem,
    ) -> None:
        super().__init__(verify=ssl_context, limits=limits, trust_env=False)
        if not isinstance(getattr(self, "_pool", None), httpcore.AsyncConnectionPool):
            raise RuntimeError("httpx.AsyncHTTPTransport has no _pool: update GuardedTransport")
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(problem=problem),
        )
