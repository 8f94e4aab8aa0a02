"""Write safety of the SAP hook with a stubbed transport: POSTs are never repeated blindly."""

from __future__ import annotations

import json

import pytest
import requests

from airflow_provider_b1.hooks.sap_b1 import BatchResult, SapB1AmbiguousWriteError, SapB1Hook
from airflow_provider_b1.utils.retry import RetryPolicy


@pytest.fixture
def hook(sap_connection, tmp_path):
    sap_connection()
    return SapB1Hook(
        session_cache_dir=str(tmp_path), retry_policy=RetryPolicy(max_attempts=4, initial_wait=0, max_wait=0)
    )


def _created(record: dict) -> requests.Response:
    response = requests.Response()
    response.status_code = 201
    response._content = json.dumps(record).encode()
    return response


def test_ambiguous_create_looks_up_before_sending_again(hook, monkeypatch):
    posts = []

    def fake_call(method, target, **kwargs):
        posts.append(kwargs["json_body"])
        if len(posts) == 1:
            raise SapB1AmbiguousWriteError("reset after send")
        return _created({"DocEntry": 9, **kwargs["json_body"]})

    lookups = []
    monkeypatch.setattr(hook, "_call", fake_call)
    monkeypatch.setattr(hook, "find_by", lambda *a, **k: lookups.append(a))
    record = hook.create("Orders", {"NumAtCard": "X-1"}, dedupe_field="NumAtCard")
    assert record["DocEntry"] == 9
    assert len(posts) == 2
    assert lookups == [("Orders", "NumAtCard", "X-1")]


def test_ambiguous_create_that_landed_is_not_sent_again(hook, monkeypatch):
    posts = []

    def fake_call(method, target, **kwargs):
        posts.append(1)
        raise SapB1AmbiguousWriteError("503 after send")

    monkeypatch.setattr(hook, "_call", fake_call)
    monkeypatch.setattr(hook, "find_by", lambda *a, **k: {"DocEntry": 4, "NumAtCard": "X-1"})
    assert hook.create("Orders", {"NumAtCard": "X-1"}, dedupe_field="NumAtCard") == {
        "DocEntry": 4,
        "NumAtCard": "X-1",
    }
    assert posts == [1]


def test_ambiguous_create_without_dedupe_field_is_raised_not_retried(hook, monkeypatch):
    posts = []

    def fake_call(method, target, **kwargs):
        posts.append(1)
        raise SapB1AmbiguousWriteError("reset after send.")

    monkeypatch.setattr(hook, "_call", fake_call)
    with pytest.raises(SapB1AmbiguousWriteError, match="no dedupe_field"):
        hook.create("Orders", {"CardCode": "C1"})
    assert posts == [1]


def test_create_many_rechecks_after_an_ambiguous_batch_and_resends_only_what_is_missing(hook, monkeypatch):
    payloads = [{"NumAtCard": f"N{i}"} for i in range(4)] + [{"NumAtCard": "N1"}, {"Comments": "no id"}]
    landed: set[str] = set()
    batches: list[list[str]] = []

    def fake_existing(entity, field, values, **kwargs):
        return {v: {"DocEntry": 100, field: v} for v in values if v in landed}

    def fake_batch(reqs, atomic=True):
        values = [r.body["NumAtCard"] for r in reqs]
        batches.append(values)
        if len(batches) == 1:
            landed.update(values[:2])  # two writes went through, then the connection broke
            raise SapB1AmbiguousWriteError("reset")
        results = []
        for position, request in enumerate(reqs):
            if position == 0 and request.body["NumAtCard"] == "N2" and len(batches) == 2:
                results.append(
                    BatchResult(
                        request, 400, {"error": {"code": -10, "message": "bad"}}, code=-10, message="bad"
                    )
                )
            elif len(batches) == 2 and position > 0:
                results.append(BatchResult(request))  # not executed: SAP stopped at the failure
            else:
                landed.add(request.body["NumAtCard"])
                results.append(BatchResult(request, 201, {"DocEntry": 1, **request.body}))
        return results

    monkeypatch.setattr(hook, "existing_values", fake_existing)
    monkeypatch.setattr(hook, "batch", fake_batch)
    results = hook.create_many("Orders", payloads, dedupe_field="NumAtCard")
    assert [r.outcome for r in results] == ["created", "created", "failed", "created", "skipped", "failed"]
    assert batches == [["N0", "N1", "N2", "N3"], ["N2", "N3"], ["N3"]]
    assert results[2].code == -10
