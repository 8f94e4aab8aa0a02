from __future__ import annotations

import pytest

from airflow_provider_b1.sync import Action, AuditError, AuditRecord, payload_hash, scrub_error


@pytest.mark.parametrize(
    ("raw", "secret"),
    [
        ("401 with headers {'Authorization': 'Bearer eyJhbGciOi.abc.def'}", "eyJhbGciOi"),
        ("Authorization: Basic bWFuYWdlcjpzZWNyZXQ=", "bWFuYWdlcjpzZWNyZXQ"),
        ("Cookie: B1SESSION=0f1e2d3c-aaaa-bbbb; ROUTEID=.node7", "0f1e2d3c"),
        ('{"SessionId": "abcdef-123456", "Version": "1000"}', "abcdef-123456"),
        ("could not connect to postgresql://loader:hunter2secret@db:5432/wh", "hunter2secret"),
        ('login body {"UserName": "manager", "Password": "manager-secret-1"}', "manager-secret-1"),
        ("token refresh failed: access_token=ya29.very-secret&refresh_token=1//xyz", "ya29.very-secret"),
        ("client_secret: s3cr3t-value", "s3cr3t-value"),
    ],
)
def test_scrub_error_removes_secrets(raw, secret):
    cleaned = scrub_error(raw)
    assert secret not in cleaned
    assert "***" in cleaned


def test_scrub_error_keeps_the_useful_part_and_truncates():
    # Filler unlike any secret another test may have registered with Airflow's masker.
    cleaned = scrub_error(ValueError("CardCode C0001 not found " + "in page 7 of Invoices; " * 250))
    assert cleaned.startswith("ValueError: CardCode C0001 not found")
    assert len(cleaned) <= 2000
    assert cleaned.endswith("[truncated]")


def test_scrub_error_applies_airflows_registered_masks():
    from airflow.sdk.log import mask_secret

    mask_secret("an-unusual-runtime-token-7781")
    assert "7781" not in scrub_error("upstream said an-unusual-runtime-token-7781 is invalid")


def test_audit_record_refuses_payloads():
    with pytest.raises(AuditError, match="never stores payloads"):
        AuditRecord("sap_b1", "Invoices", "1", Action.CREATED, payload_hash='{"DocTotal": 10}')
    with pytest.raises(AuditError, match="natural key"):
        AuditRecord("sap_b1", "Invoices", "x" * 600, Action.CREATED)
    record = AuditRecord("sap_b1", "Invoices", 1, "created", payload_hash=payload_hash({"a": 1}))
    assert record.source_key == "1"
    assert record.action is Action.CREATED
    assert record.at.tzinfo is not None


def test_failed_record_always_has_a_scrubbed_reason():
    assert AuditRecord("s", "e", "1", Action.FAILED).error == "failed without a reason"
    failed = AuditRecord("s", "e", "1", Action.FAILED, error=RuntimeError("pwd=abc123xyz rejected"))
    assert failed.error == "RuntimeError: pwd=*** rejected"
