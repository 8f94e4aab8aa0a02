"""Connection forms of every connection type this provider registers: one declaration each.

The declarations are plain data so that :mod:`airflow_provider_b1.get_provider_info` can
publish them (Airflow 3.2+ reads ``conn-fields`` and ``ui-field-behaviour`` from there) and the
hooks can turn the same data into the legacy ``get_connection_form_widgets()`` /
``get_ui_field_behaviour()`` answers that Airflow 3.1 reads. Custom fields are stored in
``Connection.extra`` under their plain names.

A form shows the port only where the hook uses it (SAP and Looker, when their URL names none).
Airflow 3.3.2's Test button sends an empty port as 0, which its api-server refuses as another
port than the stored null (apache/airflow PR #73298, not in a release yet); the provider's
api-server plugin, :mod:`airflow_provider_b1.plugins.connection_test_port`, reads that 0 as the
stored null, so the button works with the port left empty or hidden.
"""

from __future__ import annotations

from typing import Any


def tls_fields(
    *,
    ca_bundle: str = "PEM file on the workers that signs the server's certificate (a sandbox or a "
    "TLS-inspecting proxy).",
    verify_tls: str = "On by default.",
) -> dict[str, Any]:
    """The ``verify_tls`` and ``ca_bundle`` fields every HTTPS connection type has."""
    return {
        "verify_tls": {
            "label": "Verify TLS certificate",
            "description": verify_tls,
            "schema": {"type": ["boolean", "null"], "default": True},
        },
        "ca_bundle": {
            "label": "CA bundle path",
            "description": ca_bundle,
            "schema": {"type": ["string", "null"]},
        },
    }


SAP_B1: dict[str, Any] = {
    "hook-class-name": "airflow_provider_b1.hooks.sap_b1.SapB1Hook",
    "hook-name": "SAP Business One Service Layer",
    "connection-type": "sap_b1",
    "ui-field-behaviour": {
        "hidden-fields": ["extra"],
        "relabeling": {
            "host": "Service Layer URL",
            "port": "Service Layer port",
            "schema": "Company database",
            "login": "User name",
            "password": "Password",
        },
        "placeholders": {
            "host": "https://sap-host:50000/b1s/v2/",
            "port": "50000 (used when the URL names no port)",
            "schema": "SBODEMOUS (case-sensitive)",
            "login": "manager",
        },
    },
    "conn-fields": {
        "api_version": {
            "label": "API version",
            "description": "v1 (OData v3 flavour) or v2 (OData v4). Best left empty, with the version at the end of "
            "the URL (/b1s/v1 or /b1s/v2; v2 when neither says): Airflow warns in every task log about an extra "
            "value shorter than five characters.",
            "schema": {"type": ["string", "null"]},
        },
        **tls_fields(
            ca_bundle="PEM file on the workers that signs the Service Layer's certificate (self-signed installations).",
            verify_tls="On by default. Switching it off is logged as a warning on every use; prefer a CA bundle or a pinned fingerprint.",
        ),
        "cert_fingerprint": {
            "label": "Pinned certificate SHA-256 fingerprint",
            "description": "Hex SHA-256 of the server certificate (colons allowed). Lets exactly that certificate through and nothing else.",
            "schema": {"type": ["string", "null"]},
        },
        "page_size": {
            "label": "Page size",
            "description": "Records per page asked with Prefer: odata.maxpagesize (default 500; the server default is 20).",
            "schema": {"type": ["integer", "null"], "minimum": 1, "default": 500},
        },
        "timezone": {
            "label": "Server time zone",
            "description": "IANA name of the SAP server's local time zone, in which UpdateDate/UpdateTime are stamped. "
            "Empty: UTC (typing UTC makes Airflow warn in every task log about a value shorter than five characters).",
            "schema": {"type": ["string", "null"]},
        },
        "language": {
            "label": "Language",
            "description": "Optional SAP language code sent at login (integer, e.g. 3 for English).",
            "schema": {"type": ["integer", "null"]},
        },
        "max_sessions": {
            "label": "Sessions for partitioned loads",
            "description": "SAP sessions a large load split into ranges may hold at once (default 4). Every session "
            "holds a user licence: keep it within the licences this user may take.",
            "schema": {"type": ["integer", "null"], "minimum": 1, "default": 4},
        },
    },
}

LOOKER: dict[str, Any] = {
    "hook-class-name": "airflow_provider_b1.hooks.looker.LookerHook",
    "hook-name": "Looker API 4.0",
    "connection-type": "looker_api",
    "ui-field-behaviour": {
        "hidden-fields": ["schema", "extra"],
        "relabeling": {
            "host": "Looker API URL",
            "port": "API port",
            "login": "Client ID",
            "password": "Client secret",
        },
        "placeholders": {
            "host": "https://company.looker.com",
            "port": "443 (used when the URL names no port; 19999 on older instances)",
        },
    },
    "conn-fields": {
        **tls_fields(
            ca_bundle="PEM file that signs the Looker API certificate, when it is not publicly trusted."
        ),
    },
}

SERVICETITAN: dict[str, Any] = {
    "hook-class-name": "airflow_provider_b1.hooks.servicetitan.ServiceTitanHook",
    "hook-name": "ServiceTitan",
    "connection-type": "servicetitan",
    "ui-field-behaviour": {
        # The URLs follow from the environment.
        "hidden-fields": ["host", "port", "schema", "extra"],
        "relabeling": {"login": "Client ID", "password": "Client secret"},
        "placeholders": {"login": "cid.xxxxxxxxxxxxxxxxxxxxxxxxx"},
    },
    "conn-fields": {
        "environment": {
            "label": "Environment",
            "description": "production (auth.servicetitan.io, api.servicetitan.io) or integration (the -integration hosts).",
            "schema": {
                "type": ["string", "null"],
                "enum": ["production", "integration", None],
                "default": "production",
            },
        },
        "tenant_id": {
            "label": "Tenant ID",
            "description": "The tenant's id (Settings > Integrations > API Application Access).",
            "schema": {"type": ["string", "null"]},
        },
        "app_key": {
            "label": "App key",
            "description": "The application key, sent as ST-App-Key on every call.",
            "schema": {"type": ["string", "null"], "format": "password"},
        },
        "api_url": {
            "label": "API URL override",
            "description": "Only for a sandbox or a proxy: replaces the environment's API root.",
            "schema": {"type": ["string", "null"]},
        },
        "auth_url": {
            "label": "Auth URL override",
            "description": "Only for a sandbox or a proxy: replaces the environment's auth root (/connect/token is added).",
            "schema": {"type": ["string", "null"]},
        },
        **tls_fields(),
        "rate_limit": {
            "label": "Rate limit (calls/s)",
            "description": "Calls per second for this application and tenant, shared by every task (default 60, ServiceTitan's limit).",
            "schema": {"type": ["integer", "null"], "minimum": 1, "default": 60},
        },
        "redis_url": {
            "label": "Redis URL for the shared rate limit",
            "description": "redis://[:password@]host:6379/0: share the rate limit across workers. Empty: shared by the tasks of each worker only.",
            "schema": {"type": ["string", "null"], "format": "password"},
        },
    },
}

SALESFORCE: dict[str, Any] = {
    "hook-class-name": "airflow_provider_b1.hooks.salesforce.SalesforceHook",
    "hook-name": "Salesforce (client credentials)",
    "connection-type": "b1_salesforce",
    "ui-field-behaviour": {
        # The instance URL comes with the token.
        "hidden-fields": ["port", "schema", "extra"],
        "relabeling": {"host": "My Domain URL", "login": "Consumer key", "password": "Consumer secret"},
        "placeholders": {
            "host": "https://acme.my.salesforce.com",
            "login": "3MVG9...",
            "pubsub_endpoint": "api.pubsub.salesforce.com:7443",
            "pubsub_ca_bundle": "/etc/ssl/certs/ca-certificates.crt",
        },
    },
    "conn-fields": {
        "api_version": {
            "label": "API version",
            "description": "REST API version, e.g. 63.0. Empty: 62.0 (typing a four-character value such as 62.0 "
            "makes Airflow warn in every task log about a value shorter than five characters).",
            "schema": {"type": ["string", "null"]},
        },
        **tls_fields(
            verify_tls="On by default. Switching it off is logged as a warning; prefer a CA bundle."
        ),
        "api_limit_share": {
            "label": "API limit share",
            "description": "Share of the org's daily API requests (shared with its users) at which this connection stops, 0 to 1 (default 0.8).",
            "schema": {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 1, "default": 0.8},
        },
        "timeout": {
            "label": "Timeout (s)",
            "description": "Seconds to wait for an answer to one call (default 120).",
            "schema": {"type": ["number", "null"], "exclusiveMinimum": 0},
        },
        "pubsub_endpoint": {
            "label": "Pub/Sub API endpoint",
            "description": "host:port of the Pub/Sub API that streams Change Data Capture events "
            "(default api.pubsub.salesforce.com:7443). Only the CDC sensor and trigger use it.",
            "schema": {"type": ["string", "null"], "default": "api.pubsub.salesforce.com:7443"},
        },
        "pubsub_ca_bundle": {
            "label": "Pub/Sub CA bundle path",
            "description": "PEM file on the workers and the triggerer that signs the Pub/Sub "
            "endpoint's certificate. Empty: the CA bundle above, else the system's roots.",
            "schema": {"type": ["string", "null"]},
        },
        "pubsub_tls": {
            "label": "Pub/Sub over TLS",
            "description": "On by default, and always for Salesforce. Off only for a local "
            "plaintext sandbox.",
            "schema": {"type": ["boolean", "null"], "default": True},
        },
    },
}

TEAMS_WEBHOOK: dict[str, Any] = {
    "hook-class-name": "airflow_provider_b1.hooks.teams.TeamsWebhookHook",
    "hook-name": "Microsoft Teams (Workflows webhook)",
    "connection-type": "b1_teams_webhook",
    "ui-field-behaviour": {
        # The URL is a secret (its sig= signs every post): it goes in the password, masked.
        "hidden-fields": ["port", "schema", "login", "extra"],
        "relabeling": {"host": "Channel (label, optional)", "password": "Workflows webhook URL"},
        "placeholders": {
            "host": "Finance / Approvals",
            "password": "https://....logic.azure.com:443/workflows/.../triggers/manual/paths/invoke?...&sig=...",
        },
    },
    "conn-fields": {
        **tls_fields(),
    },
}

TEAMS_BOT: dict[str, Any] = {
    "hook-class-name": "airflow_provider_b1.hooks.teams.TeamsBotHook",
    "hook-name": "Microsoft Teams (bot)",
    "connection-type": "b1_teams_bot",
    "ui-field-behaviour": {
        "hidden-fields": ["host", "port", "schema", "extra"],
        "relabeling": {"login": "Bot app ID", "password": "Bot app secret"},
        "placeholders": {"login": "00000000-0000-0000-0000-000000000000"},
    },
    "conn-fields": {
        "tenant_id": {
            "label": "Tenant ID",
            "description": "The Microsoft Entra tenant (directory) id the users and teams belong to.",
            "schema": {"type": ["string", "null"]},
        },
        "single_tenant": {
            "label": "Single-tenant bot",
            "description": "The bot's app registration is single-tenant: its tokens come from the tenant's own "
            "endpoint instead of botframework.com.",
            "schema": {"type": ["boolean", "null"], "default": False},
        },
        "service_url": {
            "label": "Bot Connector service URL",
            "description": "The serviceUrl of the tenant's conversations (default https://smba.trafficmanager.net/teams).",
            "schema": {"type": ["string", "null"]},
        },
        "graph_client_id": {
            "label": "Graph client ID",
            "description": "App registration that looks users up in Graph (User.Read.All, application). Empty: the bot's app id.",
            "schema": {"type": ["string", "null"]},
        },
        "graph_client_secret": {
            "label": "Graph client secret",
            "description": "Its secret. Empty: the bot's app secret.",
            "schema": {"type": ["string", "null"], "format": "password"},
        },
        "test_conversation_id": {
            "label": "Conversation to test with",
            "description": "Optional conversation id (a channel's 19:...@thread.tacv2) whose members the Test "
            "button reads, proving the bot can reach it without posting.",
            "schema": {"type": ["string", "null"]},
        },
        "login_url": {
            "label": "Login URL override",
            "description": "Only for a sandbox or a sovereign cloud (default https://login.microsoftonline.com).",
            "schema": {"type": ["string", "null"]},
        },
        "graph_url": {
            "label": "Graph URL override",
            "description": "Only for a sandbox or a sovereign cloud (default https://graph.microsoft.com).",
            "schema": {"type": ["string", "null"]},
        },
        **tls_fields(
            ca_bundle="PEM file on the workers that signs the servers' certificates (a sandbox or a TLS-inspecting proxy)."
        ),
        "redis_url": {
            "label": "Redis URL for the shared rate limit",
            "description": "redis://[:password@]host:6379/2: keep the bot's calls under Teams' limit across "
            "workers. Empty: each worker counts its own tasks' calls.",
            "schema": {"type": ["string", "null"], "format": "password"},
        },
    },
}

CONNECTION_TYPES: list[dict[str, Any]] = [SAP_B1, LOOKER, SERVICETITAN, SALESFORCE, TEAMS_WEBHOOK, TEAMS_BOT]


def ui_field_behaviour(declaration: dict[str, Any]) -> dict[str, Any]:
    """Return the legacy ``get_ui_field_behaviour()`` answer for a declaration."""
    return declaration["ui-field-behaviour"]


def form_widgets(declaration: dict[str, Any]) -> dict[str, Any]:
    """Return the legacy ``get_connection_form_widgets()`` answer (Airflow 3.1) for a declaration.

    Built from the same ``conn-fields`` that Airflow 3.2+ reads, so the two forms cannot drift.
    Returns ``{}`` where the web form libraries are not installed (workers need no form).
    """
    try:
        from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import BooleanField, IntegerField, PasswordField, StringField
        from wtforms.validators import Optional
    except ImportError:
        return {}
    widgets: dict[str, Any] = {}
    for name, field in declaration["conn-fields"].items():
        kinds = field["schema"]["type"]
        kinds = kinds if isinstance(kinds, list) else [kinds]
        label = lazy_gettext(field["label"])
        description = field.get("description", "")
        if "boolean" in kinds:
            widgets[name] = BooleanField(
                label, description=description, default=field["schema"].get("default")
            )
        elif "integer" in kinds:
            widgets[name] = IntegerField(
                label, description=description, validators=[Optional()], widget=BS3TextFieldWidget()
            )
        elif field["schema"].get("format") == "password":
            widgets[name] = PasswordField(label, description=description, widget=BS3PasswordFieldWidget())
        else:
            widgets[name] = StringField(label, description=description, widget=BS3TextFieldWidget())
    return widgets
