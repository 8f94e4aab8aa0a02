"""The Salesforce org imitation as a FastAPI app: token endpoint, REST API, Bulk API 2.0 and
``/_sandbox``, all on one server (the base URL plays the org's My Domain).

Token: ``POST /services/oauth2/token``, form ``grant_type=client_credentials`` with
``client_id``/``client_secret`` (or HTTP Basic, as simple-salesforce sends them) answers
``{access_token, signature, scope, instance_url, id, token_type: "Bearer", issued_at}``:
no ``expires_in``, no refresh token; ``instance_url`` is this server's base URL as the request
reached it. A wrong client answers 400 ``{"error": "invalid_client", "error_description":
"invalid client credentials"}``, another grant 400 ``unsupported_grant_type``.

Sessions end ``session_timeout_seconds`` (default 7200) after their last use, or at once on
``expire_tokens``; then every call answers 401 ``[{"message": "Session expired or invalid",
"errorCode": "INVALID_SESSION_ID"}]``.

API under ``/services/data/``: the versions list (no session needed), then per version
``vNN.0`` (31.0 up to ``max_api_version``): ``limits``, ``query``/``queryAll`` (``?q=`` and
``/<locator>-<offset>``), ``sobjects`` (global describe), ``sobjects/<O>`` (basic info; POST
creates), ``sobjects/<O>/describe``, ``sobjects/<O>/<id>`` (GET with ``?fields=``, PATCH,
DELETE), ``sobjects/<O>/<ExtField>/<value>`` (GET, PATCH upsert, DELETE),
``composite/sobjects`` (POST create, PATCH update, DELETE ``?ids=``),
``composite/sobjects/<O>`` (GET ``?ids=&fields=`` or POST ``{ids, fields}``: retrieve),
``composite/sobjects/<O>/<ExtField>`` (PATCH upsert), ``jobs/ingest...`` and
``jobs/query...`` (see :mod:`.bulk`). Every reply there carries ``Sforce-Limit-Info:
api-usage=N/M``; every call with a valid session counts one against the daily limit, and at
the limit the answer is 403 ``REQUEST_LIMIT_EXCEEDED``. Errors are JSON arrays of ``{message,
errorCode, fields}``; per-record errors in collection replies use ``statusCode``.

Control plane (no session, never counted, never faulted):

- ``GET /_sandbox/stats``, ``POST /_sandbox/stats/reset``: calls by kind (``token``, ``query``,
  ``query_more``, ``describe``, ``sobject_get``, ``upsert_one``, ``collections_upsert``,
  ``collections_update``, ``bulk_ingest_create``...), replies by status, tokens issued and
  refused, records written by kind, ``write_calls`` (calls that create, update, upsert or delete
  records, Bulk ingest jobs included), API usage, faults injected.
- ``GET|POST /_sandbox/faults`` (:mod:`.faults`), ``POST /_sandbox/expire-tokens``.
- ``GET|POST /_sandbox/config``: the settings that may change at run time.
- ``POST /_sandbox/reset``: the freshly seeded org (``{"seed", "accounts", "opportunities",
  "products", "custom_fields", "custom_objects", "extra_fields"}`` override the configured
  ones), settings back to the configured ones (unless ``"keep_config": true``), no faults,
  usage 0, no cursors or jobs, counters cleared. Sessions survive; the change log's sequence
  goes on from where it was.
- ``GET /_sandbox/truth/<Object>[?deleted=true]``: ``{"totalSize", "records"}``, every field.
- ``POST /_sandbox/edit``: a user's change through the UI: ``{"object", "id", "fields"}``
  updates, ``{"object", "action": "create", "fields"}`` creates, ``{"object", "id", "action":
  "delete"|"undelete"}``; the org's checks apply; the change log names the UI user.
- ``GET|POST /_sandbox/usage``: ``{"used": N, "limit": M}``.
- ``GET /_sandbox/changes?after=<seq>&objects=Account,Opportunity&limit=n``: the change log.

This module shares no code with the hooks on purpose: two independent readings of the protocol
catch each other's mistakes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from starlette.responses import Response

from airflow_provider_b1.sandbox.salesforce import bulk, ids, soql
from airflow_provider_b1.sandbox.salesforce.data import seed_org
from airflow_provider_b1.sandbox.salesforce.faults import MAX_DELAY, Faults
from airflow_provider_b1.sandbox.salesforce.schema import (
    SObject,
    ValueError_,
    build_schema,
    from_json,
    to_json,
)
from airflow_provider_b1.sandbox.salesforce.store import (
    DEFAULT_VALIDATION_RULES,
    ROLLED_BACK,
    RecordError,
    Store,
    ValidationRule,
)
from airflow_provider_b1.sandbox.server import abort_connection, abortable_app

try:  # msgspec ships with Airflow and encodes several times faster than json.
    import msgspec

    def encode(obj: Any) -> bytes:
        return msgspec.json.encode(obj)

except ImportError:  # pragma: no cover

    def encode(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


JSON = "application/json;charset=UTF-8"
CSV = "text/csv"
MIN_VERSION = 31
COLLECTION_LIMIT = 200
RETRIEVE_LIMIT = 2000
CURSOR_IDLE_SECONDS = 15 * 60
MAX_CURSORS = 100


#: The call kinds that write records (``write_calls`` in the stats).
WRITE_KINDS = frozenset(
    {
        "sobject_create",
        "sobject_update",
        "sobject_delete",
        "upsert_one",
        "collections_create",
        "collections_update",
        "collections_upsert",
        "collections_delete",
        "bulk_ingest_create",
    }
)


@dataclass
class SalesforceSandboxConfig:
    """Settings of one imitated org.

    :param seed: seed of the generated org.
    :param accounts: / :param opportunities: / :param products: sizes of the seeded org.
    :param anchor_date: the seeded year ends the day before (default: today, UTC).
    :param client_id: / :param client_secret: the connected app's consumer key and secret.
    :param session_timeout_seconds: idle time after which a session ends (default 2 h).
    :param token_delay: seconds every token request takes.
    :param api_daily_limit: API calls allowed a day (``DailyApiRequests.Max``).
    :param query_batch_size: records per query batch when the client asks for none
        (``Sforce-Query-Options: batchSize=N`` asks for 200..2000).
    :param bulk_processing_delay: seconds from a Bulk job's close (or a query job's creation)
        to its completion.
    :param max_api_version: the newest ``vNN.0`` served (from 31.0).
    :param custom_fields: the standard objects carry their ``SAP_*__c`` fields.
    :param extra_fields: more fields per object (``{"Account": [{"name": ..., "type": ...}]}``).
    :param custom_objects: more objects (``[{"name": "SAP_Invoice__c", "key_prefix": "a0B",
        "fields": [...]}]``); see :mod:`.schema`.
    :param validation_rules: the org's validation rules (None: the default one, "Phone must
        have at least 7 digits" on Account); see :class:`.store.ValidationRule`.
    :param duplicate_rule_account_name: refuse an Account whose Name another one has
        (``DUPLICATES_DETECTED``; ``Sforce-Duplicate-Rule-Header: allowSave=true`` overrides).
    :param cdc_objects: objects whose changes go to the change log.
    :param change_retention_seconds: how long the change log keeps a change (72 h).
    """

    seed: int = 1
    accounts: int = 60
    opportunities: int = 120
    products: int = 60
    anchor_date: dt.date | None = None
    client_id: str = "3MVG9b1SandboxConsumerKey.b1-salesforce"
    client_secret: str = "b1-salesforce-consumer-secret-1"
    session_timeout_seconds: float = 7200.0
    token_delay: float = 0.0
    api_daily_limit: int = 100_000
    query_batch_size: int = 2000
    bulk_processing_delay: float = 0.5
    max_api_version: str = "64.0"
    custom_fields: bool = True
    extra_fields: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    custom_objects: list[dict[str, Any]] = field(default_factory=list)
    validation_rules: list[Any] | None = None
    duplicate_rule_account_name: bool = False
    cdc_objects: tuple[str, ...] = ("Account", "Opportunity")
    change_retention_seconds: float = 72 * 3600.0


SETTABLE = {
    "session_timeout_seconds",
    "token_delay",
    "api_daily_limit",
    "query_batch_size",
    "bulk_processing_delay",
    "max_api_version",
    "validation_rules",
    "duplicate_rule_account_name",
    "cdc_objects",
    "change_retention_seconds",
}
SIZES = ("seed", "accounts", "opportunities", "products", "custom_fields", "custom_objects", "extra_fields")


def _anchor(cfg: SalesforceSandboxConfig) -> dt.date:
    return cfg.anchor_date or dt.datetime.now(dt.timezone.utc).date()


def _release(version: int) -> str:
    k = version - 31
    season = ("Summer", "Winter", "Spring")[k % 3]
    year = (14 if k % 3 == 0 else 15) + k // 3
    return f"{season} '{year:02d}"


class SalesforceSandbox:
    """The live state of one org: config, schema, store, sessions, cursors, jobs, counters."""

    def __init__(self, config: SalesforceSandboxConfig) -> None:
        self.initial = copy.deepcopy(config)
        self.config = copy.deepcopy(config)  # run-time changes never touch the caller's object
        self.faults = Faults()
        self.org_id = ids.make_id("00D", 1_000_000 + config.seed)
        self.tokens: dict[str, dict[str, Any]] = {}
        self.used = 0
        self.store = self.build_store(config)
        self.cursors: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.jobs: dict[str, bulk.Job] = {}
        self.serial = 0
        self.reset_counters()

    def build_store(self, cfg: SalesforceSandboxConfig, last_seq: int = 0) -> Store:
        schema = build_schema(
            custom_fields=cfg.custom_fields, extra_fields=cfg.extra_fields, custom_objects=cfg.custom_objects
        )
        rules = DEFAULT_VALIDATION_RULES if cfg.validation_rules is None else cfg.validation_rules
        store = Store(
            schema,
            cdc_objects=cfg.cdc_objects,
            change_retention_seconds=cfg.change_retention_seconds,
            validation_rules=rules,
            duplicate_rule_account_name=cfg.duplicate_rule_account_name,
        )
        self.seeded = seed_org(
            store,
            seed=cfg.seed,
            accounts=cfg.accounts,
            opportunities=cfg.opportunities,
            products=cfg.products,
            anchor=_anchor(cfg),
            custom_fields=cfg.custom_fields,
        )
        store.last_seq = last_seq
        return store

    def reset_counters(self) -> None:
        self.calls: dict[str, int] = {}
        self.responses: dict[str, int] = {}
        self.written: dict[str, int] = {}
        self.tokens_issued = 0
        self.token_refusals = 0
        self.sessions_refused = 0
        self.limit_refusals = 0
        self.faults.injected = {}

    def next_serial(self) -> int:
        self.serial += 1
        return self.serial

    def stats(self) -> dict[str, Any]:
        return {
            "calls": dict(sorted(self.calls.items())),
            "api_calls": sum(v for k, v in self.calls.items() if k not in ("token", "versions")),
            "responses": dict(sorted(self.responses.items())),
            "tokens_issued": self.tokens_issued,
            "token_refusals": self.token_refusals,
            "sessions_refused": self.sessions_refused,
            "limit_refusals": self.limit_refusals,
            "records_written": dict(sorted(self.written.items())),
            "write_calls": sum(n for k, n in self.calls.items() if k in WRITE_KINDS),
            "api_usage": {"used": self.used, "limit": self.config.api_daily_limit},
            "faults_injected": dict(self.faults.injected),
            "open_cursors": len(self.cursors),
            "jobs": {j.id: j.state for j in self.jobs.values()},
            "change_log": {"last_seq": self.store.last_seq, "retained": len(self.store.changes)},
        }


# ---------------------------------------------------------------------------------------------
# replies


class _Reply(Exception):
    """A finished reply raised from deep inside a handler."""

    def __init__(self, response: Response) -> None:
        self.response = response


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(encode(body), status, headers=headers, media_type=JSON)


def _errors(status: int, code: str, message: str, fields_: list[str] | None = None, **extra: Any) -> Response:
    item: dict[str, Any] = {"message": message, "errorCode": code}
    if fields_ is not None:
        item["fields"] = fields_
    item.update(extra)
    return _json([item], status)


def _fail(status: int, code: str, message: str, fields_: list[str] | None = None) -> _Reply:
    return _Reply(_errors(status, code, message, fields_))


def _not_found() -> _Reply:
    return _fail(404, "NOT_FOUND", "The requested resource does not exist")


def _control(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, default=str).encode(), status, media_type="application/json")


def _server_error(status: int) -> Response:
    if status == 503:
        return _errors(503, "SERVER_UNAVAILABLE", "Server temporarily unavailable, please try again later.")
    ref = secrets.randbelow(10**9)
    return _errors(
        status,
        "UNKNOWN_EXCEPTION",
        f"An unexpected error occurred. Please include this ErrorId if you contact support: {ref}-{ref % 9973} "
        f"({-ref % 100000})",
    )


def _strict_json(raw: bytes) -> Any:
    def constant(name: str) -> Any:
        raise ValueError(f"Non-standard token '{name}'")

    text = raw.decode("utf-8", "replace")
    try:
        return json.loads(text, parse_constant=constant)
    except json.JSONDecodeError as exc:
        char = text[exc.pos] if exc.pos < len(text) else "EOF"
        raise _fail(
            400,
            "JSON_PARSER_ERROR",
            f"Unexpected character ('{char}' (code {ord(char) if len(char) == 1 else -1})): {exc.msg} at "
            f"[line:{exc.lineno}, column:{exc.colno}]",
        ) from None
    except ValueError as exc:
        raise _fail(400, "JSON_PARSER_ERROR", str(exc)) from None


async def _body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        raise _fail(400, "JSON_PARSER_ERROR", "The request body is empty; a JSON object is expected")
    return _strict_json(raw)


async def _control_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise _Reply(_control({"error": f"Invalid JSON: {exc}"}, 400)) from None
    if not isinstance(value, dict):
        raise _Reply(_control({"error": "The body must be a JSON object"}, 400))
    return value


def _basic(header: str | None) -> tuple[str, str] | None:
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


# ---------------------------------------------------------------------------------------------
# reading records from JSON bodies


def _object(sandbox: SalesforceSandbox, name: str, *, missing: str = "not_found") -> SObject:
    for obj in sandbox.store.schema.values():
        if obj.name.lower() == name.lower():
            return obj
    if missing == "type":
        raise _fail(400, "INVALID_TYPE", f"sObject type '{name}' is not supported.")
    raise _not_found()


def _read_record(
    schema: dict[str, SObject], obj: SObject, body: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(values by canonical field name, references by external id) of a JSON record.

    Unknown fields and values that do not read as their type fail the whole request (400), as
    the org's JSON reader does before any record is looked at."""
    if not isinstance(body, dict):
        raise _fail(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of sObject from START_ARRAY value")
    values: dict[str, Any] = {}
    refs: dict[str, tuple[str, Any]] = {}
    for key, value in body.items():
        if key == "attributes":
            continue
        f = obj.field(key)
        if f is not None:
            try:
                values[f.name] = from_json(f, value)
            except ValueError_ as exc:
                raise _fail(400, "JSON_PARSER_ERROR", f"{exc.message} at [line:1, column:1]") from None
            continue
        ref = obj.relationships.get(key.lower())
        if ref is not None and isinstance(value, dict):
            keys = [k for k in value if k != "attributes"]
            if len(keys) != 1:
                raise _fail(
                    400,
                    "INVALID_FIELD",
                    f"A relationship to {ref.reference_to[0]} names its record by exactly one external id field",
                )
            ext = schema[ref.reference_to[0]].field(keys[0])
            if ext is None or not (ext.external_id or ext.type == "id"):
                raise _fail(
                    400,
                    "INVALID_FIELD",
                    f"Field name provided, {keys[0]} is not an External ID or indexed field for {ref.reference_to[0]}",
                )
            refs[ref.name] = (ext.name, value[keys[0]])
            continue
        raise _fail(400, "INVALID_FIELD", f"No such column '{key}' on sobject of type {obj.name}", [])
    return values, refs


# ---------------------------------------------------------------------------------------------
# the app


def create_app(config: SalesforceSandboxConfig | None = None) -> FastAPI:
    """The Salesforce imitation; ``app.state.sandbox`` is its :class:`SalesforceSandbox`."""
    config = config or SalesforceSandboxConfig()
    app = abortable_app(title="Salesforce org sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sandbox = SalesforceSandbox(config)

    def sb() -> SalesforceSandbox:
        return app.state.sandbox

    def finish(response: Response) -> Response:
        key = str(response.status_code)
        sb().responses[key] = sb().responses.get(key, 0) + 1
        return response

    # -- control plane -----------------------------------------------------------------------

    @app.get("/_sandbox/stats")
    async def stats() -> Response:
        return _control(sb().stats())

    @app.post("/_sandbox/stats/reset")
    async def reset_stats() -> Response:
        sb().reset_counters()
        return _control({"reset": True})

    @app.get("/_sandbox/faults")
    async def get_faults() -> Response:
        return _control(sb().faults.describe())

    @app.post("/_sandbox/faults")
    async def set_faults(request: Request) -> Response:
        sandbox = sb()
        try:
            payload = await _control_body(request)
            settings = sandbox.faults.configure(payload)
            _fault_actions(sandbox, payload)
        except _Reply as reply:
            return reply.response
        except (ValueError, TypeError) as exc:
            return _control({"error": str(exc)}, 400)
        return _control(settings)

    @app.post("/_sandbox/expire-tokens")
    async def expire_tokens() -> Response:
        return _control({"expired": _expire_all(sb())})

    @app.get("/_sandbox/config")
    async def get_config() -> Response:
        return _control(_config_dict(sb().config))

    @app.post("/_sandbox/config")
    async def set_config(request: Request) -> Response:
        sandbox = sb()
        try:
            payload = await _control_body(request)
            _apply_config(sandbox, payload)
        except _Reply as reply:
            return reply.response
        except (ValueError, TypeError) as exc:
            return _control({"error": str(exc)}, 400)
        return _control(_config_dict(sandbox.config))

    @app.post("/_sandbox/reset")
    async def reset(request: Request) -> Response:
        sandbox = sb()
        try:
            payload = await _control_body(request)
        except _Reply as reply:
            return reply.response
        unknown = set(payload) - set(SIZES) - SETTABLE - {"keep_config"}
        if unknown:
            return _control({"error": f"Unknown reset options: {sorted(unknown)}"}, 400)
        cfg = sandbox.config if payload.get("keep_config") else copy.deepcopy(sandbox.initial)
        for name in (*SIZES, *SETTABLE):
            if name in payload:
                value = payload[name]
                setattr(cfg, name, tuple(value) if name == "cdc_objects" else value)
        try:
            store = await asyncio.get_running_loop().run_in_executor(
                None, sandbox.build_store, cfg, sandbox.store.last_seq
            )
        except (ValueError, TypeError) as exc:
            return _control({"error": str(exc)}, 400)
        with sandbox.store.lock:
            sandbox.config = cfg
            sandbox.store = store
            sandbox.cursors.clear()
            sandbox.jobs.clear()
            sandbox.used = 0
            sandbox.faults.configure({})
            sandbox.reset_counters()
        return _control({"reset": True, "seed": cfg.seed, **sandbox.seeded})

    @app.get("/_sandbox/truth/{name}")
    async def truth(name: str, request: Request) -> Response:
        sandbox = sb()
        obj = next((o for o in sandbox.store.schema.values() if o.name.lower() == name.lower()), None)
        if obj is None:
            return _control({"error": f"Unknown object {name}"}, 404)
        deleted = request.query_params.get("deleted", "").lower() == "true"
        with sandbox.store.lock:
            records = sandbox.store.truth(obj.name, deleted)
        return _control({"totalSize": len(records), "records": records})

    @app.post("/_sandbox/edit")
    async def edit(request: Request) -> Response:
        sandbox = sb()
        try:
            payload = await _control_body(request)
            return _control(_edit(sandbox, payload))
        except _Reply as reply:
            return _control({"error": json.loads(reply.response.body)}, reply.response.status_code)
        except RecordError as exc:
            return _control({"error": exc.as_collection_error()}, 400)

    @app.get("/_sandbox/usage")
    async def get_usage() -> Response:
        return _control({"used": sb().used, "limit": sb().config.api_daily_limit})

    @app.post("/_sandbox/usage")
    async def set_usage(request: Request) -> Response:
        sandbox = sb()
        try:
            payload = await _control_body(request)
        except _Reply as reply:
            return reply.response
        if "used" in payload:
            sandbox.used = max(0, int(payload["used"]))
        if "limit" in payload:
            sandbox.config.api_daily_limit = max(0, int(payload["limit"]))
        return _control({"used": sandbox.used, "limit": sandbox.config.api_daily_limit})

    @app.get("/_sandbox/changes")
    async def changes(request: Request) -> Response:
        store = sb().store
        params = request.query_params
        try:
            after = int(params.get("after", "0"))
            limit = int(params["limit"]) if "limit" in params else None
        except ValueError:
            return _control({"error": "after and limit are integers"}, 400)
        objects = [o for o in params.get("objects", "").split(",") if o] or None
        found = store.changes_after(after, objects, limit)
        return _control(
            {
                "last_seq": store.last_seq,
                "first_retained_seq": store.first_retained_seq(),
                "changes": [c.as_dict() for c in found],
            }
        )

    # -- the token endpoint --------------------------------------------------------------------

    @app.api_route("/services/oauth2/token", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def token(request: Request) -> Response:
        sandbox = sb()
        sandbox.calls["token"] = sandbox.calls.get("token", 0) + 1
        fault = sandbox.faults.draw(f"{request.method} token", request.url.path)
        early = await _before(request, fault, sandbox)
        if early is not None:
            return finish(early)
        if request.method != "POST":
            return finish(_json({"error": "invalid_request", "error_description": "must use HTTP POST"}, 400))
        delay = min(MAX_DELAY, float(sandbox.config.token_delay or 0.0))
        if delay > 0:
            await asyncio.sleep(delay)
        cfg = sandbox.config
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        basic = _basic(request.headers.get("authorization"))
        if basic is not None:
            client_id, client_secret = basic
        grant = form.get("grant_type")
        if grant != "client_credentials":
            sandbox.token_refusals += 1
            return finish(
                _json(
                    {"error": "unsupported_grant_type", "error_description": "grant type not supported"}, 400
                )
            )
        if (
            not client_id
            or client_id != cfg.client_id
            or not secrets.compare_digest((client_secret or "").encode(), cfg.client_secret.encode())
        ):
            sandbox.token_refusals += 1
            return finish(
                _json({"error": "invalid_client", "error_description": "invalid client credentials"}, 400)
            )
        instance = str(request.base_url).rstrip("/")
        issued = str(int(time.time() * 1000))
        access = f"{sandbox.org_id[:15]}!AQ{secrets.token_urlsafe(72).replace('-', '.').replace('_', '.')}"
        identity = f"{instance}/id/{sandbox.org_id}/{sandbox.store.integration_user}"
        signature = base64.b64encode(
            hmac.new(cfg.client_secret.encode(), (identity + issued).encode(), hashlib.sha256).digest()
        ).decode()
        sandbox.tokens[access] = {"last": time.monotonic(), "expired": False, "issued": int(issued)}
        sandbox.tokens_issued += 1
        return finish(
            _json(
                {
                    "access_token": access,
                    "signature": signature,
                    "scope": "api",
                    "instance_url": instance,
                    "id": identity,
                    "token_type": "Bearer",
                    "issued_at": issued,
                },
                headers={"Cache-Control": "no-cache,must-revalidate,max-age=0,no-store,private"},
            )
        )

    # -- the API -------------------------------------------------------------------------------

    @app.api_route("/services/data", methods=["GET"])
    @app.api_route("/services/data/", methods=["GET"])
    async def versions() -> Response:
        sandbox = sb()
        sandbox.calls["versions"] = sandbox.calls.get("versions", 0) + 1
        top = int(float(sandbox.config.max_api_version))
        return finish(
            _json(
                [
                    {"label": _release(v), "url": f"/services/data/v{v}.0", "version": f"{v}.0"}
                    for v in range(MIN_VERSION, top + 1)
                ]
            )
        )

    @app.api_route("/services/data/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"])
    async def api(rest: str, request: Request) -> Response:
        sandbox = sb()
        parts = [p for p in rest.split("/") if p]
        method = request.method
        kind = _kind(method, parts)
        sandbox.calls[kind] = sandbox.calls.get(kind, 0) + 1
        fault = sandbox.faults.draw(f"{method} {kind}", request.url.path)
        early = await _before(request, fault, sandbox)
        if early is not None:
            return finish(early)
        try:
            response = await _api(sandbox, request, parts, kind, fault)
        except _Reply as reply:
            response = reply.response
        response.headers["Sforce-Limit-Info"] = f"api-usage={sandbox.used}/{sandbox.config.api_daily_limit}"
        return finish(response)

    return app


async def _before(request: Request, fault: str | None, sandbox: SalesforceSandbox) -> Response | None:
    if fault == "reset":
        return await abort_connection(request)
    if fault == "error":
        return _server_error(sandbox.faults.error_status)
    if fault == "slow":
        await asyncio.sleep(sandbox.faults.slow_seconds)
    return None


def _expire_all(sandbox: SalesforceSandbox) -> int:
    live = [t for t in sandbox.tokens.values() if not t["expired"]]
    for token in live:
        token["expired"] = True
    return len(live)


def _fault_actions(sandbox: SalesforceSandbox, payload: dict[str, Any]) -> None:
    if payload.get("expire_tokens"):
        _expire_all(sandbox)
    if "session_timeout_seconds" in payload:
        sandbox.config.session_timeout_seconds = float(payload["session_timeout_seconds"])
    if "token_delay" in payload:
        delay = float(payload["token_delay"] or 0.0)
        if not 0 <= delay <= MAX_DELAY:
            raise ValueError(f"token_delay must be between 0 and {MAX_DELAY}")
        sandbox.config.token_delay = delay
    if "api_usage" in payload:
        sandbox.used = max(0, int(payload["api_usage"]))
    if "api_limit" in payload:
        sandbox.config.api_daily_limit = max(0, int(payload["api_limit"]))


def _config_dict(cfg: SalesforceSandboxConfig) -> dict[str, Any]:
    out = {f.name: getattr(cfg, f.name) for f in fields(cfg)}
    out["anchor_date"] = _anchor(cfg).isoformat()
    out["cdc_objects"] = list(cfg.cdc_objects)
    out["validation_rules"] = [
        ValidationRule.from_any(r).as_dict()
        for r in (DEFAULT_VALIDATION_RULES if cfg.validation_rules is None else cfg.validation_rules)
    ]
    return out


def _apply_config(sandbox: SalesforceSandbox, payload: dict[str, Any]) -> None:
    unknown = set(payload) - SETTABLE
    if unknown:
        raise ValueError(f"Unknown or fixed settings: {sorted(unknown)} (sizes and schema: POST reset)")
    cfg = sandbox.config
    store = sandbox.store
    with store.lock:
        if "validation_rules" in payload:
            rules = payload["validation_rules"]
            store.set_validation_rules(DEFAULT_VALIDATION_RULES if rules is None else rules)
            cfg.validation_rules = rules
        if "max_api_version" in payload:
            version = str(payload["max_api_version"])
            if not re.fullmatch(r"\d+\.0", version) or int(float(version)) < MIN_VERSION:
                raise ValueError("max_api_version looks like '62.0'")
            cfg.max_api_version = version
        if "query_batch_size" in payload and int(payload["query_batch_size"]) < 1:
            raise ValueError("query_batch_size is at least 1")
        for name in (
            "session_timeout_seconds",
            "token_delay",
            "bulk_processing_delay",
            "change_retention_seconds",
        ):
            if name in payload:
                value = float(payload[name])
                if value < 0 or (name == "token_delay" and value > MAX_DELAY):
                    raise ValueError(f"{name} out of range")
                setattr(cfg, name, value)
        for name in ("api_daily_limit", "query_batch_size"):
            if name in payload:
                setattr(cfg, name, int(payload[name]))
        if "duplicate_rule_account_name" in payload:
            cfg.duplicate_rule_account_name = bool(payload["duplicate_rule_account_name"])
        if "cdc_objects" in payload:
            cfg.cdc_objects = tuple(payload["cdc_objects"])
        store.duplicate_rule_account_name = cfg.duplicate_rule_account_name
        store.change_retention_seconds = cfg.change_retention_seconds
        store.cdc_objects = set(cfg.cdc_objects)


def _edit(sandbox: SalesforceSandbox, payload: dict[str, Any]) -> dict[str, Any]:
    store = sandbox.store
    obj = _object(sandbox, str(payload.get("object", "")), missing="type")
    action = payload.get("action", "update")
    with store.lock:
        txn = store.transaction(store.ui_user, origin="ui")
        try:
            if action == "create":
                values, refs = _read_record(store.schema, obj, payload.get("fields") or {})
                record_id = txn.insert(obj.name, values, refs, allow_save=True)
            elif action == "update":
                values, refs = _read_record(store.schema, obj, payload.get("fields") or {})
                record_id = txn.update(obj.name, payload.get("id"), values, refs, allow_save=True)
            elif action == "delete":
                record_id = txn.delete(obj.name, payload.get("id"))
            elif action == "undelete":
                record_id = txn.undelete(obj.name, payload.get("id"))
            else:
                raise _fail(
                    400, "INVALID_OPERATION", f"Unknown action {action!r} (create, update, delete, undelete)"
                )
        except (RecordError, _Reply):
            txn.rollback()
            raise
        changes = txn.commit()
        record = store.get(obj.name, record_id)
        return {
            "id": record_id,
            "record": store.printed(obj.name, record) if record else None,
            "changes": [c.seq for c in changes],
        }


def _kind(method: str, parts: list[str]) -> str:
    """The call's kind (what stats count and fault targets name)."""
    if not parts or not re.fullmatch(r"v\d+\.\d", parts[0]):
        return "unknown"
    p = parts[1:]
    n = len(p)
    if n == 0:
        return "resources"
    head = p[0]
    if head == "limits":
        return "limits"
    if head in ("query", "queryAll"):
        if n > 1:
            return "query_more"
        return "query_all" if head == "queryAll" else "query"
    if head == "sobjects":
        if n == 1:
            return "describe_global"
        if n == 2:
            return "sobject_create" if method == "POST" else "sobject_basic"
        if n == 3 and p[2] == "describe":
            return "describe"
        if n == 3:
            return {"GET": "sobject_get", "PATCH": "sobject_update", "DELETE": "sobject_delete"}.get(
                method, "sobject"
            )
        if n == 4:
            return {"GET": "sobject_get", "PATCH": "upsert_one", "DELETE": "sobject_delete"}.get(
                method, "sobject"
            )
        return "sobject"
    if head == "composite" and n >= 2 and p[1] == "sobjects":
        if n == 2:
            return {
                "POST": "collections_create",
                "PATCH": "collections_update",
                "DELETE": "collections_delete",
            }.get(method, "collections")
        if n == 3:
            return "collections_retrieve"
        return "collections_upsert"
    if head == "jobs" and n >= 2 and p[1] in ("ingest", "query"):
        family = f"bulk_{p[1]}"
        if n == 2:
            return f"{family}_create" if method == "POST" else f"{family}_list"
        if n == 3:
            return {"GET": f"{family}_get", "PATCH": f"{family}_state", "DELETE": f"{family}_delete"}.get(
                method, family
            )
        if p[3] == "batches":
            return f"{family}_upload"
        return f"{family}_results"
    return "unknown"


def _version(sandbox: SalesforceSandbox, part: str) -> str:
    m = re.fullmatch(r"v(\d+)\.0", part)
    if not m or not MIN_VERSION <= int(m[1]) <= int(float(sandbox.config.max_api_version)):
        raise _not_found()
    return f"{m[1]}.0"


def _authenticate(sandbox: SalesforceSandbox, request: Request, expire: bool) -> None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.strip().partition(" ")
    token = sandbox.tokens.get(value.strip()) if scheme.lower() in ("bearer", "oauth") else None
    now = time.monotonic()
    if token is not None and expire:
        token["expired"] = True
    if (
        token is not None
        and not token["expired"]
        and now - token["last"] > sandbox.config.session_timeout_seconds
    ):
        token["expired"] = True
    if token is None or token["expired"]:
        sandbox.sessions_refused += 1
        raise _Reply(
            Response(
                encode([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]),
                401,
                headers={"WWW-Authenticate": 'Token realm="Salesforce"'},
                media_type=JSON,
            )
        )
    token["last"] = now


def _count_call(sandbox: SalesforceSandbox) -> None:
    if sandbox.used >= sandbox.config.api_daily_limit:
        sandbox.limit_refusals += 1
        raise _fail(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
    sandbox.used += 1


def _written(sandbox: SalesforceSandbox, kind: str, n: int) -> None:
    if n:
        sandbox.written[kind] = sandbox.written.get(kind, 0) + n


async def _api(
    sandbox: SalesforceSandbox, request: Request, parts: list[str], kind: str, fault: str | None
) -> Response:
    if not parts:
        raise _not_found()
    version = _version(sandbox, parts[0])
    _authenticate(sandbox, request, expire=fault == "expire_token")
    _count_call(sandbox)
    p = parts[1:]
    method = request.method
    store = sandbox.store
    if not p:
        base = f"/services/data/v{version}"
        return _json(
            {
                name: f"{base}/{name}"
                for name in (
                    "sobjects",
                    "query",
                    "queryAll",
                    "limits",
                    "composite",
                    "jobs/ingest",
                    "jobs/query",
                )
            }
        )
    head = p[0]
    if head == "limits":
        _allow(method, "GET")
        return _json(_limits(sandbox))
    if head in ("query", "queryAll"):
        _allow(method, "GET")
        with store.lock:
            if len(p) == 1:
                return _json(_query(sandbox, request, version, include_deleted=head == "queryAll"))
            return _json(_query_more(sandbox, version, head, p[1]))
    if head == "sobjects":
        return await _sobjects(sandbox, request, version, p[1:], kind)
    if head == "composite" and len(p) >= 2 and p[1] == "sobjects":
        return await _collections(sandbox, request, version, p[2:], kind)
    if head == "jobs" and len(p) >= 2 and p[1] in ("ingest", "query"):
        return await _jobs(sandbox, request, version, p[1], p[2:], kind)
    raise _not_found()


def _allow(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise _fail(
            405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed. Allowed are {','.join(allowed)}"
        )


def _limits(sandbox: SalesforceSandbox) -> dict[str, Any]:
    limit = sandbox.config.api_daily_limit
    jobs = len(sandbox.jobs)

    def entry(mx: int, remaining: int) -> dict[str, int]:
        return {"Max": mx, "Remaining": max(0, remaining)}

    return {
        "ConcurrentAsyncGetReportInstances": entry(200, 200),
        "DailyApiRequests": entry(limit, limit - sandbox.used),
        "DailyAsyncApexExecutions": entry(250000, 250000),
        "DailyBulkApiBatches": entry(15000, 15000 - jobs),
        "DailyBulkV2QueryFileStorageMB": entry(1048576, 1048576),
        "DailyBulkV2QueryJobs": entry(
            10000, 10000 - sum(1 for j in sandbox.jobs.values() if j.kind == "query")
        ),
        "DataStorageMB": entry(5, 5),
        "FileStorageMB": entry(20, 20),
        "HourlyPublishedStandardVolumePlatformEvents": entry(100000, 100000),
        "MonthlyPlatformEventsUsageEntitlement": entry(0, 0),
    }


# -- query -------------------------------------------------------------------------------------


def _batch_size(sandbox: SalesforceSandbox, request: Request) -> int:
    options = request.headers.get("sforce-query-options", "")
    m = re.search(r"batchSize\s*=\s*(\d+)", options, re.IGNORECASE)
    if m:
        return min(2000, max(200, int(m[1])))
    return max(1, int(sandbox.config.query_batch_size))


def _bind(sandbox: SalesforceSandbox, text: str) -> soql.Query:
    try:
        return soql.bind(soql.parse(text), sandbox.store.schema)
    except soql.SoqlError as exc:
        raise _fail(400, exc.code, exc.message) from None


def _query(
    sandbox: SalesforceSandbox, request: Request, version: str, include_deleted: bool
) -> dict[str, Any]:
    text = request.query_params.get("q")
    if text is None:
        raise _fail(400, "MALFORMED_QUERY", "A query string has to be specified")
    query = _bind(sandbox, text)
    store = sandbox.store
    runner = soql.Runner(store, store.now_ms(), include_deleted)
    count = soql.count_only(query)
    if count is not None:
        matched = runner.select(query)
        if count.path is None:
            return {"totalSize": len(matched), "done": True, "records": []}
        total = sum(1 for r in matched if runner.value(r, count.path) is not None)
        return {
            "totalSize": 1,
            "done": True,
            "records": [{"attributes": {"type": "AggregateResult"}, count.alias or "expr0": total}],
        }
    rows = runner.select(query)
    printed = soql.Printer(runner, version, store.schema).json_rows(query, rows)
    batch = _batch_size(sandbox, request)
    if len(printed) <= batch:
        return {"totalSize": len(printed), "done": True, "records": printed}
    locator = ids.make_id("01g", sandbox.next_serial())
    sandbox.cursors[locator] = {"records": printed, "batch": batch, "used": time.monotonic()}
    while len(sandbox.cursors) > MAX_CURSORS:
        sandbox.cursors.popitem(last=False)
    endpoint = "queryAll" if include_deleted else "query"
    return {
        "totalSize": len(printed),
        "done": False,
        "nextRecordsUrl": f"/services/data/v{version}/{endpoint}/{locator}-{batch}",
        "records": printed[:batch],
    }


def _query_more(sandbox: SalesforceSandbox, version: str, endpoint: str, locator: str) -> dict[str, Any]:
    cursor_id, _, offset_text = locator.rpartition("-")
    cursor = sandbox.cursors.get(cursor_id)
    now = time.monotonic()
    if cursor is not None and now - cursor["used"] > CURSOR_IDLE_SECONDS:
        del sandbox.cursors[cursor_id]
        cursor = None
    if cursor is None or not offset_text.isdigit() or int(offset_text) >= len(cursor["records"]):
        raise _fail(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
    cursor["used"] = now
    sandbox.cursors.move_to_end(cursor_id)
    records = cursor["records"]
    offset = int(offset_text)
    end = offset + cursor["batch"]
    out: dict[str, Any] = {"totalSize": len(records), "done": end >= len(records)}
    if end < len(records):
        out["nextRecordsUrl"] = f"/services/data/v{version}/{endpoint}/{cursor_id}-{end}"
    out["records"] = records[offset:end]
    if out["done"]:
        del sandbox.cursors[cursor_id]
    return out


# -- sObject REST ------------------------------------------------------------------------------


def _record_reply(
    sandbox: SalesforceSandbox, obj: SObject, record: dict[str, Any], version: str, fields_: str | None
) -> dict[str, Any]:
    chosen = list(obj.fields.values())
    if fields_:
        chosen = []
        for name in [n.strip() for n in fields_.split(",") if n.strip()]:
            f = obj.field(name)
            if f is None:
                raise _fail(
                    400,
                    "INVALID_FIELD",
                    f"No such column '{name}' on entity '{obj.name}'. If you are attempting to use a custom field, "
                    "be sure to append the '__c' after the custom field name. Please reference your WSDL or the "
                    "describe call for the appropriate names.",
                )
            chosen.append(f)
    out: dict[str, Any] = {"attributes": soql.attributes(obj.name, record["Id"], version)}
    for f in chosen:
        out[f.name] = to_json(f, record.get(f.name))
    return out


def _find_record(sandbox: SalesforceSandbox, obj: SObject, record_id: str) -> dict[str, Any]:
    canonical = ids.normalize(record_id)
    if canonical is None:
        raise _fail(
            404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {record_id}"
        )
    record = sandbox.store.tables[obj.name].get(canonical) if canonical[:3] == obj.key_prefix else None
    if record is None:
        raise _not_found()
    if record["IsDeleted"]:
        raise _fail(404, "ENTITY_IS_DELETED", "entity is deleted", [])
    return record


def _ext_field(obj: SObject, name: str) -> Any:
    f = obj.field(name)
    if f is None or not (f.external_id or f.type == "id"):
        raise _fail(
            404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {name}"
        )
    return f


def _allow_save(request: Request) -> bool:
    return (
        "allowsave=true" in request.headers.get("sforce-duplicate-rule-header", "").replace(" ", "").lower()
    )


def _single_write(sandbox: SalesforceSandbox, kind: str, work: Any) -> Any:
    """Run one record's write in its own transaction; a RecordError answers 400 (404 for a
    record that is not there)."""
    store = sandbox.store
    with store.lock:
        txn = store.transaction()
        try:
            result = work(txn)
        except RecordError as exc:
            txn.rollback()
            status = 404 if exc.code in ("NOT_FOUND", "ENTITY_IS_DELETED") else 400
            raise _Reply(_json([exc.as_rest_error()], status)) from None
        txn.commit()
        _written(sandbox, kind, 1)
        return result


async def _sobjects(
    sandbox: SalesforceSandbox, request: Request, version: str, p: list[str], kind: str
) -> Response:
    method = request.method
    store = sandbox.store
    schema = store.schema
    if not p:
        _allow(method, "GET")
        return _json(
            {
                "encoding": "UTF-8",
                "maxBatchSize": 200,
                "sobjects": [o.global_entry(version) for o in schema.values()],
            }
        )
    obj = _object(sandbox, p[0])
    if len(p) == 1:
        _allow(method, "GET", "POST")
        if method == "GET":
            with store.lock:
                recent = sorted(
                    store.rows(obj.name, False), key=lambda r: r["LastModifiedDate"], reverse=True
                )[:10]
                name_field = obj.name_field
                items = []
                for r in recent:
                    item = {"attributes": soql.attributes(obj.name, r["Id"], version), "Id": r["Id"]}
                    if name_field is not None:
                        item[name_field.name] = r[name_field.name]
                    items.append(item)
            return _json({"objectDescribe": obj.global_entry(version), "recentItems": items})
        values, refs = _read_record(schema, obj, await _body(request))
        allow = _allow_save(request)
        new_id = _single_write(
            sandbox, kind, lambda txn: txn.insert(obj.name, values, refs, allow_save=allow)
        )
        return _json({"id": new_id, "success": True, "errors": []}, 201)
    if len(p) == 2 and p[1] == "describe":
        _allow(method, "GET")
        return _json(obj.describe(version))
    if len(p) == 2:
        _allow(method, "GET", "PATCH", "DELETE")
        if method == "GET":
            with store.lock:
                record = _find_record(sandbox, obj, p[1])
                return _json(_record_reply(sandbox, obj, record, version, request.query_params.get("fields")))
        if method == "PATCH":
            body = await _body(request)
            values, refs = _read_record(schema, obj, body)
            with store.lock:
                _find_record(sandbox, obj, p[1])
            allow = _allow_save(request)
            _single_write(
                sandbox, kind, lambda txn: txn.update(obj.name, p[1], values, refs, allow_save=allow)
            )
            return Response(status_code=204)
        with store.lock:
            _find_record(sandbox, obj, p[1])
        _single_write(sandbox, kind, lambda txn: txn.delete(obj.name, p[1]))
        return Response(status_code=204)
    if len(p) == 3:
        _allow(method, "GET", "PATCH", "DELETE")
        ext = _ext_field(obj, p[1])
        value = p[2]
        with store.lock:
            if ext.type == "id":
                canonical = ids.normalize(value)
                matches = [canonical] if canonical and store.get(obj.name, canonical) else []
            else:
                matches = store.find(obj.name, ext.name, value)
        if method == "GET":
            if len(matches) > 1:
                return _json([f"/services/data/v{version}/sobjects/{obj.name}/{m}" for m in matches], 300)
            if not matches:
                raise _not_found()
            with store.lock:
                record = _find_record(sandbox, obj, matches[0])
                return _json(_record_reply(sandbox, obj, record, version, request.query_params.get("fields")))
        if method == "DELETE":
            if len(matches) > 1:
                return _json([f"/services/data/v{version}/sobjects/{obj.name}/{m}" for m in matches], 300)
            if not matches:
                raise _not_found()
            _single_write(sandbox, kind, lambda txn: txn.delete(obj.name, matches[0]))
            return Response(status_code=204)
        body = await _body(request)
        values, refs = _read_record(schema, obj, body)
        if ext.type != "id" and ext.name in values and str(values[ext.name]).casefold() != value.casefold():
            raise _fail(
                400,
                "INVALID_FIELD",
                f"The value of {ext.name} in the body does not match the one in the URL: {values[ext.name]}",
                [ext.name],
            )
        if len(matches) > 1:
            return _json([f"/services/data/v{version}/sobjects/{obj.name}/{m}" for m in matches], 300)
        if ext.type == "id" and not matches:
            raise _not_found()
        allow = _allow_save(request)
        record_id, created = _single_write(
            sandbox, kind, lambda txn: txn.upsert(obj.name, ext.name, value, values, refs, allow_save=allow)
        )
        body_out = {"id": record_id, "success": True, "errors": [], "created": created}
        if created:
            return _json(body_out, 201)
        if float(version) >= 46.0:
            return _json(body_out, 200)
        return Response(status_code=204)
    raise _not_found()


# -- sObject Collections -----------------------------------------------------------------------


def _records_of(body: Any) -> tuple[list[Any], bool]:
    if not isinstance(body, dict) or not isinstance(body.get("records"), list):
        raise _fail(400, "JSON_PARSER_ERROR", "The request body must be an object with a records array")
    records = body["records"]
    if len(records) > COLLECTION_LIMIT:
        raise _fail(
            400,
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot submit more than 200 records into this call",
        )
    all_or_none = body.get("allOrNone", False)
    if not isinstance(all_or_none, bool):
        raise _fail(400, "JSON_PARSER_ERROR", "allOrNone is true or false")
    return records, all_or_none


def _type_of(sandbox: SalesforceSandbox, record: Any) -> SObject:
    attrs = record.get("attributes") if isinstance(record, dict) else None
    name = attrs.get("type") if isinstance(attrs, dict) else None
    if not name:
        raise _fail(400, "INVALID_TYPE", "Must send a concrete entity type.", [])
    return _object(sandbox, str(name), missing="type")


def _run_collection(
    sandbox: SalesforceSandbox, kind: str, items: list[Any], all_or_none: bool, created_key: bool
) -> list[dict[str, Any]]:
    """Run ``items`` (callables taking the transaction, returning (id, created)) as one call."""
    store = sandbox.store
    results: list[dict[str, Any]] = []
    failed = False
    with store.lock:
        txn = store.transaction()
        for work in items:
            try:
                record_id, created = work(txn)
                result: dict[str, Any] = {"id": record_id, "success": True, "errors": []}
                if created_key:
                    result["created"] = created
            except RecordError as exc:
                failed = True
                result = {"success": False, "errors": [exc.as_collection_error()]}
                known = getattr(work, "known_id", None)
                if known:
                    result = {"id": known, **result}
                if created_key:
                    result["created"] = False
            results.append(result)
        if failed and all_or_none:
            txn.rollback()
            for result in results:
                if result["success"]:
                    result.pop("id", None)
                    result["success"] = False
                    result["errors"] = [ROLLED_BACK.as_collection_error()]
                    if created_key:
                        result["created"] = False
            return results
        txn.commit()
    _written(sandbox, kind, sum(1 for r in results if r["success"]))
    return results


class _Work:
    def __init__(self, fn: Any, known_id: str | None = None) -> None:
        self.fn = fn
        self.known_id = known_id

    def __call__(self, txn: Any) -> Any:
        return self.fn(txn)


async def _collections(
    sandbox: SalesforceSandbox, request: Request, version: str, p: list[str], kind: str
) -> Response:
    method = request.method
    store = sandbox.store
    allow = _allow_save(request)
    if not p:
        _allow(method, "POST", "PATCH", "DELETE")
        if method == "DELETE":
            raw_ids = [i for i in request.query_params.get("ids", "").split(",") if i]
            if not raw_ids:
                raise _fail(400, "MISSING_ARGUMENT", "ids parameter is required", [])
            if len(raw_ids) > COLLECTION_LIMIT:
                raise _fail(
                    400,
                    "EXCEEDED_ID_LIMIT",
                    "record limit reached. cannot submit more than 200 records into this call",
                )
            all_or_none = request.query_params.get("allOrNone", "false").lower() == "true"
            items = [_Work(lambda txn, i=i: (txn.delete(None, i), False), ids.normalize(i)) for i in raw_ids]
            return _json(_run_collection(sandbox, kind, items, all_or_none, created_key=False))
        records, all_or_none = _records_of(await _body(request))
        parsed = []
        for record in records:
            obj = _type_of(sandbox, record)
            values, refs = _read_record(store.schema, obj, record)
            parsed.append((obj, values, refs))
        if method == "POST":
            items = [
                _Work(lambda txn, o=o, v=v, r=r: (txn.insert(o.name, v, r, allow_save=allow), True))
                for o, v, r in parsed
            ]
        else:
            items = []
            for o, v, r in parsed:
                record_id = v.get("Id")

                def work(
                    txn: Any, o: SObject = o, v: dict = v, r: dict = r, record_id: Any = record_id
                ) -> Any:
                    if record_id in (None, ""):
                        raise RecordError("MISSING_ARGUMENT", "Id not specified in an update call")
                    return txn.update(o.name, record_id, v, r, allow_save=allow), False

                items.append(_Work(work, ids.normalize(record_id)))
        return _json(_run_collection(sandbox, kind, items, all_or_none, created_key=False))
    obj = _object(sandbox, p[0])
    if len(p) == 1:
        _allow(method, "GET", "POST")
        if method == "GET":
            raw_ids = [i for i in request.query_params.get("ids", "").split(",") if i]
            field_list = request.query_params.get("fields")
        else:
            body = await _body(request)
            if not isinstance(body, dict):
                raise _fail(
                    400, "JSON_PARSER_ERROR", "The request body must be an object with ids and fields"
                )
            raw_ids = list(body.get("ids") or [])
            field_list = ",".join(body.get("fields") or [])
        if not raw_ids:
            raise _fail(400, "MISSING_ARGUMENT", "ids parameter is required", [])
        if not field_list:
            raise _fail(400, "MISSING_ARGUMENT", "fields parameter is required", [])
        if len(raw_ids) > RETRIEVE_LIMIT:
            raise _fail(400, "EXCEEDED_ID_LIMIT", f"Too many ids: at most {RETRIEVE_LIMIT}")
        out: list[Any] = []
        with store.lock:
            for raw in raw_ids:
                canonical = ids.normalize(raw)
                if canonical is None:
                    raise _fail(400, "MALFORMED_ID", f"malformed id {raw}", ["Id"])
                record = store.tables[obj.name].get(canonical)
                if record is None or record["IsDeleted"]:
                    out.append(None)
                else:
                    out.append(_record_reply(sandbox, obj, record, version, field_list))
        return _json(out)
    if len(p) == 2:
        _allow(method, "PATCH")
        ext = _ext_field(obj, p[1])
        records, all_or_none = _records_of(await _body(request))
        parsed = []
        for record in records:
            rtype = _type_of(sandbox, record)
            if rtype.name != obj.name:
                raise _fail(
                    400, "INVALID_TYPE", f"All records must be of type {obj.name}; found {rtype.name}", []
                )
            values, refs = _read_record(store.schema, obj, record)
            parsed.append((values, refs))
        # The same external id twice in one request fails both records.
        seen: dict[Any, int] = {}
        for values, _ in parsed:
            key = values.get(ext.name)
            if isinstance(key, str) and ext.type != "id":
                key = key.casefold()
            if key not in (None, ""):
                seen[key] = seen.get(key, 0) + 1
        items = []
        for values, refs in parsed:
            key = values.get(ext.name)
            folded = key.casefold() if isinstance(key, str) and ext.type != "id" else key
            if folded not in (None, "") and seen.get(folded, 0) > 1:

                def dup(txn: Any, key: Any = key) -> Any:
                    raise RecordError(
                        "DUPLICATE_EXTERNAL_ID", f"Duplicate external id specified: {key}", [ext.name]
                    )

                items.append(_Work(dup))
                continue
            items.append(
                _Work(
                    lambda txn, v=values, r=refs, key=key: txn.upsert(
                        obj.name, ext.name, key, v, r, allow_save=allow
                    ),
                    ids.normalize(key) if ext.type == "id" else None,
                )
            )
        return _json(_run_collection(sandbox, kind, items, all_or_none, created_key=True))
    raise _not_found()


# -- Bulk API 2.0 ------------------------------------------------------------------------------


def _job(sandbox: SalesforceSandbox, family: str, job_id: str) -> bulk.Job:
    job = sandbox.jobs.get(ids.normalize(job_id) or job_id)
    if job is None or job.kind != family:
        raise _fail(404, "NOT_FOUND", "The requested resource does not exist")
    return job


def _schedule(sandbox: SalesforceSandbox, job: bulk.Job) -> None:
    """Process the job when its delay has passed, polled or not."""
    loop = asyncio.get_running_loop()
    store = sandbox.store

    def tick() -> None:
        if sandbox.jobs.get(job.id) is job and sandbox.store is store:
            before = job.state
            bulk.advance(job, store)
            if job.kind == "ingest" and before not in bulk.TERMINAL and job.state in bulk.TERMINAL:
                _written(sandbox, "bulk_ingest", len(job.successful))
            if job.state not in bulk.TERMINAL:
                loop.call_later(max(0.01, job.delay / 2), tick)

    loop.call_later(max(0.0, job.delay / 2), tick)


def _advance(sandbox: SalesforceSandbox, job: bulk.Job) -> None:
    before = job.state
    bulk.advance(job, sandbox.store)
    if job.kind == "ingest" and before not in bulk.TERMINAL and job.state in bulk.TERMINAL:
        _written(sandbox, "bulk_ingest", len(job.successful))


async def _jobs(
    sandbox: SalesforceSandbox, request: Request, version: str, family: str, p: list[str], kind: str
) -> Response:
    method = request.method
    store = sandbox.store
    if not p:
        _allow(method, "GET", "POST")
        if method == "GET":
            for job in list(sandbox.jobs.values()):
                _advance(sandbox, job)
            return _json(
                {
                    "done": True,
                    "records": [j.info(full=False) for j in sandbox.jobs.values() if j.kind == family],
                    "nextRecordsUrl": None,
                }
            )
        body = await _body(request)
        if not isinstance(body, dict):
            raise _fail(400, "JSON_PARSER_ERROR", "A job is a JSON object")
        line_ending = body.get("lineEnding", "LF")
        delimiter = body.get("columnDelimiter", "COMMA")
        if line_ending not in bulk.LINE_ENDINGS:
            raise _fail(400, "INVALIDJOB", f"Invalid lineEnding: {line_ending}")
        if delimiter not in bulk.DELIMITERS:
            raise _fail(400, "INVALIDJOB", f"Invalid columnDelimiter: {delimiter}")
        if body.get("contentType", "CSV") != "CSV":
            raise _fail(400, "INVALIDJOB", "contentType: only CSV is supported")
        job_id = ids.make_id("750", sandbox.next_serial())
        operation = body.get("operation")
        if family == "ingest":
            if operation not in bulk.INGEST_OPERATIONS:
                raise _fail(400, "INVALIDJOB", f"Invalid operation: {operation}")
            obj = next(
                (o for o in store.schema.values() if o.name.lower() == str(body.get("object", "")).lower()),
                None,
            )
            if obj is None:
                raise _fail(
                    400, "INVALIDENTITY", f"Entity '{body.get('object')}' is not supported by the Bulk API."
                )
            ext = body.get("externalIdFieldName")
            if operation == "upsert" and not ext:
                raise _fail(400, "INVALIDJOB", "External ID was blank for upsert")
            job = bulk.Job(
                id=job_id,
                kind="ingest",
                operation=operation,
                object=obj.name,
                created_by=store.integration_user,
                created_ms=store.now_ms(),
                api_version=version,
                line_ending=line_ending,
                column_delimiter=delimiter,
                external_id_field=ext if operation == "upsert" else None,
                delay=sandbox.config.bulk_processing_delay,
            )
            sandbox.jobs[job_id] = job
            return _json(job.info(full=False))
        if operation not in bulk.QUERY_OPERATIONS:
            raise _fail(400, "INVALIDJOB", f"Invalid operation: {operation}")
        query = _bind(sandbox, str(body.get("query") or ""))
        unsupported = None
        if soql.count_only(query) is not None:
            unsupported = "Aggregate functions such as COUNT()"
        elif any(isinstance(i, soql.Query) for i in query.items):
            unsupported = "Parent-to-child relationship queries"
        elif query.offset is not None:
            unsupported = "OFFSET"
        if unsupported:
            raise _fail(400, "API_ERROR", f"{unsupported} are not supported by Bulk API 2.0 query jobs")
        job = bulk.Job(
            id=job_id,
            kind="query",
            operation=operation,
            object=query.obj.name if query.obj else "",
            created_by=store.integration_user,
            created_ms=store.now_ms(),
            api_version=version,
            line_ending=line_ending,
            column_delimiter=delimiter,
            state="UploadComplete",
            closed_at=time.monotonic(),
            delay=sandbox.config.bulk_processing_delay,
            query=query,
        )
        sandbox.jobs[job_id] = job
        _schedule(sandbox, job)
        return _json(job.info(full=False))
    job = _job(sandbox, family, p[0])
    if len(p) == 1:
        _allow(method, "GET", "PATCH", "DELETE")
        if method == "GET":
            _advance(sandbox, job)
            return _json(job.info())
        if method == "DELETE":
            _advance(sandbox, job)
            if job.state not in ("UploadComplete", *bulk.TERMINAL):
                raise _fail(400, "INVALIDJOBSTATE", f"Deleting a job in state {job.state} is not allowed")
            del sandbox.jobs[job.id]
            return Response(status_code=204)
        body = await _body(request)
        wanted = body.get("state") if isinstance(body, dict) else None
        _advance(sandbox, job)
        if wanted == "Aborted":
            if job.state in bulk.TERMINAL:
                raise _fail(400, "INVALIDJOBSTATE", f"Aborting a job in state {job.state} is not allowed")
            job.state = "Aborted"
            job.unprocessed = list(job.rows)
            job.modstamp_ms = store.now_ms()
            return _json(job.info(full=False))
        if wanted == "UploadComplete" and family == "ingest":
            if job.state != "Open":
                raise _fail(400, "INVALIDJOBSTATE", f"Closing a job in state {job.state} is not allowed")
            job.state = "UploadComplete"
            job.closed_at = time.monotonic()
            job.modstamp_ms = store.now_ms()
            _schedule(sandbox, job)
            return _json(job.info(full=False))
        raise _fail(400, "INVALIDJOBSTATE", f"Invalid state change: {wanted}")
    what = p[1]
    if family == "ingest" and what == "batches":
        _allow(method, "PUT")
        if job.state != "Open":
            raise _fail(
                409, "INVALIDJOBSTATE", f"Uploading data to a job in state {job.state} is not allowed"
            )
        if not request.headers.get("content-type", "").lower().startswith("text/csv"):
            raise _fail(400, "INVALIDJOB", "Content-Type must be text/csv")
        raw = await request.body()
        try:
            bulk.parse_csv(job, raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise _fail(400, "INVALIDBATCH", "InvalidBatch : The CSV is not UTF-8") from None
        except bulk.BulkError as exc:
            raise _fail(exc.status, exc.code, exc.message) from None
        return Response(status_code=201)
    if family == "ingest" and what.lower() in ("successfulresults", "failedresults", "unprocessedrecords"):
        _allow(method, "GET")
        _advance(sandbox, job)
        which = {"successfulresults": "successful", "failedresults": "failed"}.get(
            what.lower(), "unprocessed"
        )
        if which != "unprocessed" and job.state not in bulk.TERMINAL:
            raise _fail(
                400, "INVALIDJOBSTATE", f"Job is in state {job.state}; results come once it is complete"
            )
        return Response(bulk.ingest_results(job, which).encode(), 200, media_type=CSV)
    if family == "query" and what == "results":
        _allow(method, "GET")
        _advance(sandbox, job)
        if job.state != "JobComplete":
            raise _fail(
                400, "INVALIDJOBSTATE", f"Job is in state {job.state}; results come once it is complete"
            )
        params = request.query_params
        try:
            max_records = int(params["maxRecords"]) if params.get("maxRecords") else None
        except ValueError:
            raise _fail(400, "INVALIDJOB", "maxRecords is a positive number") from None
        if max_records is not None and max_records < 1:
            raise _fail(400, "INVALIDJOB", "maxRecords is a positive number")
        try:
            text, next_locator, count = bulk.query_results(job, params.get("locator"), max_records)
        except bulk.BulkError as exc:
            raise _fail(exc.status, exc.code, exc.message) from None
        return Response(
            text.encode(),
            200,
            headers={"Sforce-Locator": next_locator, "Sforce-NumberOfRecords": str(count)},
            media_type=CSV,
        )
    raise _not_found()


__all__ = ["SalesforceSandbox", "SalesforceSandboxConfig", "create_app"]
