"""The summary a sync task returns: restored and deleted records show only when there are some."""

from __future__ import annotations

from airflow_provider_b1.sync.outcomes import ACTIONS, USUAL_ACTIONS, Action, Outcome, count_actions
from airflow_provider_b1.sync.summary import SyncSummary, combine_summaries


def test_every_action_is_counted_and_deleted_and_restored_are_not_usual():
    assert set(ACTIONS) == {"created", "updated", "unchanged", "skipped", "failed", "deleted", "restored"}
    assert set(USUAL_ACTIONS) == set(ACTIONS) - {"deleted", "restored"}
    counts = count_actions([Outcome("C1", Action.RESTORED), Outcome("C2", "created")])
    assert (counts["restored"], counts["created"], counts["deleted"]) == (1, 1, 0)


def test_restored_and_deleted_show_only_when_above_zero_and_restored_counts_as_written():
    quiet = SyncSummary("sap_b1_to_warehouse", "Items", read=3, created=2, unchanged=1)
    assert "restored" not in quiet.to_xcom()
    assert "deleted" not in quiet.to_xcom()
    assert quiet.describe() == "2 created, 0 updated, 1 unchanged, 0 skipped, 0 failed"

    busy = SyncSummary("sap_b1_to_warehouse", "BusinessPartners", read=2, created=1)
    busy.count(Action.RESTORED)
    busy.count("deleted", 3)
    assert busy.written == 2
    data = busy.to_xcom()
    assert (data["restored"], data["deleted"], data["written"]) == (1, 3, 2)
    assert busy.describe().endswith(", 1 restored after deletion, 3 marked deleted")
    assert SyncSummary.from_xcom(data) == busy

    # a later entity without any still combines, in either order
    for order in ([busy, quiet], [quiet, busy]):
        combined = combine_summaries(order)
        assert (combined["restored"], combined["deleted"], combined["written"], combined["read"]) == (
            1,
            3,
            4,
            5,
        )
    assert "restored" not in combine_summaries([quiet])
