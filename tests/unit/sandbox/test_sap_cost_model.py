"""The cost model's arithmetic: logins, reads by records x width and lines, counts, pings, writes."""

from __future__ import annotations

import asyncio

import pytest

from airflow_provider_b1.sandbox.sap.cost import CostModel, Gate, Work

MODEL = CostModel(
    write_seconds=0.5,
    per_line_seconds=0.025,
    nodes=2,
    login_seconds=2.0,
    read_seconds=0.1,
    per_record_seconds=0.01,
    per_line_read_seconds=0.002,
    count_seconds=0.05,
    ping_seconds=0.005,
)


def test_the_service_layer_defaults_follow_the_protocol_notes():
    model = CostModel.service_layer()
    assert model.login_seconds == 2.0
    assert model.seconds(1, 20) == pytest.approx(1.0)  # a 20-line document: about 1 s idle
    assert model.nodes == 4
    assert CostModel.service_layer(nodes=8, scale=0.01).nodes == 8
    with pytest.raises(ValueError, match="Unknown"):
        CostModel.service_layer(colour=1)


def test_a_read_grows_with_records_width_and_lines():
    whole = Work()
    whole.read(records=20, width=20.0, lines=60)
    assert MODEL.cost(whole) == pytest.approx(0.1 + 20 * 0.01 + 60 * 0.002)
    narrow = Work()
    narrow.read(records=20, width=20 * 5 / 273, lines=0)  # $select of 5 of 273 properties
    assert MODEL.cost(narrow) == pytest.approx(0.1 + 20 * 0.01 * 5 / 273)
    assert MODEL.cost(narrow) < MODEL.cost(whole) / 2


def test_larger_pages_cost_less_per_record():
    def per_record(page: int, pages: int) -> float:
        work = Work()
        for _ in range(pages):
            work.read(records=page, width=float(page), lines=0)
        return MODEL.cost(work) / (page * pages)

    assert per_record(20, 25) == pytest.approx(0.1 / 20 + 0.01)
    assert per_record(500, 1) == pytest.approx(0.1 / 500 + 0.01)
    assert per_record(500, 1) < per_record(20, 25)


def test_each_kind_costs_its_own_setting_and_scale_multiplies_them_all():
    work = Work(logins=1, counts=2, pings=3, writes=1, lines=20, others=1)
    assert MODEL.breakdown(work) == pytest.approx(
        {"login": 2.0, "read": 0.0, "count": 0.1, "ping": 0.015, "write": 1.0, "other": 0.1}
    )
    fast = CostModel(**{**MODEL.__dict__, "scale": 0.01})
    assert fast.cost(work) == pytest.approx(MODEL.cost(work) / 100)


def test_the_gate_counts_work_per_kind_and_a_request_that_did_nothing_measured_as_other():
    gate = Gate(MODEL)
    read = Work()
    read.read(records=10, width=2.5, lines=30)
    assert gate.charge(work=read) == pytest.approx(0.1 + 0.025 + 0.06)
    assert gate.charge(work=Work()) == pytest.approx(0.1)  # e.g. Logout, $metadata, a refusal
    assert gate.charge(2, 10) == pytest.approx(1.25)
    stats = gate.stats()
    assert (stats["reads"], stats["records"], stats["read_lines"], stats["others"]) == (1, 10, 30, 1)
    assert (stats["writes"], stats["lines"], stats["width"]) == (2, 10, 2.5)
    assert stats["seconds_by_kind"]["read"] == pytest.approx(0.185)
    assert stats["seconds"] == pytest.approx(0.185 + 0.1 + 1.25)
    assert stats["login_seconds"] == 2.0  # the settings in force come with the counters


def test_queue_waits_are_measured():
    async def main() -> dict:
        gate = Gate(CostModel(nodes=1))

        async def serve(session: str) -> None:
            async with gate.slot(session):
                await asyncio.sleep(0.03)

        await asyncio.gather(serve("a"), serve("b"), serve("a"))
        return gate.stats()

    stats = asyncio.run(main())
    assert stats["queued"] == 2
    assert stats["max_queue_seconds"] >= 0.05  # the third waited for two requests
    assert stats["queue_seconds"] >= 0.03 + 0.05


@pytest.mark.parametrize(
    "body",
    [
        {"scale": -1},
        {"read_seconds": "1"},
        {"login_seconds": 601},
        {"defaults": "yes"},
        {"defaults": True, "x": 1},
    ],
)
def test_bad_settings_are_refused(body):
    with pytest.raises(ValueError, match=r"seconds|scale|defaults|Unknown"):
        CostModel.parse(body)


def test_a_control_call_starts_from_zero_or_from_the_defaults():
    assert CostModel.parse({"read_seconds": 0.2}) == CostModel(read_seconds=0.2)
    assert CostModel.parse({"defaults": True, "nodes": 8}) == CostModel.service_layer(nodes=8)
