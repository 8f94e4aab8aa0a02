"""The cost model's gate: one request per session, at most ``nodes`` at once, in arrival order."""

from __future__ import annotations

import asyncio

import pytest

from airflow_provider_b1.sandbox.sap.cost import CostModel, Gate


async def _serve(gate: Gate, session: str, log: list, name: str, seconds: float = 0.02) -> None:
    async with gate.slot(session):
        log.append(("start", name))
        await asyncio.sleep(seconds)
        log.append(("end", name))


def test_one_sessions_requests_run_one_after_the_other_in_arrival_order():
    async def main() -> list:
        gate = Gate(CostModel(nodes=4))
        log: list = []
        await asyncio.gather(*(_serve(gate, "s1", log, n) for n in ("a", "b", "c")))
        assert gate.stats()["max_concurrency"] == 1
        return log

    log = asyncio.run(main())
    assert log == [("start", "a"), ("end", "a"), ("start", "b"), ("end", "b"), ("start", "c"), ("end", "c")]


def test_other_sessions_run_side_by_side_up_to_the_nodes():
    async def main() -> dict:
        gate = Gate(CostModel(nodes=2))
        log: list = []
        await asyncio.gather(*(_serve(gate, f"s{n}", log, str(n)) for n in range(5)))
        starts = [name for kind, name in log if kind == "start"]
        assert starts == ["0", "1", "2", "3", "4"]  # the ones that wait go in arrival order
        return gate.stats()

    stats = asyncio.run(main())
    assert (stats["max_concurrency"], stats["requests"], stats["running"], stats["waiting"]) == (2, 5, 0, 0)
    assert stats["max_waiting"] == 3


def test_a_session_waiting_for_itself_does_not_hold_up_other_sessions():
    async def main() -> list:
        gate = Gate(CostModel(nodes=2))
        log: list = []
        await asyncio.gather(
            _serve(gate, "s1", log, "s1-a", 0.05),
            _serve(gate, "s1", log, "s1-b", 0.01),
            _serve(gate, "s2", log, "s2-a", 0.01),
        )
        return log

    log = asyncio.run(main())
    assert log.index(("start", "s2-a")) < log.index(("end", "s1-a")) < log.index(("start", "s1-b"))


def test_a_cancelled_waiter_gives_its_turn_away():
    async def main() -> dict:
        gate = Gate(CostModel(nodes=1))
        log: list = []
        first = asyncio.create_task(_serve(gate, "s1", log, "first", 0.05))
        await asyncio.sleep(0)
        doomed = asyncio.create_task(_serve(gate, "s2", log, "doomed"))
        last = asyncio.create_task(_serve(gate, "s3", log, "last"))
        await asyncio.sleep(0.01)
        doomed.cancel()
        await asyncio.gather(first, last, return_exceptions=True)
        assert doomed.cancelled()
        assert ("start", "doomed") not in log
        return gate.stats()

    stats = asyncio.run(main())
    assert (stats["running"], stats["waiting"], stats["requests"]) == (0, 0, 2)


def test_charge_adds_the_time_of_writes_and_lines():
    gate = Gate(CostModel(write_seconds=0.5, per_line_seconds=0.05, nodes=1))
    assert gate.charge(3, 20) == pytest.approx(2.5)
    assert gate.charge(0, 0) == 0
    stats = gate.stats()
    assert (stats["writes"], stats["lines"], stats["seconds"]) == (3, 20, 2.5)


@pytest.mark.parametrize(
    "body",
    [
        {"nodes": 0},
        {"nodes": 1.5},
        {"write_seconds": -1},
        {"per_line_seconds": "1"},
        {"write_seconds": True},
        {"speed": 1},
    ],
)
def test_bad_cost_settings_are_refused(body):
    with pytest.raises(ValueError, match=r"nodes|seconds|Unknown"):
        CostModel.parse(body)


def test_an_empty_body_switches_the_model_off():
    assert CostModel.parse({}) is None
    assert CostModel.parse({"write_seconds": 1}) == CostModel(1.0, 0.0, 1)
