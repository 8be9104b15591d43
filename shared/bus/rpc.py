"""Request/reply over core NATS: answering a query as JSON, and the errors both sides speak."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from nats.aio.msg import Msg
from pydantic import BaseModel, ValidationError

from shared.bus.failures import short_error

log = structlog.get_logger("bus")

_answering: dict[asyncio.Task[None], object] = {}  # the answers in hand, each with the service answering

ANSWERS_STOP_TIMEOUT_S = 2.0  # a question's answer is a read or two: long enough for any in hand


class QueryFailure(Exception):
    """Raised by a query handler to answer with a specific error code."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


class QueryError(Exception):
    def __init__(self, code: str, description: str) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description


def decode_reply(reply: Msg) -> Any:
    headers = reply.headers or {}
    if "Nats-Service-Error-Code" in headers:
        raise QueryError(headers["Nats-Service-Error-Code"], headers.get("Nats-Service-Error", ""))
    return json.loads(reply.data) if reply.data else None


QueryHandler = Callable[[dict[str, Any]], Awaitable[Any]]


def json_endpoint(handler: QueryHandler, *, name: str, at_once: int = 16,
                  owner: object = None) -> Callable[[Any], Awaitable[None]]:
    """Wrap `handler(payload) -> result` as a nats.micro endpoint speaking JSON.

    QueryFailure -> its code, LookupError -> 404, PermissionError -> 403,
    ValueError/ValidationError -> 400; anything else -> 500 and logged.

    nats-py hands a subscription's messages to its callback one at a time, so
    each request is answered in a task of its own, up to `at_once` side by side
    (more wait for a slot): a slow question does not hold up the others, and
    database work overlaps.
    """
    slots = asyncio.Semaphore(at_once)

    async def endpoint(request: Any) -> None:
        await slots.acquire()
        task = asyncio.create_task(answer(request), name=f"query:{name}")
        _answering[task] = owner

        def done(t: asyncio.Task[None]) -> None:
            _answering.pop(t, None)
            slots.release()
            if not t.cancelled() and t.exception() is not None:  # the reply could not be sent
                log.warning("query_not_answered", query=name, error=short_error(t.exception()))  # type: ignore[arg-type]

        task.add_done_callback(done)

    async def answer(request: Any) -> None:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(query=name)
        try:
            payload = json.loads(request.data or b"{}")
            if not isinstance(payload, dict):
                raise ValueError("a query payload is a JSON object")
            result = await handler(payload)
        except QueryFailure as exc:
            await request.respond_error(str(exc.code), exc.description)
            return
        except LookupError as exc:
            await request.respond_error("404", short_error(exc))
            return
        except PermissionError as exc:
            await request.respond_error("403", short_error(exc))
            return
        except (ValueError, ValidationError) as exc:
            await request.respond_error("400", short_error(exc))
            return
        except Exception:
            log.exception("query_failed")
            await request.respond_error("500", "internal error")
            return
        if isinstance(result, BaseModel):
            body = result.model_dump_json().encode()
        else:
            body = json.dumps(result, default=_json_default).encode()
        await request.respond(body)

    return endpoint


async def answers_finished(owner: object, timeout: float = ANSWERS_STOP_TIMEOUT_S) -> None:
    """Once the answers in hand of `owner`'s endpoints (its query service, stopped: it takes no new
    question) are sent. What overruns `timeout` is cancelled, and waited for, while the store it
    reads is still open."""
    tasks = {task for task, of in _answering.items() if of is owner}
    if not tasks:
        return
    _, late = await asyncio.wait(tasks, timeout=timeout)
    for task in late:
        task.cancel()
    if late:
        log.warning("queries_cut_short_at_stop", queries=len(late))
        await asyncio.wait(late, timeout=timeout)  # one that ignores its cancellation is left to the loop's end


def _json_default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return str(value)
