"""The consumer runner: a durable pull consumer with explicit acks, retries and dead letters."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field

import nats.js.errors
import structlog
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig
from pydantic import ValidationError

from shared.bus.connection import Bus, quietly
from shared.bus.failures import PermanentError, TransientError, is_transient, short_error
from shared.bus.pull import PullRequests
from shared.bus.streams import (
    DEAD_LETTER_PREFIX,
    TopologyMissing,
    durable_config,
    explain_missing,
    filters_of,
    replay_subject,
)
from shared.events import Envelope, Event

log = structlog.get_logger("bus")

# How many times the server has delivered the message a handler is applying (1: the first time; 0: the
# handler was called outside a consumer). A first delivery was never handed to any handler before: its
# handler may skip looking for what an earlier try did.
_delivery_count: ContextVar[int] = ContextVar("delivery_count", default=0)


def delivery_count() -> int:
    return _delivery_count.get()


Handler = Callable[[Envelope, Event], Awaitable[None]]
BatchHandler = Callable[[Sequence[tuple[Envelope, Event]]], Awaitable[None]]


@dataclass
class ConsumerStats:
    handled: int = 0
    failed: int = 0  # every failed attempt, transient or not
    transient: int = 0  # of which transient: retried for as long as it lasts
    dead_lettered: int = 0
    redelivered: int = 0


@dataclass
class ConsumerRunner:
    """A durable pull consumer bound to a table of event classes -> handlers.

    Ack policy lives here and only here:
    - decoded and handled -> ack (handlers commit before returning);
    - envelope or payload fails validation, or no handler -> dead-letter + term;
    - PermanentError -> dead-letter + term;
    - transient (`is_transient`: TransientError, a database locked or away, NATS timing out)
      -> nak with a backoff growing with the deliveries up to `max_retry_delay`, for as long
      as it lasts: never dead-lettered. The other messages of the same fetch are put back
      with the same delay without being tried (they would wait on the same lock);
    - anything else -> nak with backoff, and dead-letter + term at its `max_deliver`-th such
      failure. Only these failures count: they are counted here, per message, since the
      server's delivery count also holds the transient ones. The count starts again after a
      restart (more tries, never fewer), and the server itself bounds no deliveries
      (`max_deliver` -1 on the JetStream consumer), so it never drops a message silently.

    The consumer also takes its own replay subject (`replay_subject`), where
    `cmcoord deadletter replay` puts back what it dead-lettered.
    """

    bus: Bus
    stream: str
    durable: str
    handlers: dict[type[Event], Handler]
    max_deliver: int = 5
    ack_wait: float = 30.0
    batch_handler: BatchHandler | None = None
    batch: int = 64
    fetch_timeout: float = 2.0
    stats: ConsumerStats = field(default_factory=ConsumerStats)
    # Keyed concurrency: messages with different keys are handled side by side, those with
    # the same key in order, each acked when done. For work that waits on someone else's pace
    # (Telegram's one message a second per chat). At most `batch` keys are worked on at once,
    # and at most `in_hand` messages held: a key with a long queue (the CMCS desk told of sixty
    # gapped posts) does not hold up the others. A message in hand tells the server it is
    # still in progress, so it is not redelivered meanwhile.
    key: Callable[[Event], Hashable] | None = None
    in_hand: int = 1000
    max_retry_delay: float = 30.0  # the longest wait between two tries of a transient failure
    # A batched consumer that fetched fewer than a batch waits this long for more to join it: a
    # wave of events at 30 a second then takes one transaction for several, not one each.
    linger: float = 0.0
    # Create or update the durable when it is missing or differs: for tools and tests holding the
    # operator's identity. Services leave it to `cmcoord nats-init` and only bind.
    declare: bool = False

    def __post_init__(self) -> None:
        self._by_subject = {cls.subject(): (cls, h) for cls, h in self.handlers.items()}
        self._in_hand: set[asyncio.Task[None]] = set()
        self._tails: dict[Hashable, asyncio.Task[None]] = {}
        self._room = asyncio.Event()  # set when a message in hand is done (keyed mode)
        self._stopping = asyncio.Event()
        self._rebind = asyncio.Event()
        self._bound = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failures: OrderedDict[int, int] = OrderedDict()  # stream seq -> non-transient failures so far
        self.replay_subject = replay_subject(self.stream, self.durable)
        self.bus.on_reconnect(self._rebind.set)

    @property
    def bound(self) -> bool:
        return self._bound.is_set()

    def config(self) -> ConsumerConfig:
        return durable_config(self.durable, [*sorted(self._by_subject), self.replay_subject], ack_wait=self.ack_wait)

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self.run(), name=f"consumer:{self.durable}")
        return self._task

    async def stop(self) -> None:
        """Stop pulling, finish the messages in hand, return."""
        self._stopping.set()
        self._room.set()  # a loop waiting for room looks at `_stopping` at once
        if self._task is not None:
            await self._task
        if self._in_hand:
            await asyncio.wait(set(self._in_hand))

    async def wait_bound(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self._bound.wait(), timeout)

    async def _bind(self) -> PullRequests:
        """Bind to the durable consumer as `cmcoord nats-init` declared it: a service does not
        create or change consumers (its NATS user may not). A durable missing or taking other
        subjects is said clearly and retried (an init step may still be running)."""
        wanted = self.config()
        try:
            info = await self.bus.js.consumer_info(self.stream, self.durable)
        except nats.js.errors.NotFoundError:
            if not self.declare:
                raise TopologyMissing(f"consumer {self.stream}/{self.durable}") from None
            info = await self.bus.js.add_consumer(self.stream, wanted)
        have = filters_of(info)
        if have != sorted(wanted.filter_subjects or []):
            if not self.declare:
                raise TopologyMissing(f"consumer {self.stream}/{self.durable} takes {have}, this version "
                                      f"handles {sorted(wanted.filter_subjects or [])}")
            info = await self.bus.js.add_consumer(self.stream, wanted)
        if info.config.ack_wait:
            self.ack_wait = float(info.config.ack_wait)  # the server's: in-progress notices keep within it
        sub = await PullRequests(self.bus, stream=self.stream, durable=self.durable).start()
        self._bound.set()
        log.info("consumer_bound", consumer=self.durable, stream=self.stream)
        return sub

    async def run(self) -> None:
        sub: PullRequests | None = None
        backoff = 0.5
        idle_since = time.monotonic()
        while not self._stopping.is_set():
            try:
                if not self.bus.connected:
                    self._bound.clear()
                    if self.bus.nc.is_closed:
                        return
                    await self.bus.wait_connected(timeout=1.0)
                    continue
                if sub is None or self._rebind.is_set():
                    self._rebind.clear()
                    if sub is not None:
                        await quietly(sub.unsubscribe())
                    self._bound.clear()
                    sub = await self._bind()
                    backoff = 0.5
                    idle_since = time.monotonic()
                if self.key is not None and (len(self._tails) >= self.batch or len(self._in_hand) >= self.in_hand):
                    # full: wait for one to be done (not asyncio.wait on a thousand tasks each time)
                    self._room.clear()
                    await self._room.wait()
                    continue
                wanted = (min(self.batch - len(self._tails), self.in_hand - len(self._in_hand)) if self.key is not None
                          else self.batch)  # each message fetched adds at most one key
                msgs = await sub.fetch(wanted, timeout=self.fetch_timeout, stop=self._stopping)
                if not msgs:
                    if time.monotonic() - idle_since > 30:
                        # Long idle: make sure the consumer still exists and our
                        # subscription is still the one it delivers to.
                        await sub.consumer_info()
                        idle_since = time.monotonic()
                    continue
                idle_since = time.monotonic()
                if self.linger and self.batch_handler is not None and len(msgs) < wanted:
                    msgs += await self._rest_of_wave(sub, wanted - len(msgs))
                await self._handle_fetched(msgs)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connection lost, consumer gone, server restarting
                self._bound.clear()
                structlog.contextvars.clear_contextvars()
                structlog.contextvars.bind_contextvars(service=self.bus.source, consumer=self.durable)
                if self.bus.nc.is_closed:
                    # closed on purpose (shutdown), not merely disconnected
                    log.info("consumer_stopped_connection_closed", consumer=self.durable)
                    return
                if isinstance(exc, TopologyMissing):
                    log.error("consumer_missing", consumer=self.durable, error=explain_missing([str(exc)]))
                else:
                    log.warning("consumer_rebinding", consumer=self.durable, error=str(exc) or type(exc).__name__)
                sub = None
                try:
                    await asyncio.wait_for(self._stopping.wait(), timeout=backoff)
                except TimeoutError:
                    pass
                backoff = min(backoff * 2, 5.0)
        if sub is not None:
            await quietly(sub.unsubscribe())

    async def _rest_of_wave(self, sub: PullRequests, wanted: int) -> list[Msg]:
        """After `linger`, what came meanwhile (none when stopping); a failure to fetch leaves those
        in hand to be applied, and the consumer binds again after them."""
        await asyncio.sleep(self.linger)
        if self._stopping.is_set():
            return []
        try:  # without `stop`: a pull sent is read to its end (a short one), nothing is left in the server's hands
            return await sub.fetch(wanted, timeout=0.01)
        except Exception as exc:
            log.warning("linger_fetch_failed", consumer=self.durable, error=short_error(exc))
            self._rebind.set()
            return []

    def _bind_log(self, msg: Msg, envelope: Envelope | None = None) -> None:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            service=self.bus.source, consumer=self.durable, subject=msg.subject, stream_seq=msg.metadata.sequence.stream
        )
        if envelope is not None:
            structlog.contextvars.bind_contextvars(event_id=str(envelope.id), correlation_id=envelope.correlation_id)

    async def _decode(self, msg: Msg) -> tuple[Envelope, Event, Handler] | None:
        """The envelope, payload and handler; None if the message was dead-lettered."""
        self._bind_log(msg)
        if msg.metadata.num_delivered > 1:
            self.stats.redelivered += 1
        try:
            envelope = Envelope.from_bytes(msg.data)
            self._bind_log(msg, envelope)
            entry = self._by_subject.get(envelope.subject)
            if entry is None or msg.subject not in (envelope.subject, self.replay_subject):
                raise PermanentError(f"no handler for {envelope.subject} on {msg.subject}")
            cls, owner = entry[0], entry[0].owner()
            if envelope.source not in (owner, *cls.senders) or msg.metadata.stream != owner.upper():
                # a consistency check: an event attributed to a service that does not own it (a bug, a
                # message replayed by hand to the wrong place) is refused. The envelope is the publisher's
                # word: what keeps a login off another's subjects is the NATS permissions.
                raise PermanentError(f"{envelope.subject} from {envelope.source!r} in stream {msg.metadata.stream}: "
                                     f"only {', '.join((owner, *cls.senders))} may publish it, in {owner.upper()}")
            return envelope, entry[0].model_validate(envelope.data), entry[1]
        except (ValidationError, ValueError, PermanentError) as exc:
            await self._dead_letter(msg, reason=f"invalid: {short_error(exc)}")
            return None

    def _hand_over(self, msg: Msg, envelope: Envelope, event: Event, handler: Handler) -> None:
        """Keyed mode: handle after the previous message with the same key, without waiting here."""
        assert self.key is not None
        k = self.key(event)
        previous = self._tails.get(k)

        async def after() -> None:
            keep = asyncio.create_task(self._keep_in_progress(msg))
            try:
                if previous is not None:
                    await asyncio.wait({previous})
                await self._apply_one(msg, envelope, event, handler)
            except Exception as exc:  # the ack could not be sent (connection lost): it comes again, idempotent
                log.warning("event_ack_failed", error=short_error(exc))
            finally:
                keep.cancel()

        task = asyncio.create_task(after(), name=f"{self.durable}:{msg.metadata.sequence.stream}")  # log context copied
        self._in_hand.add(task)
        self._tails[k] = task

        def done(t: asyncio.Task[None]) -> None:
            self._in_hand.discard(t)
            if self._tails.get(k) is t:
                del self._tails[k]
            self._room.set()

        task.add_done_callback(done)

    async def _keep_in_progress(self, msg: Msg) -> None:
        """While a message waits behind its key, or for its turn to reach Telegram, the server
        hears it is in progress: it is not redelivered meanwhile."""
        while True:
            await asyncio.sleep(self.ack_wait / 3)
            with contextlib.suppress(Exception):  # connection lost: it may come again, handled idempotently
                await msg.in_progress()

    async def _handle_fetched(self, msgs: list[Msg]) -> None:
        decoded = [(msg, item) for msg in msgs if (item := await self._decode(msg)) is not None]
        if self.key is not None:
            for msg, (envelope, event, handler) in decoded:
                self._bind_log(msg, envelope)
                self._hand_over(msg, envelope, event, handler)
            return
        if self.batch_handler is not None and len(decoded) > 1:
            started = time.perf_counter()
            try:
                await self.batch_handler([(envelope, event) for _, (envelope, event, _) in decoded])
            except Exception as exc:
                if is_transient(exc):
                    # one by one would wait on the same lock once per message: all come back later
                    delay = self._retry_delay(max(m.metadata.num_delivered for m, _ in decoded), exc)
                    log.warning("batch_retry_transient", size=len(decoded), delay=round(delay, 3), error=short_error(exc))
                    self.stats.failed += len(decoded)
                    self.stats.transient += len(decoded)
                    for msg, (envelope, _, _) in decoded:
                        await msg.nak(delay=delay)
                    return
                log.warning("batch_failed_one_by_one", size=len(decoded), error=short_error(exc))
            else:
                ms = round((time.perf_counter() - started) * 1000 / len(decoded), 3)
                for msg, (envelope, _, _) in decoded:
                    await msg.ack()
                    self._failures.pop(msg.metadata.sequence.stream, None)
                    self.stats.handled += 1
                    self._bind_log(msg, envelope)
                    log.info("event_handled", delivered=msg.metadata.num_delivered, ms=ms, batch=len(decoded))
                return
        put_back: float | None = None  # a transient failure: the rest of this fetch waits as long
        for msg, (envelope, event, handler) in decoded:
            self._bind_log(msg, envelope)
            if put_back is not None:
                await msg.nak(delay=put_back)
                log.info("event_put_back", delivered=msg.metadata.num_delivered, delay=round(put_back, 3))
                continue
            put_back = await self._apply_one(msg, envelope, event, handler)

    async def _apply_one(self, msg: Msg, envelope: Envelope, event: Event, handler: Handler) -> float | None:
        """Handle, then ack, nak or dead-letter; the delay of a transient failure, else None."""
        delivered = msg.metadata.num_delivered
        seq = msg.metadata.sequence.stream
        started = time.perf_counter()
        counted = _delivery_count.set(delivered)
        try:
            await handler(envelope, event)
        except PermanentError as exc:
            self._failures.pop(seq, None)
            await self._dead_letter(msg, reason=f"refused: {short_error(exc)}")
            return None
        except Exception as exc:
            self.stats.failed += 1
            if is_transient(exc):
                self.stats.transient += 1
                delay = self._retry_delay(delivered, exc)
                log.warning("event_retry_transient", delivered=delivered, delay=round(delay, 3), error=short_error(exc))
                await msg.nak(delay=delay)
                return delay
            failures = self._failures.pop(seq, 0) + 1
            log.error("event_failed", delivered=delivered, failures=failures, exc_info=exc)
            if failures >= self.max_deliver:
                await self._dead_letter(msg, reason=f"failed {failures} times: {short_error(exc)}")
                return None
            self._failures[seq] = failures
            while len(self._failures) > _FAILURES_REMEMBERED:
                self._failures.popitem(last=False)
            await msg.nak(delay=min(2.0**failures * 0.2, 10.0))
            return None
        finally:
            _delivery_count.reset(counted)
        await msg.ack()
        self._failures.pop(seq, None)
        self.stats.handled += 1
        log.info("event_handled", delivered=delivered, ms=round((time.perf_counter() - started) * 1000, 3))
        return None

    def _retry_delay(self, delivered: int, exc: BaseException) -> float:
        """Doubling from the error's own delay (a TransientError's) or half a second, up to
        `max_retry_delay`; spread a little so a backlog put back at once does not return at once."""
        first = exc.delay if isinstance(exc, TransientError) else 0.5
        delay = min(first * 2.0 ** min(max(delivered - 1, 0), 16), max(self.max_retry_delay, first))
        return delay * random.uniform(0.8, 1.0)

    async def _dead_letter(self, msg: Msg, *, reason: str) -> None:
        meta = msg.metadata
        headers = {
            "Cmcoord-Reason": reason[:1000],
            "Cmcoord-Consumer": self.durable,
            "Cmcoord-Original-Subject": msg.subject,
            "Cmcoord-Stream": meta.stream,
            "Cmcoord-Stream-Seq": str(meta.sequence.stream),
            "Cmcoord-Delivered": str(meta.num_delivered),
        }
        # Dead-letter first, then term: if we die in between, the redelivered
        # message is dead-lettered again under the same id and JetStream drops it.
        await self.bus.publish_raw(
            f"{DEAD_LETTER_PREFIX}.{self.durable}",
            msg.data,
            msg_id=f"dlq:{self.durable}:{meta.stream}:{meta.sequence.stream}",
            headers=headers,
        )
        await msg.term()
        self.stats.dead_lettered += 1
        log.error("event_dead_lettered", reason=reason)


_FAILURES_REMEMBERED = 20_000  # messages with non-transient failures counted at once (max_ack_pending is 10,000)
