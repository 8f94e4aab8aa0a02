"""TLS for on-premises servers: a CA bundle, a pinned certificate, or (only when asked) no check.

SAP Business One Service Layers usually run with a self-signed certificate. The safe ways to
trust one are a CA bundle (the PEM that signed it) or a pinned SHA-256 fingerprint of exactly
that certificate; :class:`TlsAdapter` implements both on top of urllib3, so the check happens
during the handshake, before any request (and any credential) is sent. Switching verification
off is possible, but explicit and logged as a warning.

What a failed request's exception says is read here too, for every hook's error mapping: a
refused certificate (:func:`is_certificate_rejection`, :func:`is_pin_mismatch`), a dropped
connection (:func:`is_transport_drop`), or a request that never reached the server
(:func:`never_sent`).
"""

from __future__ import annotations

import logging
import re
import ssl
from collections.abc import Iterator
from typing import Any

import requests
from requests.adapters import HTTPAdapter

log = logging.getLogger(__name__)

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def normalise_fingerprint(fingerprint: str) -> str:
    """Return a SHA-256 fingerprint as 64 lower-case hex digits, colons and spaces removed.

    :param fingerprint: the fingerprint as shown by ``openssl x509 -fingerprint -sha256`` or
        as plain hex.
    :raises ValueError: when it is not a SHA-256 fingerprint (weaker digests are refused).
    """
    cleaned = re.sub(r"[\s:]", "", fingerprint).lower()
    if not _HEX64.match(cleaned):
        raise ValueError(
            "The pinned certificate fingerprint must be a SHA-256 digest (64 hex digits, colons allowed); "
            "get it with `openssl x509 -noout -fingerprint -sha256 -in cert.pem`."
        )
    return cleaned


class TlsAdapter(HTTPAdapter):
    """A :class:`requests.adapters.HTTPAdapter` that applies one TLS trust decision.

    Exactly one of three modes applies, in this order of precedence:

    * ``fingerprint``: the server certificate's SHA-256 must equal it; chain and host name are
      not checked (that is what a pin replaces), so a self-signed certificate passes and any
      other certificate, even one signed by a public CA, is refused.
    * ``verify=False``: no check at all (a warning is logged once per adapter).
    * otherwise the usual chain and host-name check, against ``ca_bundle`` when given, else
      against the system / certifi store.

    :param verify: ``False`` switches verification off.
    :param ca_bundle: path of a PEM file (or directory) of trusted certificates.
    :param fingerprint: SHA-256 fingerprint of the one certificate to accept.
    :param pool_maxsize: connections kept per host (keep-alive).
    """

    def __init__(
        self,
        *,
        verify: bool = True,
        ca_bundle: str | None = None,
        fingerprint: str | None = None,
        pool_maxsize: int = 4,
    ) -> None:
        self.verify = verify
        self.ca_bundle = ca_bundle
        self.fingerprint = normalise_fingerprint(fingerprint) if fingerprint else None
        if self.fingerprint is None and not verify:
            log.warning(
                "TLS certificate verification is switched off for this connection: anyone on the network "
                "path can read and change the traffic; trust the certificate with a CA bundle or a pinned "
                "fingerprint instead."
            )
        # max_retries=0: retries are the hook's business, where it knows whether a request is
        # safe to repeat (urllib3 cannot tell a POST that reached the server from one that did not).
        super().__init__(pool_connections=1, pool_maxsize=pool_maxsize, max_retries=0)

    @property
    def mode(self) -> str:
        """``"pinned"``, ``"off"``, ``"ca_bundle"`` or ``"system"``."""
        if self.fingerprint:
            return "pinned"
        if not self.verify:
            return "off"
        return "ca_bundle" if self.ca_bundle else "system"

    def build_connection_pool_key_attributes(
        self, request: Any, verify: Any, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        # The adapter, not the per-request ``verify`` argument, owns the trust decision, so that
        # no caller can weaken it by accident.
        if self.fingerprint:
            host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, False, cert)
            pool_kwargs["cert_reqs"] = "CERT_NONE"
            pool_kwargs["assert_fingerprint"] = self.fingerprint
            pool_kwargs.pop("ssl_context", None)
            return host_params, pool_kwargs
        if not self.verify:
            return super().build_connection_pool_key_attributes(request, False, cert)
        return super().build_connection_pool_key_attributes(request, self.ca_bundle or True, cert)

    def send(self, request: Any, **kwargs: Any) -> Any:
        if self.fingerprint or not self.verify:
            # Keeps requests' own verify handling from loading a CA store it will not use.
            kwargs["verify"] = False
        elif self.ca_bundle:
            kwargs["verify"] = self.ca_bundle
        return super().send(request, **kwargs)


def _chain(exc: BaseException) -> Iterator[Any]:
    """Walk an exception, its causes, contexts, ``reason`` attributes and arguments."""
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        item = stack.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        if isinstance(item, BaseException):
            stack.extend([item.__cause__, item.__context__, getattr(item, "reason", None)])
            stack.extend(arg for arg in item.args if isinstance(arg, BaseException))


def is_certificate_rejection(exc: BaseException) -> bool:
    """Whether a transport error is the certificate check failing (not a dropped connection).

    A refused certificate is a configuration problem that no retry can fix, whereas an SSL EOF
    or reset in the middle of a reply is an ordinary network failure.

    :param exc: the exception raised by requests / urllib3.
    """
    from urllib3.exceptions import SSLError as Urllib3SSLError

    for item in _chain(exc):
        if isinstance(item, ssl.SSLCertVerificationError):
            return True
        # urllib3 reports a pin mismatch as a bare SSLError raised by its own fingerprint check,
        # with no more specific type to test for.
        if (
            isinstance(item, Urllib3SSLError)
            and item.args
            and isinstance(item.args[0], str)
            and item.args[0].startswith("Fingerprints did not match")
        ):
            return True
    return False


def is_pin_mismatch(exc: BaseException) -> bool:
    """Whether a transport error is a pinned fingerprint not matching the server's certificate.

    :param exc: the exception raised by requests / urllib3.
    """
    from urllib3.exceptions import SSLError as Urllib3SSLError

    return any(
        isinstance(item, Urllib3SSLError)
        and item.args
        and isinstance(item.args[0], str)
        and item.args[0].startswith("Fingerprints did not match")
        for item in _chain(exc)
    )


def is_transport_drop(exc: BaseException) -> bool:
    """Whether a TLS-level error is really the peer dropping the connection (EOF, reset).

    :param exc: the exception raised by requests / urllib3.
    """
    return any(
        isinstance(item, (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionResetError, BrokenPipeError))
        for item in _chain(exc)
    )


def never_sent(exc: requests.RequestException) -> bool:
    """Whether requests failed before the request could reach the server (safe to repeat).

    :param exc: the exception raised by requests.
    """
    from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.SSLError) and not is_transport_drop(exc):
        return True
    return any(
        isinstance(item, (NewConnectionError, ConnectTimeoutError, NameResolutionError))
        for item in _chain(exc)
    )
