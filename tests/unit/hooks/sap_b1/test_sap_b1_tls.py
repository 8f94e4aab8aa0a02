"""The TLS adapter against a throwaway self-signed HTTPS server on loopback."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import logging
import ssl
import threading
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from airflow_provider_b1.hooks.sap_b1.errors import SapB1TLSError, never_sent, transport_error
from airflow_provider_b1.utils.tls import TlsAdapter


class _Ok(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


@pytest.fixture(scope="module")
def https_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    fingerprint = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    yield f"https://127.0.0.1:{server.server_address[1]}/", str(cert_path), fingerprint
    server.shutdown()


def _get(url, **adapter_options):
    session = requests.Session()
    session.mount("https://", TlsAdapter(**adapter_options))
    try:
        return session.get(url, timeout=5).text
    except requests.RequestException as exc:
        raise transport_error(exc, url, method="GET", sent=not never_sent(exc)) from None


def test_self_signed_certificate_is_refused_by_default_with_the_fix(https_server):
    url, _, _ = https_server
    with pytest.raises(SapB1TLSError, match="CA bundle"):
        _get(url)


def test_ca_bundle_and_pin_each_let_the_certificate_through(https_server):
    url, ca, fingerprint = https_server
    assert _get(url, ca_bundle=ca) == "ok"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a pin is verification: no InsecureRequestWarning
        assert _get(url, fingerprint=fingerprint) == "ok"
    colons = ":".join(fingerprint[i : i + 2] for i in range(0, 64, 2)).upper()
    assert _get(url, fingerprint=colons) == "ok"


def test_a_wrong_pin_is_refused(https_server):
    url, ca, _ = https_server
    with pytest.raises(SapB1TLSError, match="differs from the pinned one"):
        _get(url, fingerprint="ab" * 32, ca_bundle=ca)


def test_verification_off_works_only_with_a_logged_warning(https_server, caplog):
    url, _, _ = https_server
    caplog.set_level(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert _get(url, verify=False) == "ok"
    assert "verification is switched off" in caplog.text
