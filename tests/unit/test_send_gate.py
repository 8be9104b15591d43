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


async def test_waiting_sends_go_urgent_first_then_in_arrival_order() -> None:
    gate = SendGate(per_second=20, chat_interval=0)
    await gate.acquire(1)  # the next turn is 50 ms away: the others queue meanwhile
    order: list[str] = []

    async def send(name: str, chat: int, urgent: bool) -> None:
        if urgent:
            await gate.acquire(chat)
        else:
            with bulk():
                await gate.acquire(chat)
        order.append(name)

    tasks = [asyncio.create_task(send(name, chat, urgent)) for name, chat, urgent in
             [("bulk-a", 2, False), ("bulk-b", 3, False), ("urgent", 4, True), ("bulk-c", 5, False)]]
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=5)
    assert order == ["urgent", "bulk-a", "bulk-b", "bulk-c"]


async def test_a_chat_that_must_wait_does_not_hold_up_the_others() -> None:
    gate = SendGate(per_second=0, chat_interval=1.0)
    await gate.acquire(1)
    second_to_chat_1 = asyncio.create_task(gate.acquire(1))  # must wait a second
    await asyncio.wait_for(gate.acquire(2), timeout=0.5)  # another chat goes meanwhile
    assert not second_to_chat_1.done()
    await asyncio.wait_for(second_to_chat_1, timeout=2)


async def test_a_send_given_up_while_waiting_leaves_the_queue() -> None:
    gate = SendGate(per_second=1, chat_interval=0)
    await gate.acquire(1)
    waiting = asyncio.create_task(gate.acquire(2))
    await asyncio.sleep(0)  # let it queue
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert gate.waiting == 0
