"""The provider registers itself with Airflow: entry point, connection types and their forms."""

from __future__ import annotations

import importlib
import subprocess
import sys

from airflow_provider_b1.connections import CONNECTION_TYPES, ui_field_behaviour
from airflow_provider_b1.get_provider_info import get_provider_info


def test_airflow_providers_list_shows_the_provider():
    listed = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "list", "-o", "plain"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "airflow-provider-b1" in listed


def test_every_declared_module_and_hook_class_imports():
    info = get_provider_info()
    for section in ("hooks", "operators", "triggers", "sensors"):
        for entry in info.get(section, []):
            for module in entry["python-modules"]:
                importlib.import_module(module)
    for transfer in info.get("transfers", []):
        importlib.import_module(transfer["python-module"])
    for conn in info["connection-types"]:
        module, _, name = conn["hook-class-name"].rpartition(".")
        hook = getattr(importlib.import_module(module), name)
        assert hook.conn_type == conn["connection-type"]
        # Airflow 3.1 reads the form from the hook: it must be the same declaration.
        assert hook.get_ui_field_behaviour() == conn["ui-field-behaviour"]


def test_sap_connection_form_relabels_fields_and_keeps_secrets_in_the_password_only():
    sap = next(c for c in CONNECTION_TYPES if c["connection-type"] == "sap_b1")
    relabeling = ui_field_behaviour(sap)["relabeling"]
    assert relabeling["host"] == "Service Layer URL"
    assert relabeling["schema"] == "Company database"
    assert relabeling["login"] == "User name"
    assert set(sap["conn-fields"]) == {
        "api_version",
        "verify_tls",
        "ca_bundle",
        "cert_fingerprint",
        "page_size",
        "timezone",
        "language",
        "max_sessions",
    }
    assert not any(f["schema"].get("format") == "password" for f in sap["conn-fields"].values())


def test_providers_manager_sees_the_connection_types_with_their_fields():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert "airflow-provider-b1" in manager.providers
    hooks = manager.hooks
    assert "sap_b1" in hooks
    assert "looker_api" in hooks
    assert hooks["sap_b1"].hook_class_name == "airflow_provider_b1.hooks.sap_b1.SapB1Hook"


def test_the_salesforce_cdc_trigger_and_sensor_are_registered():
    info = get_provider_info()
    assert {
        "integration-name": "Salesforce",
        "python-modules": ["airflow_provider_b1.triggers.salesforce"],
    } in info["triggers"]
    assert info["sensors"] == [
        {"integration-name": "Salesforce", "python-modules": ["airflow_provider_b1.sensors.salesforce"]}
    ]
    integrations = {i["integration-name"] for i in info["integrations"]}
    for section in ("hooks", "operators", "triggers", "sensors"):
        for entry in info[section]:
            assert entry["integration-name"] in integrations
    assert "Microsoft Teams (cards, alerts, approvals)" in info["description"]


def test_providers_manager_lists_the_salesforce_trigger_and_the_pubsub_fields():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    # The manager keeps one entry per trigger module (named trigger_class_name), with its integration.
    ours = {
        t.trigger_class_name: t.integration_name
        for t in manager.trigger
        if t.package_name == "airflow-provider-b1"
    }
    assert ours["airflow_provider_b1.triggers.salesforce"] == "Salesforce"
    fields = manager.connection_form_widgets
    widgets = {name for name in fields if name.startswith("extra__b1_salesforce__")}
    assert {
        "extra__b1_salesforce__pubsub_endpoint",
        "extra__b1_salesforce__pubsub_ca_bundle",
        "extra__b1_salesforce__pubsub_tls",
    } <= widgets
    behaviour = manager.field_behaviours["b1_salesforce"]
    assert (
        behaviour["placeholders"]["extra__b1_salesforce__pubsub_endpoint"] == "api.pubsub.salesforce.com:7443"
    )


def test_the_two_teams_connection_types_keep_their_secrets_in_password_fields():
    webhook = next(c for c in CONNECTION_TYPES if c["connection-type"] == "b1_teams_webhook")
    bot = next(c for c in CONNECTION_TYPES if c["connection-type"] == "b1_teams_bot")
    assert webhook["hook-class-name"] == "airflow_provider_b1.hooks.teams.TeamsWebhookHook"
    assert bot["hook-class-name"] == "airflow_provider_b1.hooks.teams.TeamsBotHook"
    # The webhook URL is the secret: it goes in the (masked) password, never in a plain field.
    assert ui_field_behaviour(webhook)["relabeling"]["password"] == "Workflows webhook URL"
    assert "login" in ui_field_behaviour(webhook)["hidden-fields"]
    assert set(webhook["conn-fields"]) == {"verify_tls", "ca_bundle"}
    relabeling = ui_field_behaviour(bot)["relabeling"]
    assert (relabeling["login"], relabeling["password"]) == ("Bot app ID", "Bot app secret")
    secret_fields = {n for n, f in bot["conn-fields"].items() if f["schema"].get("format") == "password"}
    assert secret_fields == {"graph_client_secret", "redis_url"}
    assert {"tenant_id", "service_url", "graph_client_id", "login_url", "graph_url", "ca_bundle"} <= set(
        bot["conn-fields"]
    )
    info = get_provider_info()
    assert {
        "integration-name": "Microsoft Teams",
        "python-modules": ["airflow_provider_b1.hooks.teams"],
    } in info["hooks"]


def test_providers_manager_sees_the_teams_connection_types_and_their_fields():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    hooks = manager.hooks
    assert hooks["b1_teams_webhook"].hook_class_name == "airflow_provider_b1.hooks.teams.TeamsWebhookHook"
    assert hooks["b1_teams_bot"].hook_class_name == "airflow_provider_b1.hooks.teams.TeamsBotHook"
    widgets = {name for name in manager.connection_form_widgets if name.startswith("extra__b1_teams_bot__")}
    assert {"extra__b1_teams_bot__tenant_id", "extra__b1_teams_bot__graph_client_secret"} <= widgets
    behaviour = manager.field_behaviours["b1_teams_webhook"]
    assert behaviour["relabeling"]["password"] == "Workflows webhook URL"


def test_a_form_shows_the_port_only_where_the_hook_uses_it():
    """SAP and Looker use a port when their URL names none; the other hooks have no use for one.
    (Airflow 3.3.2's Test button works with the port empty or hidden: see
    ``airflow_provider_b1.plugins.connection_test_port``.)"""
    shown = set()
    for declaration in CONNECTION_TYPES:
        behaviour = ui_field_behaviour(declaration)
        if "port" not in behaviour["hidden-fields"]:
            shown.add(declaration["connection-type"])
            assert behaviour["placeholders"]["port"].split()[0].isdigit(), declaration["connection-type"]
    assert shown == {"sap_b1", "looker_api"}
