"""The query contracts (shared/contracts/): each query's example request and reply as written on disk
are read by the models both sides use; each server's handler takes the contract's request and answers
its reply; the clients hand the same classes on; and a renamed reply field fails here."""

from __future__ import annotations

import ast
import json
import re
import typing
import uuid
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError, create_model

from services.bot.lessons_client import LessonsClient
from services.bot.notify_client import NotifyClient
from services.bot.roster_client import RosterClient
from services.hns4d.queries import Hns4dQueries
from services.lessons.queries import LessonsQueries
from services.notify.calls import CallQueries
from services.notify.messages import MessageQueries
from services.notify.queries import NotifyQueries
from services.notify.recipients import Roster
from services.roster import directory as roster_directory
from services.roster.queries import RosterQueries
from shared.bus import QueryError
from shared.contracts import hns4d, lessons, notify, roster
from shared.contracts.catalogue import EXAMPLES, QUERIES, query_contract_files
from shared.contracts.query import Query, ReplyInvalid

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "shared" / "contracts"

# The handler answering each query, on the server's side.
HANDLERS: dict[str, Any] = {
    roster.CONTACTS.subject: RosterQueries.contacts,
    roster.DIRECTORY.subject: RosterQueries.directory,
    roster.PERSON_BY_TELEGRAM.subject: RosterQueries.person_by_telegram,
    roster.POST_HOLDER.subject: RosterQueries.post_holder,
    roster.REGISTER.subject: RosterQueries.register,
    roster.COUNTERPARTS.subject: RosterQueries.counterparts,
    roster.RECIPIENTS.subject: RosterQueries.recipients,
    roster.HANDOVER_NOTE.subject: RosterQueries.handover_note,
    roster.RIGHTS.subject: RosterQueries.rights,
    notify.PENDING.subject: NotifyQueries.pending,
    notify.CALLS.subject: NotifyQueries.calls,
    notify.CALL_SUMMARY.subject: CallQueries.summary,
    notify.MESSAGE_STATUS.subject: MessageQueries.status,
    lessons.SEARCH.subject: LessonsQueries.search,
    lessons.AARS.subject: LessonsQueries.aars,
    hns4d.SUBMIT.subject: Hns4dQueries.submit,
    hns4d.MINE.subject: Hns4dQueries.mine,
}


def _file(name: str) -> str:
    return (CONTRACTS / name).read_text()


def test_every_query_subject_is_owned_and_listed_once() -> None:
    subjects = [q.subject for q in QUERIES]
    assert len(subjects) == len(set(subjects)) == len(HANDLERS) == len(EXAMPLES) == 17
    for q in QUERIES:
        assert re.fullmatch(rf"cmcoord\.{q.owner}\.svc\.[a-z_]+", q.subject), q.subject


def test_the_files_on_disk_are_the_contracts() -> None:
    expected = query_contract_files()
    on_disk = {p.name: p.read_text() for p in CONTRACTS.glob("cmcoord.*.svc.*.json")}
    assert on_disk == expected, "run `cmcoord events --write shared/contracts` and commit the result"


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: q.subject)
def test_the_examples_on_disk_validate_and_the_handler_speaks_the_contract(query: Query[Any, Any]) -> None:
    request = query.request.model_validate_json(_file(f"{query.subject}.request.example.json"))
    reply = query.reply.model_validate_json(_file(f"{query.subject}.reply.example.json"))
    assert (request, reply) == EXAMPLES[query.subject]
    # what `ask` sends is the example request; what the server sends back reads as the example reply
    assert request.model_dump(mode="json", exclude_unset=True) == json.loads(
        _file(f"{query.subject}.request.example.json"))
    assert query.reply.model_validate_json(reply.model_dump_json()) == reply

    hints = typing.get_type_hints(HANDLERS[query.subject])
    (argument,) = [name for name in hints if name != "return"]
    assert hints[argument] is query.request, f"{query.subject}: the handler takes {hints[argument]}"
    assert hints["return"] is query.reply, f"{query.subject}: the handler answers {hints['return']}"


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: q.subject)
def test_the_schema_on_disk_pins_the_field_names(query: Query[Any, Any]) -> None:
    for side, model in (("request", query.request), ("reply", query.reply)):
        schema = json.loads(_file(f"{query.subject}.{side}.schema.json"))
        assert schema["$id"] == f"{query.subject}.{side}"
        if schema.get("type") == "object":
            assert sorted(schema["properties"]) == sorted(model.model_fields)


def test_the_server_s_answer_models_are_the_contract_s_classes() -> None:
    """One definition, not two: what the roster builds is what its callers read. No module of the
    roster defines an answer model of its own, and its directory builds the contract's."""
    answers = {"PostPlace", "DeploymentCard", "ContactCard", "PersonCard", "SearchMatch", "GapCard", "ContactsPage",
               "CounterpartCard"}
    for path in sorted((Path(__file__).resolve().parents[2] / "services" / "roster").glob("*.py")):
        defined = {node.name for node in ast.parse(path.read_text()).body if isinstance(node, ast.ClassDef)}
        assert not defined & answers, f"{path.name} defines {sorted(defined & answers)}"
    for name in ("ContactCard", "ContactsPage", "DeploymentCard", "GapCard", "SearchMatch"):
        assert getattr(roster_directory, name) is getattr(roster, name), name
    assert roster.PERSON_BY_TELEGRAM.reply is roster.REGISTER.reply is roster.PersonCard


def _returns(function: Any) -> set[Any]:
    """The classes a client method's return annotation names (through Optional and list)."""
    found, todo = set(), [typing.get_type_hints(function)["return"]]
    while todo:
        hint = todo.pop()
        args = typing.get_args(hint)
        if args:
            todo += list(args)
        elif isinstance(hint, type):
            found.add(hint)
    return found


@pytest.mark.parametrize(("method", "model"), [
    (RosterClient.person, roster.PersonCard),
    (RosterClient.register, roster.PersonCard),
    (RosterClient.contacts, roster.ContactsPage),
    (RosterClient.counterparts, roster.CounterpartCard),
    (RosterClient.rights, roster.Rights),
    (NotifyClient.pending, notify.PendingNotification),
    (NotifyClient.next_call, notify.NextCall),
    (NotifyClient.next_calls, notify.CallBrief),
    (NotifyClient.summary_audience, notify.CallSummaryAudience),
    (NotifyClient.message_status, notify.MessageStatus),
    (LessonsClient.search, lessons.SearchPage),
    (LessonsClient.aars, lessons.OwedAar),
    (Roster.post_holders, roster.Placement),
    (Roster.handover_note, roster.HandoverNoteCard),
], ids=lambda v: getattr(v, "__qualname__", str(v)))
def test_the_clients_hand_on_the_contract_s_own_classes(method: Any, model: type[BaseModel]) -> None:
    assert model in _returns(method)


def test_renaming_a_reply_field_fails_against_the_files_on_disk() -> None:
    """The bot's person card with `name` renamed: its schema is no longer the one on disk, and what a
    roster sends today (the example) no longer reads."""
    fields: dict[str, Any] = {n: (f.annotation, f) for n, f in roster.PersonCard.model_fields.items() if n != "name"}
    renamed = create_model("PersonCard", __base__=roster.Reply, full_name=(str, ...), **fields)
    on_disk = json.loads(_file(f"{roster.PERSON_BY_TELEGRAM.subject}.reply.schema.json"))
    assert sorted(on_disk["properties"]) != sorted(renamed.model_json_schema()["properties"])
    with pytest.raises(ValidationError, match="full_name"):
        renamed.model_validate_json(_file(f"{roster.PERSON_BY_TELEGRAM.subject}.reply.example.json"))


def test_times_go_on_the_wire_as_the_services_always_wrote_them() -> None:
    """`datetime.isoformat()` ("+00:00"), not pydantic's "Z": older peers compare and parse these strings."""
    reply = json.loads(_file(f"{notify.CALLS.subject}.reply.example.json"))
    assert reply["start"].endswith("+00:00") and "answers_by_name" not in reply  # not the chair: no names at all
    chair = notify.NextCall.model_validate({**reply, "you_chair": True, "answers_by_name": [["Awa", "join"]]})
    assert json.loads(chair.model_dump_json())["answers_by_name"] == [["Awa", "join"]]


def test_an_older_peer_s_reply_still_reads() -> None:
    """Fields a roster before `member` did not send take the behaviour they had then; unknown ones are ignored."""
    card = json.loads(_file(f"{roster.PERSON_BY_TELEGRAM.subject}.reply.example.json"))
    del card["member"]
    card["a_field_from_a_newer_roster"] = 1
    assert roster.PersonCard.model_validate(card).member is True
    row = {"person_id": str(uuid.uuid4()), "name": "Awa", "telegram_user_id": None, "timezone": None, "regions": []}
    assert roster.Recipients.model_validate([row]).root[0].member is True
    call = json.loads(_file(f"{notify.CALLS.subject}.reply.example.json"))
    del call["you_chair"]
    assert "you_chair" not in notify.Calls.model_validate(call).root.model_fields_set  # the bot's fallback


def test_a_reply_that_does_not_fit_is_a_failed_query() -> None:
    with pytest.raises(ValidationError) as caught:
        roster.Rights.model_validate({"person_id": "not-a-uuid"})
    failure = ReplyInvalid(roster.RIGHTS, caught.value)
    assert isinstance(failure, QueryError) and failure.code == "502"
    assert roster.RIGHTS.subject in failure.description


def test_no_subject_is_spelled_outside_the_contracts() -> None:
    spelled = re.compile(r"cmcoord\.(roster|notify|lessons)\.svc\.[a-z_]+")
    found = [f"{path.relative_to(ROOT)}:{n}" for folder in ("services", "shared") for path in (ROOT / folder).rglob("*.py")
             if CONTRACTS not in path.parents
             for n, line in enumerate(path.read_text().splitlines(), start=1) if spelled.search(line)]
    assert found == []


def test_a_request_that_cannot_fit_is_refused_before_it_is_sent_as_the_server_would() -> None:
    """What a person typed (an invitation token from a /start link) is checked against the contract
    by the asker: refused with the 400 the server would answer, so the bot says "not valid"."""
    with pytest.raises(QueryError) as caught:
        roster.REGISTER.build(token="x" * 300, telegram_user_id=1, telegram_username="")
    assert caught.value.code == "400" and "token" in caught.value.description
    request = roster.REGISTER.build(token="abc", telegram_user_id=1)
    assert request.model_dump(mode="json", exclude_unset=True) == {"token": "abc", "telegram_user_id": 1}


def test_every_query_a_service_may_ask_has_a_contract() -> None:
    """NATS permissions (shared/permissions.py) grant queries by name: each names a contract here."""
    from shared.permissions import QUERIES as ASKED

    contracts = {q.subject for q in QUERIES}
    asked = {f"cmcoord.{owner}.svc.{verb}" for queries in ASKED.values() for owner, _, verb in
             (q.partition(".") for q in queries)}
    assert asked and asked <= contracts, asked - contracts
