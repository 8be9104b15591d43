"""What the services tell an officer, in the language the officer reads: /lang in the bot goes to the
roster, and notify writes the handover prompt, the call reminder and the AAR reminder in it. Real
nats-server, roster, notify and bot on the sandbox; a clock the test sets."""

import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.bot.bootstrap import BotApp
from services.lessons.duties import Step
from services.lessons.jobs import request_for
from services.lessons.models import Aar
from services.roster.bootstrap import RosterApp
from services.roster.config import Settings
from shared import events
from shared.bus import Bus
from shared.clock import ManualClock
from shared.contracts.query import ask
from shared.contracts.roster import RECIPIENTS, RecipientsRequest
from shared.natsserver import NatsServer
from tests.helpers import eventually, reads_in, stream_events
from tests.integration.telegram_users import User, invite
from tests.integration.test_calls import _calls_notify, _plan, _roap
from tests.integration.test_notify import _deployment_of, _last_with, ending_soon, publish

SOMCHAI = 9804  # deployed in Thailand (ROAP, Asia/Bangkok); ROAP's call is Tuesday 3 March 2026, 13:00 Bangkok
LRM = "\u200e"

EXPECTED = {
    "fr": {
        "prompt": "Votre déploiement (Thaïlande) prend fin le 23 mars 2026 (dans 21 jours). Il est temps de rédiger "
                  "la note de passation",
        "button": "Rédiger maintenant",
        "call": "Rappel – l’appel de coordination régional (Asie et Pacifique) : mardi 3 mars à 13:00 (Asia/Bangkok), "
                "60 minutes.\nOrdre du jour à ce stade :\n• (rien pour l’instant : ajoutez un point avec /agenda)\n"
                "Participerez-vous ?",
        "rsvp": ["Je participerai", "Je ne pourrai pas"],
        "aar": "Votre examen après action (déploiement : Thaïlande) est attendu pour le 9 mars 2026. Il tient en "
               "cinq questions courtes",
        "commands": ["/handover", "/agenda", "/aar"],
    },
    "ar": {
        "prompt": "ينتهي انتدابك في تايلاند يوم 23 مارس 2026 (بعد 21 يومًا). حان وقت كتابة مذكرة التسليم",
        "button": "الكتابة الآن",
        "call": "اجتماع التنسيق الإقليمي (آسيا والمحيط الهادئ): الثلاثاء 3 مارس، 13:00 (Asia/Bangkok)، لمدة 60 "
                f"دقيقة.\nجدول الأعمال حتى الآن:\n• (لا شيء بعد: أضف بندًا عبر {LRM}/agenda)\nهل ستشارك؟",
        "rsvp": ["سأشارك", "لن أتمكن من المشاركة"],
        "aar": "موعد استعراض ما بعد الإجراء الخاص بك عن انتدابك في تايلاند هو 9 مارس 2026.",
        "commands": [f"{LRM}/handover", f"{LRM}/agenda", f"{LRM}/aar"],
    },
}


def _commands(text: str) -> list[str]:
    """Each /command with the character before it (a left-to-right mark in Arabic, a space in French)."""
    return [m.group(0).lstrip(" (") for m in re.finditer(r".?/[a-z]+", text)]


@pytest.mark.parametrize("locale", ["fr", "ar"])
async def test_an_officer_gets_the_handover_prompt_the_call_reminder_and_the_aar_reminder_in_their_language(
    locale: str, tmp_path: Path, nats_server: NatsServer, clock: ManualClock, roster: RosterApp, bot: BotApp,
    bus: Bus, sandbox_url: str, roster_settings: Settings, people: dict[str, uuid.UUID],
) -> None:
    expected = EXPECTED[locale]
    somchai, person_id = User(sandbox_url, SOMCHAI), people["somchai@ocha.example"]
    await somchai.reply_to(f"/lang {locale}")  # the Telegram app is in English
    await eventually(lambda: reads_in(bus, person_id, locale), what="the roster told of the choice")

    app = await _calls_notify(tmp_path, nats_server.url, clock)
    try:
        dep, post = await _deployment_of(roster_settings, person_id)
        await publish(bus, ending_soon(dep, post, clock.now().date() + timedelta(days=21)), source="roster")
        prompt = await eventually(lambda: _last_with(somchai, expected["prompt"]), what="the handover prompt")
        assert [b["text"] for b in prompt["reply_markup"]["inline_keyboard"][0]] == [expected["button"]]

        await _roap(app, clock, chair_email="jean@ocha.example")
        await _plan(app)
        call = await eventually(lambda: _last_with(somchai, expected["call"]), what="the call reminder")
        assert [b["text"] for b in call["reply_markup"]["inline_keyboard"][0]] == expected["rsvp"]

        # the AAR reminder as the lessons service asks for it, a week before it is due
        aar = Aar(id=uuid.uuid4(), person_id=person_id, deployment_id=dep.id, country="TH", region="ROAP",
                  due_on=clock.now().date() + timedelta(days=7), created_at=clock.now())
        reminder = request_for(aar, Step(name="reminder", offset_days=-7, audience="officer"), officer="",
                               today=clock.now().date())
        await publish(bus, reminder, source="lessons")
        written = await eventually(lambda: _last_with(somchai, expected["aar"]), what="the AAR reminder")
    finally:
        await app.stop()

    said = [prompt["text"], call["text"], written["text"]]
    assert [c for text in said for c in _commands(text)] == expected["commands"]
    assert not any("Your deployment" in text or "Will you join" in text for text in said)


async def _person(bus: Bus, email: str) -> uuid.UUID:
    (found,) = (await ask(bus, RECIPIENTS, RecipientsRequest(emails=[email]), timeout=5)).root
    return found.person_id


async def test_without_a_choice_the_telegram_language_then_the_roster_s_languages_decide(
    bot_app: BotApp, bus: Bus, sandbox_url: str, roster_settings: Settings, clock: ManualClock,
) -> None:
    # linking from an app in French: the roster hears French
    newcomer = User(sandbox_url, 9690)
    await newcomer.reply_to(f"/start {await invite(roster_settings, clock, 'o3@ocha.example')}", language_code="fr")
    newcomer_id = await _person(bus, "o3@ocha.example")
    await eventually(lambda: reads_in(bus, newcomer_id, "fr"), what="the app's language")

    # no choice, no app language: the first language the roster has that is written here
    other = await _person(bus, "o4@ocha.example")
    assert await reads_in(bus, other, "en")
    await publish(bus, events.ProfileUpdated(person_id=other, languages=["bm", "ar", "fr"],
                                             updated_at=datetime.now(UTC)), source="bot")
    await eventually(lambda: reads_in(bus, other, "ar"), what="Arabic, the first language written here")


async def test_a_member_linked_before_is_heard_at_their_first_update(
    bot: BotApp, bus: Bus, sandbox_url: str, people: dict[str, uuid.UUID],
) -> None:
    """Linked before the roster kept languages: their app's language reaches it with their next message."""
    awa = people["awa@ocha.example"]
    assert await reads_in(bus, awa, "en")
    await User(sandbox_url, 9801).reply_to("/help", language_code="ar")
    await eventually(lambda: reads_in(bus, awa, "ar"), what="the app's language, told with the first update")


async def test_an_app_language_not_written_here_tells_the_roster_nothing(
    bot: BotApp, bus: Bus, sandbox_url: str, people: dict[str, uuid.UUID],
) -> None:
    """A French speaker whose phone is in Portuguese keeps French: the bot does not tell the roster "English"."""
    awa = people["awa@ocha.example"]
    await publish(bus, events.ProfileUpdated(person_id=awa, languages=["fr"], updated_at=datetime.now(UTC)),
                  source="bot")
    await eventually(lambda: reads_in(bus, awa, "fr"), what="French, from the roster's languages")
    await User(sandbox_url, 9801).reply_to("/help", language_code="pt-BR")
    await User(sandbox_url, 9801).reply_to("/lang ar")  # then a choice: told, after whatever the first update told
    await eventually(lambda: reads_in(bus, awa, "ar"), what="the choice")
    told = await stream_events(bus.js, "BOT", type_prefix="bot.profile.updated")
    assert [e.data["locale"] for e in told if e.data["person_id"] == str(awa) and e.data["locale"]] == ["ar"]
