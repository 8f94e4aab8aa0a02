"""The Service Layer imitation as a FastAPI app: ``/b1s/v1``, ``/b1s/v2`` and ``/_sandbox``.

Sessions: ``POST /Login`` sets ``B1SESSION=<guid>; HttpOnly`` and ``ROUTEID=.node1; path=/b1s``.
A session expires after ``session_timeout_seconds`` without a request (sliding). Unknown or
expired sessions get 401 with code 301 ``Invalid session or session already timeout.`` (or
-5002 with ``expired_session_code=-5002``); v2 adds ``WWW-Authenticate: Basic realm=/b1s/v2/<path>``.

Login failures: wrong company, user or password answer 401 / 100000027 ``Login failed``. After
``lock_after_failures`` (default 5) consecutive failures of a known user, that user is locked:
every later login, even with the right password, answers 401 / **10000962** ``User is locked;
contact your administrator`` until ``POST /_sandbox/unlock`` or ``/_sandbox/reset``.

Bad query options answer 400 / -1000 (``Property 'X' of 'Document' is invalid``, ``Invalid
$filter: ...``); a bad ``$batch`` body 400 / -1000. See ``store`` for business errors and the
type checks of writes.

Keys may hold any character: the path is percent-decoded before the key literal is read quote by
quote (so ``BusinessPartners('a%2Fb%0Ac')`` is the key ``a/b`` newline ``c``), and ``Location``
carries the new key percent-encoded (UTF-8). Inner ``$batch`` request lines are decoded the same way.

Control plane (no session, never subject to faults): ``GET /_sandbox/stats``, ``/faults``,
``/config``, ``/approvals``, ``/cost``, ``/webhooks``; ``DELETE /_sandbox/webhooks``;
``POST /_sandbox/faults``, ``/config``, ``/reset``,
``/expire-sessions``, ``/unlock``, ``/mutate``, ``/corrupt``, ``/repair``, ``/approvals``,
``/cost``; ``GET /_sandbox/truth/<Entity>`` (count, key digest, DocTotal sum and every
non-numeric DocTotal, see :func:`data.truth`); ``POST /_sandbox/seed`` with
``{"entity": "Invoices", "records": [{...}]}`` to hold records exactly as given, past every write
rule (see :meth:`Store.seed_records`). Faults, approvals and the cost model last until the next
reset, which restores the configured ones (off by default).

Approval procedures (``POST /_sandbox/approvals`` with ``{"entity": "Invoices", "threshold":
10000}``; ``{}`` switches them off; see :class:`~.store.ApprovalRule`): a POST of a covered
document whose ``DocTotal`` reaches the threshold stores a ``Drafts`` record (own ``DocEntry``
series, ``DocObjectCode`` naming the document type, ``AuthorizationStatus: dasPending``) and an
``ApprovalRequests`` row (``Status: arsPending``), and answers 404 / -2028 ``No matching records
found (ODBC -2028)`` as SAP 10.0 was recorded answering (``"post_reply": "draft"``: 201 with the
draft and ``Location: .../Drafts(N)``). ``PATCH ApprovalRequests(<Code>)`` with
``ApprovalRequestDecisions`` decides, as a configured approver (``approvers``; they may also log
in); ``POST DraftsService_SaveDraftToDocument`` with ``{"Document": {"DocEntry": N}}`` adds an
approved draft as its document and answers 204.

Cost model (``POST /_sandbox/cost`` with ``{"write_seconds": 0.5, "per_line_seconds": 0.05,
"nodes": 2}``, or ``{"defaults": true}`` for the Service Layer defaults; ``{}`` off; see
:mod:`.cost`): a session is served one request at a time, at most ``nodes`` requests at once
(a login takes a node too), and each login, read, count and write sleeps its cost;
``GET /_sandbox/cost`` (and ``stats["cost"]``) shows the settings in force, the work counted per
kind, the time spent, the concurrency reached and the time requests queued.

Webhooks (v2, see :mod:`.webhooks`): ``EventSubscriptions`` with the handshake, and signed
deliveries of the writes a subscription names, sent and retried from a background thread
(``webhook_*`` settings of ``POST /_sandbox/config``; ``GET /_sandbox/webhooks`` counts them).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

from fastapi import FastAPI, Request
from starlette.convertors import Convertor, register_url_convertor
from starlette.responses import Response

from airflow_provider_b1.sandbox.sap import batch as batchmod
from airflow_provider_b1.sandbox.sap.cost import CostModel, Gate, Work
from airflow_provider_b1.sandbox.sap.data import DOCUMENT_ENTITIES, LINES
from airflow_provider_b1.sandbox.sap.faults import Faults
from airflow_provider_b1.sandbox.sap.odata import QueryError, key_literal, parse_resource, parse_select
from airflow_provider_b1.sandbox.sap.store import PAYMENT_ENTITIES, ApprovalRule, SapError, Store
from airflow_provider_b1.sandbox.sap.webhooks import ACTIONS, EVENT_SUBSCRIPTIONS, SapWebhooks, check_settings
from airflow_provider_b1.sandbox.sap.webhooks import SETTINGS as WEBHOOK_SETTINGS
from airflow_provider_b1.sandbox.server import RAW_SEND, abort_connection

try:  # msgspec ships with Airflow and encodes several times faster than json.
    import msgspec

    _encode: Callable[[Any], bytes] = msgspec.json.encode
except ImportError:  # pragma: no cover

    def _encode(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


V1_JSON = "application/json;odata=minimalmetadata;charset=utf-8"
V2_JSON = "application/json;odata.metadata=minimal;charset=utf-8"
PLAIN_JSON = "application/json;charset=utf-8"
LOGIN_FAILED = (100000027, "Login failed")
USER_LOCKED = (10000962, "User is locked; contact your administrator")
INVALID_SESSION = "Invalid session or session already timeout."
REASONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    412: "Precondition Failed",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
_UNAVAILABLE = (
    b'<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\n<html><head>\n<title>503 Service Unavailable</title>\n'
    b"</head><body>\n<h1>Service Unavailable</h1>\n<p>The server is temporarily unable to service your\n"
    b"request due to maintenance downtime or capacity problems. Please try again later.</p>\n</body></html>\n"
)


@dataclass
class SapSandboxConfig:
    """Settings of one imitated Service Layer.

    :param seed: seed of the generated company data and of nothing else.
    :param invoices: number of A/R invoices; other volumes follow from it.
    :param session_timeout_minutes: the idle timeout announced at Login.
    :param session_timeout_seconds: the idle timeout actually applied (defaults to the minutes).
    :param login_delay: seconds a successful Login takes (real ones take 3-8 s).
    :param failed_login_delay: seconds a failed Login takes.
    :param default_page_size: the server's ``PageSize``.
    :param company_db: the one company database that exists.
    :param users: user name -> password.
    :param timezone: the server's zone: UpdateDate/UpdateTime are stamped in it.
    :param lock_after_failures: consecutive failed logins that lock a user (0 = never).
    :param expired_session_code: 301 (confirmed) or -5002 (reported by some installations).
    :param next_link_style: ``"relative"`` (``Invoices?$skip=20``), ``"path"``
        (``/b1s/v2/Invoices?$skip=20``) or ``"url"`` (absolute URL).
    :param anchor_date: the day generated data ends before (default: today in ``timezone``).
    :param version: what Login reports as ``Version``.
    :param v2_indent: tab-indent v2 replies as the real server does (slower).
    :param approvers: approver user -> password: who may decide approval requests (their
        ``ApprovalRequestLines``), by ``ApproverUserName``/``ApproverPassword``.
    :param approvals: the approval procedure in force after start and every reset (None: off);
        ``POST /_sandbox/approvals`` switches it at run time.
    :param cost: the cost model of requests in force after start and every reset (None: off;
        :meth:`.CostModel.service_layer` for the defaults); ``POST /_sandbox/cost`` switches it
        at run time.
    :param webhooks_enabled: serve ``EventSubscriptions`` on v2 (see :mod:`.webhooks`).
    :param webhook_secret: the server-wide HMAC secret of subscriptions that carry none.
    :param webhook_signature_encoding: ``hex`` or ``base64`` (``X-B1-Webhook-Signature``).
    :param webhook_retry_seconds: delays between delivery attempts.
    :param webhook_time_scale: multiplies those delays (tests shrink it).
    :param webhook_timeout_seconds: how long a handshake or one delivery attempt may take.
    :param webhook_ca_bundle: PEM trusted for https webhook URLs (None: the system's trust store).
    """

    seed: int = 1
    invoices: int = 2000
    session_timeout_minutes: int = 30
    session_timeout_seconds: float | None = None
    login_delay: float = 0.0
    failed_login_delay: float = 0.0
    default_page_size: int = 20
    company_db: str = "SBODEMOUS"
    users: dict[str, str] = field(default_factory=lambda: {"manager": "manager-secret-1"})
    timezone: str = "America/Chicago"
    lock_after_failures: int = 5
    expired_session_code: int = 301
    next_link_style: str = "relative"
    anchor_date: dt.date | None = None
    version: str = "1000310"
    v2_indent: bool = False
    approvers: dict[str, str] = field(default_factory=lambda: {"approver": "approver-secret-1"})
    approvals: ApprovalRule | None = None
    cost: CostModel | None = None
    webhooks_enabled: bool = True
    webhook_secret: str | None = field(default=None, repr=False)
    webhook_signature_encoding: str = "hex"
    webhook_retry_seconds: tuple[float, ...] = (10, 30, 60, 120)
    webhook_time_scale: float = 1.0
    webhook_timeout_seconds: float = 10.0
    webhook_ca_bundle: str | None = None

    def idle_timeout(self) -> float:
        if self.session_timeout_seconds is not None:
            return float(self.session_timeout_seconds)
        return self.session_timeout_minutes * 60.0


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str | None = None


@dataclass
class Session:
    user: str
    company: str
    last_seen: float


class _Abort(Exception):
    """Abort the connection without any reply."""


class SapSandbox:
    """State behind the app: the store, sessions, faults and counters."""

    def __init__(self, config: SapSandboxConfig) -> None:
        self.config = config
        self.store = Store(
            seed=config.seed, invoices=config.invoices, timezone=config.timezone, anchor=config.anchor_date
        )
        self.store.configure_users(list(config.users), config.approvers)
        self.store.set_approval(config.approvals)
        self.cost: Gate | None = Gate(config.cost) if config.cost else None
        self.faults = Faults()
        self.sessions: dict[str, Session] = {}
        self.failures: dict[str, int] = {}
        self.locked: set[str] = set()
        self.webhooks = SapWebhooks(self)
        self.reset_counters()

    def reset_counters(self) -> None:
        self.logins = 0
        self.failed_logins = 0
        self.requests: dict[str, int] = {}
        self.requests_total = 0
        self.faults.injected = {}

    def live_sessions(self) -> int:
        now = time.monotonic()
        timeout = self.config.idle_timeout()
        for sid in [s for s, sess in self.sessions.items() if now - sess.last_seen > timeout]:
            del self.sessions[sid]
        return len(self.sessions)

    def stats(self) -> dict[str, Any]:
        return {
            "logins": self.logins,
            "failed_logins": self.failed_logins,
            "live_sessions": self.live_sessions(),
            "requests": dict(self.requests),
            "requests_total": self.requests_total,
            "faults_injected": dict(self.faults.injected),
            "locked_users": sorted(self.locked),
            "cost": self.cost.stats() if self.cost else None,
            "webhooks": self.webhooks.stats(),
        }

    def count(self, label: str) -> None:
        self.requests[label] = self.requests.get(label, 0) + 1


# ---------------------------------------------------------------------------------------------
# Reply helpers


def error_reply(v2: bool, status: int, code: int, message: str, headers: list | None = None) -> Reply:
    if v2:
        body = {"error": {"code": str(code), "details": [{"code": "", "message": ""}], "message": message}}
    else:
        body = {"error": {"code": code, "message": {"lang": "en-us", "value": message}}}
    return Reply(status, _encode(body), headers or [], PLAIN_JSON if v2 else V1_JSON)


class Handler:
    """Handles one Service Layer request (also used for each request inside a ``$batch``)."""

    def __init__(self, sandbox: SapSandbox, version: str, base_url: str, user: str | None = None) -> None:
        self.sb = sandbox
        self.version = version
        self.v2 = version == "v2"
        self.base_url = base_url
        self.root = f"{base_url}/b1s/{version}/"
        self.user = user
        self.work = Work()  # what the request did, in the cost model's measures
        self.events: list[tuple[str, str, Any]] = []  # (entity set, transaction, key) written

    def charge(self, name: str, payload: dict[str, Any] | None) -> None:
        """Count a document write and its lines for the cost model."""
        if name not in COSTED:
            return
        self.work.writes += 1
        for prop in LINE_COLLECTIONS:
            value = (payload or {}).get(prop)
            if isinstance(value, list):
                self.work.lines += len(value)
        if name == SAVE_DRAFT:
            document = (payload or {}).get("Document")
            entry = document.get("DocEntry") if isinstance(document, dict) else None
            draft = self.sb.store.entities["Drafts"].rows.get(entry)
            if draft is not None and isinstance(draft[LINES], list):
                self.work.lines += len(draft[LINES])

    def note_read(self, ent: Any, values: list[dict[str, Any]], select: list[str] | None) -> None:
        """Count a read for the cost model: its records, their width and the child rows sent."""
        if self.sb.cost is None:
            return
        share = len(select) / len(ent.template) if select else 1.0
        lines = 0
        for value in values:
            for prop in LINE_COLLECTIONS:
                rows = value.get(prop)
                if isinstance(rows, list):
                    lines += len(rows)
        self.work.read(len(values), share * len(values), lines)

    # -- encoding --------------------------------------------------------------------------

    def json(self, status: int, obj: Any, headers: list | None = None) -> Reply:
        if self.v2 and self.sb.config.v2_indent:
            body = json.dumps(obj, indent="\t", separators=(",", " : "), ensure_ascii=False).encode()
        else:
            body = _encode(obj)
        headers = list(headers or [])
        if self.v2:
            headers.append(("OData-Version", "4.0"))
        else:
            headers.append(("DataServiceVersion", "3.0"))
        return Reply(status, body, headers, V2_JSON if self.v2 else V1_JSON)

    def error(self, exc: SapError | QueryError) -> Reply:
        if isinstance(exc, SapError):
            reply = error_reply(self.v2, exc.status, exc.code, exc.message)
            if exc.close:
                reply.headers.append(("Connection", "close"))
            return reply
        return error_reply(self.v2, 400, -1000, str(exc))

    # -- dispatch --------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> Reply:
        try:
            parsed = parse_resource(path)
            if parsed is None:
                raise SapError(404, -1000, f"Invalid resource path: '{path}'")
            name, key, rest = parsed
            store = self.sb.store
            if name == EVENT_SUBSCRIPTIONS:
                return self.sb.webhooks.handle(self, method, key, rest, query, headers, body)
            with store.lock:
                if name == SAVE_DRAFT and key is None and not rest:
                    if method != "POST":
                        raise SapError(405, -5006, f"Method {method} is not supported for '{name}'")
                    payload = self.payload(body)
                    self.charge(name, payload)
                    ent, row = store.save_draft_to_document(payload, self.user)
                    self.events.append((ent.name, "Created", row[ent.key_index]))
                    return Reply(204)
                ent = store.entity(name)
                if method == "GET":
                    if key is None and rest == "$count":
                        params = dict(parse_qsl(query, keep_blank_values=True))
                        rows = store.query(ent, params.get("$filter"), None)
                        self.work.counts += 1
                        return Reply(200, str(len(rows)).encode(), [], "text/plain;charset=utf-8")
                    if rest:
                        raise SapError(400, -5006, f"Action '{rest}' is not supported")
                    if key is None:
                        return self.collection(ent, query, headers)
                    return self.single(ent, key, query)
                if method == "POST":
                    if key is not None and rest:
                        self.charge(name, None)
                        store.action(name, key, rest)
                        self.events.append((name, ACTIONS.get(rest, rest), key))
                        return Reply(204)
                    if key is not None:
                        raise SapError(405, -5006, "POST to an entity is not supported; use PATCH")
                    payload = self.payload(body)
                    self.charge(name, payload)
                    ent, row = store.create(name, payload, self.user)
                    new_key = row[ent.key_index]
                    self.events.append((ent.name, "Created", new_key))
                    location = self.root + url_path(f"{ent.name}({key_literal(new_key)})")
                    extra = [("ETag", ent.etag(row)), ("Location", location)]
                    if "return-no-content" in headers.get("prefer", ""):
                        return Reply(204, b"", [*extra, ("Preference-Applied", "return-no-content")])
                    return self.json(201, self.entity_body(ent, row, None), extra)
                if method in ("PATCH", "MERGE", "PUT"):
                    if key is None:
                        raise SapError(405, -5006, f"{method} needs an entity key")
                    payload = self.payload(body)
                    self.charge(name, payload)
                    replace = (
                        headers.get("b1s-replacecollectionsonpatch", "").lower() == "true" or method == "PUT"
                    )
                    store.update(
                        name,
                        key,
                        payload,
                        if_match=headers.get("if-match"),
                        replace_collections=replace,
                        user=self.user,
                    )
                    self.events.append((name, "Updated", key))
                    return Reply(204, b"", [("ETag", ent.etag(ent.rows[key]))])
                if method == "DELETE":
                    if key is None:
                        raise SapError(405, -5006, "DELETE needs an entity key")
                    store.delete(name, key)
                    self.events.append((name, "Deleted", key))
                    return Reply(204)
                raise SapError(405, -5006, f"Method {method} is not supported")
        except (SapError, QueryError) as exc:
            return self.error(exc)

    @staticmethod
    def payload(body: bytes) -> dict[str, Any]:
        try:
            payload = json.loads(body or b"{}")
        except ValueError as exc:
            raise SapError(400, -1000, f"Invalid JSON in request body: {exc}") from exc
        if not isinstance(payload, dict):
            raise SapError(400, -1000, "The request body must be a JSON object")
        return payload

    def entity_body(self, ent: Any, row: list, select: list[str] | None) -> dict[str, Any]:
        if self.v2:
            ctx = f"{self.root}$metadata#{ent.name}/$entity"
            return {"@odata.context": ctx, **ent.serialize(row, True, select)}
        return {
            "odata.metadata": f"{self.root}$metadata#{ent.name}/@Element",
            **ent.serialize(row, False, select),
        }

    def single(self, ent: Any, key: Any, query: str) -> Reply:
        params = dict(parse_qsl(query, keep_blank_values=True))
        select = (
            parse_select(params["$select"], ent.has_property, ent.object_name)
            if params.get("$select")
            else None
        )
        row = self.sb.store.get(ent, key)
        body = self.entity_body(ent, row, select)
        self.note_read(ent, [body], select)
        return self.json(200, body, [("ETag", ent.etag(row))])

    def collection(self, ent: Any, query: str, headers: dict[str, str]) -> Reply:
        pairs = parse_qsl(query, keep_blank_values=True)
        params = dict(pairs)
        select = (
            parse_select(params["$select"], ent.has_property, ent.object_name)
            if params.get("$select")
            else None
        )
        skip = _non_negative(params.get("$skip"), "$skip") or 0
        top = _non_negative(params.get("$top"), "$top")
        page_size = self.sb.config.default_page_size
        extra: list[tuple[str, str]] = []
        prefer = headers.get("prefer", "")
        if "odata.maxpagesize" in prefer:
            for part in prefer.split(","):
                name, _, value = part.strip().partition("=")
                if name.strip() == "odata.maxpagesize":
                    page_size = _non_negative(value.strip(), "odata.maxpagesize") or 0
                    extra.append(("Preference-Applied", f"odata.maxpagesize={page_size}"))
        elif headers.get("b1s-pagesize"):
            page_size = _non_negative(headers["b1s-pagesize"], "B1S-PageSize") or 0
        rows = self.sb.store.query(ent, params.get("$filter"), params.get("$orderby"))
        window = rows[skip:] if top is None else rows[skip : skip + top]
        next_link = None
        if page_size and len(window) > page_size:
            window = window[:page_size]
            keep = [(k, v) for k, v in pairs if k not in ("$skip", "$top")]
            if top is not None:
                keep.append(("$top", str(top - page_size)))
            keep.append(("$skip", str(skip + page_size)))
            rel = f"{ent.name}?" + "&".join(f"{k}={quote(v, safe=_SAFE)}" for k, v in keep)
            style = self.sb.config.next_link_style
            next_link = (
                rel
                if style == "relative"
                else f"/b1s/{self.version}/{rel}"
                if style == "path"
                else self.root + rel
            )
        v2 = self.v2
        serialize = ent.serialize
        values = [serialize(row, v2, select) for row in window]
        self.note_read(ent, values, select)
        sel = ",".join(select) if select else None
        if v2:
            body: dict[str, Any] = {
                "@odata.context": f"{self.root}$metadata#{ent.name}" + (f"({sel})" if sel else "")
            }
            if params.get("$count", "").lower() == "true":
                body["@odata.count"] = len(rows)
            body["value"] = values
            if next_link:
                body["@odata.nextLink"] = next_link
        else:
            body = {"odata.metadata": f"{self.root}$metadata#{ent.name}" + (f"&$select={sel}" if sel else "")}
            if params.get("$inlinecount") == "allpages":
                body["odata.count"] = str(len(rows))
            body["value"] = values
            if next_link:
                body["odata.nextLink"] = next_link
        return self.json(200, body, extra)


_SAFE = "$,()'=:/*"
SAVE_DRAFT = "DraftsService_SaveDraftToDocument"
COSTED = frozenset((*DOCUMENT_ENTITIES, "Drafts", *PAYMENT_ENTITIES, "JournalEntries", SAVE_DRAFT))
"""Resources whose writes the cost model charges."""
LINE_COLLECTIONS = ("DocumentLines", "PaymentInvoices", "JournalEntryLines")
"""Child rows the cost model counts as lines, written or read."""


def url_path(path: str) -> str:
    """A resource path as it goes into a URL or a header: ``BusinessPartners('a b')`` ->
    ``BusinessPartners('a%20b')``. Everything but OData's quotes and parentheses is
    percent-encoded (UTF-8), a ``/`` inside a key included, so any key survives the trip."""
    return quote(path, safe="'()")


def _non_negative(value: str | None, what: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError:
        raise QueryError(f"Invalid value '{value}' for {what}") from None
    if number < 0:
        raise QueryError(f"Invalid value '{value}' for {what}")
    return number


def resource_label(path: str) -> str:
    """``Invoices(22)/Close`` -> ``Invoices``; used for stats and fault matching."""
    if path.rstrip("/") == "ping":
        return "ping"
    head = path.split("/", 1)[0]
    return head.split("(", 1)[0] or "/"


# ---------------------------------------------------------------------------------------------
# The app


LIMIT_REQUEST_LINE = 8190
"""Apache's ``LimitRequestLine`` default: the web server in front of a real Service Layer answers
414 to a longer request line (method, path, query and protocol) before the Service Layer sees it."""

_URI_TOO_LONG = (
    b'<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\n<html><head>\n<title>414 Request-URI Too Long</title>\n'
    b"</head><body>\n<h1>Request-URI Too Long</h1>\n<p>The requested URL's length exceeds the capacity\n"
    b"limit for this server.<br />\n</p>\n</body></html>\n"
)


def request_line_length(scope: dict[str, Any]) -> int:
    """Bytes of the request line as sent: ``METHOD path[?query] HTTP/1.1`` (no CRLF)."""
    raw_path = scope.get("raw_path") or scope.get("path", "").encode("utf-8")
    query = scope.get("query_string") or b""
    return (
        len(scope["method"])
        + 1
        + len(raw_path)
        + (1 + len(query) if query else 0)
        + len(" HTTP/")
        + len(scope.get("http_version", "1.1"))
    )


class _SandboxApp(FastAPI):
    """FastAPI that remembers the server's own ``send`` so a handler can abort the connection,
    and refuses request lines longer than Apache's limit with 414, as the real front end does."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope[RAW_SEND] = send
            if request_line_length(scope) > LIMIT_REQUEST_LINE:
                response = Response(_URI_TOO_LONG, 414, media_type="text/html; charset=iso-8859-1")
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def _to_response(reply: Reply) -> Response:
    resp = Response(content=b"" if reply.status == 204 else reply.body, status_code=reply.status)
    if reply.content_type and reply.status != 204:
        resp.headers["Content-Type"] = reply.content_type
    for k, v in reply.headers:
        if k.lower() == "set-cookie":
            resp.raw_headers.append((b"set-cookie", v.encode("latin-1")))
        else:
            resp.headers[k] = v
    return resp


def create_app(config: SapSandboxConfig | None = None) -> FastAPI:
    """The Service Layer imitation; ``app.state.sandbox`` is its :class:`SapSandbox`.

    :param config: settings; defaults to :class:`SapSandboxConfig()`.
    """
    config = config or SapSandboxConfig()
    app = _SandboxApp(
        title="SAP Business One Service Layer sandbox", docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.sandbox = SapSandbox(config)

    def sb() -> SapSandbox:
        return app.state.sandbox

    # -- control plane ---------------------------------------------------------------------

    @app.get("/_sandbox/stats")
    async def stats() -> dict:
        return sb().stats()

    @app.get("/_sandbox/faults")
    async def get_faults() -> dict:
        return sb().faults.settings

    @app.post("/_sandbox/faults")
    async def set_faults(request: Request) -> Response:
        payload = await _json(request)
        try:
            settings = sb().faults.configure(payload)
        except ValueError as exc:
            return Response(_encode({"error": str(exc)}), 400, media_type="application/json")
        return Response(_encode(settings), 200, media_type="application/json")

    @app.post("/_sandbox/expire-sessions")
    async def expire_sessions() -> dict:
        count = len(sb().sessions)
        sb().sessions.clear()
        return {"expired": count}

    @app.post("/_sandbox/unlock")
    async def unlock() -> dict:
        unlocked = sorted(sb().locked)
        sb().locked.clear()
        sb().failures.clear()
        return {"unlocked": unlocked}

    @app.get("/_sandbox/approvals")
    async def get_approvals() -> dict:
        rule = sb().store.approval
        return {"approvals": rule.describe() if rule else None, "approvers": sorted(sb().store.approvers)}

    @app.post("/_sandbox/approvals")
    async def set_approvals(request: Request) -> Response:
        """Switch the approval procedure: ``{"entity": "Invoices", "threshold": 10000}`` on
        (see :class:`~.store.ApprovalRule` for ``post_reply``, ``after_generate``, ``required``,
        ``approvers``), ``{}`` off. Until the next reset."""
        try:
            rule = ApprovalRule.parse(await _json(request))
        except ValueError as exc:
            return Response(_encode({"error": str(exc)}), 400, media_type="application/json")
        store = sb().store
        with store.lock:
            store.set_approval(rule)
        return Response(
            _encode({"approvals": rule.describe() if rule else None}), 200, media_type="application/json"
        )

    @app.get("/_sandbox/cost")
    async def get_cost() -> dict:
        gate = sb().cost
        return {"cost": gate.stats() if gate else None}

    @app.post("/_sandbox/cost")
    async def set_cost(request: Request) -> Response:
        """Switch the cost model (see :mod:`.cost`): ``{"write_seconds": 0.5,
        "per_line_seconds": 0.05, "nodes": 2}`` on (settings left out cost nothing), or
        ``{"defaults": true, ...}`` (the Service Layer defaults, with overrides), with fresh
        counters; ``{}`` off. Until the next reset."""
        try:
            model = CostModel.parse(await _json(request))
        except ValueError as exc:
            return Response(_encode({"error": str(exc)}), 400, media_type="application/json")
        sb().cost = Gate(model) if model else None
        return Response(
            _encode({"cost": sb().cost.stats() if model else None}), 200, media_type="application/json"
        )

    @app.get("/_sandbox/config")
    async def get_config() -> dict:
        return _config_dict(sb().config)

    @app.post("/_sandbox/config")
    async def set_config(request: Request) -> Response:
        payload = await _json(request)
        cfg = sb().config
        allowed = {
            "session_timeout_seconds",
            "session_timeout_minutes",
            "login_delay",
            "failed_login_delay",
            "default_page_size",
            "lock_after_failures",
            "expired_session_code",
            "next_link_style",
            "v2_indent",
            *WEBHOOK_SETTINGS,
        }
        unknown = set(payload) - allowed
        if unknown:
            return Response(
                _encode({"error": f"Unknown settings: {sorted(unknown)}"}), 400, media_type="application/json"
            )
        if payload.get("next_link_style", "relative") not in ("relative", "path", "url"):
            return Response(
                _encode({"error": "next_link_style: relative, path or url"}),
                400,
                media_type="application/json",
            )
        try:
            payload.update(check_settings(payload))
        except ValueError as exc:
            return Response(_encode({"error": str(exc)}), 400, media_type="application/json")
        for k, v in payload.items():
            setattr(cfg, k, v)
        return Response(_encode(_config_dict(cfg)), 200, media_type="application/json")

    @app.post("/_sandbox/reset")
    async def reset(request: Request) -> dict:
        payload = await _json(request)
        cfg = sb().config
        if "invoices" in payload:
            cfg.invoices = int(payload["invoices"])
        if "session_timeout_seconds" in payload:
            cfg.session_timeout_seconds = payload["session_timeout_seconds"]
        if "seed" in payload:
            cfg.seed = int(payload["seed"])
        fresh = await asyncio.get_running_loop().run_in_executor(None, SapSandbox, cfg)
        sb().webhooks.stop()
        app.state.sandbox = fresh
        return {"reset": True, "invoices": cfg.invoices, "seed": cfg.seed}

    @app.get("/_sandbox/truth/{entity}")
    async def truth(entity: str) -> Response:
        from airflow_provider_b1.sandbox.sap.data import truth as truth_of

        store = sb().store
        if entity not in store.entities:
            return Response(
                _encode({"error": f"Unknown entity '{entity}'"}), 404, media_type="application/json"
            )
        with store.lock:
            return Response(_encode(truth_of(store.entities[entity])), 200, media_type="application/json")

    @app.post("/_sandbox/mutate")
    async def mutate(request: Request) -> Response:
        """Change records as another SAP user would; subscriptions hear of it as ``Updated``."""
        payload = await _json(request)
        entity = payload.get("entity", "Invoices")
        changed: list = []

        def run(store: Store) -> dict:
            changed.extend(store.mutate(entity, payload.get("count"), payload.get("keys")))
            return {"keys": changed}

        response = _control(run)
        sb().webhooks.publish([(entity, "Updated", key) for key in changed])
        return response

    @app.post("/_sandbox/corrupt")
    async def corrupt(request: Request) -> Response:
        payload = await _json(request)
        return _control(
            lambda s: {
                "keys": s.corrupt(
                    payload.get("entity", "Invoices"), payload.get("keys") or [], payload.get("kind", "")
                )
            }
        )

    @app.post("/_sandbox/seed")
    async def seed(request: Request) -> Response:
        """Hold records exactly as given (hostile values included); see :meth:`Store.seed_records`.

        Body: ``{"entity": "Invoices", "records": [{"DocEntry": 12, "DocTotal": "12,50"}, ...]}``.
        Refused (400): a body that is not strict JSON (``NaN``, ``Infinity``, numbers too large
        for a double, lone surrogates: JSON could not carry them back), an unknown entity, a
        record that is not an object, a key of the wrong type.
        """
        try:
            payload = _strict_json(await request.body())
        except ValueError as exc:
            return Response(_encode({"error": str(exc)}), 400, media_type="application/json")
        if not isinstance(payload, dict):
            return Response(
                _encode({"error": "The body must be a JSON object"}), 400, media_type="application/json"
            )
        return _control(
            lambda s: {"keys": s.seed_records(str(payload.get("entity")), payload.get("records", []))}
        )

    @app.post("/_sandbox/repair")
    async def repair(request: Request) -> Response:
        payload = await _json(request)
        return _control(lambda s: {"keys": s.repair(payload.get("entity", "Invoices"), payload.get("keys"))})

    @app.get("/_sandbox/webhooks")
    async def get_webhooks() -> Response:
        """Subscriptions (no secrets), the latest deliveries and the counts (see :mod:`.webhooks`)."""
        return Response(_encode(sb().webhooks.describe()), 200, media_type="application/json")

    @app.delete("/_sandbox/webhooks")
    async def clear_webhooks() -> dict:
        sb().webhooks.clear()
        return {"cleared": True}

    def _control(fn: Callable[[Store], dict]) -> Response:
        store = sb().store
        try:
            with store.lock:
                result = fn(store)
        except SapError as exc:
            return Response(_encode({"error": exc.message}), exc.status, media_type="application/json")
        return Response(_encode(result), 200, media_type="application/json")

    # -- the Service Layer -----------------------------------------------------------------

    @app.api_route(
        "/b1s/{version}/{path:anypath}",
        methods=["GET", "POST", "PATCH", "PUT", "DELETE", "MERGE", "OPTIONS", "HEAD"],
    )
    async def service_layer(version: str, path: str, request: Request) -> Response:
        sandbox = sb()
        if version not in ("v1", "v2"):
            return Response(b"Not Found", 404)
        v2 = version == "v2"
        method = request.method
        override = request.headers.get("x-http-method-override")
        if method == "POST" and override:
            method = override.upper()
        label = f"{method} {resource_label(path)}"
        sandbox.count(label)
        sandbox.requests_total += 1
        is_login = path == "Login"
        fault = sandbox.faults.before(label, login=is_login)
        if fault == "reset":
            return await abort_connection(request)
        if fault == "error":
            return Response(_UNAVAILABLE, 503, media_type="text/html")
        if fault == "rate_limit":
            return Response(
                b"Too Many Requests",
                429,
                headers={"Retry-After": str(sandbox.faults.retry_after)},
                media_type="text/plain",
            )
        if fault == "slow":
            await asyncio.sleep(sandbox.faults.slow_seconds)
        base_url = f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}"
        gate = sandbox.cost
        if path.rstrip("/") == "ping":
            if gate is not None:  # the load balancer answers: no node, no session queue
                await _sleep(gate.charge(work=Work(pings=1)))
            return Response(
                _encode({"message": "pong", "sender": "load balancer", "timestamp": time.time()}),
                200,
                media_type="application/json",
            )
        body = await request.body()
        if is_login and method == "POST":
            if gate is None:
                return _to_response(await _login(sandbox, v2, version, base_url, body))
            async with gate.slot(f"Login {uuid.uuid4()}"):  # no session yet: a node of its own
                reply = await _login(sandbox, v2, version, base_url, body)
                await _sleep(gate.charge(work=Work(logins=1)))
            return _to_response(reply)
        session = _session(sandbox, request)
        if session is None or fault == "expire_session":
            if session is not None:
                sandbox.sessions.pop(request.cookies.get("B1SESSION", ""), None)
            return _to_response(_invalid_session(sandbox, v2, version, path))
        if path == "Logout" and method == "POST":
            if gate is not None:
                async with gate.slot(request.cookies.get("B1SESSION", "")):
                    await _sleep(gate.charge(work=Work(others=1)))
            sandbox.sessions.pop(request.cookies.get("B1SESSION", ""), None)
            return Response(status_code=204)
        headers = {k.lower(): v for k, v in request.headers.items()}
        handler = Handler(sandbox, version, base_url, session.user)

        def serve() -> Reply:
            if path == "$batch" and method == "POST":
                return _run_batch(sandbox, handler, headers, body)
            return handler.handle(method, path, request.url.query, headers, body)

        if gate is None:
            reply = serve()
        else:
            async with gate.slot(request.cookies.get("B1SESSION", "")):
                reply = serve()
                await _sleep(gate.charge(work=handler.work))
        sandbox.webhooks.publish(handler.events)  # queued: sent by a background thread
        after = sandbox.faults.after(label, method, reply.status)
        if after == "reset":
            return await abort_connection(request)
        if after == "error":
            return Response(_UNAVAILABLE, 503, media_type="text/html")
        return _to_response(reply)

    return app


async def _sleep(seconds: float) -> None:
    if seconds > 0:
        await asyncio.sleep(seconds)


class _AnyPath(Convertor[str]):
    """Like Starlette's ``path`` convertor, but a decoded ``%0A`` (a newline in a key) matches too."""

    regex = r"[\s\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("anypath", _AnyPath())


def _strict_json(raw: bytes) -> Any:
    """Parse JSON that the sandbox can serve back unchanged: no NaN/Infinity, no number that
    overflows a double, no lone surrogate in a string."""

    def constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON; send it as a string")

    def number(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"{text} does not fit a double; send it as a string")
        return value

    def check(value: Any) -> None:
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("A string holds a lone surrogate, which UTF-8 cannot carry") from None
        elif isinstance(value, dict):
            for k, v in value.items():
                check(k)
                check(v)
        elif isinstance(value, list):
            for v in value:
                check(v)

    try:
        value = json.loads(raw or b"{}", parse_constant=constant, parse_float=number)
    except json.JSONDecodeError as exc:
        raise ValueError(f"Invalid JSON: {exc}") from None
    check(value)
    return value


async def _json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    value = json.loads(raw)
    return value if isinstance(value, dict) else {}


def _config_dict(cfg: SapSandboxConfig) -> dict[str, Any]:
    hidden = ("users", "anchor_date", "approvers", "approvals", "cost", "webhook_secret")
    out = {k: getattr(cfg, k) for k in cfg.__dataclass_fields__ if k not in hidden}
    out["webhook_secret_set"] = bool(cfg.webhook_secret)
    out["idle_timeout_seconds"] = cfg.idle_timeout()
    out["approvals"] = cfg.approvals.describe() if cfg.approvals else None
    out["cost"] = dataclasses.asdict(cfg.cost) if cfg.cost else None
    return out


def _session(sandbox: SapSandbox, request: Request) -> Session | None:
    sid = request.cookies.get("B1SESSION")
    if not sid:
        return None
    session = sandbox.sessions.get(sid)
    if session is None:
        return None
    now = time.monotonic()
    if now - session.last_seen > sandbox.config.idle_timeout():
        del sandbox.sessions[sid]
        return None
    session.last_seen = now
    return session


def _invalid_session(sandbox: SapSandbox, v2: bool, version: str, path: str) -> Reply:
    code = sandbox.config.expired_session_code
    realm = quote(f"/b1s/{version}/{path}", safe="/'()$=,")
    headers = [("WWW-Authenticate", f"Basic realm={realm}")] if v2 else []
    return error_reply(v2, 401, code, INVALID_SESSION, headers)


async def _login(sandbox: SapSandbox, v2: bool, version: str, base_url: str, body: bytes) -> Reply:
    cfg = sandbox.config
    try:
        payload = json.loads(body or b"{}")
        if not isinstance(payload, dict):
            raise ValueError("not an object")
    except ValueError:
        return error_reply(v2, 400, -1000, "Invalid login request: the body must be a JSON object")
    user = payload.get("UserName")
    if user in sandbox.locked:
        await asyncio.sleep(cfg.failed_login_delay)
        sandbox.failed_logins += 1
        return error_reply(v2, 401, *USER_LOCKED)
    accounts = {**cfg.approvers, **cfg.users}  # approvers are SAP users too
    ok = (
        payload.get("CompanyDB") == cfg.company_db
        and isinstance(user, str)
        and user in accounts
        and payload.get("Password") == accounts[user]
    )
    if not ok:
        await asyncio.sleep(cfg.failed_login_delay)
        sandbox.failed_logins += 1
        if isinstance(user, str) and user in accounts:
            sandbox.failures[user] = sandbox.failures.get(user, 0) + 1
            if cfg.lock_after_failures and sandbox.failures[user] >= cfg.lock_after_failures:
                sandbox.locked.add(user)
        return error_reply(v2, 401, *LOGIN_FAILED)
    delay = sandbox.faults.login_delay if sandbox.faults.login_delay is not None else cfg.login_delay
    if delay:
        await asyncio.sleep(float(delay))
    sandbox.failures.pop(user, None)
    sid = str(uuid.uuid4())
    sandbox.sessions[sid] = Session(user, cfg.company_db, time.monotonic())
    sandbox.logins += 1
    minutes = cfg.session_timeout_minutes
    if cfg.session_timeout_seconds is not None:
        minutes = max(1, math.ceil(cfg.session_timeout_seconds / 60))
    root = f"{base_url}/b1s/{version}/"
    if v2:
        body_obj = {"@odata.context": f"{root}$metadata#B1Sessions/$entity"}
    else:
        body_obj = {"odata.metadata": f"{root}$metadata#B1Sessions/@Element"}
    body_obj.update({"SessionId": sid, "Version": cfg.version, "SessionTimeout": minutes})
    headers = [("Set-Cookie", f"B1SESSION={sid}; HttpOnly"), ("Set-Cookie", "ROUTEID=.node1; path=/b1s")]
    if v2:
        headers.append(("OData-Version", "4.0"))
    return Reply(200, _encode(body_obj), headers, V2_JSON if v2 else V1_JSON)


def _run_batch(sandbox: SapSandbox, handler: Handler, headers: dict[str, str], body: bytes) -> Reply:
    v2 = handler.v2
    try:
        parts = batchmod.parse_batch(body, headers.get("content-type", ""))
    except QueryError as exc:
        return error_reply(v2, 400, -1000, str(exc))
    store = sandbox.store

    def run(req: batchmod.BatchRequest) -> batchmod.BatchReply:
        target = req.target
        if "://" in target:
            target = target.split("://", 1)[1].split("/", 1)[1] if "/" in target.split("://", 1)[1] else ""
            target = "/" + target
        prefix = f"/b1s/{handler.version}/"
        if target.startswith(prefix):
            target = target[len(prefix) :]
        target = target.lstrip("/")
        path, _, query = target.partition("?")
        path = unquote(path)  # the request line carries the path percent-encoded, as on the wire
        inner_headers = {k.lower(): v for k, v in req.headers.items()}
        sandbox.count(f"$batch {req.method} {resource_label(path)}")
        reply = handler.handle(req.method, path, query, inner_headers, req.body)
        hdrs = list(reply.headers)
        if reply.content_type and reply.status != 204:
            hdrs.insert(0, ("Content-Type", reply.content_type))
        return batchmod.BatchReply(
            reply.status, REASONS.get(reply.status, ""), hdrs, reply.body, req.content_id
        )

    results: list = []
    for part in parts:
        if part.is_changeset:
            problem = None
            for req in part.changeset:
                if req.method == "GET":
                    problem = "GET requests are not allowed inside a changeset"
                elif v2 and not req.content_id:
                    problem = "Content-ID is required for each request in a changeset"
            if problem:
                results.append(_batch_error(handler, 400, -1000, problem))
                break
            with store.lock:
                store.begin()
                announced = len(handler.events)
                replies = []
                failed = None
                for req in part.changeset:
                    reply = run(req)
                    if reply.status >= 400:
                        failed = reply
                        break
                    replies.append(reply)
                if failed is not None:
                    store.rollback()
                    del handler.events[announced:]  # nothing happened: nothing to announce
                    results.append(failed)
                    break
                store.commit()
            results.append(replies)
        else:
            assert part.request is not None
            reply = run(part.request)
            results.append(reply)
            if reply.status >= 400:
                break
    body_bytes, ctype = batchmod.build_response(results)
    return Reply(200 if v2 else 202, body_bytes, [], ctype)


def _batch_error(handler: Handler, status: int, code: int, message: str) -> batchmod.BatchReply:
    reply = error_reply(handler.v2, status, code, message)
    return batchmod.BatchReply(
        status, REASONS.get(status, ""), [("Content-Type", reply.content_type or "")], reply.body
    )
