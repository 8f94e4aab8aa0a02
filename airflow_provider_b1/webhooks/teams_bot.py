"""The Teams bot's messaging endpoint: a pressed Approve/Reject button answers a human-in-the-loop
request in Airflow.

A card posted through the bot carries ``Action.Submit`` buttons whose ``data`` names the request
(``dag_id``, ``run_id``, ``task_id``, ``map_index``, ``option``). Teams sends the press to the bot
as an activity (``message`` with ``value`` = the data; ``invoke`` ``adaptiveCard/action`` with
``value.action.data``), signed by the Bot Framework with a JWT in ``Authorization: Bearer``.

The token is checked as the Bot Framework documents it: RS256, signed by a key published in the
OpenID metadata's ``jwks_uri`` (``https://login.botframework.com/v1/.well-known/openidconfiguration``),
``iss`` ``https://api.botframework.com``, ``aud`` the bot's app id, not expired (five minutes of
clock skew), the key endorsed for the activity's channel when the key lists endorsements, and
the activity's ``serviceUrl`` equal to the token's ``serviceurl`` claim. Anything else is 401.

The data is not trusted beyond naming a request: the DAG must be one the receiver answers for,
the option must be one the request offers (read from Airflow first), and Airflow itself checks
the receiver's user against the request's assigned users.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
import requests

log = logging.getLogger(__name__)

BOT_ISSUER = "https://api.botframework.com"
DEFAULT_OPENID_URL = "https://login.botframework.com/v1/.well-known/openidconfiguration"
RESPONDER_PARAM = "teams_responder"
"""Key of ``params_input`` under which the Teams user who pressed is recorded (when the request
has no params of its own: Airflow compares the keys of both)."""

_ID = re.compile(r"[A-Za-z0-9_.:+\-@~T]{1,250}")


class BotAuthError(Exception):
    """The call is not from the Bot Framework for this bot; the message says why (no token)."""


@dataclass(frozen=True)
class ButtonPress:
    """What a pressed button asks: choose ``option`` for one HITL request; who pressed it."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    option: str
    user_id: str | None
    user_name: str | None
    invoke: bool
    tenant_id: str | None = None


class BotTokenVerifier:
    """Checks Bot Framework tokens; the signing keys are cached for at most ``keys_ttl`` seconds.

    :param app_id: the bot's Microsoft App ID (the token's ``aud``).
    :param openid_url: the OpenID metadata naming the ``jwks_uri``.
    :param verify: TLS verification for the metadata and keys: ``True`` or a CA bundle path.
    :param leeway: clock skew allowed on ``exp`` and ``nbf``, seconds.
    :param keys_ttl: seconds the keys are used before being fetched again.
    :param refetch_after: an unknown ``kid`` fetches the keys again, at most this often (seconds).
    :param clock: Unix seconds now (tests).
    """

    def __init__(
        self,
        app_id: str,
        *,
        openid_url: str = DEFAULT_OPENID_URL,
        verify: bool | str = True,
        leeway: float = 300.0,
        keys_ttl: float = 3600.0,
        refetch_after: float = 60.0,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app_id = app_id
        self.openid_url = openid_url
        self.verify = verify
        self.leeway = leeway
        self.keys_ttl = keys_ttl
        self.refetch_after = refetch_after
        self.timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, dict[str, Any]] = {}
        self._fetched_at: float | None = None

    def _fetch_keys(self) -> None:
        try:
            with requests.Session() as http:
                # Passed with each call: a session's own ``verify`` loses to REQUESTS_CA_BUNDLE.
                metadata = http.get(self.openid_url, timeout=self.timeout, verify=self.verify)
                metadata.raise_for_status()
                jwks_uri = metadata.json()["jwks_uri"]
                keys = http.get(jwks_uri, timeout=self.timeout, verify=self.verify)
                keys.raise_for_status()
                found = {str(k["kid"]): k for k in keys.json()["keys"] if k.get("kid")}
        except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
            raise BotAuthError(f"the signing keys could not be read ({type(exc).__name__})") from None
        self._keys, self._fetched_at = found, self._clock()
        log.info("Read %d Bot Framework signing key(s).", len(found))

    def key(self, kid: str) -> dict[str, Any]:
        """The published JWK of ``kid``; the cache is refreshed when stale or when ``kid`` is new."""
        with self._lock:
            now = self._clock()
            age = None if self._fetched_at is None else now - self._fetched_at
            if age is None or age > self.keys_ttl or (kid not in self._keys and age > self.refetch_after):
                self._fetch_keys()
            found = self._keys.get(kid)
        if found is None:
            raise BotAuthError("the token is signed by an unknown key")
        return found

    def verify_request(self, authorization: str | None, activity: Mapping[str, Any]) -> dict[str, Any]:
        """The token's claims, when ``authorization`` proves the Bot Framework sent ``activity``.

        :raises BotAuthError: otherwise, saying why (never quoting the token).
        """
        if not authorization or authorization[:7].lower() != "bearer ":
            raise BotAuthError("no bearer token")
        token = authorization[7:].strip()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise BotAuthError("the token is not a JWT") from None
        if header.get("alg") != "RS256":
            raise BotAuthError(f"the token is signed with {str(header.get('alg'))[:10]!r}, not RS256")
        jwk = self.key(str(header.get("kid") or ""))
        try:
            key = jwt.PyJWK(jwk, algorithm="RS256").key
            claims = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                audience=self.app_id,
                issuer=BOT_ISSUER,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise BotAuthError("the token has expired") from None
        except jwt.InvalidAudienceError:
            raise BotAuthError("the token is for another bot") from None
        except jwt.InvalidIssuerError:
            raise BotAuthError("the token is not issued by the Bot Framework") from None
        except jwt.InvalidSignatureError:
            raise BotAuthError("the token's signature does not verify") from None
        except jwt.PyJWTError as exc:
            raise BotAuthError(f"the token is not valid ({type(exc).__name__})") from None
        endorsements = jwk.get("endorsements")
        channel = activity.get("channelId")
        if isinstance(endorsements, list) and channel and channel not in endorsements:
            raise BotAuthError(f"the signing key is not endorsed for channel {str(channel)[:20]!r}")
        claimed = claims.get("serviceurl", claims.get("serviceUrl"))
        if claimed is not None and _url(claimed) != _url(activity.get("serviceUrl")):
            raise BotAuthError("the activity's serviceUrl is not the token's")
        return claims


def _url(value: Any) -> str:
    return str(value or "").rstrip("/").lower()


def read_press(activity: Mapping[str, Any]) -> ButtonPress | None:
    """The button press an activity carries, or ``None`` when it carries none (other messages).

    :raises ValueError: when it names a request in a shape that cannot be one.
    """
    kind = activity.get("type")
    value = activity.get("value")
    invoke = kind == "invoke"
    if invoke and isinstance(value, Mapping) and isinstance(value.get("action"), Mapping):
        value = value["action"].get("data")
    if kind not in ("message", "invoke") or not isinstance(value, Mapping) or "option" not in value:
        return None
    fields = {name: value.get(name) for name in ("dag_id", "run_id", "task_id", "option")}
    for name, field in fields.items():
        if not isinstance(field, str) or not _ID.fullmatch(field):
            raise ValueError(f"The button's {name} is not an id.")
    map_index = value.get("map_index", -1)
    if isinstance(map_index, bool) or not isinstance(map_index, int) or map_index < -1:
        raise ValueError("The button's map_index is not a number.")
    sender = activity.get("from") if isinstance(activity.get("from"), Mapping) else {}
    conversation = activity.get("conversation") if isinstance(activity.get("conversation"), Mapping) else {}
    channel_data = activity.get("channelData") if isinstance(activity.get("channelData"), Mapping) else {}
    tenant = channel_data.get("tenant") if isinstance(channel_data.get("tenant"), Mapping) else {}
    return ButtonPress(
        dag_id=fields["dag_id"],
        run_id=fields["run_id"],
        task_id=fields["task_id"],
        map_index=map_index,
        option=fields["option"],
        user_id=str(sender.get("aadObjectId") or sender.get("id") or "") or None,
        user_name=str(sender.get("name") or "")[:200] or None,
        invoke=invoke,
        tenant_id=str(tenant.get("id") or conversation.get("tenantId") or "") or None,
    )


def reply(press: ButtonPress | None, text: str, *, status: int = 200) -> dict[str, Any]:
    """The body answering the activity: an invoke response for ``invoke``, else a short note."""
    if press is not None and press.invoke:
        return {"statusCode": status, "type": "application/vnd.microsoft.activity.message", "value": text}
    return {"status": status, "text": text}


__all__ = [
    "BOT_ISSUER",
    "DEFAULT_OPENID_URL",
    "RESPONDER_PARAM",
    "BotAuthError",
    "BotTokenVerifier",
    "ButtonPress",
    "read_press",
    "reply",
]
