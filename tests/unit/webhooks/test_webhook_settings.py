"""The receiver's settings: read from B1_WEBHOOKS_* variables, checked at start-up, secrets never shown."""

from __future__ import annotations

import pytest

from airflow_provider_b1.webhooks.settings import WebhookSettings, WebhookSettingsError

KEY = "0123456789abcdef0123456789abcdef"  # 32 characters
BASE = {"B1_WEBHOOKS_AIRFLOW_URL": "http://airflow-apiserver:8080/"}


def test_defaults_cover_servicetitan_and_sap_with_a_five_minute_window():
    settings = WebhookSettings.from_env(
        {**BASE, "B1_WEBHOOKS_SERVICETITAN_KEY": KEY, "B1_WEBHOOKS_SAP_SECRET": "s3"}
    )
    assert settings.airflow_url == "http://airflow-apiserver:8080"
    assert settings.replay_window == 300
    assert settings.servicetitan.signature_header == "X-ServiceTitan-Signature"
    assert settings.servicetitan.encoding == "auto"
    assert settings.sap.signature_header == "X-B1-Webhook-Signature"
    assert settings.servicetitan_uri("invoices") == "b1-webhook://servicetitan/invoices"
    assert settings.servicetitan_uri("technicians") is None
    assert settings.sap_uri("Orders") == "b1-webhook://sap_b1/Orders"
    assert settings.sap_uri("../x") is None


def test_every_setting_is_read_from_its_variable(tmp_path):
    secret_file = tmp_path / "sap"
    secret_file.write_text("from-a-file\n")
    settings = WebhookSettings.from_env(
        {
            **BASE,
            "B1_WEBHOOKS_AIRFLOW_USERNAME": "hooks",
            "B1_WEBHOOKS_AIRFLOW_PASSWORD": "pw",
            "B1_WEBHOOKS_SERVICETITAN_KEY": KEY,
            "B1_WEBHOOKS_SERVICETITAN_SIGNATURE_HEADER": "X-Sig",
            "B1_WEBHOOKS_SERVICETITAN_SIGNATURE_ENCODING": "BASE64",
            "B1_WEBHOOKS_SERVICETITAN_TIMESTAMP_HEADER": "X-Time",
            "B1_WEBHOOKS_SERVICETITAN_EVENT_ID_FIELDS": "id, uuid",
            "B1_WEBHOOKS_SERVICETITAN_REQUIRE_TIMESTAMP": "no",
            "B1_WEBHOOKS_SAP_SECRET_FILE": str(secret_file),
            "B1_WEBHOOKS_SAP_SIGNATURE_ENCODING": "hex",
            "B1_WEBHOOKS_REPLAY_WINDOW_SECONDS": "120",
            "B1_WEBHOOKS_REDIS_URL": "redis://redis:6379/1",
            "B1_WEBHOOKS_ASSET_URIS": '{"servicetitan:invoices": "b1-webhook://servicetitan/receivables"}',
            "B1_WEBHOOKS_SAP_ASSET_URI_TEMPLATE": "",
        }
    )
    assert settings.servicetitan.signature_header == "X-Sig"
    assert settings.servicetitan.encoding == "base64"
    assert settings.servicetitan.timestamp_header == "X-Time"
    assert settings.servicetitan.event_id_fields == ("id", "uuid")
    assert settings.servicetitan.require_timestamp is False
    assert settings.sap.secret == "from-a-file"
    assert settings.sap.encoding == "hex"
    assert settings.replay_window == 120
    assert settings.redis_url == "redis://redis:6379/1"
    assert settings.servicetitan_uri("invoices") == "b1-webhook://servicetitan/receivables"
    assert settings.sap_uri("Orders") is None  # no template: only mapped objects


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"B1_WEBHOOKS_AIRFLOW_URL": ""}, "B1_WEBHOOKS_AIRFLOW_URL"),
        ({"B1_WEBHOOKS_SERVICETITAN_KEY": "short-key"}, "32 to 64"),
        ({"B1_WEBHOOKS_SERVICETITAN_KEY": "k" * 65}, "32 to 64"),
        ({"B1_WEBHOOKS_SAP_SECRET": "s", "B1_WEBHOOKS_SAP_SIGNATURE_ENCODING": "b32"}, "ENCODING"),
        ({"B1_WEBHOOKS_REPLAY_WINDOW_SECONDS": "five"}, "B1_WEBHOOKS_REPLAY_WINDOW_SECONDS"),
        ({"B1_WEBHOOKS_REPLAY_WINDOW_SECONDS": "0"}, "B1_WEBHOOKS_REPLAY_WINDOW_SECONDS"),
        ({"B1_WEBHOOKS_AIRFLOW_USERNAME": "u"}, "go together"),
        ({"B1_WEBHOOKS_ASSET_URIS": "[1]"}, "JSON object"),
        ({"B1_WEBHOOKS_ASSET_URIS": '{"jira:x": "a://b"}'}, "B1_WEBHOOKS_ASSET_URIS"),
        ({"B1_WEBHOOKS_SAP_ASSET_URI_TEMPLATE": "b1://x"}, "{business_object}"),
        ({"B1_WEBHOOKS_SAP_SECRET": "s", "B1_WEBHOOKS_SAP_SECRET_FILE": "/x"}, "not both"),
        ({"B1_WEBHOOKS_SAP_SECRET_FILE": "/nonexistent/secret"}, "cannot be read"),
    ],
)
def test_a_bad_setting_is_refused_naming_it(env, names):
    with pytest.raises(WebhookSettingsError) as raised:
        WebhookSettings.from_env({**BASE, **env})
    assert names in str(raised.value)


def test_a_bad_key_is_refused_without_showing_it():
    with pytest.raises(WebhookSettingsError) as raised:
        WebhookSettings.from_env({**BASE, "B1_WEBHOOKS_SERVICETITAN_KEY": "secret-but-short"})
    assert "secret-but-short" not in str(raised.value)


def test_secrets_stay_out_of_the_settings_repr():
    settings = WebhookSettings.from_env(
        {
            **BASE,
            "B1_WEBHOOKS_SERVICETITAN_KEY": KEY,
            "B1_WEBHOOKS_SAP_SECRET": "sap-secret-value",
            "B1_WEBHOOKS_AIRFLOW_USERNAME": "u",
            "B1_WEBHOOKS_AIRFLOW_PASSWORD": "airflow-password",
            "B1_WEBHOOKS_REDIS_URL": "redis://:redis-password@redis:6379/1",
        }
    )
    shown = repr(settings)
    for secret in (KEY, "sap-secret-value", "airflow-password", "redis-password"):
        assert secret not in shown
