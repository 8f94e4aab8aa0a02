"""Replay ids as text (trigger arguments, XComs) and the trigger's serialized form."""

from __future__ import annotations

import base64
import json

import pytest

from airflow_provider_b1.hooks.salesforce.pubsub import replay_id_from_text, replay_id_to_text
from airflow_provider_b1.triggers.salesforce import (
    SalesforceChangeEventTrigger,
    replay_positions,
    replay_text,
    topic_list,
)
from airflow_provider_b1.utils.params import ParamError

REPLAY = bytes([0, 0, 0, 0, 0, 37, 132, 136])  # the shape of Salesforce's: 8 opaque bytes
ACCOUNTS = "/data/AccountChangeEvent"
OPPORTUNITIES = "/data/OpportunityChangeEvent"


def test_replay_ids_are_written_as_hex_and_read_back():
    assert replay_id_to_text(REPLAY) == "0000000000258488"
    assert replay_id_from_text("0000000000258488") == REPLAY
    assert replay_id_from_text("0000000000258488".upper()) == REPLAY


def test_base64_replay_ids_from_other_tools_are_read_too():
    assert replay_id_from_text(base64.b64encode(REPLAY).decode()) == REPLAY
    odd = bytes([255, 254, 253, 0, 1, 2, 3, 250])
    assert replay_id_from_text(base64.urlsafe_b64encode(odd).decode().rstrip("=")) == odd
    assert replay_id_from_text(base64.b64encode(odd).decode()) == odd


def test_no_replay_id_is_none_and_bytes_pass_through():
    assert replay_id_to_text(None) is None
    assert replay_id_to_text(b"") is None
    assert replay_id_from_text(None) is None
    assert replay_id_from_text("  ") is None
    assert replay_id_from_text(REPLAY) == REPLAY


def test_text_that_is_no_replay_id_is_refused_by_name():
    with pytest.raises(ParamError, match="replay_id 'not a replay id!' is neither hex nor base64"):
        replay_id_from_text("not a replay id!")


def test_replay_ids_are_per_topic():
    assert replay_positions([ACCOUNTS], "0000000000258488") == {ACCOUNTS: REPLAY}
    both = {ACCOUNTS: "0000000000258488", OPPORTUNITIES: None}
    assert replay_positions([ACCOUNTS, OPPORTUNITIES], both) == {ACCOUNTS: REPLAY, OPPORTUNITIES: None}
    assert replay_positions([ACCOUNTS, OPPORTUNITIES], json.dumps(both)) == {
        ACCOUNTS: REPLAY,
        OPPORTUNITIES: None,
    }
    assert replay_positions([ACCOUNTS, "/data/ChangeEvents"], both) == {
        ACCOUNTS: REPLAY,
        "/data/ChangeEvents": None,
    }
    with pytest.raises(ParamError, match="belongs to one topic"):
        replay_positions([ACCOUNTS, OPPORTUNITIES], "0000000000258488")
    # a previous run's single id when the task now has two topics: start over at LATEST
    assert replay_positions([ACCOUNTS, OPPORTUNITIES], "0000000000258488", strict=False) == {
        ACCOUNTS: None,
        OPPORTUNITIES: None,
    }
    assert replay_text({ACCOUNTS: REPLAY}) == "0000000000258488"
    assert replay_text({ACCOUNTS: REPLAY, OPPORTUNITIES: None}) == {
        ACCOUNTS: "0000000000258488",
        OPPORTUNITIES: None,
    }


def test_topics_come_as_lists_json_or_comma_separated_text():
    assert topic_list(f"{ACCOUNTS}, {OPPORTUNITIES}") == [ACCOUNTS, OPPORTUNITIES]
    assert topic_list(json.dumps([ACCOUNTS, ACCOUNTS])) == [ACCOUNTS]
    with pytest.raises(ParamError):
        topic_list(" ")


def test_the_trigger_serializes_to_primitives_and_back():
    trigger = SalesforceChangeEventTrigger(
        topics=[ACCOUNTS, OPPORTUNITIES],
        replay_id={ACCOUNTS: base64.b64encode(REPLAY).decode()},
        wait_seconds=30,
        max_events=50,
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_b1.triggers.salesforce.SalesforceChangeEventTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert kwargs["replay_id"] == {ACCOUNTS: "0000000000258488", OPPORTUNITIES: None}
    again = SalesforceChangeEventTrigger(**kwargs)
    assert again.serialize() == (classpath, kwargs)
    assert again.positions == {ACCOUNTS: REPLAY, OPPORTUNITIES: None}
