"""Change Data Capture over gRPC: the Pub/Sub API client against the sandbox's Pub/Sub service.

The service streams the Salesforce sandbox's change log (edits made through its REST control
plane, as a user in the UI would), authenticates with the sandbox's own tokens and serves TLS
with the sandbox's certificate, so the connection's ``ca_bundle`` trusts both.
"""

from __future__ import annotations

import datetime as dt
import json
import queue
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from airflow_provider_b1.hooks.salesforce.pubsub import (
    PubSubAuthError,
    ReplayIdExpiredError,
    TopicUnavailableError,
)
from airflow_provider_b1.hooks.salesforce.pubsub import pubsub_api_pb2 as pb2
from airflow_provider_b1.hooks.salesforce.pubsub import pubsub_api_pb2_grpc as pb2_grpc
from airflow_provider_b1.hooks.salesforce.pubsub.client import ReplayPreset, SalesforcePubSubClient
from airflow_provider_b1.hooks.salesforce.pubsub.errors import REPLAY_ID_CORRUPTED_CODE
from airflow_provider_b1.sandbox.salesforce.pubsub import PubSubSandboxConfig, serve_pubsub

ACCOUNTS = "/data/AccountChangeEvent"
OPPORTUNITIES = "/data/OpportunityChangeEvent"
KEEPALIVE = 0.2


@pytest.fixture(scope="module")
def pubsub_server(salesforce_sandbox) -> Iterator:
    """The Pub/Sub service over the session's Salesforce sandbox, with its TLS certificate."""
    cert = Path(salesforce_sandbox.ca_path)
    served = serve_pubsub(
        salesforce_sandbox.app, certificate=(str(cert), str(cert.with_name("sandbox-key.pem")))
    )
    try:
        yield served
    finally:
        served.stop()


@pytest.fixture
def org(salesforce_sandbox, pubsub_server, monkeypatch, tmp_path) -> Iterator:
    """A freshly seeded org with an empty change log, and ``b1_salesforce_default`` pointing at it."""
    salesforce_sandbox.restore()
    pubsub_server.sandbox.configure(**vars(PubSubSandboxConfig(keepalive_seconds=KEEPALIVE)))
    connection = salesforce_sandbox.connection()
    connection["extra"]["pubsub_endpoint"] = pubsub_server.endpoint
    monkeypatch.setenv("AIRFLOW_CONN_B1_SALESFORCE_DEFAULT", json.dumps(connection))
    monkeypatch.setenv("B1_SALESFORCE_CACHE_DIR", str(tmp_path / "tokens"))  # no token shared between tests
    yield salesforce_sandbox
    salesforce_sandbox.restore()


@pytest.fixture
def client(org) -> Iterator[SalesforcePubSubClient]:
    with SalesforcePubSubClient(backoff_seconds=0.05) as pubsub:
        yield pubsub


def _account(org, n: int = 0) -> str:
    return org.truth("Account")[n]["Id"]


def _events(batches, count: int, timeout: float = 5.0) -> list:
    """The first ``count`` events of a fetch, failing after ``timeout`` seconds."""
    found: list = []
    deadline = time.monotonic() + timeout
    for batch in batches:
        found.extend(batch.events)
        if len(found) >= count:
            return found[:count]
        assert time.monotonic() < deadline, f"only {len(found)} of {count} events in {timeout} s"
    raise AssertionError("the subscription ended")


def test_an_account_edit_arrives_decoded_within_two_seconds_of_a_latest_subscription(org, client):
    account = _account(org)
    batches = client.fetch(ACCOUNTS)
    first = next(batches)  # LATEST: the stream stands at the tip once the first keepalive came
    assert first.keepalive
    edited_at = time.monotonic()
    org.edit("Account", account, Phone="(512) 555-0199", BillingCity="Dallas", Website=None)
    (event,) = _events(batches, 1)
    assert time.monotonic() - edited_at < 2.0
    assert event.topic == ACCOUNTS
    assert event.entity == "Account"
    assert event.record_ids == (account,)
    assert event.change_type == "UPDATE"
    assert {"Phone", "LastModifiedDate", "BillingAddress.City"} <= set(event.changed_fields)
    assert "Name" not in event.changed_fields
    assert event.values["Phone"] == "(512) 555-0199"
    assert event.values["BillingAddress"]["City"] == "Dallas"
    assert "Name" not in event.values  # an update carries only what it changed
    assert event.header["changedFields"][0].startswith("0x")  # Salesforce's bitmap, decoded above
    assert event.commit_user.startswith("005")
    assert len(event.replay_id) == 8


def test_a_nulled_field_is_reported_as_changed_and_nulled(org, client):
    account = _account(org)
    org.edit("Account", account, Website="https://example.com")
    batches = client.fetch(ACCOUNTS)
    assert next(batches).keepalive
    org.edit("Account", account, Website=None)
    (event,) = _events(batches, 1)
    assert "Website" in event.changed_fields
    assert event.nulled_fields == ("Website",)


def test_custom_replay_resumes_exactly_after_the_last_event(org, client):
    accounts = [_account(org, n) for n in range(4)]
    for n, account in enumerate(accounts[:3]):
        org.edit("Account", account, Description=f"edit {n}")
    first_three = _events(client.fetch(ACCOUNTS, preset=ReplayPreset.EARLIEST), 3)
    assert [e.record_ids[0] for e in first_three] == accounts[:3]

    resumed = client.fetch(ACCOUNTS, replay_id=first_three[1].replay_id)
    org.edit("Account", accounts[3], Description="edit 3")
    after = _events(resumed, 2)
    assert [e.record_ids[0] for e in after] == [accounts[2], accounts[3]]
    assert after[0].replay_id == first_three[2].replay_id  # no loss, no repeat
    assert after[1].values["Description"] == "edit 3"


def test_a_keepalive_replay_id_resumes_without_repeating_what_came_before(org, client):
    account = _account(org)
    org.edit("Account", account, Description="before")
    batches = client.fetch(ACCOUNTS, preset="EARLIEST")
    (before,) = _events(batches, 1)
    keepalive = next(b for b in batches if b.keepalive)
    assert keepalive.latest_replay_id >= before.replay_id
    batches.close()
    org.edit("Opportunity", org.truth("Opportunity")[0]["Id"], Description="elsewhere")
    org.edit("Account", account, Description="after")
    (after,) = _events(client.fetch(ACCOUNTS, replay_id=keepalive.latest_replay_id), 1)
    assert after.values["Description"] == "after"


def test_change_events_topic_carries_every_selected_object_with_its_own_schema(org, client):
    assert client.get_topic("/data/ChangeEvents").schema_id == ""
    account, opportunity = _account(org), org.truth("Opportunity")[0]["Id"]
    org.edit("Account", account, Description="both")
    org.edit("Opportunity", opportunity, Description="both")
    events = _events(client.fetch("/data/ChangeEvents", preset=ReplayPreset.EARLIEST), 2)
    assert [(e.entity, e.record_ids[0]) for e in events] == [
        ("Account", account),
        ("Opportunity", opportunity),
    ]
    assert events[0].schema_id == client.get_topic(ACCOUNTS).schema_id
    assert events[1].schema_id == client.get_topic(OPPORTUNITIES).schema_id


def test_get_schema_answers_the_change_event_schema_salesforce_publishes(org, client):
    topic = client.get_topic(OPPORTUNITIES)
    assert topic.can_subscribe
    assert not topic.can_publish
    schema = json.loads(client.get_schema(topic.schema_id))
    assert schema["name"] == "OpportunityChangeEvent"
    assert schema["namespace"] == "com.sforce.eventbus"
    header = schema["fields"][0]
    assert header["name"] == "ChangeEventHeader"
    assert [f["name"] for f in header["type"]["fields"]] == [
        "entityName",
        "recordIds",
        "changeType",
        "changeOrigin",
        "transactionKey",
        "sequenceNumber",
        "commitTimestamp",
        "commitNumber",
        "commitUser",
        "nulledFields",
        "diffFields",
        "changedFields",
    ]
    body = {f["name"]: f for f in schema["fields"][1:]}
    assert {"AccountId", "Amount", "CloseDate", "StageName", "LastModifiedDate"} <= set(body)
    assert not {"Id", "IsDeleted", "SystemModstamp", "IsClosed", "IsWon"} & set(body)
    assert all(f["type"][0] == "null" and f["default"] is None for f in body.values())
    assert body["Amount"]["type"] == ["null", "double"]
    assert body["CloseDate"]["type"] == ["null", "int"]  # days since the epoch
    assert body["LastModifiedDate"]["type"] == ["null", "long"]  # milliseconds since the epoch


def test_a_create_carries_every_set_field_and_no_changed_fields(org, client):
    batches = client.fetch(OPPORTUNITIES)
    assert next(batches).keepalive
    created = org.edit(
        "Opportunity", None, Name="CDC deal", StageName="Prospecting", CloseDate="2030-01-31", Amount=1200
    )
    (event,) = _events(batches, 1)
    assert event.change_type == "CREATE"
    assert event.record_ids == (created["id"],)
    assert event.changed_fields == ()
    assert event.values["Name"] == "CDC deal"
    assert event.values["Amount"] == 1200.0
    assert event.values["CloseDate"] == (dt.date(2030, 1, 31) - dt.date(1970, 1, 1)).days


def test_a_replay_id_older_than_the_retention_is_refused_as_salesforce_refuses_it(org, client):
    org.control("POST", "config", {"change_retention_seconds": 1})
    accounts = [_account(org, n) for n in range(3)]
    org.edit("Account", accounts[0], Description="old")
    (old,) = _events(client.fetch(ACCOUNTS, preset=ReplayPreset.EARLIEST), 1)
    org.edit("Account", accounts[1], Description="also old")
    time.sleep(1.2)
    org.edit("Account", accounts[2], Description="new")  # the log drops what is past the retention
    with pytest.raises(ReplayIdExpiredError) as refused:
        next(client.fetch(ACCOUNTS, replay_id=old.replay_id))
    assert refused.value.status == "INVALID_ARGUMENT"
    assert refused.value.error_code == REPLAY_ID_CORRUPTED_CODE
    assert "The Replay ID validation failed." in str(refused.value)
    assert refused.value.rpc_id
    never_issued = (10**9).to_bytes(8, "big")
    with pytest.raises(ReplayIdExpiredError):
        next(client.fetch(ACCOUNTS, replay_id=never_issued))


def test_an_expired_token_is_renewed_once_for_calls_and_subscriptions(org, client):
    client.get_topic(ACCOUNTS)
    issued = org.stats()["tokens_issued"]
    org.control("POST", "expire-tokens")
    assert client.get_topic(ACCOUNTS).schema_id
    assert client.sessions_renewed == 1
    org.control("POST", "expire-tokens")
    batches = client.fetch(ACCOUNTS)
    assert next(batches).keepalive
    assert client.sessions_renewed == 2
    assert org.stats()["tokens_issued"] == issued + 2


def test_a_token_refused_again_after_renewal_is_an_auth_error(org, pubsub_server, monkeypatch):
    monkeypatch.setattr(pubsub_server.sandbox, "authenticate", lambda token: False)
    with SalesforcePubSubClient() as pubsub, pytest.raises(PubSubAuthError) as refused:
        pubsub.get_topic(ACCOUNTS)
    assert pubsub.sessions_renewed == 1
    assert refused.value.status == "UNAUTHENTICATED"
    assert refused.value.error_code == "sfdc.platform.eventbus.grpc.service.auth.error"


def test_an_object_not_selected_for_cdc_has_no_topic(org, client):
    assert client.get_topic(ACCOUNTS).schema_id
    org.control("POST", "config", {"cdc_objects": ["Opportunity"]})
    with pytest.raises(TopicUnavailableError) as refused:
        client.get_topic(ACCOUNTS)
    assert refused.value.status == "NOT_FOUND"
    assert "The topic information for org CORE/prod/" in str(refused.value)
    with pytest.raises(TopicUnavailableError) as refused:
        next(client.fetch(ACCOUNTS))
    assert refused.value.status == "PERMISSION_DENIED"
    assert client.get_topic(OPPORTUNITIES).schema_id


def test_cdc_switched_off_for_the_org_refuses_every_change_event_topic(org, client, pubsub_server):
    pubsub_server.sandbox.configure(cdc_enabled=False, subscribe_denied_status="NOT_FOUND")
    for topic in (ACCOUNTS, OPPORTUNITIES, "/data/ChangeEvents"):
        with pytest.raises(TopicUnavailableError):
            client.get_topic(topic)
        with pytest.raises(TopicUnavailableError) as refused:
            next(client.fetch(topic))
        assert refused.value.status == "NOT_FOUND"


def test_flow_control_sends_no_more_than_requested_and_keeps_the_rest(org, pubsub_server):
    accounts = [_account(org, n) for n in range(5)]
    for account in accounts:
        org.edit("Account", account, Description="flow")
    token = org.token()
    metadata = (
        ("accesstoken", token["access_token"]),
        ("instanceurl", token["instance_url"]),
        ("tenantid", token["id"].split("/")[-2]),
    )
    requests: queue.Queue = queue.Queue()
    requests.put(pb2.FetchRequest(topic_name=ACCOUNTS, replay_preset=pb2.EARLIEST, num_requested=2))

    def outgoing():
        while (item := requests.get()) is not None:
            yield item

    channel = grpc.secure_channel(
        pubsub_server.endpoint, grpc.ssl_channel_credentials(Path(org.ca_path).read_bytes())
    )
    call = pb2_grpc.PubSubStub(channel).Subscribe(outgoing(), metadata=metadata)
    try:
        responses = iter(call)
        first = next(responses)
        assert len(first.events) == 2
        assert first.pending_num_requested == 0
        assert first.latest_replay_id == first.events[-1].replay_id
        quiet = next(responses)  # nothing more until asked: a keepalive at the last delivered event
        assert not quiet.events
        assert quiet.latest_replay_id == first.events[-1].replay_id
        requests.put(pb2.FetchRequest(num_requested=10))
        rest = next(responses)
        assert len(rest.events) == 3
        assert rest.pending_num_requested == 7
    finally:
        requests.put(None)
        call.cancel()
        channel.close()


def test_a_broken_stream_is_resubscribed_after_the_last_event_delivered(org, monkeypatch):
    accounts = [_account(org, n) for n in range(2)]
    config = PubSubSandboxConfig(keepalive_seconds=KEEPALIVE)
    first = serve_pubsub(org.app, tls=False, config=config)
    connection = org.connection()
    connection["extra"].update(pubsub_endpoint=first.endpoint, pubsub_tls=False)
    monkeypatch.setenv("AIRFLOW_CONN_B1_SALESFORCE_DEFAULT", json.dumps(connection))
    second = None
    try:
        with SalesforcePubSubClient(backoff_seconds=0.2) as pubsub:
            batches = pubsub.fetch(ACCOUNTS)
            assert next(batches).keepalive
            org.edit("Account", accounts[0], Description="before the break")
            (before,) = _events(batches, 1)
            first.stop(grace=0)
            org.edit("Account", accounts[1], Description="while the service is down")
            second = serve_pubsub(org.app, tls=False, port=first.port, config=config)
            (after,) = _events(batches, 1, timeout=10)
            assert after.record_ids == (accounts[1],)
            assert int.from_bytes(after.replay_id, "big") == int.from_bytes(before.replay_id, "big") + 1
    finally:
        first.stop()
        if second is not None:
            second.stop()
