"""The scaling benchmark's placement of processes on cores, and its summary."""

from __future__ import annotations

import pytest

from loadtest.bench_scale import plan, summarise


def test_sixteen_cores_give_each_server_a_core_and_the_generators_the_rest() -> None:
    cores = plan(4, 16)
    assert cores.servers == ["0", "1", "2", "3"]
    assert cores.generators == ["4", "5", "6", "7"]
    assert cores.worker == ",".join(str(i) for i in range(4, 16))
    assert not cores.oversubscribed
    eight = plan(8, 16)
    assert eight.generators == [str(i) for i in range(8, 16)]
    assert not eight.oversubscribed


def test_a_small_machine_shares_what_the_servers_leave_and_says_so() -> None:
    one = plan(1, 2)
    assert (one.servers, one.generators, one.worker, one.oversubscribed) == (
        ["0"],
        ["1"],
        "1",
        False,
    )
    two = plan(2, 2)
    assert two.servers == ["0", "1"]
    assert two.generators == ["0", "1"]
    assert two.oversubscribed
    three = plan(3, 4)
    assert three.generators == ["3", "3", "3"]
    assert three.oversubscribed
    with pytest.raises(ValueError, match="3 servers need 3 cores"):
        plan(3, 2)


def result(target: str, n: int, events: float, *, lost: int = 0) -> dict[str, object]:
    return {
        "target": target,
        "processes": n,
        "oversubscribed": False,
        "events_per_s": events,
        "ack_p99_ms": 10.0,
        "server_cpu_us_per_event": 30.0,
        "redis_cpu_us_per_event": 12.0,
        "lost": lost,
        "counted_twice": 0,
    }


def test_efficiency_is_measured_against_one_process_and_losses_are_summed() -> None:
    results = [
        result("echo", 1, 50_000),
        result("hadir", 1, 20_000),
        result("hadir", 1, 24_000),
        result("hadir", 1, 22_000),
        result("echo", 4, 180_000),
        result("hadir", 4, 66_000, lost=1),
    ]
    one, four = summarise(results)
    assert one["hadir"]["events_per_s"] == 22_000
    assert one["hadir"]["efficiency"] == 1.0
    assert four["hadir"]["efficiency"] == pytest.approx(66_000 / 88_000)
    assert four["echo"]["efficiency"] == pytest.approx(0.9)
    assert four["hadir"]["lost"] == 1
    assert one["hadir"]["runs"] == 3
