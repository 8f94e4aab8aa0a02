"""What the webhook receiver is told: secrets, header names, the replay window, Airflow and Asset URIs.

Every setting is an environment variable (``B1_WEBHOOKS_*``, listed in :data:`ENV`); a secret can
instead be read from a file named by the same variable plus ``_FILE`` (Docker and Kubernetes
secrets). :meth:`WebhookSettings.from_env` reads and checks them all at start-up, so a receiver
with a bad setting refuses to start with one sentence naming the variable, rather than answering
401 to every delivery.

This module imports nothing from Airflow: the receiver is a small service of its own.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_provider_b1.exceptions import PermanentError
from airflow_provider_b1.utils.params import blank_to_none, parse_bool
from airflow_provider_b1.webhooks.teams_bot import DEFAULT_OPENID_URL

SERVICETITAN = "servicetitan"
SAP_B1 = "sap_b1"

SERVICETITAN_TOPICS = ("invoices", "payments", "customers")
"""The ServiceTitan events the receiver knows by default: one Asset per topic."""

DEFAULT_SERVICETITAN_URIS: dict[str, str] = {
    topic: f"b1-webhook://servicetitan/{topic}" for topic in SERVICETITAN_TOPICS
}
"""Asset URI per ServiceTitan topic. Host and path, so Airflow stores them exactly as written
(``servicetitan://invoices`` would be stored as ``servicetitan://invoices/``)."""

DEFAULT_SAP_URI_TEMPLATE = "b1-webhook://sap_b1/{business_object}"
"""Asset URI of a SAP business object (``Orders`` → ``b1-webhook://sap_b1/Orders``)."""

DEFAULT_SERVICETITAN_HEADER = "X-ServiceTitan-Signature"
DEFAULT_SAP_HEADER = "X-B1-Webhook-Signature"
ENCODINGS = ("hex", "base64", "auto")

ENV: dict[str, str] = {
    "B1_WEBHOOKS_AIRFLOW_URL": "Airflow api-server base URL, e.g. http://airflow-apiserver:8080 (required)",
    "B1_WEBHOOKS_AIRFLOW_USERNAME": "user for POST /auth/token (with the password)",
    "B1_WEBHOOKS_AIRFLOW_PASSWORD": "its password (secret; or _FILE)",
    "B1_WEBHOOKS_AIRFLOW_TOKEN": "a ready JWT instead of user and password (secret; or _FILE)",
    "B1_WEBHOOKS_AIRFLOW_CA_BUNDLE": "PEM to trust for an https api-server",
    "B1_WEBHOOKS_AIRFLOW_TIMEOUT": "seconds per call to Airflow (default 5)",
    "B1_WEBHOOKS_AIRFLOW_ATTEMPTS": "attempts per Asset event, first included (default 3)",
    "B1_WEBHOOKS_SERVICETITAN_KEY": "ServiceTitan HMAC key, 32-64 characters (secret; or _FILE); unset: off",
    "B1_WEBHOOKS_SERVICETITAN_SIGNATURE_HEADER": f"default {DEFAULT_SERVICETITAN_HEADER}",
    "B1_WEBHOOKS_SERVICETITAN_SIGNATURE_ENCODING": "hex, base64 or auto (default auto: both accepted)",
    "B1_WEBHOOKS_SERVICETITAN_TIMESTAMP_HEADER": "header holding the delivery time (default none)",
    "B1_WEBHOOKS_SERVICETITAN_TIMESTAMP_FIELDS": "body fields holding it, first found wins",
    "B1_WEBHOOKS_SERVICETITAN_EVENT_ID_FIELDS": "body fields holding the event id",
    "B1_WEBHOOKS_SERVICETITAN_EVENT_TYPE_FIELDS": "body fields naming the event (when the URL does not)",
    "B1_WEBHOOKS_SERVICETITAN_REQUIRE_TIMESTAMP": "refuse deliveries without a time (default true)",
    "B1_WEBHOOKS_SAP_SECRET": "SAP Business One webhook HMAC secret (secret; or _FILE); unset: off",
    "B1_WEBHOOKS_SAP_SIGNATURE_HEADER": f"default {DEFAULT_SAP_HEADER}",
    "B1_WEBHOOKS_SAP_SIGNATURE_ENCODING": "hex, base64 or auto (default auto)",
    "B1_WEBHOOKS_SAP_TIMESTAMP_HEADER": "header holding the delivery time (default none)",
    "B1_WEBHOOKS_SAP_TIMESTAMP_FIELDS": "event fields holding its time (default time)",
    "B1_WEBHOOKS_SAP_REQUIRE_TIMESTAMP": "refuse deliveries without a time (default true)",
    "B1_WEBHOOKS_REPLAY_WINDOW_SECONDS": "deliveries older or newer than this are refused (default 300)",
    "B1_WEBHOOKS_REPLAY_CAPACITY": "event ids remembered in memory (default 100000)",
    "B1_WEBHOOKS_REDIS_URL": "remember event ids in Redis instead, shared by every replica (secret)",
    "B1_WEBHOOKS_ASSET_URIS": 'JSON {"servicetitan:invoices": uri, "sap_b1:Orders": uri, ...}',
    "B1_WEBHOOKS_SAP_ASSET_URI_TEMPLATE": f"default {DEFAULT_SAP_URI_TEMPLATE}",
    "B1_WEBHOOKS_MAX_BODY_BYTES": "larger deliveries get 413 (default 1048576)",
    "B1_WEBHOOKS_TEAMS_BOT_APP_ID": "the Teams bot's Microsoft App ID; set: POST /webhooks/teams/bot answers its buttons",
    "B1_WEBHOOKS_TEAMS_BOT_OPENID_URL": f"Bot Framework OpenID metadata (default {DEFAULT_OPENID_URL})",
    "B1_WEBHOOKS_TEAMS_BOT_CA_BUNDLE": "PEM to trust for the OpenID metadata and keys",
    "B1_WEBHOOKS_TEAMS_BOT_DAG_IDS": "DAGs whose requests the buttons may answer (default sap_b1_approvals)",
    "B1_WEBHOOKS_TEAMS_BOT_TENANT_ID": "answer only presses from this Entra ID tenant (a multi-tenant bot: set it)",
    "B1_WEBHOOKS_TEAMS_BOT_USERS": "answer only presses of these users (Entra ID object ids, comma-separated)",
}
"""Every environment variable the receiver reads, with what it means."""

_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,99}")
_HEADER = re.compile(r"[A-Za-z0-9-]{1,100}")


class WebhookSettingsError(PermanentError, ValueError):
    """A setting cannot be used; the message names the variable and never shows a secret."""


@dataclass(frozen=True)
class SourceSettings:
    """How one sender signs and dates its deliveries.

    :param secret: the HMAC key (never shown in ``repr``).
    :param signature_header: header carrying the signature.
    :param encoding: ``hex``, ``base64`` or ``auto`` (either).
    :param timestamp_header: header carrying the delivery time, if the sender sends one.
    :param timestamp_fields: body (ServiceTitan) or event (SAP) fields carrying it.
    :param require_timestamp: refuse a delivery without any time (a replay could not be bounded).
    :param event_id_fields: body fields carrying the event id (ServiceTitan; SAP events use ``id``).
    :param event_type_fields: body fields naming the event, when its URL does not.
    """

    secret: str = field(repr=False)
    signature_header: str
    encoding: str = "auto"
    timestamp_header: str | None = None
    timestamp_fields: tuple[str, ...] = ()
    require_timestamp: bool = True
    event_id_fields: tuple[str, ...] = ()
    event_type_fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class WebhookSettings:
    """Everything the receiver needs; build with :meth:`from_env` or directly (tests).

    :param airflow_url: the api-server's base URL (``/auth/token`` and ``/api/v2`` below it).
    :param airflow_username: user for ``POST /auth/token``.
    :param airflow_password: its password.
    :param airflow_token: a ready JWT, used as it is, instead of user and password. With neither,
        the token comes from ``GET /auth/token`` (the simple auth manager's all-admins mode).
    :param airflow_verify: TLS verification towards Airflow: ``True`` or a CA bundle path.
    :param airflow_timeout: seconds per call to Airflow.
    :param airflow_attempts: attempts per Asset event (bounded also to ``airflow_max_elapsed``).
    :param airflow_max_elapsed: seconds after which no new attempt starts; the delivery then
        gets 503 and the sender delivers it again later.
    :param servicetitan: ServiceTitan's signing, or ``None`` to refuse its deliveries (404).
    :param sap: SAP Business One's signing, or ``None`` likewise.
    :param replay_window: seconds either side of now a delivery's time may be.
    :param replay_capacity: event ids the in-memory store remembers (oldest forgotten first).
    :param redis_url: remember event ids in Redis so that replicas agree.
    :param asset_uris: ``{"servicetitan:<topic>" | "sap_b1:<BusinessObject>": uri}``, over the defaults.
    :param sap_asset_uri_template: URI of a SAP business object not named in ``asset_uris``
        (``{business_object}`` is replaced); empty: such objects are ignored.
    :param max_body_bytes: larger bodies are refused with 413 before any work.
    :param teams_bot_app_id: the Teams bot's app id; set, ``POST /webhooks/teams/bot`` answers
        the human-in-the-loop requests of its cards' buttons (else 404).
    :param teams_bot_openid_url: where the Bot Framework's signing keys are published.
    :param teams_bot_verify: TLS verification towards it: ``True`` or a CA bundle path.
    :param teams_bot_dag_ids: the DAGs whose requests a button may answer.
    :param teams_bot_tenant_id: when set, presses from another tenant are refused.
    :param teams_bot_users: when set, presses of anyone else (by Entra ID object id) are refused.
    """

    airflow_url: str
    airflow_username: str | None = None
    airflow_password: str | None = field(default=None, repr=False)
    airflow_token: str | None = field(default=None, repr=False)
    airflow_verify: bool | str = True
    airflow_timeout: float = 5.0
    airflow_attempts: int = 3
    airflow_max_elapsed: float = 10.0
    servicetitan: SourceSettings | None = None
    sap: SourceSettings | None = None
    replay_window: float = 300.0
    replay_capacity: int = 100_000
    redis_url: str | None = field(default=None, repr=False)
    asset_uris: Mapping[str, str] = field(default_factory=dict)
    sap_asset_uri_template: str = DEFAULT_SAP_URI_TEMPLATE
    max_body_bytes: int = 1_048_576
    teams_bot_app_id: str | None = None
    teams_bot_openid_url: str = DEFAULT_OPENID_URL
    teams_bot_verify: bool | str = True
    teams_bot_dag_ids: tuple[str, ...] = ("sap_b1_approvals",)
    teams_bot_tenant_id: str | None = None
    teams_bot_users: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.airflow_url or "://" not in self.airflow_url:
            raise WebhookSettingsError(
                "B1_WEBHOOKS_AIRFLOW_URL must be the api-server's URL, e.g. http://airflow-apiserver:8080."
            )
        if bool(self.airflow_username) != bool(self.airflow_password):
            raise WebhookSettingsError(
                "B1_WEBHOOKS_AIRFLOW_USERNAME and B1_WEBHOOKS_AIRFLOW_PASSWORD go together: set both or neither."
            )
        if self.servicetitan is not None:
            length = len(self.servicetitan.secret)
            if not 32 <= length <= 64:
                raise WebhookSettingsError(
                    f"B1_WEBHOOKS_SERVICETITAN_KEY has {length} characters; ServiceTitan's HMAC keys have "
                    "32 to 64. Copy the key shown in ServiceTitan's developer portal."
                )
        for name, source in (("SERVICETITAN", self.servicetitan), ("SAP", self.sap)):
            if source is None:
                continue
            if not source.secret:
                raise WebhookSettingsError(f"The {name} webhook secret is empty.")
            if source.encoding not in ENCODINGS:
                raise WebhookSettingsError(
                    f"B1_WEBHOOKS_{name}_SIGNATURE_ENCODING must be one of {', '.join(ENCODINGS)}, "
                    f"not {source.encoding!r}."
                )
            for header in (source.signature_header, source.timestamp_header):
                if header is not None and not _HEADER.fullmatch(header):
                    raise WebhookSettingsError(
                        f"{header!r} is not a header name (B1_WEBHOOKS_{name}_*_HEADER)."
                    )
        if not self.replay_window > 0:
            raise WebhookSettingsError("B1_WEBHOOKS_REPLAY_WINDOW_SECONDS must be more than 0.")
        if self.replay_capacity < 1 or self.max_body_bytes < 1 or self.airflow_attempts < 1:
            raise WebhookSettingsError(
                "B1_WEBHOOKS_REPLAY_CAPACITY, B1_WEBHOOKS_MAX_BODY_BYTES and B1_WEBHOOKS_AIRFLOW_ATTEMPTS "
                "must be at least 1."
            )
        for key, uri in self.asset_uris.items():
            source, _, name = key.partition(":")
            if (
                source not in (SERVICETITAN, SAP_B1)
                or not name
                or not isinstance(uri, str)
                or "://" not in uri
            ):
                raise WebhookSettingsError(
                    f"B1_WEBHOOKS_ASSET_URIS: {key!r} → {uri!r} is not '<servicetitan|sap_b1>:<name>' → "
                    "'scheme://...'."
                )
        if self.teams_bot_app_id is not None and not self.teams_bot_openid_url.startswith(
            ("https://", "http://")
        ):
            raise WebhookSettingsError("B1_WEBHOOKS_TEAMS_BOT_OPENID_URL must be an http(s) URL.")
        template = self.sap_asset_uri_template
        if template and ("{business_object}" not in template or "://" not in template):
            raise WebhookSettingsError(
                "B1_WEBHOOKS_SAP_ASSET_URI_TEMPLATE must be a URI holding {business_object}, "
                "e.g. b1-webhook://sap_b1/{business_object}."
            )

    def servicetitan_uri(self, topic: str) -> str | None:
        """Asset URI of a ServiceTitan topic (``invoices``), or ``None`` when it is not mapped."""
        mapped = self.asset_uris.get(f"{SERVICETITAN}:{topic}")
        return mapped or DEFAULT_SERVICETITAN_URIS.get(topic)

    def servicetitan_topics(self) -> tuple[str, ...]:
        """Every topic with an Asset: the defaults and those named in ``asset_uris``."""
        named = [key.split(":", 1)[1] for key in self.asset_uris if key.startswith(f"{SERVICETITAN}:")]
        return tuple(dict.fromkeys([*SERVICETITAN_TOPICS, *named]))

    def sap_uri(self, business_object: str) -> str | None:
        """Asset URI of a SAP business object (``Orders``), or ``None`` when it is not mapped."""
        if not _IDENTIFIER.fullmatch(business_object):
            return None
        mapped = self.asset_uris.get(f"{SAP_B1}:{business_object}")
        if mapped:
            return mapped
        if self.sap_asset_uri_template:
            return self.sap_asset_uri_template.replace("{business_object}", business_object)
        return None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WebhookSettings:
        """Read the settings from ``B1_WEBHOOKS_*`` variables (see :data:`ENV`).

        :param environ: the variables (default ``os.environ``).
        :raises WebhookSettingsError: naming the variable that cannot be used.
        """
        env = _Env(os.environ if environ is None else environ)
        servicetitan_key = env.secret("B1_WEBHOOKS_SERVICETITAN_KEY")
        sap_secret = env.secret("B1_WEBHOOKS_SAP_SECRET")
        servicetitan = None
        if servicetitan_key is not None:
            servicetitan = SourceSettings(
                secret=servicetitan_key,
                signature_header=env.text("B1_WEBHOOKS_SERVICETITAN_SIGNATURE_HEADER")
                or DEFAULT_SERVICETITAN_HEADER,
                encoding=(env.text("B1_WEBHOOKS_SERVICETITAN_SIGNATURE_ENCODING") or "auto").lower(),
                timestamp_header=env.text("B1_WEBHOOKS_SERVICETITAN_TIMESTAMP_HEADER"),
                timestamp_fields=env.names(
                    "B1_WEBHOOKS_SERVICETITAN_TIMESTAMP_FIELDS",
                    ("timestamp", "eventTime", "occurredOn", "createdOn", "time"),
                ),
                require_timestamp=env.flag("B1_WEBHOOKS_SERVICETITAN_REQUIRE_TIMESTAMP", True),
                event_id_fields=env.names(
                    "B1_WEBHOOKS_SERVICETITAN_EVENT_ID_FIELDS", ("eventId", "webhookEventId", "id")
                ),
                event_type_fields=env.names(
                    "B1_WEBHOOKS_SERVICETITAN_EVENT_TYPE_FIELDS", ("eventType", "type", "event")
                ),
            )
        sap = None
        if sap_secret is not None:
            sap = SourceSettings(
                secret=sap_secret,
                signature_header=env.text("B1_WEBHOOKS_SAP_SIGNATURE_HEADER") or DEFAULT_SAP_HEADER,
                encoding=(env.text("B1_WEBHOOKS_SAP_SIGNATURE_ENCODING") or "auto").lower(),
                timestamp_header=env.text("B1_WEBHOOKS_SAP_TIMESTAMP_HEADER"),
                timestamp_fields=env.names("B1_WEBHOOKS_SAP_TIMESTAMP_FIELDS", ("time",)),
                require_timestamp=env.flag("B1_WEBHOOKS_SAP_REQUIRE_TIMESTAMP", True),
            )
        template = env.raw("B1_WEBHOOKS_SAP_ASSET_URI_TEMPLATE")
        return cls(
            airflow_url=(env.text("B1_WEBHOOKS_AIRFLOW_URL") or "").rstrip("/"),
            airflow_username=env.text("B1_WEBHOOKS_AIRFLOW_USERNAME"),
            airflow_password=env.secret("B1_WEBHOOKS_AIRFLOW_PASSWORD"),
            airflow_token=env.secret("B1_WEBHOOKS_AIRFLOW_TOKEN"),
            airflow_verify=env.text("B1_WEBHOOKS_AIRFLOW_CA_BUNDLE") or True,
            airflow_timeout=env.number("B1_WEBHOOKS_AIRFLOW_TIMEOUT", 5.0),
            airflow_attempts=int(env.number("B1_WEBHOOKS_AIRFLOW_ATTEMPTS", 3)),
            servicetitan=servicetitan,
            sap=sap,
            replay_window=env.number("B1_WEBHOOKS_REPLAY_WINDOW_SECONDS", 300.0),
            replay_capacity=int(env.number("B1_WEBHOOKS_REPLAY_CAPACITY", 100_000)),
            redis_url=env.secret("B1_WEBHOOKS_REDIS_URL"),
            asset_uris=env.mapping("B1_WEBHOOKS_ASSET_URIS"),
            sap_asset_uri_template=DEFAULT_SAP_URI_TEMPLATE if template is None else template.strip(),
            max_body_bytes=int(env.number("B1_WEBHOOKS_MAX_BODY_BYTES", 1_048_576)),
            teams_bot_app_id=env.text("B1_WEBHOOKS_TEAMS_BOT_APP_ID"),
            teams_bot_openid_url=env.text("B1_WEBHOOKS_TEAMS_BOT_OPENID_URL") or DEFAULT_OPENID_URL,
            teams_bot_verify=env.text("B1_WEBHOOKS_TEAMS_BOT_CA_BUNDLE") or True,
            teams_bot_dag_ids=env.names("B1_WEBHOOKS_TEAMS_BOT_DAG_IDS", ("sap_b1_approvals",)),
            teams_bot_tenant_id=env.text("B1_WEBHOOKS_TEAMS_BOT_TENANT_ID"),
            teams_bot_users=tuple(
                part.strip().lower()
                for part in (env.text("B1_WEBHOOKS_TEAMS_BOT_USERS") or "").split(",")
                if part.strip()
            ),
        )


class _Env:
    """Typed reads of environment variables; errors name the variable, never its value if secret."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ

    def raw(self, name: str) -> str | None:
        return self.environ.get(name)

    def text(self, name: str) -> str | None:
        value = blank_to_none(self.environ.get(name))
        return value.strip() if value is not None else None

    def secret(self, name: str) -> str | None:
        """The value, or the content of the file named by ``<name>_FILE`` (one trailing newline dropped)."""
        value = blank_to_none(self.environ.get(name))
        path = blank_to_none(self.environ.get(f"{name}_FILE"))
        if value is not None and path is not None:
            raise WebhookSettingsError(f"Set {name} or {name}_FILE, not both.")
        if path is not None:
            try:
                value = Path(path).read_text(encoding="utf-8")
            except OSError as exc:
                raise WebhookSettingsError(
                    f"{name}_FILE names {path!r}, which cannot be read ({exc.strerror})."
                ) from None
            value = value[:-1] if value.endswith("\n") else value
            value = value[:-1] if value.endswith("\r") else value
            value = blank_to_none(value)
        return value

    def number(self, name: str, default: float) -> float:
        value = self.text(name)
        if value is None:
            return default
        try:
            return float(value)
        except ValueError:
            raise WebhookSettingsError(f"{name} must be a number, not {value!r}.") from None

    def flag(self, name: str, default: bool) -> bool:
        try:
            return parse_bool(self.text(name), default=default, name=name)
        except ValueError as exc:
            raise WebhookSettingsError(str(exc)) from None

    def names(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self.text(name)
        if value is None:
            return default
        names = tuple(part.strip() for part in value.split(",") if part.strip())
        if not names:
            raise WebhookSettingsError(f"{name} names no field.")
        return names

    def mapping(self, name: str) -> dict[str, str]:
        value = self.text(name)
        if value is None:
            return {}
        try:
            document: Any = json.loads(value)
        except json.JSONDecodeError as exc:
            raise WebhookSettingsError(f"{name} is not JSON ({exc.msg} at character {exc.pos}).") from None
        if not isinstance(document, dict):
            raise WebhookSettingsError(f'{name} must be a JSON object such as {{"sap_b1:Orders": "..."}}.')
        return {str(key): value for key, value in document.items()}
