"""Networks a studio really has: proxies in the environment, a TLS-inspecting proxy's CA, certificates that fail."""

from __future__ import annotations

import http.server
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import List, Tuple

import pytest
from tether import network
from tether.errors import ConfigError, ServiceUnavailable
from tether.http import BaseClient, RetryPolicy
from tether_services.server import LocalServices

PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy",
              "no_proxy", *network.CA_BUNDLE_VARIABLES, "SSL_CERT_DIR")


@pytest.fixture(autouse=True)
def _clean_network_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)


class RecordingProxy:
    """A proxy that writes down the first line of each request and refuses it (403)."""

    def __init__(self) -> None:
        self.lines: List[str] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                self.lines.append(conn.recv(4096).split(b"\r\n", 1)[0].decode())
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


@pytest.fixture
def proxy() -> Iterator[RecordingProxy]:
    server = RecordingProxy()
    yield server
    server.sock.close()


def test_loopback_never_goes_through_the_proxy(local_services: LocalServices, proxy: RecordingProxy,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy"):
        monkeypatch.setenv(name, proxy.url)
    with BaseClient("autopilot", local_services.url("autopilot"), retry=RetryPolicy(attempts=1)) as client:
        reply = client.json("GET", "/api/jobs", headers={"x-api-key": "local-autopilot-key"})
    assert reply["items"] is not None
    assert proxy.lines == []
    assert network.proxy_for(local_services.url("farm")) is None


def test_vendor_urls_go_through_https_proxy_unless_no_proxy(proxy: RecordingProxy,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    with BaseClient("tensorpix", "https://api.tensorpix.ai", retry=RetryPolicy(attempts=1)) as client, \
            pytest.raises(ServiceUnavailable):
        client.request("GET", "/v1/ml-models/")
    assert proxy.lines == ["CONNECT api.tensorpix.ai:443 HTTP/1.1"]
    assert network.proxy_for("https://api.tensorpix.ai/v1") == proxy.url
    monkeypatch.setenv("NO_PROXY", ".tensorpix.ai,example.com")
    assert network.proxy_for("https://api.tensorpix.ai/v1") is None
    assert network.proxy_for("https://api.move.ai/ugc/graphql") == proxy.url
    assert network.redact_proxy("http://me:pw@proxy.studio:3128") == "http://proxy.studio:3128"


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[str, Path, List[str]]]:
    """An HTTPS server on 127.0.0.1 with a certificate no trust store knows (as behind a TLS-inspecting proxy)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "studio-ca.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    hits: List[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    class Server(http.server.ThreadingHTTPServer):
        accepted: List[str] = []

        def get_request(self) -> Tuple[socket.socket, object]:
            conn, addr = super().get_request()
            self.accepted.append(str(addr))
            return conn, addr

        def handle_error(self, request: object, client_address: object) -> None:
            pass

    server = Server(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}", cert, server.accepted
    server.shutdown()


def test_a_certificate_error_is_not_retried_and_says_what_to_set(tls_server: Tuple[str, Path, List[str]]) -> None:
    url, _, accepted = tls_server
    slept: List[float] = []
    before = len(accepted)
    with BaseClient("farm", url, sleep=slept.append) as client, pytest.raises(ServiceUnavailable) as caught:
        client.request("GET", "/api/packages")
    message = str(caught.value)
    assert "certificate of 127.0.0.1 is not trusted" in message and "REQUESTS_CA_BUNDLE" in message
    assert "is the service running" not in message
    assert slept == [] and len(accepted) - before == 1


@pytest.mark.parametrize("variable", network.CA_BUNDLE_VARIABLES)
def test_the_ca_bundle_variables_are_honoured(tls_server: Tuple[str, Path, List[str]], variable: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    url, cert, _ = tls_server
    monkeypatch.setenv(variable, str(cert))
    with BaseClient("farm", url) as client:
        assert client.json("GET", "/api/packages") == {}
    assert network.trust_store() == f"CA bundle {cert} (from {variable})"


def test_a_missing_ca_bundle_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "nope.pem"))
    with pytest.raises(ConfigError, match=r"SSL_CERT_FILE names .*nope\.pem, which does not exist"):
        assert BaseClient("farm", "https://api.example").http


def test_the_os_trust_store_is_the_default() -> None:
    pytest.importorskip("truststore")
    assert type(network.ssl_context()).__module__.startswith("truststore")
    assert network.trust_store() == "the operating system's trust store (truststore)"


def test_doctor_shows_the_proxy_and_the_trust_store(proxy: RecordingProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    from tether_install import doctor

    monkeypatch.setenv("HTTPS_PROXY", "http://me:secret@proxy.studio:3128")
    monkeypatch.setenv("TETHER_TENSORPIX_URL", "https://api.tensorpix.ai")
    rows = {row["check"]: row["detail"] for row in doctor.check_network(None)}
    assert rows["network: trust store"] == network.trust_store()
    assert rows["network: proxy for tensorpix"] == "https://api.tensorpix.ai via http://proxy.studio:3128"
    assert rows["network: proxy for farm"].endswith("direct (no proxy)")
    assert "secret" not in str(rows)
