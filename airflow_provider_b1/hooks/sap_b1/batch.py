"""OData ``$batch`` for the Service Layer: build the multipart request, read the multipart reply.

Pure functions over bytes, no I/O, so that the format can be tested against hand-written
samples. Rules honoured (see the Service Layer's ``$batch`` documentation):

* each part is ``Content-Type: application/http`` / ``Content-Transfer-Encoding: binary``
  holding a raw HTTP request, lines separated by CRLF;
* writes may be grouped in a changeset (a nested ``multipart/mixed``), which SAP applies
  atomically; changesets may not hold GETs, and every part of a changeset has a ``Content-ID``
  (required by v2, harmless in v1);
* execution stops at the first failed request and a failed changeset answers once, so the
  reply may hold fewer parts than the request: the requests without an answer are reported as
  not executed.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_b1.hooks.sap_b1.errors import parse_error_body
from airflow_provider_b1.hooks.sap_b1.literals import quote_target

_WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE", "MERGE"})

NOT_EXECUTED = "not executed: an earlier request of the same $batch failed and the Service Layer stops at the first failure"


@dataclass
class BatchRequest:
    """One request inside a ``$batch``.

    :param method: HTTP verb (``GET``, ``POST``, ``PATCH``, ``DELETE``).
    :param path: path relative to the service root, e.g. ``"Orders"`` or ``"Orders(22)"`` (build
        keys with :func:`~airflow_provider_b1.hooks.sap_b1.literals.entity_path`).
    :param body: JSON body of a write.
    :param headers: extra headers of this request (e.g. ``If-Match``).
    :param content_id: the part's ``Content-ID``; numbered automatically when ``None``.
    """

    method: str
    path: str
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    content_id: str | None = None

    @property
    def is_write(self) -> bool:
        return self.method.upper() in _WRITE_METHODS


@dataclass
class BatchResult:
    """The outcome of one :class:`BatchRequest`.

    :param request: the request this answers.
    :param status: HTTP status of its reply, ``None`` when the server never ran it.
    :param body: decoded JSON reply (the created record for a 201), or ``None``.
    :param headers: reply headers, lower-case names.
    :param code: SAP error code when it failed (``int`` when numeric).
    :param message: SAP's error message when it failed, or why it did not run.
    :param rolled_back: it was part of a changeset that failed as a whole.
    """

    request: BatchRequest
    status: int | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    code: int | str | None = None
    message: str | None = None
    rolled_back: bool = False

    @property
    def executed(self) -> bool:
        """Whether the server ran this request (and its status is real)."""
        return self.status is not None

    @property
    def ok(self) -> bool:
        """Whether it ran and succeeded (2xx, not rolled back)."""
        return self.status is not None and 200 <= self.status < 300 and not self.rolled_back

    @property
    def record(self) -> dict[str, Any] | None:
        """The entity returned by a successful request, when the reply carried one."""
        return self.body if self.ok and isinstance(self.body, dict) else None


# A unit is what answers with one top-level reply part: a lone request or a changeset.
Unit = list[int]


def plan_units(requests: list[BatchRequest], *, atomic: bool) -> list[tuple[bool, Unit]]:
    """Group requests into top-level parts: ``(is_changeset, [request indexes])``.

    ``atomic=True`` puts each run of consecutive writes in one changeset (GETs cannot be in
    one, so a GET between writes ends the run). ``atomic=False`` puts every write in a
    changeset of its own: each write is then all-or-nothing by itself, and a failure names
    exactly one request. GETs always travel alone.
    """
    units: list[tuple[bool, Unit]] = []
    for index, request in enumerate(requests):
        if not request.is_write:
            units.append((False, [index]))
        elif atomic and units and units[-1][0] and units[-1][1][-1] == index - 1:
            units[-1][1].append(index)
        else:
            units.append((True, [index]))
    return units


def _http_part(request: BatchRequest, service_path: str, content_id: str | None) -> bytes:
    lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if content_id is not None:
        lines.append(f"Content-ID: {content_id}")
    lines.append("")
    # Percent-encoded like any request line: a space, CR or LF in a path must not end the line
    # (or start a request of its own), and a key stays inside its entity set.
    target = quote_target(request.path if request.path.startswith("/") else service_path + request.path)
    lines.append(f"{request.method.upper()} {target} HTTP/1.1")
    payload = b""
    headers = dict(request.headers)
    for name, value in headers.items():
        if any(char in f"{name}{value}" for char in "\r\n"):
            raise ValueError(
                f"The header {name!r} of {request.method} {target} in $batch holds a line break."
            )
    if request.body is not None:
        payload = json.dumps(request.body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        headers.setdefault("Content-Type", "application/json")
    lines.extend(f"{name}: {value}" for name, value in headers.items())
    lines.append("")
    return "\r\n".join(lines).encode("utf-8") + b"\r\n" + payload + b"\r\n"


def build_batch(
    requests: list[BatchRequest], *, service_path: str, atomic: bool = True, boundary: str | None = None
) -> tuple[bytes, str, list[tuple[bool, Unit]]]:
    """Build a ``$batch`` body.

    :param requests: the requests, in execution order.
    :param service_path: path of the service root, e.g. ``"/b1s/v2/"``: SAP expects each
        inner request line to name the full path.
    :param atomic: group consecutive writes into changesets (see :func:`plan_units`).
    :param boundary: fixed boundary (tests); random otherwise.
    :return: ``(body, content_type, units)``; ``units`` is needed to read the reply.
    """
    fixed = boundary is not None
    boundary = boundary or f"batch_{uuid.uuid4()}"
    units = plan_units(requests, atomic=atomic)
    chunks: list[bytes] = []
    content_ids = _content_ids(requests)
    for is_changeset, indexes in units:
        chunks.append(f"--{boundary}\r\n".encode())
        if not is_changeset:
            chunks.append(_http_part(requests[indexes[0]], service_path, None))
            continue
        changeset = f"changeset_{boundary}_{indexes[0]}" if fixed else f"changeset_{uuid.uuid4()}"
        chunks.append(f"Content-Type: multipart/mixed; boundary={changeset}\r\n\r\n".encode())
        for index in indexes:
            chunks.append(f"--{changeset}\r\n".encode())
            chunks.append(_http_part(requests[index], service_path, content_ids[index]))
        chunks.append(f"--{changeset}--\r\n".encode())
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/mixed; boundary={boundary}", units


def _content_ids(requests: list[BatchRequest]) -> list[str]:
    return [request.content_id or str(index + 1) for index, request in enumerate(requests)]


_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)


def boundary_of(content_type: str) -> str | None:
    """The ``boundary`` parameter of a ``multipart/*`` content type, or ``None``."""
    match = _BOUNDARY.search(content_type or "")
    return match.group(1).strip() if match else None


def split_multipart(body: bytes, boundary: str) -> list[bytes]:
    """Split a multipart body into its parts (headers + body each), ignoring preamble/epilogue."""
    delimiter = re.compile(rb"(?:\r?\n)?--" + re.escape(boundary.encode()) + rb"(--)?[ \t]*(?:\r?\n|$)")
    parts: list[bytes] = []
    start: int | None = None
    for match in delimiter.finditer(body):
        if start is not None:
            parts.append(body[start : match.start()])
        if match.group(1):
            break
        start = match.end()
    return parts


def _split_head(block: bytes) -> tuple[dict[str, str], bytes]:
    match = re.search(rb"\r?\n\r?\n", block)
    if match is None:
        head, rest = block, b""
    else:
        head, rest = block[: match.start()], block[match.end() :]
    headers: dict[str, str] = {}
    for line in re.split(rb"\r?\n", head):
        if b":" in line:
            name, _, value = line.partition(b":")
            headers[name.decode("latin-1").strip().lower()] = value.decode("latin-1").strip()
    return headers, rest


@dataclass
class _Reply:
    content_id: str | None
    status: int
    headers: dict[str, str]
    body: Any


def _parse_http(part: bytes) -> _Reply:
    """An ``application/http`` part: MIME headers, blank line, status line, headers, body."""
    mime_headers, http = _split_head(part)
    http = http.lstrip(b"\r\n")
    line_end = re.search(rb"\r?\n", http)
    status_line = http[: line_end.start()] if line_end else http
    rest = http[line_end.end() :] if line_end else b""
    fields = status_line.split()
    status = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else 0
    if rest.startswith((b"\r\n", b"\n")):
        headers, raw = {}, rest.lstrip(b"\r\n")
    else:
        headers, raw = _split_head(rest)
    raw = raw.strip()
    body: Any = None
    if raw:
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
    return _Reply(mime_headers.get("content-id"), status, headers, body)


def parse_batch_reply(
    body: bytes, content_type: str, requests: list[BatchRequest], units: list[tuple[bool, Unit]]
) -> list[BatchResult]:
    """Read a ``$batch`` reply into one :class:`BatchResult` per request, in request order.

    :param body: the reply body.
    :param content_type: the reply's ``Content-Type`` (carries the boundary).
    :param requests: the requests that were sent.
    :param units: the grouping returned by :func:`build_batch`.
    """
    results = [BatchResult(request=request, message=NOT_EXECUTED) for request in requests]
    boundary = boundary_of(content_type)
    if not boundary:
        raise ValueError("The $batch reply is not multipart (no boundary in its Content-Type).")
    content_ids = _content_ids(requests)
    for (is_changeset, indexes), part in zip(units, split_multipart(body, boundary)):
        headers, inner = _split_head(part)
        nested = (
            boundary_of(headers.get("content-type", ""))
            if "multipart" in headers.get("content-type", "")
            else None
        )
        if nested:
            replies = [_parse_http(p) for p in split_multipart(inner, nested)]
            by_id = {reply.content_id: reply for reply in replies if reply.content_id}
            for position, index in enumerate(indexes):
                reply = by_id.get(content_ids[index])
                if reply is None and position < len(replies) and not by_id:
                    reply = replies[position]
                if reply is not None:
                    _fill(results[index], reply)
            continue
        reply = _parse_http(part)
        for index in indexes:
            _fill(results[index], reply, rolled_back=is_changeset and not 200 <= reply.status < 300)
    return results


def _fill(result: BatchResult, reply: _Reply, *, rolled_back: bool = False) -> None:
    result.status = reply.status
    result.headers = reply.headers
    result.body = reply.body
    result.rolled_back = rolled_back
    result.message = None
    if not 200 <= reply.status < 300 or rolled_back:
        code, message = parse_error_body(reply.body if isinstance(reply.body, dict) else None)
        result.code = code
        result.message = message or (reply.body if isinstance(reply.body, str) else f"HTTP {reply.status}")
