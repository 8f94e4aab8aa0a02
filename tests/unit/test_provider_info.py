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
    assert "Teams" not in info["description"]  # nothing of Teams is built yet


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
