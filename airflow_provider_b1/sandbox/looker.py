"""A local imitation of the Looker API 4.0 endpoints the provider uses, with switchable faults.

Serves ``/api/4.0/login`` (form ``client_id``/``client_secret``; wrong credentials answer 404
``Not found`` like Looker), ``DELETE /api/4.0/logout`` and the unversioned ``DELETE /api/logout``
that Looker's own SDK calls, ``/user``, ``/versions``, datagroups (list, read,
``PATCH`` ``triggered_at``/``stale_before``, future values rejected with 422), PDT builds
(start, status moving from ``added`` through ``running`` to ``complete``, stop, optional
failure) and inline queries. Tokens expire after a configurable number of seconds; both
``Authorization: token X`` and ``Bearer X`` are accepted.

Control plane (JSON, no auth, never subject to faults): ``GET /_sandbox/stats``,
``POST /_sandbox/faults``, ``POST /_sandbox/expire-tokens``, ``POST /_sandbox/config``,
``POST /_sandbox/reset``.

This module shares no code with the hook on purpose: two independent readings of the protocol
catch each other's mistakes.
"""

from __future__ import annotations

import csv
import io
import json
import random
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, fields, replace
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

DOCS_URL = "https://cloud.google.com/looker/docs/reference/looker-api/latest"


def _default_datagroups() -> list[dict[str, Any]]:
    return [
        {"id": "1", "model_name": "b1_warehouse", "name": "b1_warehouse_datagroup"},
        {"id": "2", "model_name": "b1_warehouse", "name": "b1_finance_datagroup"},
    ]


def _default_pdts() -> dict[str, list[str]]:
    return {"b1_warehouse": ["gl_account_monthly", "revenue_by_profit_center"]}


@dataclass
class LookerSandboxConfig:
    """How the Looker sandbox behaves.

    :param clients: API key pairs, client id to client secret.
    :param token_expiry_seconds: ``expires_in`` of new tokens.
    :param datagroups: datagroups served, each ``{"id", "model_name", "name"}``.
    :param pdts: persistent derived tables that can be rebuilt, model name to view names.
    :param pdt_build_polls: status polls a build takes to reach ``complete`` (its first poll answers ``running``).
    :param pdt_build_seconds: and at least this many seconds after its start.
    :param failing_pdts: view names whose builds end in ``error``.
    :param future_status: status of the answer to a datagroup time in the future (Looker: 422).
    :param clock_offset_seconds: the sandbox's clock minus the real one (negative: Looker runs behind).
    :param retry_after_seconds: ``Retry-After`` of injected 429s.
    :param seed: seed of fault injection.
    """

    clients: dict[str, str] = field(default_factory=lambda: {"looker-client-id": "looker-client-secret-1"})
    token_expiry_seconds: float = 3600
    datagroups: list[dict[str, Any]] = field(default_factory=_default_datagroups)
    pdts: dict[str, list[str]] = field(default_factory=_default_pdts)
    pdt_build_polls: int = 2
    pdt_build_seconds: float = 0.0
    failing_pdts: list[str] = field(default_factory=list)
    future_status: int = 422
    clock_offset_seconds: float = 0.0
    retry_after_seconds: float = 1
    seed: int = 1


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"message": message, "documentation_url": DOCS_URL, **extra}, status_code=status)


def _not_found() -> JSONResponse:
    return _error(404, "Not found")


class _State:
    """Everything the sandbox remembers; one lock guards it all."""

    def __init__(self, config: LookerSandboxConfig) -> None:
        self.base_config = config
        self.lock = threading.Lock()
        self.reset(config)

    def reset(self, config: LookerSandboxConfig) -> None:
        self.config = config
        self.tokens: dict[str, dict[str, Any]] = {}
        self.datagroups: dict[str, dict[str, Any]] = {}
        for group in config.datagroups:
            self.datagroups[str(group["id"])] = {
                "can": {"show": True, "update": True},
                "created_at": int(self.now()) - 86400,
                "id": str(group["id"]),
                "model_name": group["model_name"],
                "name": group["name"],
                "stale_before": None,
                "trigger_check_at": None,
                "trigger_error": None,
                "trigger_value": None,
                "triggered_at": None,
            }
        self.builds: dict[str, dict[str, Any]] = {}
        self.next_build = 1000
        self.faults: dict[str, float] = {}
        self.rng = random.Random(config.seed)
        self.stats: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()
        self.auth_schemes: Counter[str] = Counter()
        self.datagroup_history: list[dict[str, Any]] = []

    def now(self) -> float:
        return time.time() + self.config.clock_offset_seconds


class _Unauthorized(Exception):
    """A call without a live token: answered 401 the way Looker does."""


def create_app(config: LookerSandboxConfig | None = None) -> FastAPI:
    """Return the Looker sandbox as a FastAPI app.

    :param config: behaviour of the sandbox; defaults to :class:`LookerSandboxConfig()`.
    """
    state = _State(config or LookerSandboxConfig())
    app = FastAPI(title="Looker API 4.0 sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.looker = state

    @app.middleware("http")
    async def faults(request: Request, call_next):
        if not request.url.path.startswith("/api/"):
            return await call_next(request)
        with state.lock:
            state.stats["requests_total"] += 1
            roll = state.rng.random()
            rate_limit = state.faults.get("rate_limit_rate", 0.0)
            error_rate = state.faults.get("error_rate", 0.0)
            retry_after = state.faults.get("retry_after", state.config.retry_after_seconds)
            if roll < rate_limit:
                state.stats["rate_limited"] += 1
                verdict = "429"
            elif roll < rate_limit + error_rate:
                state.stats["errors_injected"] += 1
                verdict = "503"
            else:
                verdict = ""
        if verdict == "429":
            response = _error(429, "Too Many Requests")
            response.headers["Retry-After"] = f"{retry_after:g}"
            return response
        if verdict == "503":
            return _error(503, "Service Unavailable")
        return await call_next(request)

    def count(label: str) -> None:
        with state.lock:
            state.requests[label] += 1

    def authenticated(label: str):
        """A route dependency: count the call under ``label`` (path params filled in), then
        answer 401 unless the request carries a live token; gives the token's client id."""

        def dependency(request: Request) -> str:
            count(label.format(**request.path_params))
            header = request.headers.get("authorization", "")
            scheme, _, token = header.partition(" ")
            token = token.strip()
            with state.lock:
                entry = state.tokens.get(token) if scheme.lower() in ("token", "bearer") else None
                if entry is None or entry["expires_at"] <= time.monotonic():
                    state.tokens.pop(token, None)
                    state.stats["unauthorized"] += 1
                    raise _Unauthorized
                state.auth_schemes["Bearer" if scheme.lower() == "bearer" else "token"] += 1
                return entry["client_id"]

        return Depends(dependency)

    @app.exception_handler(_Unauthorized)
    async def unauthorized(request: Request, exc: _Unauthorized):
        return _error(401, "Requires authentication.")

    # ---- auth ---------------------------------------------------------------------------

    @app.post("/api/4.0/login")
    async def login(request: Request):
        count("POST login")
        form = await request.form()
        client_id = str(form.get("client_id") or request.query_params.get("client_id") or "")
        client_secret = str(form.get("client_secret") or request.query_params.get("client_secret") or "")
        expected = state.config.clients.get(client_id)
        if expected is None or not secrets.compare_digest(expected, client_secret):
            with state.lock:
                state.stats["failed_logins"] += 1
            # Looker does not say which of the two was wrong.
            return _not_found()
        token = secrets.token_urlsafe(30)
        expires_in = state.config.token_expiry_seconds
        with state.lock:
            state.tokens[token] = {"client_id": client_id, "expires_at": time.monotonic() + expires_in}
            state.stats["logins"] += 1
        return {"access_token": token, "token_type": "Bearer", "expires_in": int(expires_in)}

    # Looker serves logout at both paths; its own SDK calls the unversioned one.
    @app.delete("/api/logout")
    @app.delete("/api/4.0/logout")
    async def logout(request: Request, who: str = authenticated("DELETE logout")):
        token = request.headers["authorization"].partition(" ")[2].strip()
        with state.lock:
            state.tokens.pop(token, None)
            state.stats["logouts"] += 1
        return Response(status_code=204)

    @app.get("/api/4.0/versions")
    async def versions():
        count("GET versions")
        return {
            "looker_release_version": "25.6.0",
            "current_version": {"version": "4.0", "full_version": "4.0.25.6", "status": "current"},
            "supported_versions": [{"version": "4.0", "status": "current"}],
        }

    @app.get("/api/4.0/user")
    async def me(request: Request, who: str = authenticated("GET user")):
        return {
            "id": "7",
            "display_name": f"API user {who}",
            "email": f"{who}@example.com",
            "is_disabled": False,
        }

    # ---- datagroups ---------------------------------------------------------------------

    @app.get("/api/4.0/datagroups")
    async def list_datagroups(request: Request, who: str = authenticated("GET datagroups")):
        with state.lock:
            return [dict(group) for group in state.datagroups.values()]

    @app.get("/api/4.0/datagroups/{datagroup_id}")
    async def get_datagroup(datagroup_id: str, request: Request, who: str = authenticated("GET datagroup")):
        with state.lock:
            group = state.datagroups.get(datagroup_id)
            return dict(group) if group else _not_found()

    @app.patch("/api/4.0/datagroups/{datagroup_id}")
    async def update_datagroup(
        datagroup_id: str, request: Request, who: str = authenticated("PATCH datagroup")
    ):
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "Could not parse JSON body")
        if not isinstance(body, dict):
            return _error(400, "Could not parse JSON body")
        with state.lock:
            group = state.datagroups.get(datagroup_id)
            if group is None:
                return _not_found()
            errors = []
            changes = {}
            for name in ("triggered_at", "stale_before"):
                if name not in body:
                    continue
                value = body[name]
                if isinstance(value, bool) or not isinstance(value, int):
                    errors.append({"field": name, "code": "invalid", "message": "must be an integer"})
                elif value > state.now():
                    errors.append({"field": name, "code": "invalid", "message": "cannot be in the future"})
                else:
                    changes[name] = value
            if errors:
                status = state.config.future_status
                return _error(status, "Validation Failed", errors=errors)
            group.update(changes)
            for name, value in changes.items():
                state.datagroup_history.append(
                    {
                        "id": datagroup_id,
                        "name": group["name"],
                        "field": name,
                        "value": value,
                        "at": time.time(),
                    }
                )
            return dict(group)

    # ---- PDTs ---------------------------------------------------------------------------

    def build_answer(build: dict[str, Any]) -> dict[str, Any]:
        inner = {"status": build["status"], "message": build.get("message") or ""}
        return {"materialization_id": build["id"], "resp_text": json.dumps(inner)}

    @app.get("/api/4.0/derived_table/{model_name}/{view_name}/start")
    async def start_pdt(
        model_name: str, view_name: str, request: Request, who: str = authenticated("GET derived_table start")
    ):
        if view_name not in state.config.pdts.get(model_name, []):
            return _not_found()
        with state.lock:
            state.next_build += 1
            build = {
                "id": str(state.next_build),
                "model": model_name,
                "view": view_name,
                "status": "added",
                "polls": 0,
                "started": time.monotonic(),
                "force_rebuild": request.query_params.get("force_rebuild", "false").lower() == "true",
            }
            state.builds[build["id"]] = build
            return build_answer(build)

    @app.get("/api/4.0/derived_table/{materialization_id}/status")
    async def pdt_status(
        materialization_id: str, request: Request, who: str = authenticated("GET derived_table status")
    ):
        with state.lock:
            build = state.builds.get(materialization_id)
            if build is None:
                return _not_found()
            if build["status"] in ("added", "running"):
                build["polls"] += 1
                elapsed = time.monotonic() - build["started"]
                if (
                    build["polls"] >= state.config.pdt_build_polls
                    and elapsed >= state.config.pdt_build_seconds
                ):
                    if build["view"] in state.config.failing_pdts:
                        build["status"] = "error"
                        build["message"] = f"ERROR: relation for {build['view']} could not be created"
                    else:
                        build["status"] = "complete"
                        build["message"] = f"{build['view']} regenerated"
                else:
                    build["status"] = "running"
            return build_answer(build)

    @app.get("/api/4.0/derived_table/{materialization_id}/stop")
    async def pdt_stop(
        materialization_id: str, request: Request, who: str = authenticated("GET derived_table stop")
    ):
        with state.lock:
            build = state.builds.get(materialization_id)
            if build is None:
                return _not_found()
            if build["status"] in ("added", "running"):
                build["status"] = "killed"
                build["message"] = "stopped on request"
            return build_answer(build)

    # ---- queries ------------------------------------------------------------------------

    @app.post("/api/4.0/queries/run/{result_format}")
    async def run_query(
        result_format: str, request: Request, who: str = authenticated("POST queries run {result_format}")
    ):
        if result_format not in ("json", "csv"):
            return _error(400, f"Unsupported result format {result_format}")
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "Could not parse JSON body")
        model, view, wanted = body.get("model"), body.get("view"), body.get("fields") or []
        if model not in state.config.pdts and model not in {g["model_name"] for g in state.config.datagroups}:
            return _not_found()
        if (
            not view
            or not isinstance(wanted, list)
            or not all(isinstance(f, str) and "." in f for f in wanted)
        ):
            return _error(
                422,
                "Validation Failed",
                errors=[{"field": "fields", "code": "invalid", "message": "view.field"}],
            )
        try:
            limit = int(body.get("limit") or 500)
        except (TypeError, ValueError):
            return _error(422, "Validation Failed", errors=[{"field": "limit", "code": "invalid"}])
        rows = []
        for i in range(min(limit, 3)):
            row: dict[str, Any] = {}
            for name in wanted:
                numeric = any(k in name for k in ("count", "total", "amount", "revenue", "cost", "sum"))
                row[name] = round(1000.0 * (i + 1), 2) if numeric else f"{name.split('.')[-1]}-{i + 1}"
            rows.append(row)
        if result_format == "csv":
            out = io.StringIO()
            writer = csv.DictWriter(out, fieldnames=wanted)
            writer.writeheader()
            writer.writerows(rows)
            return PlainTextResponse(out.getvalue(), media_type="text/csv")
        return rows

    # ---- control plane ------------------------------------------------------------------

    @app.get("/_sandbox/stats")
    async def stats():
        with state.lock:
            live = sum(1 for t in state.tokens.values() if t["expires_at"] > time.monotonic())
            return {
                "logins": state.stats["logins"],
                "failed_logins": state.stats["failed_logins"],
                "logouts": state.stats["logouts"],
                "live_tokens": live,
                "unauthorized": state.stats["unauthorized"],
                "rate_limited": state.stats["rate_limited"],
                "errors_injected": state.stats["errors_injected"],
                "requests": dict(state.requests),
                "requests_total": state.stats["requests_total"],
                "auth_schemes": dict(state.auth_schemes),
                "datagroup_triggers": list(state.datagroup_history),
                "pdt_builds": [
                    {k: b[k] for k in ("id", "model", "view", "status", "polls", "force_rebuild")}
                    for b in state.builds.values()
                ],
            }

    @app.post("/_sandbox/faults")
    async def set_faults(request: Request):
        body = await _json_or_empty(request)
        allowed = {"rate_limit_rate", "error_rate", "retry_after"}
        with state.lock:
            state.faults = {k: float(v) for k, v in body.items() if k in allowed and v is not None}
            if "seed" in body:
                state.rng = random.Random(body["seed"])
            return {"faults": dict(state.faults)}

    @app.post("/_sandbox/expire-tokens")
    async def expire_tokens():
        with state.lock:
            expired = len(state.tokens)
            state.tokens.clear()
        return {"expired": expired}

    @app.post("/_sandbox/config")
    async def set_config(request: Request):
        body = await _json_or_empty(request)
        with state.lock:
            state.config = _apply(state.config, body)
            return _config_dict(state.config)

    @app.post("/_sandbox/reset")
    async def reset(request: Request):
        body = await _json_or_empty(request)
        with state.lock:
            state.reset(_apply(state.base_config, body))
            return _config_dict(state.config)

    return app


async def _json_or_empty(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    body = json.loads(raw)
    return body if isinstance(body, dict) else {}


def _apply(config: LookerSandboxConfig, changes: dict[str, Any]) -> LookerSandboxConfig:
    known = {f.name for f in fields(LookerSandboxConfig)}
    return replace(config, **{k: v for k, v in changes.items() if k in known})


def _config_dict(config: LookerSandboxConfig) -> dict[str, Any]:
    return {f.name: getattr(config, f.name) for f in fields(config) if f.name != "clients"}
