"""Record Asset events through Airflow's public REST API, as checked against apache-airflow 3.3.2.

The calls (``airflow/api_fastapi/core_api/openapi/v2-rest-api-generated.yaml`` and the simple auth
manager's ``v2-simple-auth-manager-generated.yaml`` in the installed package):

* ``POST /auth/token`` with JSON ``{"username", "password"}`` → 201 ``{"access_token": <JWT>}``
  (``GET /auth/token`` gives one without credentials when ``simple_auth_manager_all_admins``
  is on). The JWT goes in ``Authorization: Bearer``; it expires (``[api_auth]
  jwt_expiration_time``, one day by default), so it is renewed shortly before its ``exp``, and
  once after a 401.
* ``GET /api/v2/assets?uri_prefix_pattern=<uri>`` → ``{"assets": [{"id", "uri", ...}],
  "total_entries"}``: the event endpoint wants the Asset's id, not its URI. Ids are cached.
* ``POST /api/v2/assets/events`` with ``{"asset_id": <int>, "extra": {...}}`` (no other field
  is allowed; Airflow adds ``"from_rest_api": true`` to ``extra``) → 200 ``{"id", "asset_id",
  "uri", "timestamp", ...}``; 404 when no such Asset.
* Human-in-the-loop requests (the Teams bot's buttons): ``GET`` and ``PATCH
  /api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/hitlDetails``, the
  latter with ``{"chosen_options": [...], "params_input": {...}}`` → 200; 409 when already
  answered, 403 when the caller is not among the request's assigned users, 404 when no such
  request, 400 for an option it does not offer.

Failures that may pass (connection errors, timeouts, 429, 5xx) are retried under a short,
bounded :class:`~airflow_provider_b1.utils.retry.RetryPolicy`: the sender is waiting for its
answer, and will deliver again itself when told 503.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from airflow_provider_b1.exceptions import B1ProviderError, PermanentError, RetryableError
from airflow_provider_b1.utils.retry import RetryPolicy, parse_retry_after

log = logging.getLogger(__name__)

RENEW_BEFORE_SECONDS = 60.0
"""A token this close to its expiry is renewed before use (half its lifetime when that is shorter)."""

_PAGE = 100
_MAX_PAGES = 50


class AirflowError(B1ProviderError):
    """Airflow did not record the event; the message says why, never with a token or password."""


class AirflowUnavailableError(AirflowError, RetryableError):
    """Airflow could not be reached or answered 429/5xx; worth trying again later."""


class AirflowAuthError(AirflowError, PermanentError):
    """Airflow refused the receiver's credentials or token."""


class HitlRefusedError(AirflowError, PermanentError):
    """Airflow refused the answer of a human-in-the-loop request (no such request, an option it
    does not offer, or the receiver's user is not among its assigned users)."""


class AssetNotFoundError(AirflowError, PermanentError):
    """No active Asset has that URI: no DAG declares it (schedule or outlets)."""


def same_uri(left: str, right: str) -> bool:
    """Whether two Asset URIs name the same Asset as Airflow stores them.

    Airflow lower-cases the scheme and host and may add a ``/`` to an empty path
    (``servicetitan://invoices`` is stored as ``servicetitan://invoices/``).
    """

    def key(uri: str) -> tuple[str, str, str, str]:
        parts = urlsplit(uri)
        return parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/"), parts.query

    return left == right or key(left) == key(right)


def _token_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT, read without verifying it (Airflow does that), or ``None``."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (IndexError, KeyError, TypeError, ValueError):
        return None


def _hitl_path(dag_id: str, run_id: str, task_id: str, map_index: int) -> str:
    segments = (quote(str(part), safe="") for part in (dag_id, run_id, task_id, int(map_index)))
    return "/api/v2/dags/{}/dagRuns/{}/taskInstances/{}/{}/hitlDetails".format(*segments)


class AirflowAssetsClient:
    """Records Asset events in Airflow by URI.

    :param base_url: the api-server's base URL (``http://airflow-apiserver:8080``).
    :param username: user for ``POST /auth/token``.
    :param password: its password.
    :param token: a ready JWT (used as it is; a 401 is then final).
    :param verify: TLS verification: ``True`` or a CA bundle path.
    :param timeout: seconds per call.
    :param retry_policy: retries of what may pass (bounded in attempts and in time).
    :param session: a ``requests.Session`` to use (tests).
    :param clock: Unix seconds now (tests).
    """

    def __init__(
        self,
        base_url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        verify: bool | str = True,
        timeout: float = 5.0,
        retry_policy: RetryPolicy | None = None,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self._password = password
        self._static_token = token
        self.timeout = timeout
        self.retry_policy = retry_policy or RetryPolicy(
            max_attempts=3, max_elapsed=10.0, initial_wait=0.25, max_wait=2.0
        )
        self._http = session or requests.Session()
        self._http.verify = verify
        self._http.headers.update(
            {"Accept": "application/json", "User-Agent": "airflow-provider-b1-webhooks"}
        )
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = token
        self._renew_at: float | None = None
        self._asset_ids: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"AirflowAssetsClient({self.base_url!r}, username={self.username!r})"

    def close(self) -> None:
        """Close kept-alive connections."""
        self._http.close()

    # -- public ---------------------------------------------------------------------------------

    def record_event(self, uri: str, extra: dict[str, Any] | None = None) -> int:
        """Record one event of the Asset ``uri`` and return the new event's id.

        :param uri: the Asset's URI, as the DAGs declare it.
        :param extra: small, JSON-serialisable facts about the event (ids, counts; no data).
        :raises AssetNotFoundError: no DAG declares an Asset with that URI.
        :raises AirflowAuthError: Airflow refused the credentials or the token.
        :raises AirflowUnavailableError: Airflow did not answer usefully within the retries.
        """
        for attempt in self.retry_policy.retrying(retry_on=AirflowUnavailableError):
            with attempt:
                return self._record_once(uri, extra or {})
        raise AssertionError("unreachable")  # pragma: no cover

    def asset_id(self, uri: str) -> int:
        """The id of the active Asset with this URI (cached).

        :raises AssetNotFoundError: when there is none.
        """
        cached = self._asset_ids.get(uri)
        if cached is not None:
            return cached
        # The prefix search is exact on its characters except '|' (OR) and '~' (all): cut there.
        prefix = uri
        for special in ("|", "~"):
            prefix = prefix.split(special, 1)[0]
        offset = 0
        for _ in range(_MAX_PAGES):
            document = self._api(
                "GET",
                "/api/v2/assets",
                params={"uri_prefix_pattern": prefix, "limit": _PAGE, "offset": offset, "order_by": "id"},
            ).json()
            assets = document.get("assets") or []
            for asset in assets:
                if same_uri(str(asset.get("uri", "")), uri):
                    self._asset_ids[uri] = int(asset["id"])
                    return self._asset_ids[uri]
            offset += len(assets)
            if not assets or offset >= int(document.get("total_entries") or 0):
                break
        raise AssetNotFoundError(
            f"Airflow has no active Asset with URI {uri!r}: deploy a DAG that declares it "
            f"(schedule=[Asset(uri={uri!r})] or outlets), or map the event to another URI "
            "(B1_WEBHOOKS_ASSET_URIS)."
        )

    def hitl_request(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any]:
        """A human-in-the-loop request as Airflow holds it (``options``, ``params``,
        ``response_received``...).

        :raises HitlRefusedError: when there is no such request.
        """
        path = _hitl_path(dag_id, run_id, task_id, map_index)
        for attempt in self.retry_policy.retrying(retry_on=AirflowUnavailableError):
            with attempt:
                response = self._api("GET", path, allow=(404,))
                if response.status_code == 404:
                    raise HitlRefusedError(
                        f"Airflow has no human-in-the-loop request {task_id}[{map_index}]."
                    )
                return dict(response.json())
        raise AssertionError("unreachable")  # pragma: no cover

    def answer_hitl(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        map_index: int = -1,
        *,
        chosen_options: list[str],
        params_input: dict[str, Any] | None = None,
    ) -> bool:
        """Answer a human-in-the-loop request; ``False`` when it was answered already (409).

        :raises HitlRefusedError: no such request, an option it does not offer, or the receiver's
            user may not answer it (403).
        """
        path = _hitl_path(dag_id, run_id, task_id, map_index)
        body = {"chosen_options": list(chosen_options), "params_input": params_input or {}}
        for attempt in self.retry_policy.retrying(retry_on=AirflowUnavailableError):
            with attempt:
                response = self._api("PATCH", path, json_body=body, allow=(400, 403, 404, 409, 422))
                if response.status_code == 409:
                    return False
                if response.status_code >= 400:
                    raise HitlRefusedError(
                        f"Airflow refused the answer of {task_id}[{map_index}] ({response.status_code})."
                    )
                return True
        raise AssertionError("unreachable")  # pragma: no cover

    # -- internals ------------------------------------------------------------------------------

    def _record_once(self, uri: str, extra: dict[str, Any]) -> int:
        asset_id = self.asset_id(uri)
        body = {"asset_id": asset_id, "extra": extra}
        response = self._api("POST", "/api/v2/assets/events", json_body=body, allow=(404,))
        if response.status_code == 404:
            # The Asset was removed and perhaps declared again under a new id: look it up once more.
            self._asset_ids.pop(uri, None)
            body["asset_id"] = self.asset_id(uri)
            response = self._api("POST", "/api/v2/assets/events", json_body=body, allow=(404,))
            if response.status_code == 404:
                self._asset_ids.pop(uri, None)
                raise AssetNotFoundError(f"Airflow no longer knows the Asset with URI {uri!r}.")
        return int(response.json()["id"])

    def _api(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        allow: tuple[int, ...] = (),
    ) -> requests.Response:
        """One call with a current token; a 401 renews the token and sends the call once more."""
        for renewed in (False, True):
            token = self._current_token(force=renewed)
            response = self._send(
                method, path, params=params, json_body=json_body, headers={"Authorization": f"Bearer {token}"}
            )
            if response.status_code == 401 and not renewed and self._static_token is None:
                continue
            break
        if response.status_code in (401, 403) and response.status_code not in allow:
            raise AirflowAuthError(
                f"Airflow refused {method} {path} ({response.status_code}): the receiver's "
                + (
                    "token (B1_WEBHOOKS_AIRFLOW_TOKEN) is not accepted."
                    if self._static_token
                    else f"user {self.username or '(all-admins token)'} may not record Asset events."
                )
            )
        if response.status_code >= 400 and response.status_code not in allow:
            raise AirflowError(f"Airflow answered {method} {path} with {response.status_code}.")
        return response

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        url = self.base_url + path
        try:
            # verify per call: a session's own CA bundle loses to REQUESTS_CA_BUNDLE otherwise.
            response = self._http.request(
                method,
                url,
                params=params,
                json=json_body,
                headers=headers,
                timeout=self.timeout,
                verify=self._http.verify,
            )
        except requests.RequestException as exc:
            raise AirflowUnavailableError(
                f"Airflow at {self.base_url} could not be reached ({type(exc).__name__})."
            ) from None
        if response.status_code == 429 or response.status_code >= 500:
            raise AirflowUnavailableError(
                f"Airflow answered {method} {path} with {response.status_code}.",
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        return response

    def _current_token(self, *, force: bool = False) -> str:
        if self._static_token is not None:
            return self._static_token
        with self._lock:
            token, renew_at = self._token, self._renew_at
            if token is not None and not force and (renew_at is None or self._clock() < renew_at):
                return token
            issued = self._clock()
            self._token = token = self._obtain_token()
            expiry = _token_expiry(token)
            # Renewed a minute before it expires, or half-way through a life shorter than two minutes.
            self._renew_at = (
                None if expiry is None else expiry - min(RENEW_BEFORE_SECONDS, (expiry - issued) / 2)
            )
            return token

    def _obtain_token(self) -> str:
        if self.username:
            response = self._send(
                "POST", "/auth/token", json_body={"username": self.username, "password": self._password}
            )
        else:
            response = self._send("GET", "/auth/token")
        if response.status_code in (400, 401, 403, 422):
            raise AirflowAuthError(
                f"Airflow refused a token ({response.status_code}) "
                + (
                    f"for user {self.username}: check B1_WEBHOOKS_AIRFLOW_USERNAME and B1_WEBHOOKS_AIRFLOW_PASSWORD."
                    if self.username
                    else "without credentials: set B1_WEBHOOKS_AIRFLOW_USERNAME and B1_WEBHOOKS_AIRFLOW_PASSWORD "
                    "(only the simple auth manager's all-admins mode gives tokens freely)."
                )
            )
        if response.status_code >= 400:
            raise AirflowError(f"Airflow answered the token request with {response.status_code}.")
        try:
            token = response.json()["access_token"]
        except (ValueError, KeyError, TypeError):
            raise AirflowError("Airflow's token reply holds no access_token.") from None
        if not isinstance(token, str) or not token:
            raise AirflowError("Airflow's token reply holds no access_token.")
        return token
