"""The gate keeps one request in flight and lets the fast lane go first; the pace adapts."""

import asyncio
from datetime import time

from envoy2mqtt.gateway.gate import EndpointClass, Gate, Lane
from envoy2mqtt.gateway.pace import Pace, in_window


async def test_one_request_in_flight_and_fast_lane_first() -> None:
    gate = Gate()
    order: list[str] = []
    in_flight = 0
    peak = 0

    async def request(name: str, lane: Lane, delay: float = 0.01) -> None:
        nonlocal in_flight, peak
        async with gate.slot(lane):
            in_flight += 1
            peak = max(peak, in_flight)
            order.append(name)
            await asyncio.sleep(delay)
            in_flight -= 1

    first = asyncio.create_task(request("normal-1", Lane.NORMAL, 0.05))
    await asyncio.sleep(0.01)  # normal-1 holds the slot
    waiting = [
        asyncio.create_task(request("slow", Lane.SLOW)),
        asyncio.create_task(request("normal-2", Lane.NORMAL)),
        asyncio.create_task(request("fast", Lane.FAST)),
    ]
    await asyncio.gather(first, *waiting)
    assert peak == 1
    assert order == ["normal-1", "fast", "normal-2", "slow"]


async def test_cancelled_waiter_does_not_block_the_gate() -> None:
    gate = Gate()

    async def hold() -> None:
        async with gate.slot(Lane.NORMAL):
            await asyncio.sleep(0.05)

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0.01)
    waiter = asyncio.create_task(hold())
    await asyncio.sleep(0.01)
    waiter.cancel()
    await holder
    async with asyncio.timeout(1):
        async with gate.slot(Lane.FAST):
            pass


def test_pace_backs_off_and_recovers_step_by_step() -> None:
    pace = Pace(slow_after=2.0, max_factor=16)
    assert pace.interval(1.0) == 1.0
    pace.observe(0.1, ok=False)
    pace.observe(0.1, ok=False)
    assert pace.interval(1.0) == 4.0
    for _ in range(10):
        pace.observe(0.1, ok=False)
    assert pace.interval(1.0) == 16.0  # capped
    pace.observe(0.1, ok=True)
    assert 1.0 < pace.interval(1.0) < 16.0  # one step, not a jump
    for _ in range(20):
        pace.observe(0.1, ok=True)
    assert pace.interval(1.0) == 1.0


def test_slow_answers_stretch_the_pace() -> None:
    pace = Pace(slow_after=2.0)
    pace.observe(5.0, ok=True)
    assert pace.interval(10) == 15


def test_quiet_window_including_midnight() -> None:
    assert in_window(time(23, 0), time(22, 58), time(23, 6))
    assert not in_window(time(23, 6), time(22, 58), time(23, 6))
    assert in_window(time(0, 30), time(23, 50), time(1, 0))
    assert not in_window(time(12, 0), time(23, 50), time(1, 0))
    assert not in_window(time(23, 0), None, None)


async def test_a_reserved_turn_is_kept_clear_of_other_reads() -> None:
    """A battery read that would still be running at the grid watch's reserved turn waits
    until the watch's read has gone out; one that fits before it goes at once."""
    gate = Gate()
    for _ in range(20):
        gate.answered(0.1, EndpointClass.FAST)  # answers of late: 0.1 s
    order: list[str] = []

    async def read(name: str, lane: Lane, took: float = 0.1) -> None:
        async with gate.slot(lane):
            order.append(name)
            await asyncio.sleep(took)

    gate.reserve(0.5)
    await read("battery-fits", Lane.BATTERY)  # 0.1 s + margin before the turn in 0.4 s
    assert gate.held_back(EndpointClass.FAST) == 0
    await asyncio.sleep(0.3)  # 0.1 s to the turn: a 0.1 s read would be cutting it close
    assert gate.held_back(EndpointClass.FAST) > 0
    held = asyncio.create_task(read("battery-held", Lane.BATTERY))
    await asyncio.sleep(0.15)
    assert order == ["battery-fits"]  # held back, though the slot is free
    await read("relay", Lane.FAST)  # the watch's turn: straight in
    gate.reserve(1.0)  # its next turn, a second away: the gap is open
    await held
    assert order == ["battery-fits", "relay", "battery-held"]


async def test_a_reservation_the_watch_does_not_keep_lapses() -> None:
    gate = Gate()
    gate.reserve(0.1)
    async with asyncio.timeout(1.0):  # the first guess (0.5 s) does not fit: wait, then go
        async with gate.slot(Lane.NORMAL):
            pass
    assert gate.held_back(EndpointClass.FAST) == 0


async def test_the_gap_no_one_fits_goes_to_the_most_urgent_held_request() -> None:
    """Answers too slow for any gap: one held request per gap, a command's before a CT read
    that waited longer, and every lane still gets its turn."""
    gate = Gate()
    for _ in range(20):
        gate.answered(0.3, EndpointClass.FAST)  # nothing fits in a 0.2 s gap
    order: list[str] = []

    async def read(name: str, lane: Lane) -> None:
        async with gate.slot(lane):
            order.append(name)
            await asyncio.sleep(0.01)

    gate.reserve(0.2)
    waiting = [asyncio.create_task(read("meters", Lane.METERS))]
    await asyncio.sleep(0.02)
    waiting.append(asyncio.create_task(read("command", Lane.COMMAND)))
    waiting.append(asyncio.create_task(read("battery", Lane.BATTERY)))
    for turn in range(3):
        await asyncio.sleep(0.05)
        await read(f"relay-{turn}", Lane.FAST)
        gate.reserve(0.2)  # the next turn: a gap none of them fits
    await asyncio.gather(*waiting)
    assert order == ["relay-0", "command", "relay-1", "meters", "relay-2", "battery"]
