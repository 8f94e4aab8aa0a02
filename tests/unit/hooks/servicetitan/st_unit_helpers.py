"""Canned responses for the ServiceTitan hook's unit tests."""

from __future__ import annotations

import json
from typing import Any

import requests

CLIENT_ID = "cid.unit-test-client"
CLIENT_SECRET = "cs1.unit-test-secret-value"
APP_KEY = "ak1.unit-test-app-key-value"
TENANT = "1234567"


def response(
    status: int = 200, body: Any = None, *, headers: dict[str, str] | None = None, url: str = ""
) -> requests.Response:
    """A ``requests.Response`` with a JSON (or raw bytes / text) body."""
    reply = requests.Response()
    reply.status_code = status
    if isinstance(body, bytes):
        reply._content = body
    elif isinstance(body, str):
        reply._content = body.encode()
    else:
        reply._content = b"" if body is None else json.dumps(body).encode()
    reply.headers.update(headers or {})
    reply.url = url
    return reply
