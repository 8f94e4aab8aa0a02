"""``$batch`` bodies: multipart/mixed parsing and the multipart reply.

A batch is a list of parts; each part is either one ``application/http`` request or a nested
``multipart/mixed`` changeset of such requests. This module only reads and writes the wire
format; executing the requests is the app's business.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

from airflow_provider_b1.sandbox.sap.odata import QueryError


class BatchError(QueryError):
    """A malformed ``$batch`` body (answered 400 / -1000)."""


@dataclass
class BatchRequest:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    content_id: str | None = None


@dataclass
class BatchPart:
    """A single request (``request``) or a changeset (``changeset``)."""

    request: BatchRequest | None = None
    changeset: list[BatchRequest] = field(default_factory=list)

    @property
    def is_changeset(self) -> bool:
        return self.request is None


@dataclass
class BatchReply:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    content_id: str | None = None


_BOUNDARY = re.compile(r'boundary\s*=\s*"?([^";]+)"?', re.IGNORECASE)


def boundary_of(content_type: str) -> str:
    m = _BOUNDARY.search(content_type or "")
    if not m or not content_type.lower().startswith("multipart/mixed"):
        raise BatchError("Content-Type must be multipart/mixed with a boundary")
    return m.group(1).strip()


def _split_head(blob: bytes) -> tuple[dict[str, str], bytes]:
    """Headers (lower-cased names) and the rest, split at the first empty line."""
    blob = blob.lstrip(b"\r\n")
    m = re.search(rb"\r?\n\r?\n", blob)
    if m is None:
        head, rest = blob, b""
    else:
        head, rest = blob[: m.start()], blob[m.end() :]
    headers: dict[str, str] = {}
    for line in re.split(rb"\r?\n", head):
        if not line.strip():
            continue
        name, sep, value = line.decode("utf-8", "replace").partition(":")
        if not sep:
            raise BatchError(f"Malformed header line in batch part: {line[:60]!r}")
        headers[name.strip().lower()] = value.strip()
    return headers, rest


def split_multipart(body: bytes, boundary: str) -> list[bytes]:
    """The raw parts between ``--boundary`` delimiters (the closing ``--boundary--`` ends it)."""
    delim = b"--" + boundary.encode()
    pieces = re.split(rb"(?:\r?\n)?" + re.escape(delim), body)
    if len(pieces) < 2:
        raise BatchError(f"Batch body has no part with boundary '{boundary}'")
    parts = []
    closed = False
    for piece in pieces[1:]:
        if piece.startswith(b"--"):
            closed = True
            break
        parts.append(piece)
    if not closed:
        raise BatchError("Batch body is missing its closing boundary")
    return parts


def _parse_http(headers: dict[str, str], payload: bytes) -> BatchRequest:
    if headers.get("content-type", "").split(";")[0].strip().lower() != "application/http":
        raise BatchError("Each batch part must have Content-Type: application/http")
    payload = payload.lstrip(b"\r\n")
    line_end = re.search(rb"\r?\n", payload)
    request_line = (payload[: line_end.start()] if line_end else payload).decode("utf-8", "replace")
    rest = payload[line_end.end() :] if line_end else b""
    words = request_line.split()
    if len(words) < 2:
        raise BatchError(f"Malformed request line in batch part: '{request_line[:80]}'")
    inner_headers, body = _split_head(rest) if rest.strip() else ({}, b"")
    # Trailing CRLF before the next delimiter belongs to the framing, not the body.
    body = body.rstrip(b"\r\n")
    return BatchRequest(
        method=words[0].upper(),
        target=words[1],
        headers=inner_headers,
        body=body,
        content_id=headers.get("content-id") or inner_headers.get("content-id"),
    )


def parse_batch(body: bytes, content_type: str) -> list[BatchPart]:
    """Parse a ``$batch`` body into parts (requests and changesets)."""
    parts = []
    for raw in split_multipart(body, boundary_of(content_type)):
        headers, payload = _split_head(raw)
        ctype = headers.get("content-type", "")
        if ctype.lower().startswith("multipart/mixed"):
            inner = []
            for sub in split_multipart(payload, boundary_of(ctype)):
                sub_headers, sub_payload = _split_head(sub)
                inner.append(_parse_http(sub_headers, sub_payload))
            parts.append(BatchPart(changeset=inner))
        else:
            parts.append(BatchPart(request=_parse_http(headers, payload)))
    return parts


def _http_block(reply: BatchReply) -> bytes:
    lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if reply.content_id is not None:
        lines.append(f"Content-ID: {reply.content_id}")
    lines.append("")
    lines.append(f"HTTP/1.1 {reply.status} {reply.reason}")
    lines.extend(f"{k}: {v}" for k, v in reply.headers)
    lines.append("")
    return "\r\n".join(lines).encode() + b"\r\n" + reply.body + b"\r\n"


def build_response(results: list[BatchReply | list[BatchReply]]) -> tuple[bytes, str]:
    """A multipart reply; a list inside ``results`` is a changeset's replies."""
    boundary = f"batchresponse_{uuid.uuid4()}"
    out = []
    for item in results:
        out.append(f"--{boundary}\r\n".encode())
        if isinstance(item, list):
            cs = f"changesetresponse_{uuid.uuid4()}"
            out.append(f"Content-Type: multipart/mixed; boundary={cs}\r\n\r\n".encode())
            for reply in item:
                out.append(f"--{cs}\r\n".encode())
                out.append(_http_block(reply))
            out.append(f"--{cs}--\r\n".encode())
        else:
            out.append(_http_block(item))
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/mixed; boundary={boundary}"
