"""The Test button of a saved connection that has no port, on Airflow releases that refuse it.

Airflow 3.3.2's UI sends a saved connection's port to ``POST /api/v2/connections/test`` as
``Number(port)``, which is ``0`` when none is stored. The route compares the request's host and
port with the stored connection's before it reuses the stored password (``_same_endpoint``); it
reads a blank port as no port, but not ``0``, so it answers 400 "The host or port to test differs
from the stored connection" and the UI shows "Bad Request". That is every connection saved with
the port left empty, the normal case for this provider's hooks, which have default ports and
URLs. apache/airflow PR #73298 makes the comparison read ``0`` as no port too (merged, not in a
release at the time of writing).

:class:`ConnectionTestPortMiddleware` gives the same answer on such releases, on that one route
and in that one case: a JSON body whose ``port`` is ``0`` and whose ``connection_id`` names a
connection stored in the metadata database without a port gets ``"port": null`` before Airflow
reads it. Airflow then makes its own check, unchanged: a host other than the stored one, or a
port other than none, is still refused unless the request brings its own password. A ``0`` sent
for a connection stored with a port (``0`` included) is passed on as it is, so Airflow decides
as it did. The stored port is read from the metadata database only (one indexed row, as Airflow
reads a connection's team before it authorizes the caller), never from a secrets backend: the
UI lists, and so tests, only the metadata database's connections.

:func:`upstream_fixed` asks the installed Airflow's own comparison whether ``0`` and no port are
the same port. When they are (a release with PR #73298), or when the comparison no longer
exists, the middleware passes every request on untouched: it is inert wherever Airflow does not
need it.

:class:`ConnectionTestPortPlugin` registers the middleware through the ``airflow.plugins`` entry
point; only the api-server installs plugins' FastAPI middlewares.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from airflow.plugins_manager import AirflowPlugin

log = logging.getLogger(__name__)

TEST_ROUTE = "/api/v2/connections/test"
MAX_BODY = 1 << 20
"""Bytes of a request body this middleware reads; a longer body is passed on untouched."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def upstream_fixed() -> bool:
    """Whether the installed Airflow's Test route already reads port ``0`` as no port (PR #73298).

    ``True`` as well when the route's comparison is not where 3.3.2 has it: a release that
    reworked it is not the one this module was written for, and is left alone.
    """
    try:
        from airflow.api_fastapi.core_api.routes.public.connections import _same_endpoint
    except ImportError:
        return True
    try:
        return bool(_same_endpoint(0, None))
    except Exception:
        return True


def stored_port_is_null(conn_id: str) -> bool:
    """Whether ``conn_id`` is a connection of the metadata database stored without a port."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        row = session.execute(select(Connection.port).where(Connection.conn_id == conn_id)).first()
    return row is not None and row.port is None


def _route_path(scope: Scope) -> str:
    path = scope.get("path", "")
    root = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


class ConnectionTestPortMiddleware:
    """ASGI middleware: port ``0`` read as no port on ``POST /api/v2/connections/test`` for a
    connection stored without one (see the module's docstring).

    :param app: the ASGI application it wraps.
    :param active: ``None`` to decide from the installed Airflow (:func:`upstream_fixed`);
        ``True`` or ``False`` to say.
    :param stored_port_is_null: how a connection's stored port is looked up (the metadata
        database by default); called in a worker thread.
    """

    def __init__(
        self,
        app: Callable[[Scope, Receive, Send], Awaitable[None]],
        *,
        active: bool | None = None,
        stored_port_is_null: Callable[[str], bool] = stored_port_is_null,
    ) -> None:
        self.app = app
        self.active = (not upstream_fixed()) if active is None else active
        self.stored_port_is_null = stored_port_is_null
        if self.active:
            log.debug("Connection tests read port 0 as no port for connections stored without one")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not (
            self.active
            and scope["type"] == "http"
            and scope.get("method") == "POST"
            and _route_path(scope) == TEST_ROUTE
        ):
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        body = b""
        complete = False
        while len(body) <= MAX_BODY:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if not message.get("more_body", False):
                complete = True
                break
        replaced = await self._normalised(body) if complete else None
        if replaced is not None:
            messages = [{"type": "http.request", "body": replaced, "more_body": False}]
            headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"content-length"]
            scope = {**scope, "headers": [*headers, (b"content-length", str(len(replaced)).encode())]}

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _normalised(self, body: bytes) -> bytes | None:
        """The body with ``"port": null`` when it tests a connection stored without a port with
        port ``0``; ``None`` to pass the request on as it came."""
        try:
            data = json.loads(body)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        port, conn_id = data.get("port"), data.get("connection_id")
        if type(port) is not int or port != 0 or not isinstance(conn_id, str) or not conn_id:
            return None
        from anyio import to_thread

        try:
            portless = await to_thread.run_sync(self.stored_port_is_null, conn_id)
        except Exception:
            log.warning("Could not read the stored port of connection %r; testing it as sent", conn_id)
            return None
        if not portless:
            return None
        log.debug("Testing connection %r: port 0 read as its stored null port", conn_id)
        data["port"] = None
        return json.dumps(data).encode()


class ConnectionTestPortPlugin(AirflowPlugin):
    """Installs :class:`ConnectionTestPortMiddleware` in the api-server."""

    name = "b1_connection_test_port"
    fastapi_root_middlewares = [
        {
            "middleware": ConnectionTestPortMiddleware,
            "args": [],
            "kwargs": {},
            "name": "Connection Test button: port 0 read as no port (apache/airflow PR #73298)",
        }
    ]
