"""The private-address guard: address classes, resolution, and the guarded connection layer."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator

import httpx
import pytest
from pytest_httpserver import HTTPServer

from watcher.netguard import (
    BlockedAddressError,
    GuardedTransport,
    address_problem,
    resolve_public,
)


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata service
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("100.64.0.1", "non-public"),  # carrier-grade NAT
        ("8.8.8.8", None),
        ("93.184.216.34", None),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fe80::1%2", "link-local"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:169.254.169.254", "link-local"),
        ("::ffff:8.8.8.8", None),
        ("2002:7f00:1::", "loopback"),  # 6to4 wrapping 127.0.0.1
        ("2002:0808:0808::", None),  # 6to4 wrapping 8.8.8.8
        ("64:ff9b::a00:1", "private"),  # NAT64 wrapping 10.0.0.1
        ("::127.0.0.1", "reserved"),  # deprecated IPv4-compatible form
        ("2001:4860:4860::8888", None),
    ],
)
def test_address_problem(address: str, problem: str | None) -> None:
    assert address_problem(address) == problem


def test_resolving_localhost_is_refused() -> None:
    with pytest.raises(BlockedAddressError) as info:
        asyncio.run(resolve_public("localhost", 80))
    assert info.value.reason == "loopback" and info.value.host == "localhost"
    assert str(info.value).startswith("localhost resolves to ")
    assert str(info.value).endswith("(loopback address)")


@pytest.mark.parametrize("literal", ["127.0.0.1", "::1", "::ffff:127.0.0.1", "10.0.0.7"])
def test_literal_ips_are_checked(literal: str) -> None:
    with pytest.raises(BlockedAddressError) as info:
        asyncio.run(resolve_public(literal, 80))
    assert info.value.address == literal
    assert str(info.value) == f"{literal} is a {info.value.reason} address"


def test_a_permissive_policy_returns_the_addresses() -> None:
    addresses = asyncio.run(resolve_public("127.0.0.1", 80, problem=lambda _: None))
    assert addresses == ["127.0.0.1"]


@pytest.fixture(scope="module")
def running() -> Iterator[HTTPServer]:
    with HTTPServer(host="127.0.0.1", port=0) as instance:
        yield instance


@pytest.fixture
def server(running: HTTPServer) -> HTTPServer:
    running.clear()
    return running


def get(url: str, problem: object = None, **kwargs: object) -> httpx.Response:
    async def go() -> httpx.Response:
        limits = httpx.Limits(max_connections=4)
        options = {} if problem is None else {"problem": problem}
        guarded = GuardedTransport(
            ssl_context=ssl.create_default_context(), limits=limits, **options
        )
        async with httpx.AsyncClient(transport=guarded, **kwargs) as client:  # type: ignore[arg-type]
            return await client.get(url)

    return asyncio.run(go())


def test_transport_refuses_before_connecting(server: HTTPServer) -> None:
    server.expect_request("/x").respond_with_data("secret")
    with pytest.raises(BlockedAddressError):
        get(server.url_for("/x"))
    assert server.log == []


def test_transport_connects_to_the_checked_address_keeping_the_host_name(
    server: HTTPServer,
) -> None:
    server.expect_request("/x").respond_with_data("ok")
    url = f"http://localhost:{server.port}/x"
    response = get(url, problem=lambda address: None if address == "127.0.0.1" else "test")
    assert response.text == "ok"
    assert server.log[0][0].headers["Host"] == f"localhost:{server.port}"


def test_every_redirect_hop_is_checked(server: HTTPServer) -> None:
    internal = f"http://127.0.0.2:{server.port}/admin"
    server.expect_request("/r").respond_with_data("", status=302, headers={"Location": internal})
    only_first = lambda address: None if address == "127.0.0.1" else "internal"  # noqa: E731
    with pytest.raises(BlockedAddressError) as info:
        get(server.url_for("/r"), problem=only_first, follow_redirects=True)
    assert info.value.address == "127.0.0.2"
    assert len(server.log) == 1
