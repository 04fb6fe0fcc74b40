"""run_in_turn: a served app's calls run one at a time per slot, and a call that times out keeps its turn
until its thread really ends (the queue limit bounds the work in flight, not only the waiting requests)."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field

import pytest

from fmkit.serve.routes.server import run_in_turn


@dataclass
class Slot:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    waiting: int = 0


def test_a_timed_out_call_holds_its_turn_until_its_thread_ends():
    running, overlaps, spans = [], [], []
    guard = threading.Lock()

    def work(seconds):
        def run():
            with guard:
                running.append(1)
                overlaps.append(len(running))
            start = time.monotonic()
            time.sleep(seconds)
            with guard:
                running.pop()
            spans.append((start, time.monotonic()))
            return seconds
        return run

    async def scenario():
        slot = Slot()
        with pytest.raises(asyncio.TimeoutError):
            await run_in_turn(slot, work(0.4), timeout=0.05)  # answered (504) long before its thread ends
        assert slot.waiting == 1 and slot.lock.locked()  # ...but it still holds the slot
        assert await run_in_turn(slot, work(0.01), timeout=2.0) == 0.01  # waits for the first thread, then runs
        await asyncio.sleep(0.05)
        assert slot.waiting == 0 and not slot.lock.locked()
        with pytest.raises(ZeroDivisionError):  # a failing call releases its turn too
            await run_in_turn(slot, lambda: 1 / 0, timeout=1.0)
        await asyncio.sleep(0.01)
        assert slot.waiting == 0 and not slot.lock.locked()

    asyncio.run(scenario())
    assert max(overlaps) == 1  # never two calls of one slot at once
    assert spans[1][0] >= spans[0][1]
