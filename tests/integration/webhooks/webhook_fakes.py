"""Helpers of the webhook receiver's tests: a fake of Airflow's api-server, settings, a receiver handle.

The fake answers only what the receiver calls (``/auth/token``, ``GET /api/v2/assets``,
``POST /api/v2/assets/events``) and checks every request body and every reply it gives against the
OpenAPI documents shipped in the installed apache-airflow package, so a request the real
api-server would refuse with 422 fails here too. A real api-server is out of scope for these tests.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import requests
import yaml
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from airflow_provider_b1.sandbox.server import Served
from airflow_provider_b1.webhooks import SourceSettings, WebhookSettings
from airflow_provider_b1.webhooks.settings import DEFAULT_SAP_HEADER, DEFAULT_SERVICETITAN_HEADER

# Found without importing airflow (seconds of start-up this suite does not need).
_AIRFLOW = Path(next(iter(importlib.util.find_spec("airflow").submodule_search_locations)))
CORE_SPEC = _AIRFLOW / "api_fastapi/core_api/openapi/v2-rest-api-generated.yaml"
AUTH_SPEC = _AIRFLOW / "api_fastapi/auth/managers/simple/openapi/v2-simple-auth-manager-generated.yaml"

SERVICETITAN_KEY = "st-hmac-key-0123456789abcdefghijklmnop"  # 38 characters
SAP_SECRET = "sap-webhook-secret-9f8e7d6c5b4a"
AIRFLOW_PASSWORD = "airflow-pw-5ecret"


def load_spec(path: Path) -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open() as handle:
        return yaml.load(handle, Loader=loader)


def _validator(spec: dict[str, Any], schema: str) -> jsonschema.Draft202012Validator:
    root = {"$ref": f"#/components/schemas/{schema}", "components": spec["components"]}
    return jsonschema.Draft202012Validator(root)


def _jwt(expires_in: float) -> str:
    def part(document: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(document).encode()).rstrip(b"=").decode()

    nonce = base64.urlsafe_b64encode(str(time.time_ns()).encode()).decode().rstrip("=")
    return f"{part({'alg': 'HS512', 'typ': 'JWT'})}.{part({'sub': 'webhooks', 'exp': int(time.time() + expires_in)})}.{nonce}"


def airflow_uri(uri: str) -> str:
    """Store a URI as Airflow does: a recognised scheme with an empty path gains a '/'."""
    scheme, sep, rest = uri.partition("://")
    if sep and re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme) and "/" not in rest:
        return f"{uri}/"
    return uri


@dataclass
class FakeAirflow:
    """State and controls of the fake api-server."""

    specs: dict[str, dict[str, Any]]
    username: str = "webhooks"
    password: str = AIRFLOW_PASSWORD
    all_admins: bool = False
    token_lifetime: float = 3600.0
    assets: dict[int, str] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    calls: list[tuple[str, str]] = field(default_factory=list)
    tokens_issued: int = 0
    issued: list[str] = field(default_factory=list)
    fail_next: list[int] = field(default_factory=list)
    delay: float = 0.0
    revoked: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)
    served: Served | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self.served is not None
        return self.served.base_url

    def declare(self, *uris: str) -> None:
        """Declare Assets as a deployed DAG would (stored the way Airflow stores them)."""
        for uri in uris:
            self.assets[len(self.assets) + 1] = airflow_uri(uri)

    def events_of(self, uri: str) -> list[dict[str, Any]]:
        ids = {asset_id for asset_id, stored in self.assets.items() if stored.rstrip("/") == uri.rstrip("/")}
        return [event for event in self.events if event["asset_id"] in ids]

    def reset(self) -> None:
        with self._lock:
            self.assets.clear()
            self.events.clear()
            self.calls.clear()
            self.fail_next.clear()
            self.problems.clear()
            self.revoked.clear()
            self.tokens_issued = 0
            self.issued.clear()
            self.delay = 0.0
            self.all_admins = False
            self.token_lifetime = 3600.0


def fake_airflow_app(fake: FakeAirflow) -> FastAPI:
    core, auth = fake.specs["core"], fake.specs["auth"]
    login_body = _validator(auth, "LoginBody")
    login_reply = _validator(auth, "LoginResponse")
    event_body = _validator(core, "CreateAssetEventsBody")
    event_reply = _validator(core, "AssetEventResponse")
    assets_reply = _validator(core, "AssetCollectionResponse")
    assets_params = {p["name"] for p in core["paths"]["/api/v2/assets"]["get"]["parameters"]}
    app = FastAPI()

    def check(validator: jsonschema.Draft202012Validator, document: Any, what: str) -> JSONResponse | None:
        errors = [error.message for error in validator.iter_errors(document)]
        if errors:
            fake.problems.append(f"{what}: {errors}")
            return JSONResponse({"detail": errors}, status_code=422)
        return None

    def token(status: int = 201) -> JSONResponse:
        value = _jwt(fake.token_lifetime)
        fake.issued.append(value)
        fake.tokens_issued += 1
        reply = {"access_token": value}
        assert check(login_reply, reply, "LoginResponse") is None
        return JSONResponse(reply, status_code=status)

    @app.middleware("http")
    async def record_and_fail(request: Request, call_next):
        fake.calls.append((request.method, request.url.path))
        if fake.delay:
            await asyncio.sleep(fake.delay)
        if fake.fail_next:
            status = fake.fail_next.pop(0)
            return JSONResponse({"detail": "injected"}, status_code=status)
        return await call_next(request)

    def authorised(request: Request) -> bool:
        header = request.headers.get("authorization", "")
        value = header[7:] if header.startswith("Bearer ") else ""
        return value in fake.issued and value not in fake.revoked

    @app.post("/auth/token")
    async def create_token(request: Request):
        body = await request.json()
        refused = check(login_body, body, "LoginBody")
        if refused:
            return refused
        if body["username"] != fake.username or body["password"] != fake.password:
            return JSONResponse({"detail": "Invalid credentials"}, status_code=401)
        return token()

    @app.get("/auth/token")
    async def create_token_all_admins():
        if not fake.all_admins:
            return JSONResponse({"detail": "Forbidden"}, status_code=403)
        return token()

    @app.get("/api/v2/assets")
    async def get_assets(request: Request):
        if not authorised(request):
            return JSONResponse({"detail": "Not authenticated"}, status_code=401)
        unknown = set(request.query_params) - assets_params
        if unknown:
            fake.problems.append(f"GET /api/v2/assets has no parameters {sorted(unknown)}")
            return JSONResponse({"detail": "unknown parameter"}, status_code=422)
        prefix = re.sub(r"[^A-Za-z0-9]+$", "", request.query_params.get("uri_prefix_pattern", ""))
        limit = int(request.query_params.get("limit", 50))
        offset = int(request.query_params.get("offset", 0))
        matching = sorted((i, u) for i, u in fake.assets.items() if u.startswith(prefix))
        now = "2026-01-01T00:00:00Z"
        reply = {
            "assets": [
                {
                    "id": asset_id,
                    "name": uri,
                    "uri": uri,
                    "group": "b1_webhooks",
                    "extra": {},
                    "created_at": now,
                    "updated_at": now,
                    "scheduled_dags": [],
                    "producing_tasks": [],
                    "consuming_tasks": [],
                    "aliases": [],
                    "watchers": [],
                    "last_asset_event": None,
                }
                for asset_id, uri in matching[offset : offset + limit]
            ],
            "total_entries": len(matching),
        }
        assert check(assets_reply, reply, "AssetCollectionResponse") is None
        return reply

    @app.post("/api/v2/assets/events")
    async def create_asset_event(request: Request):
        if not authorised(request):
            return JSONResponse({"detail": "Not authenticated"}, status_code=401)
        body = await request.json()
        refused = check(event_body, body, "CreateAssetEventsBody")
        if refused:
            return refused
        uri = fake.assets.get(body["asset_id"])
        if uri is None:
            return JSONResponse(
                {"detail": f"Asset with ID: `{body['asset_id']}` was not found"}, status_code=404
            )
        with fake._lock:
            event = {
                "id": len(fake.events) + 1,
                "asset_id": body["asset_id"],
                "uri": uri,
                "name": uri,
                "group": "b1_webhooks",
                "extra": {**body.get("extra", {}), "from_rest_api": True},
                "source_task_id": None,
                "source_dag_id": None,
                "source_run_id": None,
                "source_map_index": -1,
                "created_dagruns": [],
                "timestamp": "2026-01-01T00:00:00Z",
                "partition_key": body.get("partition_key"),
            }
            fake.events.append(event)
        assert check(event_reply, event, "AssetEventResponse") is None
        return event

    return app


def servicetitan_source(**overrides: Any) -> SourceSettings:
    options: dict[str, Any] = {
        "secret": SERVICETITAN_KEY,
        "signature_header": DEFAULT_SERVICETITAN_HEADER,
        "encoding": "auto",
        "timestamp_fields": ("timestamp",),
        "event_id_fields": ("eventId",),
        "event_type_fields": ("eventType",),
    }
    options.update(overrides)
    return SourceSettings(**options)


def sap_source(**overrides: Any) -> SourceSettings:
    options: dict[str, Any] = {
        "secret": SAP_SECRET,
        "signature_header": DEFAULT_SAP_HEADER,
        "encoding": "auto",
        "timestamp_fields": ("time",),
    }
    options.update(overrides)
    return SourceSettings(**options)


@dataclass
class Receiver:
    served: Served
    settings: WebhookSettings

    @property
    def url(self) -> str:
        return self.served.base_url

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> requests.Response:
        return requests.post(
            self.url + path,
            data=body,
            headers={"Content-Type": "application/json", **headers},
            verify=self.served.ca_path or True,
            timeout=30,
        )

    def get(self, path: str, headers: dict[str, str] | None = None) -> requests.Response:
        return requests.get(
            self.url + path, headers=headers or {}, verify=self.served.ca_path or True, timeout=30
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
