"""A test certificate authority and a scripted HTTPS server on loopback.

For tests that need real TLS (client ID metadata documents, mostly)::

    ca = shared_ca()                                 # CertificateAuthority, made once
    with serve_https(ca, {"/client.json": Reply.json({...})}) as server:
        server.url("/client.json")                   # https://localhost:PORT/client.json
        ...                                          # fetch it, trusting ca.client_context()
        server.requests                              # [Request(method, path, host, headers)]

- ``CertificateAuthority``: ``create()``, ``issue(names)`` (PEM certificate, PEM key; a
  name that is an IP address becomes an IP SAN), ``client_context()`` (an
  ``ssl.SSLContext`` trusting only this CA), ``write_pem(directory)`` (the CA
  certificate as a file, for ``SSL_CERT_FILE`` in a subprocess).
- ``Reply``: what the server answers on a path: status, headers, body (bytes, or a list
  of chunks), ``delay`` seconds before each chunk, ``chunked`` transfer coding.
- ``serve_https(ca, routes, *, address, port, names, keep_alive)``: a context manager
  running an ``HTTPSServer`` in threads on ``address`` (127.0.0.1; the rest of 127/8 and
  ::1 work too); ``routes`` may be changed while it runs; unknown paths get 404.
  ``server.requests`` records every request, ``server.connections`` every TCP
  connection accepted (a TLS handshake that failed included). Being threaded, it
  serves sync and async tests alike.
- ``serve_documents(directory)``: a ``DocumentHost`` publishing clients' metadata
  documents, its CA written to ``directory`` for a subprocess (the ``documents``
  fixture of ``conftest.py``).
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
import json
import socket
import socketserver
import ssl
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: The names the server's certificate covers unless told otherwise.
DEFAULT_NAMES = ("localhost", "docs.test", "127.0.0.1", "127.0.0.2", "::1")
JSON = (("Content-Type", "application/json"),)


@dataclass(frozen=True)
class CertificateAuthority:
    """A throwaway CA: it signs server certificates that clients trusting it accept."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def create(cls, name: str = "asgi_oauth test CA") -> CertificateAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        certificate = (
            _builder(subject, subject, key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        return cls(certificate, key)

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def issue(self, names: Sequence[str]) -> tuple[bytes, bytes]:
        """A server certificate for ``names`` (DNS names or IP addresses) and its key, PEM."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
        certificate = (
            _builder(subject, self.certificate.subject, key.public_key())
            .add_extension(x509.SubjectAlternativeName([_san(n) for n in names]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return certificate.public_bytes(serialization.Encoding.PEM), key_pem

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this CA and nothing else, names checked."""
        return ssl.create_default_context(cadata=self.pem.decode())

    def server_context(self, names: Sequence[str]) -> ssl.SSLContext:
        """A server context presenting a fresh certificate for ``names``."""
        certificate, key = self.issue(names)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory() as directory:
            cert_file, key_file = Path(directory, "cert.pem"), Path(directory, "key.pem")
            cert_file.write_bytes(certificate)
            key_file.write_bytes(key)
            context.load_cert_chain(cert_file, key_file)
        return context

    def write_pem(self, directory: Path) -> Path:
        """The CA certificate as ``directory/ca.pem``: what ``SSL_CERT_FILE`` points at."""
        path = directory / "ca.pem"
        path.write_bytes(self.pem)
        return path


@functools.cache
def shared_ca() -> CertificateAuthority:
    """One CA for the whole test run (making keys is cheap, but not free)."""
    return CertificateAuthority.create()


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


@dataclass(frozen=True)
class Reply:
    """A scripted answer. ``body`` as a list is sent chunk by chunk, ``delay`` seconds
    before each; with ``chunked`` in the chunked transfer coding, else with a
    Content-Length of the whole (unless ``headers`` already give one)."""

    status: int = 200
    body: bytes | Sequence[bytes] = b"{}"
    headers: Sequence[tuple[str, str]] = JSON
    delay: float = 0.0
    chunked: bool = False

    @classmethod
    def json(
        cls, value: object, *, headers: Sequence[tuple[str, str]] = JSON, status: int = 200
    ) -> Reply:
        return cls(status=status, body=json.dumps(value).encode(), headers=headers)

    @property
    def chunks(self) -> list[bytes]:
        return [self.body] if isinstance(self.body, bytes) else list(self.body)


@dataclass(frozen=True)
class Request:
    """A request the server received."""

    method: str
    path: str
    #: The Host header as sent, or None.
    host: str | None
    headers: Mapping[str, str]


@dataclass
class HTTPSServer:
    """What a running ``serve_https`` exposes to the test."""

    address: str
    port: int
    routes: dict[str, Reply]
    #: Keep connections open between requests (HTTP/1.1 persistent connections).
    keep_alive: bool = False
    requests: list[Request] = field(default_factory=list)
    connections: int = 0

    def url(self, path: str, host: str = "localhost") -> str:
        """``https://host:port/path``; an IPv6 ``host`` is given in brackets."""
        return f"https://{host}:{self.port}{path}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 5
    server: _TLSServer

    def setup(self) -> None:
        self.request.settimeout(self.timeout)
        self.request = self.server.tls.wrap_socket(self.request, server_side=True)
        super().setup()

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.request.close()

    def do_GET(self) -> None:
        state = self.server.state
        headers = {name.lower(): value for name, value in self.headers.items()}
        path = self.path
        state.requests.append(Request(self.command, path, self.headers.get("Host"), headers))
        reply = state.routes.get(path, Reply(404, b"not found", (("Content-Type", "text/plain"),)))
        self.close_connection = not state.keep_alive
        chunks = reply.chunks
        lines = [f"HTTP/1.1 {reply.status} {_reason(reply.status)}", *_joined(reply.headers)]
        names = {name.lower() for name, _ in reply.headers}
        if reply.chunked:
            lines.append("Transfer-Encoding: chunked")
        elif "content-length" not in names:
            lines.append(f"Content-Length: {sum(map(len, chunks))}")
        if not state.keep_alive:
            lines.append("Connection: close")
        try:
            self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            self.wfile.flush()
            for chunk in chunks:
                if self.server.stopping.wait(reply.delay):
                    return
                data = b"%x\r\n%s\r\n" % (len(chunk), chunk) if reply.chunked else chunk
                self.wfile.write(data)
                self.wfile.flush()
            if reply.chunked:
                self.wfile.write(b"0\r\n\r\n")
        except OSError:
            return  # the client went away: a fetch that gave up, as it should

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test asserts on ``server.requests`` instead."""


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Status"


def _joined(headers: Sequence[tuple[str, str]]) -> list[str]:
    return [f"{name}: {value}" for name, value in headers]


class _TLSServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, state: HTTPSServer, tls: ssl.SSLContext) -> None:
        self.state = state
        self.tls = tls
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.address_family = socket.AF_INET6 if ":" in state.address else socket.AF_INET
        super().__init__((state.address, state.port), _Handler)
        state.port = self.server_address[1]

    def verify_request(self, request: object, client_address: object) -> bool:
        with self.lock:
            self.state.connections += 1
        return True

    def handle_error(self, request: object, client_address: object) -> None:
        """A failed handshake (the client refused the certificate) is part of the test."""


@contextmanager
def serve_https(
    ca: CertificateAuthority,
    routes: Mapping[str, Reply] | None = None,
    *,
    address: str = "127.0.0.1",
    port: int = 0,
    names: Sequence[str] = DEFAULT_NAMES,
    keep_alive: bool = False,
) -> Iterator[HTTPSServer]:
    """An HTTPS server on ``address:port`` (0: a free port) with a certificate for ``names``."""
    state = HTTPSServer(address, port, dict(routes or {}), keep_alive)
    server = _TLSServer(state, ca.server_context(names))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state
    finally:
        server.stopping.set()
        server.shutdown()
        thread.join()
        server.server_close()


@dataclass(frozen=True)
class DocumentHost:
    """An https server on loopback publishing clients' metadata documents, and its CA
    as a file (the example trusts it through ``SSL_CERT_FILE``)."""

    server: HTTPSServer
    ca_file: Path

    def publish(self, name: str, **metadata: object) -> str:
        """A document at ``/<name>.json`` naming its own URL as ``client_id``; the URL."""
        path = f"/{name}.json"
        url = self.server.url(path)
        self.server.routes[path] = Reply.json({"client_id": url, **metadata})
        return url

    def fetches(self, url: str) -> int:
        """How many times the document at ``url`` was asked for."""
        return sum(request.path == urlsplit(url).path for request in self.server.requests)


@contextmanager
def serve_documents(directory: Path) -> Iterator[DocumentHost]:
    ca = shared_ca()
    with serve_https(ca) as server:
        yield DocumentHost(server, ca.write_pem(directory))
