from aiogram.fsm.state import State, StatesGroup


class ContactsSearch(StatesGroup):
    """/contacts with nothing after it: ask, then search the next message."""

    waiting_for_query = State()


class HandoverWriting(StatesGroup):
    """/handover: the note for the successor, one question at a time (kept across restarts)."""

    key_counterparts = State()
    open_issues = State()
    recurring_meetings = State()
    where_files_live = State()
    advice_to_successor = State()


class DepartureChange(StatesGroup):
    """"Change the date" on the departure question: the next message is the new date."""

    new_date = State()


class ReportWriting(StatesGroup):
    """/report: a field report step by step (kept across restarts)."""

    text = State()
    country = State()
    themes = State()
    classification = State()
    attachment = State()
    confirm = State()


class AarWriting(StatesGroup):
    """/aar: the five questions, then themes and classification; each answer is kept as a draft."""

    planned = State()
    happened = State()
    difference = State()
    sustain = State()
    improve = State()
    themes = State()
    classification = State()


class SiteWriting(StatesGroup):
    """/site: a humanitarian notification of a static site, step by step (kept across restarts)."""

    name = State()
    function = State()
    point = State()
    occupancy = State()
    start = State()
    end = State()
    confirm = State()


class MovementWriting(StatesGroup):
    """/movement: a humanitarian notification of a movement, step by step (kept across restarts)."""

    name = State()
    route = State()
    start = State()
    end = State()
    vehicles = State()
    markings = State()
    contact = State()
    confirm = State()
