"""Run a sandbox app on loopback: in a thread (tests) or in a separate process (benchmarks).

HTTPS uses a self-signed certificate generated on the spot (CN ``127.0.0.1``, SANs
``127.0.0.1`` and ``localhost``); its PEM doubles as the CA bundle clients trust, and
``cert_sha256`` is its fingerprint for pinning.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"


@dataclass
class Served:
    """A running sandbox server.

    :param base_url: ``http(s)://127.0.0.1:PORT`` (no trailing slash).
    :param ca_path: PEM file to trust (HTTPS only).
    :param cert_sha256: hex SHA-256 of the certificate's DER (HTTPS only).
    """

    base_url: str
    port: int
    ca_path: str | None = None
    cert_sha256: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    _stop: Any = None

    def stop(self) -> None:
        """Stop the server (idempotent)."""
        if self._stop is not None:
            stop, self._stop = self._stop, None
            stop()


def generate_certificate(state_dir: str | os.PathLike | None = None) -> tuple[str, str, str]:
    """Write a self-signed certificate and key for loopback; return (cert, key, sha256)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory = Path(state_dir or tempfile.mkdtemp(prefix="b1-sandbox-"))
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, LOOPBACK),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "B1 sandbox"),
        ]
    )
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(LOOPBACK)), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "sandbox-cert.pem"
    key_path = directory / "sandbox-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    os.chmod(key_path, 0o600)
    fingerprint = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    return str(cert_path), str(key_path), fingerprint


def _bind(host: str, port: int) -> socket.socket:
    if host not in (LOOPBACK, "localhost", "::1"):
        raise ValueError("The sandbox listens on loopback only")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOOPBACK, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _uvicorn_config(app: Any, tls: bool, cert: tuple[str, str, str] | None) -> Any:
    import uvicorn

    kwargs: dict[str, Any] = {
        "log_level": "warning",
        "access_log": False,
        "lifespan": "off",
        "timeout_keep_alive": 30,
    }
    if tls and cert:
        kwargs.update(ssl_certfile=cert[0], ssl_keyfile=cert[1])
    return uvicorn.Config(app, **kwargs)


def serve_in_thread(
    app: Any, *, tls: bool, host: str = LOOPBACK, port: int = 0, state_dir: str | None = None
) -> Served:
    """Serve ``app`` on loopback from a daemon thread; returns once it accepts connections.

    :param app: an ASGI app (e.g. ``airflow_provider_b1.sandbox.sap.create_app()``).
    :param tls: HTTPS with a freshly generated self-signed certificate, else plain HTTP.
    :param port: 0 picks a free port.
    :param state_dir: where the certificate goes (a temporary folder by default).
    """
    import uvicorn

    cert = generate_certificate(state_dir) if tls else None
    sock = _bind(host, port)
    actual = sock.getsockname()[1]
    server = uvicorn.Server(_uvicorn_config(app, tls, cert))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"b1-sandbox-{actual}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("The sandbox server did not start")
        time.sleep(0.01)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()

    scheme = "https" if tls else "http"
    return Served(
        base_url=f"{scheme}://{LOOPBACK}:{actual}",
        port=actual,
        ca_path=cert[0] if cert else None,
        cert_sha256=cert[2] if cert else None,
        _stop=stop,
    )


def serve_in_subprocess(
    *,
    invoices: int = 2000,
    seed: int = 1,
    tls: bool = True,
    port: int = 0,
    session_timeout_seconds: float | None = None,
    login_delay: float = 0.0,
    state_dir: str | None = None,
    extra_args: list[str] | None = None,
    timeout: float = 120.0,
) -> Served:
    """Start ``python -m airflow_provider_b1.sandbox`` and wait for its ready file.

    The returned :class:`Served` describes the SAP server (HTTPS when ``tls``); ``info`` holds
    the whole ready file, including the plain HTTP URL.
    """
    state = Path(state_dir or tempfile.mkdtemp(prefix="b1-sandbox-"))
    ready = state / "ready.json"
    ready.unlink(missing_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "airflow_provider_b1.sandbox",
        "--only",
        "sap",
        "--invoices",
        str(invoices),
        "--seed",
        str(seed),
        "--port",
        str(port),
        "--tls" if tls else "--no-tls",
        "--state-dir",
        str(state),
        "--ready-file",
        str(ready),
        "--login-delay",
        str(login_delay),
        "--quiet",
    ]
    if session_timeout_seconds is not None:
        cmd += ["--session-timeout-seconds", str(session_timeout_seconds)]
    cmd += extra_args or []
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"The sandbox process exited early ({proc.returncode}): {err[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("The sandbox process did not become ready in time")
        time.sleep(0.05)
    info = json.loads(ready.read_text())
    sap = info["sandboxes"]["sap"]

    def stop() -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    return Served(
        base_url=sap["base_url"],
        port=sap["port"],
        ca_path=sap.get("ca_path"),
        cert_sha256=sap.get("cert_sha256"),
        info={**info, "pid": proc.pid},
        _stop=stop,
    )


#: Where :class:`AbortableApp` keeps the server's own ``send`` in a request's scope.
RAW_SEND = "sandbox.raw_send"


def abortable_app(**kwargs: Any) -> Any:
    """A FastAPI app that remembers the server's own ``send`` in each request's scope, so that a
    handler can reset the connection (:func:`abort_connection`)."""
    from fastapi import FastAPI

    class AbortableApp(FastAPI):
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                scope[RAW_SEND] = send
            await super().__call__(scope, receive, send)

    return AbortableApp(**kwargs)


async def abort_connection(request: Any) -> Any:
    """Reset the TCP connection with no reply (RST via SO_LINGER 0) on uvicorn's transport, as a
    dropped connection or a crashed front end does."""
    import asyncio
    import contextlib
    import struct

    from starlette.responses import Response

    send = request.scope.get(RAW_SEND)
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Without RST a plain close still fails the client, so an error here is harmless.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
        if cycle is not None:
            cycle.disconnected = True
            cycle.response_complete = True
        await asyncio.sleep(0)
        return Response(status_code=500)
    # Not on uvicorn's transport: a truncated reply fails the client just as hard.
    return Response(content=b"", status_code=200, headers={"Content-Length": "100000"})
