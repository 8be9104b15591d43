from aiogram.fsm.state import State, StatesGroup


class ContactsSearch(StatesGroup):
    """/contacts with nothing after it: ask, then search the next message."""

    waiting_for_query = State()
