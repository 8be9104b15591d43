"""French and Arabic replies, /lang, and odd input: through the real bot and the sandbox."""

from typing import Any

from aiogram import Bot

from services.bot.i18n import Languages
from services.roster.config import Settings
from shared.clock import ManualClock
from tests.helpers import eventually
from tests.integration.telegram_users import User, invite


async def test_replies_follow_the_telegram_language_then_lang(
    bot_app: Any, sandbox_url: str, roster_settings: Settings, clock: ManualClock
) -> None:
    stranger = await User(sandbox_url, 9601).reply_to("/help", language_code="fr")
    assert "demandez un lien d’invitation au bureau de la CMCS" in stranger["text"]
    arabic = await User(sandbox_url, 9602).reply_to("/start", language_code="ar-EG")
    assert "اطلب رابط دعوة من مكتب CMCS" in arabic["text"]
    unknown = await User(sandbox_url, 9603).reply_to("/start", language_code="sw")
    assert "ask the CMCS desk" in unknown["text"]  # no Swahili catalogue: English

    officer = User(sandbox_url, 9604)
    welcome = await officer.reply_to(f"/start {await invite(roster_settings, clock, 'o1@ocha.example')}",
                                     language_code="fr")
    assert welcome["text"].startswith("Bienvenue, <b>Officer 01 Diallo</b>")
    page = await officer.reply_to("/contacts Mali", language_code="fr")
    assert "1–5 sur 7" in page["text"] and "jusqu’au" in page["text"]
    assert [b["text"] for b in page["reply_markup"]["inline_keyboard"][0]] == ["Suivant ▶"]

    # /lang overrides the app's language, and is kept in the bot's store
    menu = await officer.reply_to("/lang", language_code="fr")
    assert menu["text"] == "Choisissez votre langue :"
    arabic_button = next(b for b in menu["reply_markup"]["inline_keyboard"][0] if b["text"] == "العربية")
    await officer.press(menu["message_id"], arabic_button["callback_data"])

    async def confirmed() -> dict[str, Any] | None:
        shown = next(m for m in await officer.messages() if m["message_id"] == menu["message_id"])
        return shown if "بالعربية" in shown["text"] else None

    await eventually(confirmed, what="the choice confirmed in Arabic")
    help_ = await officer.reply_to("/help", language_code="fr")
    assert "بمن تتصل" in help_["text"]
    assert "(مالي، ROWCA)" in (await officer.reply_to("/me"))["text"]  # the country's name too
    assert await Languages(bot_app.db).chosen(9604) == "ar"  # a restarted bot reads it back
    assert "From now on I write to you in English" in (await officer.reply_to("/lang en"))["text"]


async def test_the_command_menu_exists_in_each_language(bot_app: Any) -> None:
    bot: Bot = bot_app.parts.bot
    assert "Qui appeler" in (await bot.get_my_commands(language_code="fr"))[0].description
    assert "بمن تتصل" in (await bot.get_my_commands(language_code="ar"))[0].description
    assert [c.command for c in await bot.get_my_commands()] == ["contacts", "me", "handover", "pending", "calls", "agenda",
                                                               "summary", "report", "aar", "lessons", "profile", "send",
                                                               "movement", "site", "hns4d", "lang", "help"]


async def test_odd_input_gets_a_clear_answer(
    bot_app: Any, sandbox_url: str, roster_settings: Settings, clock: ManualClock
) -> None:
    officer = User(sandbox_url, 9605)
    await officer.reply_to(f"/start {await invite(roster_settings, clock, 'o2@ocha.example')}")
    long = await officer.reply_to("/contacts " + "Mali " * 1000)
    assert "too long for me: 5,010 characters" in long["text"]
    invisible = await officer.reply_to("\u200b\u200d\u0007\ufeff")
    assert "only invisible or control characters" in invisible["text"]
    hidden = await officer.reply_to("/contacts Ma\u200bli\u0000")  # zero-width and control characters removed
    assert "1–5 of 7" in hidden["text"]
    search = await officer.reply_to("/contacts " + "Diallo " * 20)
    assert "too long for a search" in search["text"]
    colon = await officer.reply_to("/contacts Mali:Bamako")  # ":" would break the page buttons' data
    assert "Mali Bamako" in colon["text"] and "went wrong" not in colon["text"]
    markup = await officer.reply_to("/contacts <b>&")
    assert "Nobody found for “&lt;b&gt;&amp;”" in markup["text"]
