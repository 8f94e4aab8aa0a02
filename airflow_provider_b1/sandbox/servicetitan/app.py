"""The ServiceTitan API v2 imitation as a FastAPI app: the token endpoint, the API and
``/_sandbox``, all on one server.

Token: ``POST /connect/token`` (form ``grant_type=client_credentials``, ``client_id``,
``client_secret``; the client may also authenticate with HTTP Basic) answers ``{access_token,
expires_in, token_type: "Bearer", scope}`` with ``Cache-Control: no-store``. Wrong credentials
answer 400 ``{"error": "invalid_client"}``, another grant 400 ``unsupported_grant_type``, as
IdentityServer does. More than ``token_requests_per_minute`` requests of one client id within a
minute answer 429 with ``Retry-After``.

API: ``GET /{module}/v2/tenant/{tenant}/...``. Checked in this order (gateway first, then the
service): ``ST-App-Key`` (missing 401, wrong 403), the rate limit per (app key, tenant) (429
``application/problem+json`` ``{"type", "title": "Rate limit is exceeded. Try again in N
seconds.", "status": 429, "traceId"}`` with ``Retry-After: N``), ``Authorization`` (``Bearer
<token>`` or the bare token; missing, unknown or expired 401 with ``WWW-Authenticate: Bearer``),
the tenant (another number 403, not a number 404), then the resource (unknown 404). Every
refusal's problem+json body names its cause. Query parameter names are matched without regard
to case, as ASP.NET binds them; a bad value answers 400 ``"One or more validation errors
occurred."`` with ``errors: {param: [message]}``.

Resources (see :mod:`.store` for the export feed's rules):

- ``crm``: ``customers``, ``customers/{id}``, ``export/customers``
- ``accounting``: ``invoices``, ``payments``, ``export/invoices``, ``export/payments``
- ``settings``: ``business-units``, ``business-units/{id}``

Lists take ``page`` (from 1), ``pageSize`` (default 50, at most 5000), ``includeTotal``,
``ids`` (comma-separated, at most 50), ``modifiedOnOrAfter``, ``modifiedBefore``,
``createdOnOrAfter``, ``createdBefore`` (RFC 3339; UTC when no offset), ``sort`` (``+Id``,
``-ModifiedOn``, ``+CreatedOn``...), ``active`` (``True``/``False``/``Any``; customers and
business units default to ``True``, invoices and payments to ``Any``) and, for invoices and
payments, ``customerId``. Exports take ``from`` (a continuation token or a date) and
``includeRecentChanges``; they include inactive records.

Control plane (no auth, never throttled, never faulted): ``GET /_sandbox/stats``, ``POST
/_sandbox/stats/reset``, ``GET|POST /_sandbox/faults``, ``POST /_sandbox/expire-tokens``, ``GET|POST
/_sandbox/config``, ``GET|POST /_sandbox/clock``, ``POST /_sandbox/reset``, ``GET
/_sandbox/truth``, ``POST /_sandbox/mutate``, ``POST /_sandbox/seed``, ``GET|POST|DELETE
/_sandbox/webhooks``.

This module shares no code with the hook on purpose: two independent readings of the protocol
catch each other's mistakes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import json
import math
import secrets
import time
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from starlette.responses import Response

from airflow_provider_b1.sandbox.faults import Faults
from airflow_provider_b1.sandbox.server import abort_connection, abortable_app
from airflow_provider_b1.sandbox.servicetitan import data
from airflow_provider_b1.sandbox.servicetitan.limits import CallLimiter, TokenLimiter
from airflow_provider_b1.sandbox.servicetitan.store import Store, StoreError, encode, make_token, read_token
from airflow_provider_b1.sandbox.servicetitan.webhooks import Webhooks

JSON = "application/json; charset=utf-8"
PROBLEM = "application/problem+json; charset=utf-8"
DEFAULT_SCOPE = "tn.crm.customers:r tn.acc.invoices:r tn.acc.payments:r tn.settings.businessunits:r"
ISSUER = "https://auth-integration.servicetitan.io"

# (module, resource) -> (entity, kind); kind is "list", "one" or "export".
ROUTES = {
    ("crm", "customers"): ("customers", "list"),
    ("crm", "export/customers"): ("customers", "export"),
    ("accounting", "invoices"): ("invoices", "list"),
    ("accounting", "export/invoices"): ("invoices", "export"),
    ("accounting", "payments"): ("payments", "list"),
    ("accounting", "export/payments"): ("payments", "export"),
    ("settings", "business-units"): ("business-units", "list"),
}
SINGLE = {("crm", "customers"): "customers", ("settings", "business-units"): "business-units"}
ACTIVE_BY_DEFAULT = {"customers", "business-units"}
WITH_CUSTOMER = {"invoices", "payments"}


@dataclass
class ServiceTitanSandboxConfig:
    """Settings of one imitated ServiceTitan tenant.

    :param seed: seed of the generated data (and of random mutations).
    :param customers: number of generated customers.
    :param invoices: number of generated invoices (payments follow, about 0.8 per invoice).
    :param business_units: number of business units.
    :param anchor_date: the generated year ends the day before (default: today, UTC).
    :param client_id: the one API client's id.
    :param client_secret: its secret.
    :param tenant_id: the one tenant (a number, as a string).
    :param app_key: the application key every API call must send as ``ST-App-Key``.
    :param scope: what the token endpoint reports as ``scope``.
    :param token_lifetime_seconds: how long a token lives (``expires_in``, whole seconds).
    :param token_requests_per_minute: token requests admitted per client id a minute (0 = no limit).
    :param rate_limit_per_second: API calls admitted per (app key, tenant) a second (0 = no limit).
    :param rate_limit_window: ``sliding`` (any one-second span) or ``fixed`` (whole seconds).
    :param default_page_size: ``pageSize`` of lists when none is given.
    :param max_page_size: the largest ``pageSize`` accepted (larger: 400).
    :param max_ids: the most ids one ``ids`` filter may list (more: 400).
    :param export_page_size: records per export page.
    :param export_lag_seconds: exports leave out records changed more recently than this,
        unless ``includeRecentChanges=true``.
    :param list_active_default: ``active`` of customer and business-unit lists when not given.
    :param timestamp_style: ``dotnet`` (up to 7 fraction digits, zeros trimmed) or ``millis``.
    :param stats_seconds: how many past seconds ``stats`` keeps per-second counts for.
    :param webhook_time_scale: multiplies the webhook retry delays (tests shrink it).
    :param webhook_retry_seconds: delays between delivery attempts (ServiceTitan: 10, 30, 60, 300).
    :param webhook_timeout_seconds: how long one delivery attempt may take.
    """

    seed: int = 1
    customers: int = 300
    invoices: int = 2000
    business_units: int = 6
    anchor_date: dt.date | None = None
    client_id: str = "b1-client"
    client_secret: str = "b1-secret-st-4f9c2a7e1d"
    tenant_id: str = "1000001"
    app_key: str = "ak1.sandbox4b1provider7k2m9q3x8w"
    scope: str = DEFAULT_SCOPE
    token_lifetime_seconds: float = 900
    token_requests_per_minute: int = 30
    rate_limit_per_second: int = 60
    rate_limit_window: str = "sliding"
    default_page_size: int = 50
    max_page_size: int = 5000
    max_ids: int = 50
    export_page_size: int = 500
    export_lag_seconds: float = 900
    list_active_default: str = "True"
    timestamp_style: str = "dotnet"
    stats_seconds: int = 60
    webhook_time_scale: float = 1.0
    webhook_retry_seconds: tuple[float, ...] = (10, 30, 60, 300)
    webhook_timeout_seconds: float = 10.0


SETTABLE = {
    "client_id",
    "client_secret",
    "tenant_id",
    "app_key",
    "scope",
    "token_lifetime_seconds",
    "token_requests_per_minute",
    "rate_limit_per_second",
    "rate_limit_window",
    "default_page_size",
    "max_page_size",
    "max_ids",
    "export_page_size",
    "export_lag_seconds",
    "list_active_default",
    "timestamp_style",
    "stats_seconds",
    "webhook_time_scale",
    "webhook_retry_seconds",
    "webhook_timeout_seconds",
}
CHOICES = {
    "rate_limit_window": ("sliding", "fixed"),
    "list_active_default": ("True", "False", "Any"),
    "timestamp_style": ("dotnet", "millis"),
}


def _anchor(config: ServiceTitanSandboxConfig) -> dt.date:
    return config.anchor_date or dt.datetime.now(dt.timezone.utc).date()


class ServiceTitanSandbox:
    """State behind the app: the store, tokens, throttles, faults, clock and counters."""

    def __init__(self, config: ServiceTitanSandboxConfig) -> None:
        self.config = config
        self.clock_offset_us = 0
        self.tokens: dict[str, dict[str, Any]] = {}
        self.faults = Faults()
        self.webhooks = Webhooks(self)
        self.store = self.build_store(config)
        self.reset_counters()

    def now_us(self) -> int:
        """The sandbox clock: real time plus whatever ``POST /_sandbox/clock`` advanced it by."""
        return time.time_ns() // 1000 + self.clock_offset_us

    def build_store(self, config: ServiceTitanSandboxConfig) -> Store:
        dataset = data.generate(
            config.seed,
            customers=config.customers,
            invoices=config.invoices,
            business_units=config.business_units,
            anchor=_anchor(config),
            timestamp_style=config.timestamp_style,
        )
        return Store(dataset, self.now_us, seed=config.seed, timestamp_style=config.timestamp_style)

    def reset_counters(self) -> None:
        self.calls = CallLimiter()
        self.token_limiter = TokenLimiter()
        self.tokens_issued = 0
        self.token_requests = 0
        self.token_refusals = 0
        self.requests_total = 0
        self.requests: dict[str, int] = {}
        self.responses: dict[str, int] = {}
        self.auth_schemes: dict[str, int] = {}
        self.faults.injected = {}

    def count(self, label: str) -> None:
        self.requests_total += 1
        self.requests[label] = self.requests.get(label, 0) + 1

    def live_tokens(self) -> int:
        now = self.now_us()
        return sum(1 for t in self.tokens.values() if t["expires"] > now)

    def stats(self) -> dict[str, Any]:
        return {
            "tokens_issued": self.tokens_issued,
            "token_requests": self.token_requests,
            "token_requests_refused": self.token_refusals,
            "token_requests_throttled": self.token_limiter.throttled,
            "live_tokens": self.live_tokens(),
            "requests_total": self.requests_total,
            "requests": dict(self.requests),
            "responses": dict(self.responses),
            "rate_limited": self.responses.get("429", 0),
            **self.calls.stats(self.config.stats_seconds),
            "auth_schemes": dict(self.auth_schemes),
            "faults_injected": dict(self.faults.injected),
            "clock_offset_seconds": self.clock_offset_us / 1e6,
            "webhooks": self.webhooks.stats(),
        }


# ---------------------------------------------------------------------------------------------
# Replies


def trace_id() -> str:
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-00"


def problem(status: int, title: str, headers: dict[str, str] | None = None, **extra: Any) -> Response:
    types = {
        400: "https://tools.ietf.org/html/rfc7231#section-6.5.1",
        401: "https://tools.ietf.org/html/rfc7235#section-3.1",
        403: "https://tools.ietf.org/html/rfc7231#section-6.5.3",
        404: "https://tools.ietf.org/html/rfc7231#section-6.5.4",
        405: "https://tools.ietf.org/html/rfc7231#section-6.5.5",
        429: "https://tools.ietf.org/html/rfc6585#section-4",
    }
    body = {
        "type": types.get(status, "https://tools.ietf.org/html/rfc7231#section-6.6.1"),
        "title": title,
        "status": status,
        **extra,
        "traceId": trace_id(),
    }
    return Response(encode(body), status, headers=headers, media_type=PROBLEM)


def validation(param: str, message: str) -> Response:
    return problem(400, "One or more validation errors occurred.", errors={param: [message]})


def rate_limited(seconds: int) -> Response:
    return problem(
        429, f"Rate limit is exceeded. Try again in {seconds} seconds.", {"Retry-After": str(seconds)}
    )


def _json_reply(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status, headers=headers, media_type=JSON)


def _control_reply(obj: Any, status: int = 200) -> Response:
    return Response(encode(obj), status, media_type="application/json")


class _Invalid(Exception):
    def __init__(self, param: str, message: str) -> None:
        self.param = param
        self.message = message


class Params:
    """Query parameters matched without regard to case, each parsed strictly."""

    def __init__(self, query: str) -> None:
        self.values: dict[str, tuple[str, str]] = {}
        for key, value in parse_qsl(query, keep_blank_values=True):
            self.values.setdefault(key.lower(), (key, value))

    def raw(self, name: str) -> str | None:
        found = self.values.get(name.lower())
        return None if found is None or found[1] == "" else found[1]

    def integer(self, name: str, default: int | None, lo: int, hi: int | None = None) -> int | None:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise _Invalid(name, f"The value '{value}' is not valid for {name}.") from None
        if number < lo or (hi is not None and number > hi):
            bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
            raise _Invalid(name, f"The field {name} must be {bound}.")
        return number

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        if value.lower() not in ("true", "false"):
            raise _Invalid(name, f"The value '{value}' is not valid for {name}.")
        return value.lower() == "true"

    def moment(self, name: str) -> int | None:
        value = self.raw(name)
        if value is None:
            return None
        parsed = data.parse_ts(value)
        if parsed is None:
            raise _Invalid(name, f"The value '{value}' is not valid for {name}.")
        return parsed


# ---------------------------------------------------------------------------------------------
# The app


def _fake_jwt(claims: dict[str, Any]) -> str:
    def part(obj: Any) -> str:
        raw = obj if isinstance(obj, bytes) else json.dumps(obj, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    header = {"alg": "RS256", "kid": "sandbox-signing-key", "typ": "at+jwt"}
    return ".".join((part(header), part(claims), part(secrets.token_bytes(64))))


def _strict_json(raw: bytes) -> Any:
    """JSON the sandbox can serve back unchanged: no NaN/Infinity, no lone surrogates."""

    def constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON; send it as a string")

    def number(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"{text} does not fit a double; send it as a string")
        return value

    try:
        value = json.loads(raw or b"{}", parse_constant=constant, parse_float=number)
    except json.JSONDecodeError as exc:
        raise ValueError(f"Invalid JSON: {exc}") from None
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("A string holds a lone surrogate, which UTF-8 cannot carry") from None
    return value


async def _body_json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    value = _strict_json(raw)
    if not isinstance(value, dict):
        raise ValueError("The body must be a JSON object")
    return value


def create_app(config: ServiceTitanSandboxConfig | None = None) -> FastAPI:
    """The ServiceTitan imitation; ``app.state.sandbox`` is its :class:`ServiceTitanSandbox`.

    :param config: settings; defaults to :class:`ServiceTitanSandboxConfig()`.
    """
    config = config or ServiceTitanSandboxConfig()
    app = abortable_app(title="ServiceTitan API v2 sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sandbox = ServiceTitanSandbox(config)

    def sb() -> ServiceTitanSandbox:
        return app.state.sandbox

    def finish(response: Response) -> Response:
        key = str(response.status_code)
        sb().responses[key] = sb().responses.get(key, 0) + 1
        return response

    # -- control plane ---------------------------------------------------------------------

    @app.get("/_sandbox/stats")
    async def stats() -> Response:
        return _control_reply(sb().stats())

    @app.post("/_sandbox/stats/reset")
    async def reset_stats() -> Response:
        sb().reset_counters()
        return _control_reply({"reset": True})

    @app.get("/_sandbox/faults")
    async def get_faults() -> Response:
        return _control_reply(sb().faults.settings)

    @app.post("/_sandbox/faults")
    async def set_faults(request: Request) -> Response:
        try:
            settings = sb().faults.configure(await _body_json(request))
        except (ValueError, TypeError) as exc:
            return _control_reply({"error": str(exc)}, 400)
        return _control_reply(settings)

    @app.post("/_sandbox/expire-tokens")
    async def expire_tokens() -> Response:
        sandbox = sb()
        now = sandbox.now_us()
        live = [t for t in sandbox.tokens.values() if t["expires"] > now]
        for token in live:
            token["expires"] = now
        return _control_reply({"expired": len(live)})

    @app.get("/_sandbox/config")
    async def get_config() -> Response:
        return _control_reply(_config_dict(sb().config))

    @app.post("/_sandbox/config")
    async def set_config(request: Request) -> Response:
        try:
            payload = await _body_json(request)
        except ValueError as exc:
            return _control_reply({"error": str(exc)}, 400)
        unknown = set(payload) - SETTABLE
        if unknown:
            return _control_reply(
                {"error": f"Unknown or fixed settings: {sorted(unknown)} (sizes: POST reset)"}, 400
            )
        for name, allowed in CHOICES.items():
            if name in payload and payload[name] not in allowed:
                return _control_reply({"error": f"{name}: one of {list(allowed)}"}, 400)
        cfg = sb().config
        for name, value in payload.items():
            setattr(cfg, name, tuple(value) if name == "webhook_retry_seconds" else value)
        sb().store.timestamp_style = cfg.timestamp_style
        return _control_reply(_config_dict(cfg))

    @app.get("/_sandbox/clock")
    async def get_clock() -> Response:
        return _control_reply(_clock(sb()))

    @app.post("/_sandbox/clock")
    async def move_clock(request: Request) -> Response:
        try:
            payload = await _body_json(request)
            seconds = float(payload.get("advance_seconds", 0))
        except (ValueError, TypeError) as exc:
            return _control_reply({"error": str(exc)}, 400)
        if seconds < 0 or not math.isfinite(seconds):
            return _control_reply({"error": "The clock only moves forward"}, 400)
        sb().clock_offset_us += int(seconds * 1_000_000)
        return _control_reply(_clock(sb()))

    @app.post("/_sandbox/reset")
    async def reset(request: Request) -> Response:
        try:
            payload = await _body_json(request)
        except ValueError as exc:
            return _control_reply({"error": str(exc)}, 400)
        sandbox = sb()
        cfg = sandbox.config
        for name in ("seed", "customers", "invoices", "business_units"):
            if name in payload:
                setattr(cfg, name, int(payload[name]))
        sandbox.webhooks.stop()
        sandbox.clock_offset_us = 0
        store = await asyncio.get_running_loop().run_in_executor(None, sandbox.build_store, cfg)
        sandbox.store = store
        sandbox.faults.configure({})
        sandbox.reset_counters()
        sandbox.webhooks = Webhooks(sandbox)
        return _control_reply(
            {
                "reset": True,
                "seed": cfg.seed,
                "customers": len(store.tables["customers"].rows),
                "invoices": len(store.tables["invoices"].rows),
                "payments": len(store.tables["payments"].rows),
                "business_units": len(store.tables["business-units"].rows),
            }
        )

    @app.get("/_sandbox/truth")
    async def truth() -> Response:
        store = sb().store
        with store.lock:
            return _control_reply(store.truth())

    @app.post("/_sandbox/mutate")
    async def mutate(request: Request) -> Response:
        """Body: any of ``{"edit_invoices": 3 | [ids], "merge_customers": 1 | [[from, into]],
        "add_payments": 1 | [{"invoices": [ids], "amount": "25.00"}], "deactivate_customers": 1 |
        [ids]}``; counts pick records at random (seeded), lists name them. Answers the ids
        touched per entity; every touched record's ``modifiedOn`` is now."""
        try:
            payload = await _body_json(request)
        except ValueError as exc:
            return _control_reply({"error": str(exc)}, 400)
        sandbox = sb()
        store = sandbox.store
        try:
            with store.lock:
                touched, events = store.mutate(payload)
                sandbox.webhooks.publish(events)
        except StoreError as exc:
            return _control_reply({"error": exc.message}, exc.status)
        return _control_reply({**touched, "events": len(events)})

    @app.post("/_sandbox/seed")
    async def seed(request: Request) -> Response:
        """Body: ``{"entity": "invoices", "records": [{"id": 1, ...}], "replace": false}``."""
        try:
            payload = await _body_json(request)
        except ValueError as exc:
            return _control_reply({"error": str(exc)}, 400)
        store = sb().store
        try:
            with store.lock:
                keys = store.seed_records(
                    str(payload.get("entity")), payload.get("records", []), bool(payload.get("replace"))
                )
        except StoreError as exc:
            return _control_reply({"error": exc.message}, exc.status)
        return _control_reply({"ids": keys})

    @app.get("/_sandbox/webhooks")
    async def list_webhooks() -> Response:
        return _control_reply(sb().webhooks.describe())

    @app.post("/_sandbox/webhooks")
    async def register_webhook(request: Request) -> Response:
        """Body: ``{"eventType": "invoice.updated" | "*", "url": "https://...", "key": "<32-64
        chars>", "header": "X-ServiceTitan-Signature", "encoding": "hex" | "base64", "verify":
        true | "<CA bundle path>"}``."""
        try:
            payload = await _body_json(request)
            registration = sb().webhooks.register(payload)
        except ValueError as exc:
            return _control_reply({"error": str(exc)}, 400)
        return _control_reply(registration)

    @app.delete("/_sandbox/webhooks")
    async def clear_webhooks() -> Response:
        sb().webhooks.stop()
        sb().webhooks = Webhooks(sb())
        return _control_reply({"cleared": True})

    # -- the token endpoint ----------------------------------------------------------------

    @app.api_route("/connect/token", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def token(request: Request) -> Response:
        sandbox = sb()
        label = f"{request.method} connect/token"
        sandbox.count(label)
        fault = sandbox.faults.draw(label, takes_token=False)
        early = await _before(request, fault, sandbox)
        if early is not None:
            return finish(early)
        if request.method != "POST":
            return finish(Response(b"", 405, headers={"Allow": "POST"}))
        sandbox.token_requests += 1
        cfg = sandbox.config
        body = await request.body()
        ctype = request.headers.get("content-type", "")
        if not ctype.lower().startswith("application/x-www-form-urlencoded"):
            return finish(
                _oauth_error("invalid_request", "The body must be application/x-www-form-urlencoded")
            )
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        basic = _basic_credentials(request.headers.get("authorization"))
        if basic is not None:
            client_id, client_secret = basic
        if client_id:
            wait = sandbox.token_limiter.admit(client_id, cfg.token_requests_per_minute)
            if wait is not None:
                return finish(rate_limited(wait))
        grant = form.get("grant_type")
        if not grant:
            sandbox.token_refusals += 1
            return finish(_oauth_error("invalid_request", "grant_type is missing"))
        if grant != "client_credentials":
            sandbox.token_refusals += 1
            return finish(_oauth_error("unsupported_grant_type"))
        if (
            not client_id
            or client_id != cfg.client_id
            or not secrets.compare_digest((client_secret or "").encode(), cfg.client_secret.encode())
        ):
            sandbox.token_refusals += 1
            return finish(_oauth_error("invalid_client"))
        now = sandbox.now_us()
        lifetime = int(cfg.token_lifetime_seconds)
        claims = {
            "iss": ISSUER,
            "nbf": now // 1_000_000,
            "iat": now // 1_000_000,
            "exp": now // 1_000_000 + lifetime,
            "aud": "api",
            "scope": cfg.scope.split(),
            "client_id": client_id,
            "tenant": cfg.tenant_id,
            "jti": secrets.token_hex(16).upper(),
        }
        access = _fake_jwt(claims)
        sandbox.tokens[access] = {
            "client_id": client_id,
            "expires": now + int(cfg.token_lifetime_seconds * 1e6),
        }
        sandbox.tokens_issued += 1
        reply = {"access_token": access, "expires_in": lifetime, "token_type": "Bearer", "scope": cfg.scope}
        return finish(
            _json_reply(
                encode(reply),
                headers={"Cache-Control": "no-store, no-cache, max-age=0", "Pragma": "no-cache"},
            )
        )

    # -- the API ---------------------------------------------------------------------------

    @app.api_route(
        "/{module}/v2/tenant/{tenant}/{resource:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"]
    )
    async def api(module: str, tenant: str, resource: str, request: Request) -> Response:
        sandbox = sb()
        cfg = sandbox.config
        resource = resource.strip("/")
        head, _, tail = resource.rpartition("/")
        single = tail.isdigit() and (module, head) in SINGLE
        label = f"{request.method} {module}/{head + '/{id}' if single else resource}"
        sandbox.count(label)
        fault = sandbox.faults.draw(label, takes_token=True)
        early = await _before(request, fault, sandbox)
        if early is not None:
            return finish(early)
        # The gateway: application key, then the rate limit of the app on this tenant.
        app_key = request.headers.get("st-app-key")
        if not app_key:
            return finish(
                problem(
                    401,
                    "Access denied: the ST-App-Key header is missing.",
                    detail="Send the application key in the ST-App-Key header on every call.",
                )
            )
        if not secrets.compare_digest(app_key.encode(), cfg.app_key.encode()):
            return finish(
                problem(
                    403,
                    "Access denied: the ST-App-Key is not valid.",
                    detail="The application key is unknown or revoked.",
                )
            )
        wait = sandbox.calls.admit(
            (app_key, tenant), cfg.rate_limit_per_second, cfg.rate_limit_window, cfg.stats_seconds
        )
        if wait is not None:
            return finish(rate_limited(wait))
        if fault == "rate_limit":
            return finish(rate_limited(sandbox.faults.retry_after))
        # The service: the token, then the tenant, then the resource.
        refused = _check_token(sandbox, request.headers.get("authorization"), expire=fault == "expire_token")
        if refused is not None:
            return finish(refused)
        if not tenant.isdigit():
            return finish(problem(404, "Not Found", detail=f"There is no tenant '{tenant}'."))
        if tenant != cfg.tenant_id:
            return finish(
                problem(403, "Forbidden", detail=f"The application has no access to tenant {tenant}.")
            )
        if request.method != "GET":
            return finish(problem(405, "Method Not Allowed", {"Allow": "GET"}))
        store = sandbox.store
        try:
            params = Params(request.url.query)
            if single:
                with store.lock:
                    found = store.get(SINGLE[(module, head)], int(tail))
                if found is None:
                    return finish(
                        problem(404, "Not Found", detail=f"There is no {head} record with id {tail}.")
                    )
                return finish(_json_reply(found))
            route = ROUTES.get((module, resource))
            if route is None:
                return finish(
                    problem(404, "Not Found", detail=f"There is no resource '{module}/v2/.../{resource}'.")
                )
            entity, kind = route
            with store.lock:
                if kind == "export":
                    return finish(_export(sandbox, entity, params))
                return finish(_json_reply(_list(sandbox, entity, params)))
        except _Invalid as exc:
            return finish(validation(exc.param, exc.message))

    return app


async def _before(request: Request, fault: str | None, sandbox: ServiceTitanSandbox) -> Response | None:
    """Apply an injected fault that comes before any handling; a reply replaces the call's."""
    if fault == "reset":
        return await abort_connection(request)
    if fault == "error":
        status = sandbox.faults.error_status
        return problem(status, "An unexpected error occurred." if status == 500 else "Service Unavailable")
    if fault == "slow":
        await asyncio.sleep(sandbox.faults.slow_seconds)
    if fault == "rate_limit" and request.url.path == "/connect/token":
        return rate_limited(sandbox.faults.retry_after)
    return None


def _oauth_error(error: str, description: str | None = None) -> Response:
    body = {"error": error}
    if description:
        body["error_description"] = description
    return _json_reply(encode(body), 400, {"Cache-Control": "no-store", "Pragma": "no-cache"})


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def _check_token(sandbox: ServiceTitanSandbox, header: str | None, *, expire: bool) -> Response | None:
    challenge = 'Bearer error="invalid_token"'
    if not header or not header.strip():
        return problem(
            401,
            "Unauthorized: the Authorization header is missing.",
            {"WWW-Authenticate": "Bearer"},
            detail="Send 'Authorization: Bearer <access token>' from POST /connect/token.",
        )
    value = header.strip()
    scheme = "Bearer" if value[:7].lower() == "bearer " else "bare"
    if scheme == "Bearer":
        value = value[7:].strip()
    sandbox.auth_schemes[scheme] = sandbox.auth_schemes.get(scheme, 0) + 1
    token = sandbox.tokens.get(value)
    if token is None:
        return problem(
            401,
            "Unauthorized: the access token is not valid.",
            {"WWW-Authenticate": f'{challenge}, error_description="The token is not valid"'},
        )
    now = sandbox.now_us()
    if expire:
        token["expires"] = min(token["expires"], now)
    if token["expires"] <= now:
        expired_at = data.fmt_ts(token["expires"], "millis")
        return problem(
            401,
            "Unauthorized: the access token expired.",
            {"WWW-Authenticate": f"{challenge}, error_description=\"The token expired at '{expired_at}'\""},
            detail="Request a new token from POST /connect/token.",
        )
    return None


def _ids(sandbox: ServiceTitanSandbox, params: Params) -> set[int] | None:
    raw = params.raw("ids")
    if raw is None:
        return None
    ids = set()
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            ids.add(int(part))
        except ValueError:
            raise _Invalid("ids", f"The value '{part}' is not a valid id.") from None
    if len(ids) > sandbox.config.max_ids:
        raise _Invalid("ids", f"The field ids must list at most {sandbox.config.max_ids} ids.")
    return ids


def _list(sandbox: ServiceTitanSandbox, entity: str, params: Params) -> bytes:
    cfg = sandbox.config
    page = params.integer("page", 1, 1)
    size = params.integer("pageSize", cfg.default_page_size, 1, cfg.max_page_size)
    active_raw = params.raw("active") or (cfg.list_active_default if entity in ACTIVE_BY_DEFAULT else "Any")
    if active_raw.lower() not in ("true", "false", "any"):
        raise _Invalid("active", f"The value '{active_raw}' is not valid for active (True, False or Any).")
    active = None if active_raw.lower() == "any" else active_raw.lower() == "true"
    sort = None
    raw_sort = params.raw("sort")
    if raw_sort is not None:
        descending = raw_sort.startswith("-")
        name = raw_sort.lstrip("+-").strip().lower()
        if name not in ("id", "modifiedon", "createdon"):
            raise _Invalid("sort", f"Sorting by '{raw_sort}' is not supported (Id, ModifiedOn, CreatedOn).")
        sort = ({"id": "id", "modifiedon": "modifiedOn", "createdon": "createdOn"}[name], descending)
    customer_id = params.integer("customerId", None, 0) if entity in WITH_CUSTOMER else None
    return sandbox.store.list_page(
        entity,
        page=page,  # type: ignore[arg-type]
        page_size=size,  # type: ignore[arg-type]
        include_total=params.boolean("includeTotal", False),
        ids=_ids(sandbox, params),
        modified_from=params.moment("modifiedOnOrAfter"),
        modified_before=params.moment("modifiedBefore"),
        created_from=params.moment("createdOnOrAfter"),
        created_before=params.moment("createdBefore"),
        active=active,
        customer_id=customer_id,
        sort=sort,
    )


def _export(sandbox: ServiceTitanSandbox, entity: str, params: Params) -> Response:
    cfg = sandbox.config
    start = params.raw("from")
    store = sandbox.store
    if start is None:
        position = 0
    else:
        moment = data.parse_ts(start)
        if moment is not None:
            position = store.position_at(entity, moment)
        else:
            found = read_token(entity, start)
            if found is None:
                raise _Invalid(
                    "from", f"The value '{start}' is neither a continuation token of this export nor a date."
                )
            position = found
    include_recent = params.boolean("includeRecentChanges", False)
    body, has_more, new_position = store.export(
        entity,
        position,
        include_recent=include_recent,
        page_size=max(1, int(cfg.export_page_size)),
        lag_us=int(cfg.export_lag_seconds * 1_000_000),
    )
    head = f'{{"hasMore":{"true" if has_more else "false"},"continueFrom":"{make_token(entity, new_position)}","data":'
    return _json_reply(head.encode() + body + b"}")


def _clock(sandbox: ServiceTitanSandbox) -> dict[str, Any]:
    return {"now": data.fmt_ts(sandbox.now_us(), "millis"), "offset_seconds": sandbox.clock_offset_us / 1e6}


def _config_dict(cfg: ServiceTitanSandboxConfig) -> dict[str, Any]:
    out = {f.name: getattr(cfg, f.name) for f in fields(cfg)}
    out["anchor_date"] = _anchor(cfg).isoformat()
    out["webhook_retry_seconds"] = list(cfg.webhook_retry_seconds)
    return out


__all__ = ["ServiceTitanSandbox", "ServiceTitanSandboxConfig", "create_app"]
