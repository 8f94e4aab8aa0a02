from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from airflow_provider_b1.sync import (
    SyncSummary,
    SyncWindowError,
    combine_summaries,
    cursor_from_summary,
    parse_datetime,
    resolve_window,
    sync_params,
)

UTC = dt.timezone.utc


class FakeTI:
    """Answers xcom_pull like the Task SDK, recording how it was asked."""

    def __init__(self, previous=None, *, map_index=-1):
        self.previous = previous
        self.task_id = "load_sales"
        self.map_index = map_index
        self.calls = []

    def xcom_pull(self, **kwargs):
        self.calls.append(kwargs)
        return self.previous


def make_context(previous=None, *, params=None, run_type="scheduled", interval=None, map_index=-1):
    start, end = interval or (
        dt.datetime(2024, 5, 1, tzinfo=UTC),
        dt.datetime(2024, 5, 2, tzinfo=UTC),
    )
    dag_run = SimpleNamespace(run_type=run_type, data_interval_start=start, data_interval_end=end)
    return {"ti": FakeTI(previous, map_index=map_index), "params": params or {}, "dag_run": dag_run}


def summary(cursor, entity="Invoices"):
    return SyncSummary(flow="f", entity=entity, cursor=cursor, read=3, created=3).to_xcom()


def test_first_run_is_incremental_without_cursor_and_asks_airflow_for_prior_runs():
    context = make_context()
    window = resolve_window(context)
    assert window.mode == "incremental"
    assert window.cursor is None
    assert context["ti"].calls == [
        {"task_ids": "load_sales", "key": "return_value", "include_prior_dates": True, "map_indexes": -1}
    ]


def test_incremental_continues_from_previous_cursor_and_stops_at_interval_end():
    window = resolve_window(make_context(summary({"UpdateDate": "2024-05-01", "UpdateTime": "10:00:00"})))
    assert window.mode == "incremental"
    assert window.cursor == {"UpdateDate": "2024-05-01", "UpdateTime": "10:00:00"}
    assert window.until == dt.datetime(2024, 5, 2, tzinfo=UTC)


def test_manual_incremental_reads_up_to_now():
    window = resolve_window(make_context(summary({"c": 1}), run_type="manual"))
    assert window.mode == "incremental"
    assert window.until is None


def test_mapped_task_reads_its_own_map_index():
    context = make_context(map_index=3)
    resolve_window(context)
    assert context["ti"].calls[0]["map_indexes"] == 3


def test_full_refresh_param_wins_over_everything():
    window = resolve_window(
        make_context(
            summary({"c": 1}), params={"full_refresh": True, "since": "2024-01-01"}, run_type="backfill"
        )
    )
    assert window.mode == "full"
    assert window.cursor is None
    assert window.cursor_to_store({"c": 9}) == {"c": 9}


def test_since_until_params_read_exactly_that_window_a_plain_date_is_midnight_utc():
    window = resolve_window(
        make_context(summary({"c": 1}), params={"since": "2024-03-01", "until": "2024-04-01T00:00:00Z"})
    )
    assert window.mode == "window"
    assert window.since == dt.datetime(2024, 3, 1, tzinfo=UTC)
    assert window.until == dt.datetime(2024, 4, 1, tzinfo=UTC)
    assert window.cursor is None


def test_window_run_carries_the_previous_cursor_forward():
    window = resolve_window(make_context(summary({"c": 1}), params={"since": "2024-03-01T00:00:00+02:00"}))
    assert window.since == dt.datetime(2024, 2, 29, 22, tzinfo=UTC)
    assert window.until is None
    assert window.cursor_to_store({"c": 99}) == {"c": 1}


def test_backfill_reads_the_runs_data_interval():
    window = resolve_window(make_context(summary({"c": 1}), run_type="backfill"))
    assert (window.mode, window.since, window.until) == (
        "window",
        dt.datetime(2024, 5, 1, tzinfo=UTC),
        dt.datetime(2024, 5, 2, tzinfo=UTC),
    )


def test_backfill_with_zero_length_interval_explains_the_fix():
    moment = dt.datetime(2024, 5, 1, tzinfo=UTC)
    with pytest.raises(SyncWindowError, match="CronDataIntervalTimetable"):
        resolve_window(make_context(run_type="backfill", interval=(moment, moment)))


def test_since_after_until_is_refused():
    with pytest.raises(SyncWindowError, match="before"):
        resolve_window(make_context(params={"since": "2024-05-02", "until": "2024-05-01"}))


@pytest.mark.parametrize(
    ("since", "says"),
    [
        ("last tuesday-ish", "is not a date or date-time"),
        ("now", "is not a date or date-time"),
        ("Europe/Paris", "is not a date or date-time"),
        ("2024-03-01T00:00:00 Europe/Paris", "is not a date or date-time"),
        ("2024-03-01T00:00:00", "has no offset, so it could be any of 24 hours: add Z"),
        ("2024-02-30", "is not a real date"),
        ("2024-02-29T25:00:00Z", "is not a real date and time"),
        ("1899-12-31", "outside the dates SAP Business One can filter (1900-01-01 .. 9999-12-31)"),
        ("0001-01-01T00:00:00+01:00", "outside the dates SAP Business One can filter"),
        ("9999-12-31T23:00:00-05:00", "outside the dates SAP Business One can filter"),
        ("20240301", "is not a date or date-time"),
    ],
)
def test_a_window_bound_is_parsed_strictly_and_names_the_param(since, says):
    with pytest.raises(SyncWindowError, match="'since'") as refused:
        resolve_window(make_context(params={"since": since}))
    assert says in str(refused.value)
    assert (
        "RFC 3339" in str(refused.value) or "outside" in str(refused.value) or "offset" in str(refused.value)
    )


def test_rfc3339_offsets_and_fractions_are_kept():
    assert parse_datetime("2024-03-01T08:00:00.1234567-06:00", name="since") == dt.datetime(
        2024, 3, 1, 14, 0, 0, 123456, tzinfo=UTC
    )
    assert parse_datetime("2024-03-01 08:00z", name="since") == dt.datetime(2024, 3, 1, 8, tzinfo=UTC)


def test_a_naive_datetime_is_refused_not_taken_as_local_time():
    with pytest.raises(SyncWindowError, match="has no time zone"):
        parse_datetime(dt.datetime(2024, 3, 1), name="since")


def test_airflow_refuses_a_malformed_window_when_the_run_is_created():
    from airflow.sdk.definitions.param import ParamsDict

    params = ParamsDict(sync_params())
    for good in ("2024-03-01", "2024-03-01T00:00:00Z", "2024-03-01T00:00:00.5+05:30", None):
        params["since"] = good
        params.validate()
    for bad in ("last tuesday", "2024-03-01T00:00:00", "2024-13-01"):
        with pytest.raises(Exception, match="since"):
            params["since"] = bad


def test_empty_strings_from_the_form_mean_not_set():
    window = resolve_window(make_context(params={"since": "", "until": None, "full_refresh": "false"}))
    assert window.mode == "incremental"


def test_cursor_found_in_every_summary_shape():
    single = summary({"c": 1})
    combined = combine_summaries(
        [SyncSummary("f", "Invoices", {"c": 2}), SyncSummary("f", "IncomingPayments", {"c": 3})]
    )
    assert cursor_from_summary(single) == {"c": 1}
    assert cursor_from_summary(single, "Invoices") == {"c": 1}
    assert cursor_from_summary(single, "Orders") is None
    assert cursor_from_summary(combined, "IncomingPayments") == {"c": 3}
    assert cursor_from_summary(combined) is None  # ambiguous
    assert cursor_from_summary([single, combined], "IncomingPayments") == {"c": 3}
    assert cursor_from_summary("not a summary") is None
    assert cursor_from_summary(None) is None


def test_entity_cursor_of_a_combined_summary():
    combined = combine_summaries(
        [SyncSummary("f", "Invoices", {"c": 2}), SyncSummary("f", "Orders", {"c": 5})]
    )
    window = resolve_window(make_context(combined), entity="Orders")
    assert window.cursor == {"c": 5}
    assert combined["read"] == 0
    assert set(combined["entities"]) == {"Invoices", "Orders"}


def test_summary_xcom_is_primitives_and_round_trips():
    s = SyncSummary(
        "f", "Invoices", {"c": 1}, mode="window", since=dt.datetime(2024, 3, 1, tzinfo=UTC), read=5, failed=1
    )
    s.count("created", 4)
    data = s.to_xcom()
    assert data["since"] == "2024-03-01T00:00:00+00:00"
    assert data["written"] == 4
    assert SyncSummary.from_xcom(data) == s


def test_parse_datetime_accepts_dates_datetimes_and_iso():
    assert parse_datetime(dt.date(2024, 1, 2)) == dt.datetime(2024, 1, 2, tzinfo=UTC)
    assert parse_datetime(dt.datetime(2024, 1, 2, 3, tzinfo=UTC)) == dt.datetime(2024, 1, 2, 3, tzinfo=UTC)
    assert parse_datetime("2024-01-02T03:04:05Z") == dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert parse_datetime("  ") is None


def test_sync_params_declares_the_trigger_form_fields():
    from airflow.sdk import Param

    params = sync_params()
    assert set(params) == {"since", "until", "full_refresh"}
    assert all(isinstance(p, Param) for p in params.values())
    assert params["full_refresh"].resolve() is False
    assert params["since"].resolve() is None
    assert params["since"].resolve("2024-03-01T00:00:00Z") == "2024-03-01T00:00:00Z"
