"""Provider metadata read by Airflow's providers manager (entry point ``apache_airflow_provider``)."""

from __future__ import annotations

from airflow_provider_b1.connections import CONNECTION_TYPES

_INTEGRATION = "SAP Business One"


def get_provider_info() -> dict:
    return {
        "package-name": "airflow-provider-b1",
        "name": "SAP Business One",
        "description": "SAP Business One Service Layer hook, sync engine and flows to Salesforce "
        "(polled, or woken by Change Data Capture), ServiceTitan, Microsoft Teams (cards, alerts, "
        "approvals) and a Postgres warehouse read by Looker.",
        "integrations": [
            {
                "integration-name": _INTEGRATION,
                "external-doc-url": "https://help.sap.com/docs/SAP_BUSINESS_ONE",
            },
            {
                "integration-name": "Looker",
                "external-doc-url": "https://cloud.google.com/looker/docs/api-intro",
            },
            {
                "integration-name": "ServiceTitan",
                "external-doc-url": "https://developer.servicetitan.io/docs/",
            },
            {
                "integration-name": "Salesforce",
                "external-doc-url": "https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/",
            },
            {
                "integration-name": "Microsoft Teams",
                "external-doc-url": "https://learn.microsoft.com/microsoftteams/platform/bots/how-to/conversations/send-proactive-messages",
            },
        ],
        "hooks": [
            {"integration-name": _INTEGRATION, "python-modules": ["airflow_provider_b1.hooks.sap_b1"]},
            {"integration-name": "Looker", "python-modules": ["airflow_provider_b1.hooks.looker"]},
            {
                "integration-name": "ServiceTitan",
                "python-modules": ["airflow_provider_b1.hooks.servicetitan"],
            },
            {"integration-name": "Salesforce", "python-modules": ["airflow_provider_b1.hooks.salesforce"]},
            {"integration-name": "Microsoft Teams", "python-modules": ["airflow_provider_b1.hooks.teams"]},
        ],
        "operators": [
            {"integration-name": "Looker", "python-modules": ["airflow_provider_b1.operators.looker"]},
        ],
        "transfers": [
            {
                "source-integration-name": _INTEGRATION,
                "target-integration-name": "PostgreSQL",
                "python-module": "airflow_provider_b1.transfers.sap_b1_to_warehouse",
            }
        ],
        "triggers": [
            {"integration-name": "Looker", "python-modules": ["airflow_provider_b1.triggers.looker"]},
            {
                "integration-name": "Salesforce",
                "python-modules": ["airflow_provider_b1.triggers.salesforce"],
            },
        ],
        "sensors": [
            {
                "integration-name": "Salesforce",
                "python-modules": ["airflow_provider_b1.sensors.salesforce"],
            },
        ],
        "connection-types": [dict(c) for c in CONNECTION_TYPES],
        "notifications": ["airflow_provider_b1.notifications.teams.TeamsNotifier"],
    }
