"""``b1-sandbox``: start the local imitations of the external services.

Each sandbox is one line in :data:`SANDBOXES`: a name and a builder returning
``(app, connection_lines)``. The SAP Service Layer listens on ``--port`` (HTTPS with a generated
self-signed certificate, plus plain HTTP on ``--http-port``); the others on free ports, the
Salesforce org with its Pub/Sub API (gRPC, for Change Data Capture) beside it; Microsoft Teams
(webhook, tokens, Bot Connector and Graph on one server) with two connections. When all are up, the URLs and ready-to-paste ``AIRFLOW_CONN_*`` lines are printed and, with
``--ready-file``, written as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from airflow_provider_b1.sandbox.server import Served, serve_in_thread


def _sap(args: argparse.Namespace) -> Any:
    from airflow_provider_b1.sandbox.sap import SapSandboxConfig, create_app

    config = SapSandboxConfig(
        seed=args.seed,
        invoices=args.invoices,
        session_timeout_seconds=args.session_timeout_seconds,
        login_delay=args.login_delay,
        default_page_size=args.page_size,
        timezone=args.timezone,
        company_db=args.company_db,
        users={args.user: args.password},
        cost=args.sap_cost,
    )
    return create_app(config)


def _cost_model(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Any:
    """The SAP cost model ``--cost-model`` and ``--cost`` ask for (None: off)."""
    from airflow_provider_b1.sandbox.sap import CostModel

    if not args.cost_model and not args.cost:
        return None
    settings: dict[str, Any] = {}
    for item in args.cost:
        try:
            if item.lstrip().startswith("{"):
                value = json.loads(item)
                if not isinstance(value, dict):
                    raise ValueError("not a JSON object")
                settings.update(value)
            else:
                key, sep, text = item.partition("=")
                if not sep:
                    raise ValueError("KEY=VALUE expected")
                settings[key.strip()] = json.loads(text)
        except ValueError as exc:
            parser.error(f"--cost {item!r}: {exc}")
    try:
        return CostModel.service_layer(**settings)
    except (TypeError, ValueError) as exc:
        parser.error(f"--cost: {exc}")


def _sap_connections(
    args: argparse.Namespace, https: Served | None, http: Served | None
) -> tuple[dict, list[str]]:
    lines = []
    info: dict[str, Any] = {"company_db": args.company_db, "user": args.user, "password": args.password}
    for served, conn_id in ((https, "SAP_B1_DEFAULT"), (http, "SAP_B1_HTTP" if https else "SAP_B1_DEFAULT")):
        if served is None:
            continue
        extra: dict[str, Any] = {"timezone": args.timezone, "page_size": 500}
        if served.ca_path:
            extra["ca_bundle"] = served.ca_path
        conn = {
            "conn_type": "sap_b1",
            "host": f"{served.base_url}/b1s/v2",
            "schema": args.company_db,
            "login": args.user,
            "password": args.password,
            "extra": extra,
        }
        lines.append(f"AIRFLOW_CONN_{conn_id}='{json.dumps(conn)}'")
    return info, lines


def _looker(args: argparse.Namespace) -> Any:
    from airflow_provider_b1.sandbox.looker import create_app

    return create_app()


def _servicetitan(args: argparse.Namespace) -> Any:
    from airflow_provider_b1.sandbox.servicetitan import ServiceTitanSandboxConfig, create_app

    return create_app(
        ServiceTitanSandboxConfig(
            seed=args.seed, customers=args.servicetitan_customers, invoices=args.servicetitan_invoices
        )
    )


def _servicetitan_connection(app: Any, served: Served) -> str:
    """The connection the ServiceTitan hook reads; one server answers both token and API calls."""
    cfg = app.state.sandbox.config
    conn = {
        "conn_type": "servicetitan",
        "login": cfg.client_id,
        "password": cfg.client_secret,
        "extra": {
            "environment": "integration",
            "tenant_id": cfg.tenant_id,
            "app_key": cfg.app_key,
            "api_url": served.base_url,
            "auth_url": served.base_url,
            "ca_bundle": served.ca_path,
        },
    }
    return f"AIRFLOW_CONN_SERVICETITAN_DEFAULT='{json.dumps(conn)}'"


def _salesforce(args: argparse.Namespace) -> Any:
    from airflow_provider_b1.sandbox.salesforce import SalesforceSandboxConfig, create_app

    return create_app(
        SalesforceSandboxConfig(
            seed=args.seed, accounts=args.salesforce_accounts, opportunities=args.salesforce_opportunities
        )
    )


def _salesforce_pubsub(app: Any, served: Served) -> Any:
    """The org's Pub/Sub API (Change Data Capture over gRPC) with the REST server's certificate,
    so one CA bundle trusts both; ``None`` without the cdc extra (a warning says so)."""
    from airflow_provider_b1.sandbox.salesforce.pubsub import serve_next_to

    return serve_next_to(app, served.ca_path)


def _salesforce_connection(app: Any, served: Served, pubsub: Any = None) -> str:
    """The connection the Salesforce hook reads; host is the org's My Domain URL (the sandbox's
    base URL), which answers both the token endpoint and the API. With the Pub/Sub service, its
    endpoint and CA bundle too, for the change event sensor and trigger."""
    cfg = app.state.sandbox.config
    extra: dict[str, Any] = {"api_version": "62.0", "ca_bundle": served.ca_path}
    if pubsub is not None:
        from airflow_provider_b1.sandbox.salesforce.pubsub import connection_extra

        extra.update(connection_extra(pubsub))
    conn = {
        "conn_type": "b1_salesforce",
        "host": served.base_url,
        "login": cfg.client_id,
        "password": cfg.client_secret,
        "extra": extra,
    }
    return f"AIRFLOW_CONN_B1_SALESFORCE_DEFAULT='{json.dumps(conn)}'"


def _teams(args: argparse.Namespace) -> Any:
    from airflow_provider_b1.sandbox.teams import TeamsSandboxConfig, create_app

    return create_app(TeamsSandboxConfig())


def teams_connections(app: Any, served: Served) -> dict[str, dict[str, Any]]:
    """The two connections the Teams hooks read, by connection id: a Workflows webhook (its URL is
    the secret, so it goes in the password) posting to the first seeded channel, and the bot, whose
    token, Bot Connector and Graph endpoints are all this one server."""
    sandbox = app.state.sandbox
    cfg = sandbox.config
    channel = sandbox.channels[0]
    webhook = {
        "conn_type": "b1_teams_webhook",
        "host": f"{channel['team']} / {channel['name']}",
        "password": sandbox.webhook_url(served.base_url, channel),
        "extra": {"ca_bundle": served.ca_path},
    }
    bot = {
        "conn_type": "b1_teams_bot",
        "login": cfg.bot_app_id,
        "password": cfg.bot_app_secret,
        "extra": {
            "tenant_id": cfg.tenant_id,
            "service_url": served.base_url,
            "graph_client_id": cfg.graph_client_id,
            "graph_client_secret": cfg.graph_client_secret,
            "login_url": served.base_url,
            "graph_url": served.base_url,
            "test_conversation_id": channel["conversation_id"],
            "ca_bundle": served.ca_path,
        },
    }
    return {"b1_teams_webhook_default": webhook, "b1_teams_bot_default": bot}


def _teams_connections(app: Any, served: Served) -> list[str]:
    return [
        f"AIRFLOW_CONN_{conn_id.upper()}='{json.dumps(conn)}'"
        for conn_id, conn in teams_connections(app, served).items()
    ]


# Every sandbox b1-sandbox starts: (name, build its ASGI app from the command-line arguments).
SANDBOXES: list[tuple[str, Callable[[argparse.Namespace], Any]]] = [
    ("sap", _sap),
    ("looker", _looker),
    ("servicetitan", _servicetitan),
    ("salesforce", _salesforce),
    ("teams", _teams),
]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="b1-sandbox", description=__doc__.splitlines()[0])
    p.add_argument("--only", action="append", help="start only these sandboxes (repeatable)")
    p.add_argument("--invoices", type=int, default=2000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--port", type=int, default=0, help="port of the SAP Service Layer (0 = free port)")
    p.add_argument(
        "--http-port", type=int, default=0, help="plain HTTP port of SAP when --tls (0 = free port)"
    )
    p.add_argument("--tls", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--session-timeout-seconds", type=float, default=None)
    p.add_argument("--login-delay", type=float, default=0.0)
    p.add_argument("--page-size", type=int, default=20)
    p.add_argument(
        "--cost-model",
        action="store_true",
        help="SAP: sleep what each request costs a real Service Layer (login, reads by records x width, "
        "writes by lines; sessions one request at a time, a few nodes): the defaults of CostModel.service_layer",
    )
    p.add_argument(
        "--cost",
        action="append",
        default=[],
        metavar="KEY=VALUE|JSON",
        help="SAP: a cost model setting over the defaults, e.g. --cost nodes=8 --cost scale=0.1, or a JSON "
        "object of them (repeatable; implies --cost-model)",
    )
    p.add_argument("--timezone", default="America/Chicago")
    p.add_argument("--company-db", default="SBODEMOUS")
    p.add_argument("--servicetitan-customers", type=int, default=300)
    p.add_argument("--servicetitan-invoices", type=int, default=2000)
    p.add_argument("--salesforce-accounts", type=int, default=60)
    p.add_argument("--salesforce-opportunities", type=int, default=120)
    p.add_argument("--user", default="manager")
    p.add_argument("--password", default="manager-secret-1")
    p.add_argument("--state-dir", default=None, help="where certificates go (default: a temporary folder)")
    p.add_argument("--ready-file", default=None, help="write a JSON description here once serving")
    p.add_argument("--quiet", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    args.sap_cost = _cost_model(args, parser)
    state = Path(args.state_dir or tempfile.mkdtemp(prefix="b1-sandbox-"))
    state.mkdir(parents=True, exist_ok=True)
    running: list[Any] = []  # everything served, each with stop()
    ready: dict[str, Any] = {"pid": os.getpid(), "state_dir": str(state), "sandboxes": {}}
    conn_lines: list[str] = []
    try:
        for name, build in SANDBOXES:
            if args.only and name not in args.only:
                continue
            app = build(args)
            if name == "sap":
                https = (
                    serve_in_thread(app, tls=True, port=args.port, state_dir=str(state)) if args.tls else None
                )
                http = serve_in_thread(app, tls=False, port=args.http_port if args.tls else args.port)
                running += [s for s in (https, http) if s]
                primary = https or http
                info, lines = _sap_connections(args, https, http)
                conn_lines += lines
                entry = {
                    "base_url": primary.base_url,
                    "port": primary.port,
                    "ca_path": primary.ca_path,
                    "cert_sha256": primary.cert_sha256,
                    "https_url": https.base_url if https else None,
                    "http_url": http.base_url,
                    "service_root_v1": f"{primary.base_url}/b1s/v1/",
                    "service_root_v2": f"{primary.base_url}/b1s/v2/",
                    **info,
                }
            else:
                served = serve_in_thread(app, tls=True, state_dir=str(state / name))
                running.append(served)
                entry = {
                    "base_url": served.base_url,
                    "port": served.port,
                    "ca_path": served.ca_path,
                    "cert_sha256": served.cert_sha256,
                }
                if name == "servicetitan":
                    conn_lines.append(_servicetitan_connection(app, served))
                if name == "salesforce":
                    pubsub = _salesforce_pubsub(app, served)
                    if pubsub is not None:
                        running.append(pubsub)
                        entry["pubsub_endpoint"] = pubsub.endpoint
                    conn_lines.append(_salesforce_connection(app, served, pubsub))
                if name == "teams":
                    conn_lines += _teams_connections(app, served)
            ready["sandboxes"][name] = entry
        ready["connections"] = conn_lines
        if args.ready_file:
            tmp = Path(args.ready_file).with_suffix(".tmp")
            tmp.write_text(json.dumps(ready, indent=2))
            tmp.replace(args.ready_file)
        if not args.quiet:
            for name, entry in ready["sandboxes"].items():
                print(
                    f"{name}: {entry['base_url']}"
                    + (f"  (plain HTTP: {entry['http_url']})" if entry.get("http_url") else "")
                )
                if entry.get("pubsub_endpoint"):
                    print(f"  Pub/Sub API (gRPC, Change Data Capture): {entry['pubsub_endpoint']}")
                if entry.get("ca_path"):
                    print(f"  CA bundle: {entry['ca_path']}  sha256: {entry['cert_sha256']}")
            print()
            for line in conn_lines:
                print(line)
            print("\nPress Ctrl+C to stop.", flush=True)
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        while not stop.wait(1.0):
            pass
    finally:
        for served in running:
            served.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
