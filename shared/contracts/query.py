"""Typed request/reply queries: one descriptor per query subject, shared by the service that
answers it and every service that asks.

A `Query[Req, Rep]` names the subject (`cmcoord.<owner>.svc.<verb>`), the request model and the
reply model (a list reply is a `RootModel`). The asking side calls `ask(bus, QUERY, request)` and
gets the reply model back; the answering side registers its handler with `answer(service, QUERY,
handler)`, which validates the request with the same model and sends the reply model. Both sides
use the same classes, so a field renamed on one side is renamed on the other, and the JSON schemas
written to shared/contracts/ (`cmcoord events --write shared/contracts`) pin the names on the wire.

Wire format: a request is sent with the fields the caller set (`exclude_unset`), so an asker sends
exactly what it meant; a reply is the reply model's JSON. Both sides ignore unknown fields, so a
newer peer may add fields without breaking an older one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, PlainSerializer, ValidationError

from shared.bus import Bus, QueryError, json_endpoint
from shared.events import SUBJECT_ROOT

# A time on the wire as today's services write it (`datetime.isoformat()`: "+00:00", not "Z").
IsoDateTime = Annotated[datetime, PlainSerializer(lambda value: value.isoformat(), return_type=str, when_used="json")]


class Request(BaseModel):
    """A query's request: frozen; unknown fields ignored (an older or newer asker may send more)."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class Reply(BaseModel):
    """A query's reply (or part of one): frozen; unknown fields ignored (a newer server may add some)."""

    model_config = ConfigDict(frozen=True, extra="ignore")


Req = TypeVar("Req", bound=BaseModel)
Rep = TypeVar("Rep", bound=BaseModel)


@dataclass(frozen=True)
class Query(Generic[Req, Rep]):
    """One query subject: who answers it (`owner`), its `verb`, and its request and reply models."""

    owner: str
    verb: str
    request: type[Req]
    reply: type[Rep]
    description: str = ""

    @property
    def subject(self) -> str:
        return f"{SUBJECT_ROOT}.{self.owner}.svc.{self.verb}"

    def build(self, **fields: Any) -> Req:
        """The request from what a person typed: one that does not fit the contract fails as the
        server would have answered it (RequestInvalid, a QueryError with code 400)."""
        try:
            return self.request.model_validate(fields)
        except ValidationError as err:
            raise RequestInvalid(self, err) from err


class RequestInvalid(QueryError):
    """The request does not fit the contract: refused before it is sent, as the server would (400)."""

    def __init__(self, query: Query[Any, Any], error: ValidationError) -> None:
        super().__init__("400", f"{query.subject}: request does not fit {query.request.__name__} ({_first(error)})")


class ReplyInvalid(QueryError):
    """The answer did not fit the contract's reply model (a peer speaking another contract):
    raised where an error reply would be, so callers treat it as a failed query."""

    def __init__(self, query: Query[Any, Any], error: ValidationError) -> None:
        super().__init__("502", f"{query.subject}: reply does not fit {query.reply.__name__} "
                                f"({error.error_count()} errors; first: {_first(error)})")


def _first(error: ValidationError) -> str:
    first = error.errors()[0]
    return f"{'.'.join(map(str, first['loc'])) or '<root>'}: {first['msg']}"


async def ask(bus: Bus, query: Query[Req, Rep], request: Req, *, timeout: float = 5.0) -> Rep:
    """Ask `query` with `request` and return its reply model.

    Raises QueryError on an error reply (its code: 404, 403, 400, ...), ReplyInvalid (a QueryError,
    code 502) on a reply that does not fit the contract, and NATS' errors / TimeoutError when nobody
    answers."""
    if not isinstance(request, query.request):
        raise TypeError(f"{query.subject} takes a {query.request.__name__}, not a {type(request).__name__}")
    payload = request.model_dump(mode="json", exclude_unset=True)
    raw = await bus.request(query.subject, payload, timeout=timeout)
    try:
        return query.reply.model_validate(raw)
    except ValidationError as err:
        raise ReplyInvalid(query, err) from err


def endpoint(query: Query[Req, Rep], handler: Callable[[Req], Awaitable[Rep]], *,
             at_once: int = 16, owner: object = None) -> Callable[[Any], Awaitable[None]]:
    """`handler(request model) -> reply model` as a nats.micro endpoint (shared.bus.json_endpoint's
    error mapping: a request that does not validate is answered 400)."""

    async def untyped(payload: dict[str, Any]) -> Any:
        reply = await handler(query.request.model_validate(payload))
        if not isinstance(reply, query.reply):  # a handler answering another shape is a bug here, not there
            raise TypeError(f"{query.subject} answers a {query.reply.__name__}, not a {type(reply).__name__}")
        return reply

    return json_endpoint(untyped, name=query.verb, at_once=at_once, owner=owner)


async def ask_once(settings: Any, query: Query[Req, Rep], request: Req, *, source: str) -> Rep:
    """A command's one question: a connection of its own around it, with the settings' NATS identity
    (`nats_url`, `nats_auth()`) and `query_timeout_seconds`. NATS away (503), no answer in time (504) or
    an error answer: QueryError."""
    try:
        bus = await Bus.open(settings.nats_url, source=source, patience=settings.query_timeout_seconds,
                             auth=settings.nats_auth())
    except ConnectionError as err:
        raise QueryError("503", str(err)) from err
    try:
        return await ask(bus, query, request, timeout=settings.query_timeout_seconds)
    except TimeoutError as err:
        raise QueryError("504", str(err) or f"{query.subject}: no answer in time") from err
    finally:
        await bus.close()


async def answer(service: Any, query: Query[Req, Rep], handler: Callable[[Req], Awaitable[Rep]], *,
                 at_once: int = 16) -> None:
    """Register `handler` on a nats.micro Service for the query's subject (its endpoint is named by the verb;
    `shared.bus.answers_finished(service)` waits for its answers in hand)."""
    await service.add_endpoint(name=query.verb, subject=query.subject,
                               handler=endpoint(query, handler, at_once=at_once, owner=service))
