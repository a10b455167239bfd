"""The client ID metadata document fetcher, through a real TLS server on loopback.

Attacks first: document URLs that reach loopback, private and link-local addresses
(by name, by literal, wrapped in IPv6), DNS rebinding, redirects, oversized and slow
documents. Then what a good document gives, and every other way a fetch fails.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from asgi_oauth import Settings
from asgi_oauth.client_documents.addresses import host_matches, is_public_address
from asgi_oauth.client_documents.fetch import (
    DEFAULT_CACHE,
    MAX_CACHE,
    MIN_CACHE,
    DocumentFetcher,
    DocumentFetchError,
    FetchedDocument,
    FetchPolicy,
    check_document_url,
    default_ssl_context,
    looks_like_document_url,
)

from .https_helpers import JSON, CertificateAuthority, HTTPSServer, Reply, serve_https, shared_ca

pytestmark = pytest.mark.anyio

PATH = "/oauth/client.json"
PRIVATE = "private or special-use address"


def document(server: HTTPSServer, host: str = "docs.test") -> dict[str, object]:
    return {"client_id": server.url(PATH, host), "client_name": "Docs", "redirect_uris": []}


class Resolver:
    """Answers in turn (the last one repeated), and remembers every question."""

    def __init__(self, *answers: list[str] | BaseException) -> None:
        self.answers = answers
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        answer = self.answers[min(len(self.calls), len(self.answers)) - 1]
        if isinstance(answer, BaseException):
            raise answer
        return answer


async def fetch(
    url: str,
    resolver: Resolver | None = None,
    *,
    ssl_context: ssl.SSLContext | None = None,
    **policy: Any,
) -> FetchedDocument:
    fetcher = DocumentFetcher(
        FetchPolicy(**policy),
        resolver=resolver or Resolver(["127.0.0.1"]),
        ssl_context=ssl_context or shared_ca().client_context(),
    )
    try:
        return await fetcher.fetch(url)
    finally:
        await fetcher.aclose()


async def refusal(url: str, resolver: Resolver | None = None, **policy: Any) -> str:
    """The message of the ``DocumentFetchError`` the fetch raises (nothing else may escape)."""
    with pytest.raises(DocumentFetchError) as caught:
        await fetch(url, resolver, **policy)
    return str(caught.value)


@pytest.fixture
def server() -> Iterator[HTTPSServer]:
    with serve_https(shared_ca()) as running:
        running.routes[PATH] = Reply.json(document(running))
        yield running


# --- SSRF: nothing reaches a non-public address -----------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        ["127.0.0.1"],
        ["10.0.0.1"],
        ["192.168.1.1"],
        ["169.254.169.254"],  # cloud metadata
        ["100.64.0.1"],
        ["0.0.0.0"],
        ["::1"],
        ["::ffff:127.0.0.1"],
        ["64:ff9b::a9fe:a9fe"],  # NAT64 of 169.254.169.254
        ["2002:7f00:1::1"],  # 6to4 of 127.0.0.1
        ["fe80::1"],
        ["fd00::1"],
        ["93.184.215.14", "127.0.0.1"],  # one bad address is enough
        ["2606:2800:21f:cb07:6820:80da:af6b:8b2c", "10.1.2.3"],
    ],
)
async def test_a_host_resolving_to_a_non_public_address_is_refused_before_any_connection(
    server: HTTPSServer, answer: list[str]
) -> None:
    resolver = Resolver(answer)
    message = await refusal(server.url(PATH, "docs.test"), resolver)
    assert PRIVATE in message
    assert not any(address in message for address in answer)  # nothing internal shown
    assert resolver.calls == [("docs.test", server.port)]
    assert server.connections == 0
    assert server.requests == []


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "[::1]", "[::ffff:127.0.0.1]", "169.254.169.254", "10.0.0.1", "[fe80::1]"],
)
async def test_an_ip_literal_url_is_checked_the_same_way_without_resolving(
    server: HTTPSServer, host: str
) -> None:
    resolver = Resolver(["127.0.0.1"])
    assert PRIVATE in await refusal(f"https://{host}:{server.port}{PATH}", resolver)
    assert resolver.calls == []
    assert server.connections == 0


@pytest.mark.parametrize("host", ["127.1", "2130706433", "0x7f.1", "0177.0.0.1"])
async def test_numeric_hosts_getaddrinfo_would_read_as_loopback_are_refused(
    server: HTTPSServer, host: str
) -> None:
    resolver = Resolver(["127.0.0.1"])
    assert "host is not valid" in await refusal(f"https://{host}:{server.port}{PATH}", resolver)
    assert resolver.calls == []
    assert server.connections == 0


@pytest.mark.parametrize("private_addresses", [False, True])
async def test_the_system_resolver_is_checked_too(
    server: HTTPSServer, private_addresses: bool
) -> None:
    fetcher = DocumentFetcher(
        FetchPolicy(private_addresses=private_addresses), ssl_context=shared_ca().client_context()
    )
    try:
        if private_addresses:  # localhost: ::1 first on some systems, then 127.0.0.1
            fetched = await fetcher.fetch(server.url(PATH, "localhost"))
            assert fetched.metadata == document(server)
        else:
            with pytest.raises(DocumentFetchError, match=PRIVATE):
                await fetcher.fetch(server.url(PATH, "localhost"))
            assert server.connections == 0
    finally:
        await fetcher.aclose()


async def test_dns_rebinding_cannot_move_the_request_to_another_address() -> None:
    ca = shared_ca()
    with (
        serve_https(ca) as checked,
        serve_https(ca, address="127.0.0.2", port=checked.port) as other,
    ):
        checked.routes[PATH] = other.routes[PATH] = Reply.json(document(checked))
        resolver = Resolver(["127.0.0.1"], ["127.0.0.2"])
        fetched = await fetch(checked.url(PATH, "docs.test"), resolver, private_addresses=True)
    assert fetched.metadata == document(checked)
    assert resolver.calls == [("docs.test", checked.port)]  # resolved once
    assert [(r.path, r.host) for r in checked.requests] == [(PATH, f"docs.test:{checked.port}")]
    assert other.connections == 0


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_is_refused_and_never_followed(server: HTTPSServer, status: int) -> None:
    with serve_https(shared_ca()) as target:
        target.routes[PATH] = Reply.json(document(server))
        location = (("Location", target.url(PATH)), ("Content-Type", "application/json"))
        server.routes[PATH] = Reply(status, b"{}", location)
        message = await refusal(server.url(PATH, "docs.test"), private_addresses=True)
    assert message == f"the document's URL answered with a redirect (HTTP {status})"
    assert target.connections == 0


async def test_a_content_length_over_the_limit_is_refused_before_the_body_is_read(
    server: HTTPSServer,
) -> None:
    headers = (("Content-Type", "application/json"), ("Content-Length", "40000"))
    server.routes[PATH] = Reply(body=[b"{", b"}"], headers=headers, delay=3)
    started = time.monotonic()
    message = await refusal(server.url(PATH), private_addresses=True, max_bytes=32 * 1024)
    assert message == "the document is larger than 32768 bytes"
    assert time.monotonic() - started < 2  # it did not wait for the body


async def test_a_chunked_body_is_abandoned_past_the_limit(server: HTTPSServer) -> None:
    server.routes[PATH] = Reply(body=[b" " * 4096] * 100, chunked=True)
    message = await refusal(server.url(PATH), private_addresses=True, max_bytes=32 * 1024)
    assert message == "the document is larger than 32768 bytes"


async def test_the_size_limit_is_inclusive(server: HTTPSServer) -> None:
    body = Reply.json(document(server)).chunks[0]
    server.routes[PATH] = Reply(body=[body], chunked=True)
    exact = await fetch(server.url(PATH), private_addresses=True, max_bytes=len(body))
    assert exact.metadata == document(server)
    message = await refusal(server.url(PATH), private_addresses=True, max_bytes=len(body) - 1)
    assert "larger than" in message


async def test_a_drip_fed_document_is_cut_off_at_the_timeout(server: HTTPSServer) -> None:
    # Each byte comes well within the timeout; the whole never does.
    server.routes[PATH] = Reply(body=[b"{", b" ", b" ", b" ", b"}"], delay=0.2)
    started = time.monotonic()
    message = await refusal(server.url(PATH), private_addresses=True, timeout=0.5)
    assert message == "fetching the document took too long"
    assert time.monotonic() - started < 1.5


async def test_a_server_that_never_answers_the_handshake_is_cut_off() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"https://docs.test:{silent.getsockname()[1]}{PATH}"
        message = await refusal(url, private_addresses=True, timeout=0.3)
    assert message == "fetching the document took too long"


# --- A good document ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cache_control", "max_age"),
    [
        (None, DEFAULT_CACHE),
        ("max-age=600", 600),
        ("public, max-age=10", MIN_CACHE),
        ("max-age=9999999", MAX_CACHE),
        ("max-age=600, s-maxage=1200", 1200),
        ("no-store", MIN_CACHE),
        ("no-cache, max-age=600", MIN_CACHE),
        ("max-age=soon", MIN_CACHE),  # RFC 9111 §4.2.1: invalid means stale
        ('max-age="900"', 900),
        ("max-age=" + "9" * 40, MAX_CACHE),  # RFC 9111 §1.2.2: taken as 2**31
        ("max-age=-5", MIN_CACHE),
    ],
)
async def test_a_good_document_and_its_cache_lifetime(
    server: HTTPSServer, cache_control: str | None, max_age: int
) -> None:
    headers = [("Content-Type", "application/json; charset=utf-8")]
    if cache_control is not None:
        headers.append(("Cache-Control", cache_control))
    server.routes[PATH] = Reply.json(document(server), headers=headers)
    fetched = await fetch(server.url(PATH, "docs.test"), private_addresses=True)
    assert fetched == FetchedDocument(document(server), max_age)
    [request] = server.requests
    assert (request.method, request.path, request.host) == ("GET", PATH, f"docs.test:{server.port}")
    assert request.headers["accept"] == "application/json"


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
@pytest.mark.parametrize("host", ["docs.test", "[::1]"])
async def test_a_document_is_fetched_over_ipv6(host: str) -> None:
    with serve_https(shared_ca(), address="::1") as server:
        server.routes[PATH] = Reply.json(document(server, host))
        fetched = await fetch(server.url(PATH, host), Resolver(["::1"]), private_addresses=True)
    assert fetched.metadata == document(server, host)
    assert [r.host for r in server.requests] == [f"{host}:{server.port}"]


async def test_the_next_address_is_tried_when_one_refuses(server: HTTPSServer) -> None:
    resolver = Resolver(["127.0.0.3", "127.0.0.1"])  # nothing listens on 127.0.0.3
    fetched = await fetch(server.url(PATH, "docs.test"), resolver, private_addresses=True)
    assert fetched.metadata == document(server)
    assert len(resolver.calls) == 1
    assert len(server.requests) == 1


async def test_one_fetcher_serves_many_fetches_and_closes(server: HTTPSServer) -> None:
    fetcher = DocumentFetcher(
        FetchPolicy(private_addresses=True),
        resolver=Resolver(["127.0.0.1"]),
        ssl_context=shared_ca().client_context(),
    )
    for _ in range(3):
        assert (await fetcher.fetch(server.url(PATH))).metadata == document(server)
    await fetcher.aclose()
    await fetcher.aclose()
    assert len(server.requests) == 3


async def test_a_connection_is_never_reused_for_another_host() -> None:
    """A pooled connection is found by address alone: reused, it would carry the request
    for other.test over a connection whose certificate was checked for docs.test."""
    with serve_https(shared_ca(), names=["docs.test"], keep_alive=True) as server:
        server.routes[PATH] = Reply.json(document(server))
        fetcher = DocumentFetcher(
            FetchPolicy(private_addresses=True),
            resolver=Resolver(["127.0.0.1"]),
            ssl_context=shared_ca().client_context(),
        )
        try:
            assert (await fetcher.fetch(server.url(PATH, "docs.test"))).metadata == document(server)
            with pytest.raises(DocumentFetchError, match="certificate could not be verified"):
                await fetcher.fetch(server.url(PATH, "other.test"))
        finally:
            await fetcher.aclose()
    assert [r.host for r in server.requests] == [f"docs.test:{server.port}"]


async def test_the_default_trust_store_honours_ssl_cert_file(
    server: HTTPSServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ``ssl_context`` the system store is used, so a subprocess can be given the
    test CA through ``SSL_CERT_FILE``; without it the test CA is not trusted."""
    url = server.url(PATH)

    async def fetch_with_default_context() -> FetchedDocument:
        fetcher = DocumentFetcher(
            FetchPolicy(private_addresses=True), resolver=Resolver(["127.0.0.1"])
        )
        try:
            return await fetcher.fetch(url)
        finally:
            await fetcher.aclose()

    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    with pytest.raises(DocumentFetchError, match="certificate could not be verified"):
        await fetch_with_default_context()
    monkeypatch.setenv("SSL_CERT_FILE", str(shared_ca().write_pem(tmp_path)))
    assert (await fetch_with_default_context()).metadata == document(server)


def test_without_a_system_trust_store_certifis_bundle_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "empty.pem").write_text("")
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "empty.pem"))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    assert ssl.create_default_context().cert_store_stats()["x509_ca"] == 0
    assert default_ssl_context().cert_store_stats()["x509_ca"] > 50


# --- TLS: the certificate is checked against the host name, not the address ---------------


async def test_a_certificate_for_another_name_is_refused() -> None:
    with serve_https(shared_ca(), names=["other.test"]) as server:
        server.routes[PATH] = Reply.json(document(server, "other.test"))
        message = await refusal(server.url(PATH, "docs.test"), private_addresses=True)
        # The same server, asked for the name it has a certificate for, answers.
        fetched = await fetch(server.url(PATH, "other.test"), private_addresses=True)
    assert message == "the document's server certificate could not be verified"
    assert fetched.metadata == document(server, "other.test")
    assert [r.host for r in server.requests] == [f"other.test:{server.port}"]


async def test_a_certificate_from_an_untrusted_authority_is_refused(server: HTTPSServer) -> None:
    stranger = CertificateAuthority.create("stranger")
    with pytest.raises(DocumentFetchError, match="certificate could not be verified"):
        await fetch(server.url(PATH), ssl_context=stranger.client_context(), private_addresses=True)
    assert server.requests == []


# --- What the response must be --------------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/html", "text/plain", "application/jsonx", None])
async def test_a_document_not_served_as_json_is_refused(
    server: HTTPSServer, content_type: str | None
) -> None:
    headers = [] if content_type is None else [("Content-Type", content_type)]
    server.routes[PATH] = Reply.json(document(server), headers=headers)
    message = await refusal(server.url(PATH), private_addresses=True)
    assert message == "the document is not served as application/json"


@pytest.mark.parametrize("status", [201, 204, 404, 500])
async def test_any_status_but_200_is_refused(server: HTTPSServer, status: int) -> None:
    server.routes[PATH] = Reply.json(document(server), status=status)
    message = await refusal(server.url(PATH), private_addresses=True)
    assert message == f"the document's URL answered HTTP {status}, not 200"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"client_id=x", "the document is not valid UTF-8 JSON"),
        (b"", "the document is not valid UTF-8 JSON"),
        (b'{"client_name": "\xff"}', "the document is not valid UTF-8 JSON"),
        (b'{"client_id": "a", "client_id": "b"}', "the document is not valid UTF-8 JSON"),
        (b"[" * 20000, "the document is not valid UTF-8 JSON"),
        (b"[]", "the document is not a JSON object"),
        (b'"https://docs.test/"', "the document is not a JSON object"),
        (b"null", "the document is not a JSON object"),
    ],
)
async def test_a_body_that_is_not_a_json_object_is_refused(
    server: HTTPSServer, body: bytes, message: str
) -> None:
    server.routes[PATH] = Reply(body=body)
    assert await refusal(server.url(PATH), private_addresses=True) == message


# --- Every other failure is a DocumentFetchError ----------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        Reply(headers=(*JSON, ("Content-Length", "many"))),
        Reply(body=b'{"client_id": ', headers=(*JSON, ("Content-Length", "100"))),
        Reply(body=[b"{}"], headers=(*JSON, ("Transfer-Encoding", "chunked"))),  # not chunked
    ],
)
async def test_a_response_that_breaks_http_is_refused(
    server: HTTPSServer, reply: Reply, caplog: pytest.LogCaptureFixture
) -> None:
    server.routes[PATH] = reply
    message = await refusal(server.url(PATH), private_addresses=True)
    assert message == "the document's host sent no valid HTTP response"
    assert caplog.text == ""  # the host's fault, not ours: nothing to log


@pytest.mark.parametrize(
    "answer",
    [socket.gaierror(socket.EAI_NONAME, "Name or service not known"), [], ["not-an-address"]],
)
async def test_a_name_that_does_not_resolve_is_refused(
    server: HTTPSServer, answer: list[str] | BaseException
) -> None:
    message = await refusal(server.url(PATH), Resolver(answer))
    assert message == "the document's host name could not be resolved"


async def test_a_refused_connection_is_refused() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    message = await refusal(f"https://docs.test:{port}{PATH}", private_addresses=True)
    assert message == "the document's host could not be reached"


async def test_an_unexpected_error_becomes_a_fetch_error(
    server: HTTPSServer, caplog: pytest.LogCaptureFixture
) -> None:
    message = await refusal(server.url(PATH), Resolver(RuntimeError("resolver bug")))
    assert message == "the document could not be fetched"
    assert "resolver bug" in caplog.text  # the detail goes to the log, not the client


# --- The URL and the host lists ----------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://docs.test/client.json", "must use https"),
        ("HTTPS://docs.test/client.json", "must use https"),
        ("https://docs.test", "must have a path"),
        ("https://docs.test/", "must have a path"),
        ("https://docs.test/client.json#", "must not contain a fragment"),
        ("https://docs.test/client.json#me", "must not contain a fragment"),
        ("https://user@docs.test/client.json", "user name or password"),
        ("https://user:secret@docs.test/client.json", "user name or password"),
        ("https://docs.test/a/../client.json", '"." or ".."'),
        ("https://docs.test/./client.json", '"." or ".."'),
        ("https://docs.test/a/%2E%2e/client.json", '"." or ".."'),
        ("https://docs.test/client.json/..", '"." or ".."'),
        ("https://docs.test/client.json?v=1", "must not contain a query"),
        ("https://docs.test/client.json?", "must not contain a query"),
        ("https:///client.json", "host is not valid"),
        ("https://docs..test/client.json", "host is not valid"),
        ("https://docs_test.example/client.json", "host is not valid"),
        ("https://[::1/client.json", "not a valid URL"),
        ("https://docs.test:99999/client.json", "not a valid URL"),
        ("https://docs.test:0/client.json", "port is not valid"),
        ("https://docs.test/client json", "printable ASCII"),
        ("https://docs.te\tst/client.json", "printable ASCII"),
        ("https://bücher.example/client.json", "printable ASCII"),
        ("https://docs.test/" + "a" * 3000, "longer than 2048"),
    ],
)
async def test_urls_the_draft_forbids_are_refused_before_resolving(url: str, message: str) -> None:
    with pytest.raises(DocumentFetchError, match=message.replace("?", r"\?")):
        check_document_url(url)
    resolver = Resolver(["127.0.0.1"])
    assert message in await refusal(url, resolver, private_addresses=True)
    assert resolver.calls == []


@pytest.mark.parametrize(
    "url",
    [
        "https://docs.test/client.json",
        "https://docs.test:8443/a/b/client.json",
        "https://DOCS.test./client.json",
        "https://203.0.113.7/client.json",
        "https://[2001:db8::1]/client.json",
        "https://docs.test/a%20b/client.json",
    ],
)
def test_urls_the_draft_allows_pass_the_check(url: str) -> None:
    check_document_url(url)


@pytest.mark.parametrize(
    ("client_id", "expected"),
    [
        ("https://docs.test/client.json", True),
        ("https://docs.test/client.json#frag", True),  # then refused, with a reason
        ("https://docs.test", False),
        ("https://docs.test/", False),
        ("http://docs.test/client.json", False),
        ("s6BhdRkqt3", False),
        ("urn:example:client", False),
    ],
)
def test_what_looks_like_a_document_url(client_id: str, expected: bool) -> None:
    assert looks_like_document_url(client_id) is expected


async def test_a_denied_host_is_refused_first(server: HTTPSServer) -> None:
    resolver = Resolver(["127.0.0.1"])
    message = await refusal(
        server.url(PATH, "DOCS.test."),
        resolver,
        allowed_hosts=("docs.test",),
        denied_hosts=("docs.test",),
        private_addresses=True,
    )
    assert message == "documents from this host are refused by this server"
    assert resolver.calls == []


async def test_an_allow_list_of_subdomains_does_not_cover_the_apex() -> None:
    names = ["api.example.com", "example.com"]
    with serve_https(shared_ca(), names=names) as server:
        server.routes[PATH] = Reply.json(document(server, "api.example.com"))
        policy: dict[str, Any] = {"allowed_hosts": ("*.example.com",), "private_addresses": True}
        fetched = await fetch(server.url(PATH, "api.example.com"), **policy)
        apex = await refusal(server.url(PATH, "example.com"), **policy)
        other = await refusal(server.url(PATH, "docs.test"), **policy)
    assert fetched.metadata == document(server, "api.example.com")
    assert apex == other == "documents from this host are not trusted by this server"
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("host", "pattern", "expected"),
    [
        ("docs.test", "docs.test", True),
        ("Docs.Test.", "docs.test", True),
        ("docs.test", "DOCS.TEST.", True),
        ("api.docs.test", "docs.test", False),
        ("api.example.com", "*.example.com", True),
        ("a.b.example.com", "*.example.com", True),
        ("example.com", "*.example.com", False),
        ("badexample.com", "*.example.com", False),
        ("xn--bcher-kva.example", "xn--bcher-kva.example", True),
        ("::1", "[::1]", True),
    ],
)
def test_host_patterns(host: str, pattern: str, expected: bool) -> None:
    assert host_matches(host, pattern) is expected


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.215.14", True),
        ("8.8.8.8", True),
        ("2606:4700::1111", True),
        ("::ffff:8.8.8.8", True),
        ("64:ff9b::808:808", True),
        ("2002:808:808::1", True),
        ("127.0.0.1", False),
        ("127.255.255.254", False),
        ("10.0.0.1", False),
        ("172.16.0.1", False),
        ("192.168.0.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("255.255.255.255", False),
        ("224.0.0.1", False),
        ("233.252.0.1", False),  # multicast documentation, "global" to ipaddress
        ("240.0.0.1", False),
        ("192.0.2.1", False),
        ("198.51.100.1", False),
        ("203.0.113.1", False),
        ("198.18.0.1", False),
        ("::", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("fd12:3456::1", False),
        ("fec0::1", False),  # site-local, "global" to ipaddress
        ("ff02::1", False),
        ("ff0e::1", False),
        ("2001:db8::1", False),
        ("3fff::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("::ffff:169.254.169.254", False),
        ("::127.0.0.1", False),  # IPv4-compatible
        ("::8.8.8.8", False),
        ("64:ff9b::7f00:1", False),  # NAT64 of 127.0.0.1, "global" to ipaddress
        ("64:ff9b::a00:1", False),
        ("64:ff9b:1::1", False),
        ("2002:7f00:1::1", False),  # 6to4 of 127.0.0.1, "global" to ipaddress
        ("2002:a9fe:a9fe::1", False),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),  # Teredo
    ],
)
def test_which_addresses_are_public(address: str, public: bool) -> None:
    assert is_public_address(address) is public


def test_the_policy_comes_from_the_settings() -> None:
    settings = Settings(
        issuer="https://as.example",
        client_id_metadata_document_hosts=("*.example.com",),
        client_id_metadata_document_denied_hosts=("bad.example.com",),
        client_id_metadata_document_max_bytes=1000,
        client_id_metadata_document_timeout=2,
        client_id_metadata_document_private_addresses=True,
    )
    assert FetchPolicy.from_settings(settings) == FetchPolicy(
        allowed_hosts=("*.example.com",),
        denied_hosts=("bad.example.com",),
        private_addresses=True,
        max_bytes=1000,
        timeout=2.0,
    )
    defaults = FetchPolicy.from_settings(Settings(issuer="https://as.example"))
    assert defaults == FetchPolicy()


@pytest.mark.parametrize(
    "policy",
    [
        {"max_bytes": 0},
        {"timeout": 0},
        {"allowed_hosts": ("*",)},
        {"allowed_hosts": ("",)},
        {"denied_hosts": ("a.*.example",)},
        {"denied_hosts": ("*.",)},
    ],
)
def test_a_policy_that_makes_no_sense_is_refused(policy: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"must be positive|a host is"):
        FetchPolicy(**policy)
