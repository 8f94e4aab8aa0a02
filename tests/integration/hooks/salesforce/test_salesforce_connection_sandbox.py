"""The Salesforce connection test against the sandbox over HTTPS, and no secret in any log line or error."""

from __future__ import annotations

import logging
import socket

import pytest
from sf_sandbox_helpers import FAST

from airflow_provider_b1.hooks.salesforce import SalesforceHook, SalesforceSchemaError

NEEDED = {
    "Account": ["AccountNumber", "SAP_Card_Code__c", "SAP_Open_Balance__c"],
    "Opportunity": ["StageName", "IsWon", "AccountId"],
    "OpportunityLineItem": ["Quantity", "Product2.ProductCode"],
}


def test_a_working_connection_names_the_org_and_the_requests_left(sandbox, connect):
    connect()
    ok, message = SalesforceHook().test_connection()
    assert ok, message
    org = sandbox.token()["id"].rstrip("/").split("/")[-2]
    assert message.startswith(f"Logged in to Salesforce org {org} at {sandbox.base_url} (API v62.0)")
    assert "99,999 of its 100,000 daily API requests are left (this connection stops at 80% used)" in message


def test_a_second_test_says_it_reused_the_cached_token(sandbox, connect):
    connect()
    SalesforceHook().test_connection()
    ok, message = SalesforceHook().test_connection()
    assert ok
    assert message.startswith("Reused a cached token for Salesforce org")
    assert "Logged in" not in message
    assert sandbox.stats()["tokens_issued"] == 1


def test_the_fields_a_flow_needs_are_checked(sandbox, connect):
    connect()
    ok, message = SalesforceHook().test_connection(NEEDED)
    assert ok, message
    assert "The 3 objects and 8 fields checked exist." in message


def test_every_missing_object_and_field_is_named(sandbox, connect):
    connect()
    needed = {
        **NEEDED,
        "Account": ["AccountNumber", "SAP_Card_Code__c", "Nope__c", "Other__c"],
        "SAP_Invoice__c": ["Name"],
    }
    ok, message = SalesforceHook().test_connection(needed)
    assert not ok
    assert "But: The Salesforce org lacks object SAP_Invoice__c; Account fields Nope__c, Other__c" in message
    hook = SalesforceHook()
    with pytest.raises(SalesforceSchemaError) as raised:
        hook.check_fields({"OpportunityLineItem": ["Product2.NoCode__c"], "Account": ["accountnumber"]})
    assert raised.value.missing_fields == {"OpportunityLineItem": ["Product2.NoCode__c"]}
    assert raised.value.missing_objects == []


def test_a_wrong_consumer_secret_is_named(sandbox, connect):
    connect(password="not-the-consumer-secret")
    ok, message = SalesforceHook().test_connection()
    assert not ok
    assert "refused the consumer secret" in message
    assert "not-the-consumer-secret" not in message
    assert sandbox.stats()["token_refusals"] == 1  # a refusal is not retried


def test_a_host_that_does_not_answer_is_named(sandbox, connect):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    connect(host=f"https://127.0.0.1:{port}")
    ok, message = SalesforceHook(retry_policy=FAST).test_connection()
    assert not ok
    assert message.startswith(
        f"Salesforce at https://127.0.0.1:{port}/services/oauth2/token did not answer the token request"
    )


def test_an_untrusted_certificate_is_named(sandbox, connect):
    connect(ca_bundle=None)
    ok, message = SalesforceHook().test_connection()
    assert not ok
    assert "could not be verified" in message
    assert "CA bundle" in message


def test_no_secret_or_token_in_any_log_line_or_error(sandbox, connect, make_hook, caplog):
    caplog.set_level(logging.DEBUG)
    connect()
    hook = make_hook()
    errors: list[str] = []
    hook.test_connection(NEEDED)
    list(hook.query_pages("SELECT Id FROM Account"))
    sandbox.control("POST", "expire-tokens")
    hook.upsert_many("Account", "SAP_Card_Code__c", [{"SAP_Card_Code__c": "S1", "Name": "S", "Phone": "1"}])
    hook.bulk_upsert("Account", "SAP_Card_Code__c", [{"SAP_Card_Code__c": "S2", "Name": "S"}])
    for call in (
        lambda: list(hook.query_pages("SELECT Id FORM Account")),
        lambda: hook.describe("Nope__c"),
        lambda: SalesforceHook().check_fields({"Account": ["Nope__c"]}),
    ):
        try:
            call()
        except Exception as exc:
            errors.append(f"{exc!r} {exc}")
    connect(password="a-wrong-consumer-secret")
    errors.append(SalesforceHook().test_connection()[1])
    tokens = list(sandbox.app.state.sandbox.tokens)
    assert len(tokens) >= 2
    secrets = [sandbox.config.client_secret, "a-wrong-consumer-secret", *tokens]
    everything = "\n".join([caplog.text, *errors, repr(hook), repr(hook.auth), repr(hook.token())])
    assert caplog.records
    assert len(errors) == 4
    for secret in secrets:
        assert secret not in everything


def test_the_test_button_checks_the_fields_the_flows_mapping_names(sandbox, connect, monkeypatch, tmp_path):
    """Without fields given (the Test button), the mapping of ``B1_SALESFORCE_MAPPING`` is checked."""
    from pathlib import Path

    import yaml

    example = Path(__file__).parents[4] / "dags" / "salesforce_mapping.yaml"
    connect()
    monkeypatch.setenv("B1_SALESFORCE_MAPPING", str(example))
    ok, message = SalesforceHook().test_connection()
    assert ok, message
    assert f"fields the mapping {example} names exist." in message
    wrong = yaml.safe_load(example.read_text())
    wrong["balances"]["account"]["open_balance"] = "Open_Balance_Typo__c"
    (tmp_path / "wrong.yaml").write_text(yaml.safe_dump(wrong))
    monkeypatch.setenv("B1_SALESFORCE_MAPPING", str(tmp_path / "wrong.yaml"))
    ok, message = SalesforceHook().test_connection()
    assert not ok
    assert "But: The Salesforce org lacks Account field Open_Balance_Typo__c" in message
    # A mapping kept in a Variable is read by tasks only: the Test button says who checks it.
    monkeypatch.setenv("B1_SALESFORCE_MAPPING", "var:salesforce_mapping")
    ok, message = SalesforceHook().test_connection()
    assert ok, message
    assert message.endswith(
        "The mapping kept in Variable 'salesforce_mapping' is checked by the DAGs' check_mapping task."
    )
