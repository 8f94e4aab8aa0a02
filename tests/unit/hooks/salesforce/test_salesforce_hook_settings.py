"""The b1_salesforce connection: its form, how what a user typed is read, and no secret in a repr."""

from __future__ import annotations

import pytest
from sf_unit_helpers import CONSUMER_KEY, CONSUMER_SECRET

from airflow_provider_b1.connections import CONNECTION_TYPES
from airflow_provider_b1.get_provider_info import get_provider_info
from airflow_provider_b1.hooks.salesforce import SalesforceHook
from airflow_provider_b1.utils.params import ParamError


def test_the_connection_type_is_declared_once_with_its_form_and_registered():
    (declaration,) = [c for c in CONNECTION_TYPES if c["connection-type"] == "b1_salesforce"]
    assert declaration["hook-class-name"] == "airflow_provider_b1.hooks.salesforce.SalesforceHook"
    behaviour = declaration["ui-field-behaviour"]
    assert "port" in behaviour["hidden-fields"]
    assert behaviour["relabeling"] == {
        "host": "My Domain URL",
        "login": "Consumer key",
        "password": "Consumer secret",
    }
    assert set(declaration["conn-fields"]) == {
        "api_version",
        "verify_tls",
        "ca_bundle",
        "api_limit_share",
        "timeout",
        "pubsub_endpoint",
        "pubsub_ca_bundle",
        "pubsub_tls",
    }
    assert declaration["conn-fields"]["api_limit_share"]["schema"]["default"] == 0.8
    assert SalesforceHook.get_ui_field_behaviour() == behaviour
    info = get_provider_info()
    assert {
        "integration-name": "Salesforce",
        "python-modules": ["airflow_provider_b1.hooks.salesforce"],
    } in info["hooks"]
    assert any(i["integration-name"] == "Salesforce" for i in info["integrations"])
    assert SalesforceHook.default_conn_name == "b1_salesforce_default"
    assert SalesforceHook.conn_type == "b1_salesforce"


def test_defaults_apply_to_a_connection_that_gives_only_the_three_fields(sf_connection):
    sf_connection()
    settings = SalesforceHook().settings
    assert settings.host == "https://acme.my.salesforce.com"
    assert settings.token_url == "https://acme.my.salesforce.com/services/oauth2/token"
    assert settings.consumer_key == CONSUMER_KEY
    assert settings.api_version == "62.0"
    assert settings.api_limit_share == 0.8
    assert settings.verify is True
    assert settings.ca_bundle is None
    assert SalesforceHook().timeout == (10.0, 120.0)


@pytest.mark.parametrize(
    "host",
    [
        "acme.my.salesforce.com",
        "https://acme.my.salesforce.com/",
        "https://acme.my.salesforce.com/services/oauth2/token",
    ],
)
def test_the_my_domain_url_is_taken_as_typed(sf_connection, host):
    sf_connection(host=host)
    assert SalesforceHook().settings.host == "https://acme.my.salesforce.com"


@pytest.mark.parametrize(
    "host", ["http://acme.my.salesforce.com", "https://acme.my.salesforce.com/lightning/page"]
)
def test_a_host_that_is_not_a_my_domain_url_is_refused(sf_connection, host):
    sf_connection(host=host)
    with pytest.raises(ParamError, match="My Domain URL over https"):
        _ = SalesforceHook().settings


def test_every_missing_field_is_named(sf_connection):
    sf_connection(host=None, login=None, password=None)
    with pytest.raises(ParamError) as raised:
        _ = SalesforceHook().settings
    assert "My Domain URL (host)" in str(raised.value)
    assert "consumer key (login)" in str(raised.value)
    assert "consumer secret (password)" in str(raised.value)


@pytest.mark.parametrize(
    ("typed", "version"), [("62.0", "62.0"), ("v61.0", "61.0"), (60, "60.0"), ("", "62.0")]
)
def test_the_api_version_is_normalised(sf_connection, typed, version):
    sf_connection(api_version=typed)
    assert SalesforceHook().api_version == version


@pytest.mark.parametrize(("typed", "share"), [("0.5", 0.5), (1, 1.0), ("75%", 0.75)])
def test_the_api_limit_share_is_a_fraction_or_a_percentage(sf_connection, typed, share):
    sf_connection(api_limit_share=typed)
    assert SalesforceHook().settings.api_limit_share == share


@pytest.mark.parametrize("typed", ["80", "0", "lots"])
def test_a_share_that_is_no_fraction_is_refused_by_name(sf_connection, typed):
    sf_connection(api_limit_share=typed)
    with pytest.raises(ParamError, match="api_limit_share"):
        _ = SalesforceHook().settings


def test_the_hook_argument_overrides_the_extras(sf_connection):
    sf_connection(api_limit_share="0.5", timeout=30)
    hook = SalesforceHook(api_limit_share=0.9)
    assert hook.settings.api_limit_share == 0.9
    assert hook.timeout == (10.0, 30.0)
    assert SalesforceHook(timeout=5).timeout == 5


def test_a_batch_size_outside_what_salesforce_takes_is_refused():
    with pytest.raises(ValueError, match=r"200\.\.2000"):
        SalesforceHook(batch_size=100)


def test_no_secret_in_the_repr_of_the_hook_its_settings_or_its_auth(sf_connection):
    sf_connection()
    hook = SalesforceHook()
    texts = [repr(hook), repr(hook.settings), repr(hook.auth), repr(hook.auth.cache)]
    assert not any(CONSUMER_SECRET in t for t in texts)


def test_the_pubsub_fields_of_the_form_are_what_the_cdc_client_reads(sf_connection):
    from airflow.sdk import BaseHook

    from airflow_provider_b1.hooks.salesforce.pubsub.client import DEFAULT_ENDPOINT, PubSubSettings

    (declaration,) = [c for c in CONNECTION_TYPES if c["connection-type"] == "b1_salesforce"]
    fields = declaration["conn-fields"]
    placeholders = declaration["ui-field-behaviour"]["placeholders"]
    assert fields["pubsub_endpoint"]["schema"]["default"] == DEFAULT_ENDPOINT
    assert placeholders["pubsub_endpoint"] == DEFAULT_ENDPOINT
    assert "pubsub_ca_bundle" in placeholders
    assert fields["pubsub_tls"]["schema"] == {"type": ["boolean", "null"], "default": True}
    for name in ("pubsub_endpoint", "pubsub_ca_bundle", "pubsub_tls"):
        assert fields[name]["label"]
        assert fields[name]["description"]
        assert fields[name]["schema"].get("format") != "password"

    # What a user types into those fields is what the client connects to.
    sf_connection(pubsub_endpoint="pubsub.example.test:7443", pubsub_ca_bundle="/etc/pubsub.pem")
    extra = BaseHook.get_connection("b1_salesforce_default").extra_dejson
    assert PubSubSettings.from_extra(extra) == PubSubSettings(
        "pubsub.example.test:7443", True, "/etc/pubsub.pem"
    )
    sf_connection(pubsub_endpoint="127.0.0.1:50051", pubsub_tls=False, ca_bundle="/etc/org.pem")
    extra = BaseHook.get_connection("b1_salesforce_default").extra_dejson
    assert PubSubSettings.from_extra(extra) == PubSubSettings("127.0.0.1:50051", False, "/etc/org.pem")
    sf_connection()
    extra = BaseHook.get_connection("b1_salesforce_default").extra_dejson
    assert PubSubSettings.from_extra(extra) == PubSubSettings(DEFAULT_ENDPOINT, True, None)
