"""Canned replies and a connection for the Salesforce hook's unit tests: nothing is sent."""

from __future__ import annotations

import json
from typing import Any

import requests

CONSUMER_KEY = "3MVG9unit.test.consumer.key"
CONSUMER_SECRET = "unit-test-consumer-secret-value"
HOST = "https://acme.my.salesforce.com"


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


def errors(code: str, message: str = "it failed", fields: list[str] | None = None) -> list[dict]:
    """Salesforce's error array with one item."""
    return [{"message": message, "errorCode": code, "fields": fields or []}]
