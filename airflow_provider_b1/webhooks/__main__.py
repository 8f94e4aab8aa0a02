"""``b1-webhooks``: serve the webhook receiver.

Settings come from ``B1_WEBHOOKS_*`` environment variables (``b1-webhooks --help-settings``
lists them); the listener from the command line. Behind a TLS-terminating proxy run it on
plain HTTP; otherwise give ``--ssl-certfile``/``--ssl-keyfile`` (ServiceTitan requires HTTPS).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from airflow_provider_b1.webhooks.settings import ENV, WebhookSettings, WebhookSettingsError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="b1-webhooks", description=__doc__.splitlines()[0])
    p.add_argument(
        "--host", default=os.environ.get("B1_WEBHOOKS_HOST", "127.0.0.1"), help="default 127.0.0.1"
    )
    p.add_argument(
        "--port", type=int, default=int(os.environ.get("B1_WEBHOOKS_PORT", "8090")), help="default 8090"
    )
    p.add_argument("--ssl-certfile", default=os.environ.get("B1_WEBHOOKS_SSL_CERTFILE"))
    p.add_argument("--ssl-keyfile", default=os.environ.get("B1_WEBHOOKS_SSL_KEYFILE"))
    p.add_argument("--log-level", default=os.environ.get("B1_WEBHOOKS_LOG_LEVEL", "info"))
    p.add_argument(
        "--proxy-headers", action="store_true", help="trust X-Forwarded-For from --forwarded-allow-ips"
    )
    p.add_argument("--forwarded-allow-ips", default="127.0.0.1")
    p.add_argument("--help-settings", action="store_true", help="list the B1_WEBHOOKS_* variables and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    """Read the settings, build the app and serve it until interrupted."""
    args = _parser().parse_args(argv)
    if args.help_settings:
        width = max(len(name) for name in ENV)
        for name, meaning in ENV.items():
            print(f"{name:<{width}}  {meaning}")
        return 0
    try:
        settings = WebhookSettings.from_env()
    except WebhookSettingsError as exc:
        print(f"b1-webhooks: {exc}", file=sys.stderr)
        return 2
    if settings.servicetitan is None and settings.sap is None:
        print(
            "b1-webhooks: neither B1_WEBHOOKS_SERVICETITAN_KEY nor B1_WEBHOOKS_SAP_SECRET is set; "
            "nothing would be accepted.",
            file=sys.stderr,
        )
        return 2
    if bool(args.ssl_certfile) != bool(args.ssl_keyfile):
        print("b1-webhooks: --ssl-certfile and --ssl-keyfile go together.", file=sys.stderr)
        return 2

    import uvicorn

    from airflow_provider_b1.webhooks.receiver import create_app

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = create_app(settings)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level.lower(),
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
        proxy_headers=args.proxy_headers,
        forwarded_allow_ips=args.forwarded_allow_ips,
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
