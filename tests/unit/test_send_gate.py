"""The bot's own keeping of Telegram's limits: per bot, per chat, flood waits, urgent first."""

import asyncio

import pytest

from services.bot.gate import SendGate, bulk


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


async def test_limits_per_bot_and_per_chat_evenly_spaced_and_a_flood_wait() -> None:
    clock = Clock()
    gate = SendGate(per_second=2, chat_interval=1.0, clock=clock)
    await gate.acquire(1)
    assert gate._wait(2, clock.t) == pytest.approx(0.5)  # two a second, evenly spaced: not both at once
    clock.t += 0.5
    await gate.acquire(2)
    assert gate._wait(3, clock.t) == pytest.approx(0.5)  # two in this second already
    clock.t += 0.2
    assert gate._wait(3, clock.t) == pytest.approx(0.3)
    assert gate._wait(1, clock.t) == pytest.approx(0.3)  # and chat 1 had one 0.7 s ago
    clock.t += 0.3
    assert gate._wait(3, clock.t) == 0 and gate._wait(1, clock.t) == 0
    gate.pause(5)  # Telegram said retry after 5 s
    assert gate._wait(3, clock.t) == pytest.approx(5.0)


async def test_a_bulk_send_waits_while_an_urgent_one_is_waiting() -> None:
    gate = SendGate(per_second=0, chat_interval=0)
    gate._urgent_waiting = 1  # an urgent send is waiting for its chat
    with bulk():
        waiting = asyncio.create_task(gate.acquire(7))
        done, _ = await asyncio.wait({waiting}, timeout=0.1)
        assert not done
        gate._urgent_waiting = 0
        await asyncio.wait_for(waiting, timeout=1)
    await asyncio.wait_for(gate.acquire(8), timeout=1)  # urgent by default: never held back
