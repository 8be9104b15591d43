"""What the services tell people, as a key and its parameters, written in each reader's language.

A service asks notify for a notification with a `Notice` (and an English text, which a reader's
language falls back to). Notify writes it for each recipient when it creates their copy: the
template's English text is the msgid of the `notices` catalogues (shared/locales, msgctxt the
key), a count picks its plural form (`npgettext`; Arabic's six), and typed parameters are shown
in the reader's locale and time zone: dates and times by Babel, countries by their CLDR names,
regions by name. A key this process does not know (a newer sender) or a parameter missing: the
English text it came with is sent.

`python -m shared.notices FILE` writes the catalogue template from TEMPLATES (`make messages`).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from string import Formatter
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_date, format_datetime
from shared.countries import country_label
from shared.events.notify import Notice
from shared.i18n import DEFAULT, translations
from shared.regions import REGIONS
from shared.themes import THEMES

DOMAIN = "notices"
# the msgctxt of a button's label, a region's name, a role's name, a handover note's section title, a lessons
# theme's name, a word of the digest and why someone could not be reached
BUTTON, REGION, ROLE, SECTION, THEME, DIGEST, REASON = (
    "button", "region", "role", "section", "theme", "digest", "reason")
BABEL_LOCALES = {"en": "en_GB"}  # "3 March 2026", as the UN writes it
# A call's time: the weekday, day and month, the 24-hour time; the reader's zone follows in brackets.
TIME_PATTERNS = {"en": "EEEE dd MMMM, HH:mm", "fr": "EEEE d MMMM 'à' HH:mm", "ar": "EEEE d MMMM، HH:mm"}


@dataclass(frozen=True)
class Template:
    text: str  # English, with {placeholders}
    plural: str | None = None  # English for a count other than one; `count` names the count
    count: str | None = None
    dates: tuple[str, ...] = ()  # ISO dates, shown long ("3 March 2026", "3 mars 2026")
    times: tuple[str, ...] = ()  # ISO date-times, shown in the reader's time zone
    countries: tuple[str, ...] = ()  # ISO 3166 alpha-2, shown by name
    regions: tuple[str, ...] = ()  # region codes (ROWCA), shown by name
    calls: tuple[str, ...] = ()  # region codes, shown as that region's call ("West and Central Africa regional …")
    roles: tuple[str, ...] = ()  # roles (cmcoord_officer), shown by name
    periods: tuple[str, ...] = ()  # a period's label ("2026 Q3"), a quarter shown as the locale writes it

    def placeholders(self) -> set[str]:
        texts = [self.text] + ([self.plural] if self.plural else [])
        return {name for text in texts for _, name, _, _ in Formatter().parse(text) if name}


_RECEIPT = ("Please acknowledge receipt by {due}. Acknowledging says you received this notification: it is not an "
            "approval and guarantees nothing, and OCHA has not verified what is notified.")
_AAR_BEFORE = ("It takes five short questions: what was planned, what happened, why the difference, what to sustain, "
               "what to improve. Send /aar, or press the button.")
_AAR_AFTER = "Send /aar to write it: what you learned is what the next officer needs."

TEMPLATES: dict[str, Template] = {
    "handover.prompt": Template(
        "Your deployment in {country} ends on {end} ({days} day). Time to write the handover note for your "
        "successor:\n• key counterparts\n• open access or humanitarian notification issues\n• recurring meetings\n"
        "• where files live\n• advice to your successor\nPress the button or send /handover and I will take it "
        "step by step.",
        "Your deployment in {country} ends on {end} ({days} days). Time to write the handover note for your "
        "successor:\n• key counterparts\n• open access or humanitarian notification issues\n• recurring meetings\n"
        "• where files live\n• advice to your successor\nPress the button or send /handover and I will take it "
        "step by step.",
        count="days", dates=("end",), countries=("country",)),
    "handover.departure": Template(
        "Your deployment in {country} ends on {end}. Please confirm your departure date, or give the new one: your "
        "handover reminders and your successor follow it.", dates=("end",), countries=("country",)),
    "handover.reminder": Template(
        "Reminder: your deployment in {country} ends on {end} ({days} day) and your handover note is not written "
        "yet. Send /handover to write it.",
        "Reminder: your deployment in {country} ends on {end} ({days} days) and your handover note is not written "
        "yet. Send /handover to write it.",
        count="days", dates=("end",), countries=("country",)),
    "call.reminder": Template(
        "{call}: {start}, {minutes} minute.\nAgenda so far:\n{agenda}\nWill you join?",
        "{call}: {start}, {minutes} minutes.\nAgenda so far:\n{agenda}\nWill you join?",
        count="minutes", times=("start",), calls=("call",)),
    "call.reminder.empty": Template(
        "{call}: {start}, {minutes} minute.\nAgenda so far:\n• (nothing yet: add an item with /agenda)\nWill you join?",
        "{call}: {start}, {minutes} minutes.\nAgenda so far:\n• (nothing yet: add an item with /agenda)\n"
        "Will you join?",
        count="minutes", times=("start",), calls=("call",)),
    "call.link": Template("{call} starts in one hour: {start}.\nLink: {link}", times=("start",), calls=("call",)),
    "call.link.none": Template("{call} starts in one hour: {start}.\nThe chair will share the link.",
                               times=("start",), calls=("call",)),
    "call.started": Template("{call} has started: {start}.\nLink: {link}", times=("start",), calls=("call",)),
    "call.started.none": Template("{call} has started: {start}.\nThe chair will share the link.",
                                  times=("start",), calls=("call",)),
    "aar.reminder": Template(f"Your after action review of {{operation}} is due on {{due}}. {_AAR_BEFORE}",
                             dates=("due",)),
    "aar.reminder.country": Template(
        f"Your after action review of your deployment in {{country}} is due on {{due}}. {_AAR_BEFORE}",
        dates=("due",), countries=("country",)),
    "aar.today": Template(f"Your after action review of {{operation}} is due today ({{due}}). {_AAR_AFTER}",
                          dates=("due",)),
    "aar.today.country": Template(
        f"Your after action review of your deployment in {{country}} is due today ({{due}}). {_AAR_AFTER}",
        dates=("due",), countries=("country",)),
    "aar.late": Template(f"Your after action review of {{operation}} was due on {{due}}. {_AAR_AFTER}",
                         dates=("due",)),
    "aar.late.country": Template(
        f"Your after action review of your deployment in {{country}} was due on {{due}}. {_AAR_AFTER}",
        dates=("due",), countries=("country",)),
    "aar.overdue": Template(
        "The after action review of {operation} by {officer} was due on {due} and is {days} day overdue. "
        "Please follow up with them.",
        "The after action review of {operation} by {officer} was due on {due} and is {days} days overdue. "
        "Please follow up with them.",
        count="days", dates=("due",)),
    "aar.overdue.country": Template(
        "The after action review of the deployment in {country} by {officer} was due on {due} and is {days} day "
        "overdue. Please follow up with them.",
        "The after action review of the deployment in {country} by {officer} was due on {due} and is {days} days "
        "overdue. Please follow up with them.",
        count="days", dates=("due",), countries=("country",)),
    "escalation": Template(
        "Not acknowledged: {name} has not answered this message, first sent {sent}:\n{text}", times=("sent",)),
    "summary.daily": Template(
        "{n} more message today, not sent one by one so that your chat stays readable. Answer it from /pending, "
        "or acknowledge it with the button.",
        "{n} more messages today, not sent one by one so that your chat stays readable. Answer them from "
        "/pending, or acknowledge them all with the button.", count="n"),
    "unreached.people": Template(
        "Could not reach on Telegram ({n}): they have not linked Telegram, blocked the bot, or Telegram refused. "
        "Each is listed once; later messages that do not reach them are counted here, not told again."),
    "unreached.people.region": Template(
        "Could not reach on Telegram in {region} ({n}): they have not linked Telegram, blocked the bot, or "
        "Telegram refused. Each is listed once; later messages that do not reach them are counted here, not told "
        "again.", regions=("region",)),
    "unreached.person": Template("{line}, {n} message", "{line}, {n} messages", count="n"),
    "unreached.steps": Template("Messages that could not be prepared:"),
    "unreached.step": Template("{line}, {n} time", "{line}, {n} times", count="n"),
    "post.gapped": Template(
        "Post gapped: {title}, {station} ({country}, {region}) has had nobody in it since {since}. Alert {alert}; "
        "it repeats every 7 days until the post is filled.", dates=("since",), countries=("country",),
        regions=("region",)),
    "handover.missing": Template(
        "No handover note: {name} left the {role} post in {country} on {day} without one. Their successor starts "
        "without it.", dates=("day",), countries=("country",), roles=("role",)),
    "handover.introduction.outgoing": Template(
        "Your successor on {post}: {name}{organisation}, starting {start}.\n{contacts}\nYour handover note goes to "
        "them as soon as it is written (/handover).", dates=("start",)),
    "handover.introduction.incoming": Template(
        "You take over {post} from {name}{organisation}, who leaves on {end}.\n{contacts}\nTheir handover note "
        "comes to you here as soon as it exists.", dates=("end",)),
    "handover.note": Template("Handover note from {name}:\n{body}"),
    "handover.note.section": Template("{section}: {text}"),
    "call.chair": Template(
        "You chair the {call}: {start}.\nAgenda:\n{agenda}\nParticipants: {n} ({linked} on Telegram), asked now "
        "whether they will join; /calls shows their answers.", times=("start",), calls=("call",)),
    "call.chair.empty": Template(
        "You chair the {call}: {start}.\nAgenda:\n• (nothing yet: add an item with /agenda)\nParticipants: {n} "
        "({linked} on Telegram), asked now whether they will join; /calls shows their answers.",
        times=("start",), calls=("call",)),
    "call.summary": Template("Summary of the {call} of {start}:\n{text}", times=("start",), calls=("call",)),
    "call.moved": Template("{call} of {was} is moved to {start}.", times=("was", "start"), calls=("call",)),
    "call.cancelled": Template("{call} of {was} is cancelled.", times=("was",), calls=("call",)),
    "email.footer": Template(
        "This came by e-mail because it could not reach you on Telegram. Link your Telegram account with the "
        "invitation the CMCS desk sends you, and messages will come there."),
    "email.press": Template("Press the button to answer:"),
    "email.recorded": Template("Thank you: your answer is recorded."),
    "email.already": Template("This message was already answered, on {at}.", times=("at",)),
    "email.closed": Template("This message no longer waits for an answer."),
    "lessons.digest": Template(
        "The CMCoord lessons digest for {period}: what the community learned, by theme and region, and how after "
        "action reviews are coming in.", periods=("period",)),
    # the quarterly digest (services/lessons/figures.py), one document per language
    "digest.title": Template("CMCoord lessons digest, {period}", periods=("period",)),
    "digest.span": Template("{start} to {end}; community and public lessons only.", dates=("start", "end")),
    "digest.as_of": Template("After action reviews due in the period, as of {day}.", dates=("day",)),
    "digest.count": Template("{what}: {n}"),
    "digest.recurring": Template(
        "Recurring: {theme}, raised in {n} country in the past twelve months ({countries}): the same problem is "
        "coming back.",
        "Recurring: {theme}, raised in {n} countries in the past twelve months ({countries}): the same problem is "
        "coming back.", count="n"),
    "digest.rising": Template("{theme}, new lessons: {now} in this period, {before} in the period before."),
    # humanitarian notifications to the parties (services/hns4d): receipt asked, never approval
    "hns4d.movement": Template(
        f"Humanitarian notification {{reference}} from {{organisation}}: a movement in {{country}}, {{name}}, "
        f"from {{start}} to {{end}}. Route: {{route}}. Vehicles: {{vehicles}}. Markings: {{markings}}. "
        f"Contact: {{contact}}.\n{_RECEIPT}", times=("start", "end", "due"), countries=("country",)),
    "hns4d.site": Template(
        f"Humanitarian notification {{reference}} from {{organisation}}: a humanitarian site in {{country}}, "
        f"{{name}} ({{function}}), at {{point}}, {{occupancy}} people, from {{start}} to {{end}}.\n{_RECEIPT}",
        times=("start", "end", "due"), countries=("country",)),
    "hns4d.changed.movement": Template(
        f"Changed humanitarian notification {{reference}} from {{organisation}}, replacing what was sent before: "
        f"a movement in {{country}}, {{name}}, from {{start}} to {{end}}. Route: {{route}}. Vehicles: "
        f"{{vehicles}}. Markings: {{markings}}. Contact: {{contact}}.\n{_RECEIPT}",
        times=("start", "end", "due"), countries=("country",)),
    "hns4d.changed.site": Template(
        f"Changed humanitarian notification {{reference}} from {{organisation}}, replacing what was sent before: "
        f"a humanitarian site in {{country}}, {{name}} ({{function}}), at {{point}}, {{occupancy}} people, from "
        f"{{start}} to {{end}}.\n{_RECEIPT}", times=("start", "end", "due"), countries=("country",)),
    "hns4d.cancelled": Template(
        f"Humanitarian notification {{reference}} from {{organisation}} ({{name}}, {{country}}) is cancelled."
        f"\n{_RECEIPT}", times=("due",), countries=("country",)),
    "hns4d.review": Template(
        "Humanitarian notification {reference} from {organisation} to review: {name} ({country}), from {start} to "
        "{end}. Check it with the submitter if needed, then press Send to the parties: each party of the country is "
        "asked to acknowledge receipt.", times=("start", "end"), countries=("country",)),
    "hns4d.refused": Template("Humanitarian notification {reference} was not sent: {problems}"),
    "hns4d.silence": Template(
        "{party} has not acknowledged receipt of humanitarian notification {reference} ({name}, {country}), sent "
        "{sent}; receipt was asked for by {due}. Please follow up with them.",
        times=("sent", "due"), countries=("country",)),
    "hns4d.figures": Template(
        "Humanitarian notifications in {country}, {period}, for the CMCS desk only. Sent to the parties: {notified}. "
        "Receipt acknowledged: {acknowledged}, {on_time} of them by the deadline. Silent past the deadline: "
        "{silent}. Incidents: {incidents}.\nPer party: sent / acknowledged / by the deadline / median hours to "
        "acknowledge / silent / incidents\n{parties}", countries=("country",), periods=("period",)),
    "telegram.unlinked.revoked": Template(
        "Your Telegram account is no longer linked to the CMCoord roster: the CMCS desk removed the link, so I will "
        "not show roster information here any more. If you think this is a mistake, please write to the CMCS desk."),
    "telegram.unlinked.replaced": Template(
        "Your CMCoord roster profile is now linked to another Telegram account, so this one no longer is. If you did "
        "not do this, please tell the CMCS desk at once."),
    "telegram.confirmed": Template(
        "The CMCS desk confirmed your Telegram account: it is now linked to the CMCoord roster. Send /help to see "
        "what I can do."),
}

# The handover note's sections, as its successor reads them (msgctxt "section").
NOTE_SECTIONS = ("Key counterparts", "Open access or notification issues", "Recurring meetings", "Where files live",
                 "Advice")
NOTE_EMPTY = "(empty)"
ROLE_NAMES = {"cmcoord_officer": "CMCoord officer", "focal_point": "focal point", "surge": "surge",
              "regional_adviser": "regional adviser", "cmcs_desk": "CMCS desk"}

# Button labels the services send (their English label is the msgid, in msgctxt "button").
BUTTONS = ("Acknowledge", "Acknowledge all", "Acknowledge receipt", "Send to the parties", "Write it now", "Confirm", "Change the date", "I'll join", "Can't join")
CALL_TITLE = "{region} regional CMCoord call"
# Why a person could not be reached, as the desk's summary lists it after their name: "Awa Traoré (blocked;
# e-mailed)" (msgctxt "reason"; a refusal's own words after a colon stay as the server wrote them).
REASONS = ("no Telegram link", "blocked", "chat not found", "refused", "failed", "e-mailed", "no e-mail address",
           "e-mail refused")
REASON_SEPARATORS = {"fr": " ; ", "ar": "؛ "}
REASON_COLONS = {"fr": " : "}
# The digest's headings, table columns and fixed lines (msgctxt "digest").
DIGEST_WORDS = ("In numbers", "New lessons", "Field observations", "After action reviews", "Lessons identified",
                "Lessons learned", "New lessons by theme", "No new lessons in this period.", "Not yet tagged",
                "New lessons by region", "Region", "Observations", "AARs", "Due", "Submitted", "Completion",
                "Overdue", "Other countries", "none due", "Trends", "No notable trends in this period.",
                "lesson identified", "lesson learned")


def babel_locale(locale: str) -> str:
    return BABEL_LOCALES.get(locale, locale)


def zone(name: str | None) -> ZoneInfo:
    """The time zone of that name; UTC for none, or for a name the tz database does not know."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def region_name(code: str, locale: str) -> str:
    region = REGIONS.get(code)
    return translations(DOMAIN, locale).pgettext(REGION, region.name) if region else code


def call_title(region: str, locale: str) -> str:
    return translations(DOMAIN, locale).pgettext(REGION, CALL_TITLE).format(region=region_name(region, locale))


def period_name(label: str, locale: str) -> str:
    """A period as its reader writes it: a quarter ("2026 Q3") by the locale ("3e trimestre 2026",
    "الربع الثالث 2026"); English, and any other period, as labelled."""
    found = re.fullmatch(r"(\d{4}) Q([1-4])", label)
    if found is None or locale == DEFAULT:
        return label
    return format_date(date(int(found[1]), 3 * int(found[2]) - 2, 1), "QQQQ y", locale=babel_locale(locale))


def theme_name(code: str, locale: str) -> str:
    """A lessons theme by its name in `locale` (an unknown code as it is)."""
    return word(THEME, THEMES[code], locale) if code in THEMES else code


def local_time(at: datetime, timezone: str, locale: str = DEFAULT) -> str:
    """A call's start as its reader reads it: "Tuesday 03 March, 06:00 (Africa/Dakar)"."""
    local = at.astimezone(zone(timezone))
    pattern = TIME_PATTERNS.get(locale, TIME_PATTERNS[DEFAULT])
    if locale == "fr" and local.day == 1:
        pattern = pattern.replace("d MMMM", "d'er' MMMM")  # "le 1er mars"
    return f"{format_datetime(local, pattern, locale=babel_locale(locale))} ({timezone or 'UTC'})"


def long_date(day: date, locale: str = DEFAULT) -> str:
    shown = format_date(day, "long", locale=babel_locale(locale))
    return "1er" + shown[1:] if locale == "fr" and day.day == 1 else shown  # French writes the first "1er"


def reasons_in(line: str, locale: str) -> str:
    """A desk summary's line, "Name (blocked; e-mailed)", with the reasons in its brackets written in
    `locale`: the brackets are the first that open on a known reason (a name may have its own); a
    reason it does not know, and a refusal's own words after its colon, stay as they are."""
    if locale == DEFAULT:
        return line
    for opening in re.finditer(r" \(", line):
        inner = line[opening.end():]
        if inner.partition("; ")[0].partition(": ")[0] in REASONS:
            break
    else:
        return line
    closed = inner.endswith(")")  # a line cut at its length limit has lost its bracket
    shown = []
    for part in (inner[:-1] if closed else inner).split("; "):
        head, colon, detail = part.partition(": ")
        shown.append(word(REASON, head, locale) + (REASON_COLONS.get(locale, colon) + detail if colon else "")
                     if head in REASONS else part)
    return f"{line[:opening.start()]} ({REASON_SEPARATORS.get(locale, '; ').join(shown)}{')' if closed else ''}"


def button_label(label: str, locale: str) -> str:
    return translations(DOMAIN, locale).pgettext(BUTTON, label)


def word(context: str, english: str, locale: str) -> str:
    """A word of the catalogue by its context (a section title, a role's name) in `locale`."""
    return translations(DOMAIN, locale).pgettext(context, english)


def say(key: str, locale: str, timezone: str = "UTC", **params: str | int | date | datetime) -> str:
    """The template `key` written in `locale` for a reader in `timezone` (a text composed by the service
    itself from several, such as a summary)."""
    notice, text = english(key, **params)
    return render(notice, locale, timezone) or text


def _shown(template: Template, name: str, value: str | int, locale: str, timezone: str) -> str | int:
    if name in template.dates:
        return long_date(date.fromisoformat(str(value)), locale)
    if name in template.times:
        return local_time(datetime.fromisoformat(str(value)), timezone, locale)
    if name in template.countries:
        return country_label(str(value), locale)
    if name in template.regions:
        return region_name(str(value), locale)
    if name in template.calls:
        return call_title(str(value), locale)
    if name in template.roles:
        return word(ROLE, ROLE_NAMES.get(str(value), str(value)), locale)
    if name in template.periods:
        return period_name(str(value), locale)
    return value


def render(notice: Notice, locale: str, timezone: str = "UTC") -> str | None:
    """The notice in `locale` for a reader in `timezone`; None when this process cannot write it (an unknown
    key, a parameter missing or malformed): the sender's English text goes instead."""
    template = TEMPLATES.get(notice.key)
    if template is None or not template.placeholders() <= set(notice.params):
        return None
    catalogue = translations(DOMAIN, locale)
    try:
        values = {name: _shown(template, name, value, locale, timezone) for name, value in notice.params.items()}
        if template.plural is not None and template.count is not None:
            text = catalogue.npgettext(notice.key, template.text, template.plural, int(notice.params[template.count]))
        else:
            text = catalogue.pgettext(notice.key, template.text)
        return text.format(**values)
    except (ValueError, TypeError, KeyError, IndexError):
        return None


def english(key: str, **params: str | int | date | datetime) -> tuple[Notice, str]:
    """A notice from Python values (dates and date-times as ISO), and its English text for the request."""
    notice = Notice(key=key, params={k: v.isoformat() if isinstance(v, date | datetime) else v
                                     for k, v in params.items()})
    text = render(notice, DEFAULT)
    if text is None:
        raise ValueError(f"notice {key!r}: unknown key or missing parameters")
    return notice, text


def messages() -> Iterable[tuple[str, str | tuple[str, str]]]:
    """(msgctxt, msgid) of every text of the catalogue: templates, button labels, region names."""
    for key, template in TEMPLATES.items():
        yield key, (template.text, template.plural) if template.plural else template.text
    for label in BUTTONS:
        yield BUTTON, label
    yield REGION, CALL_TITLE
    for region in REGIONS.values():
        yield REGION, region.name
    for role in ROLE_NAMES.values():
        yield ROLE, role
    for title in (*NOTE_SECTIONS, NOTE_EMPTY):
        yield SECTION, title
    for name in THEMES.values():
        yield THEME, name
    for text in DIGEST_WORDS:
        yield DIGEST, text
    for reason in REASONS:
        yield REASON, reason


def write_template(path: str) -> None:
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import write_po

    catalog = Catalog(project="CMCoord Hub", domain=DOMAIN)
    for context, msgid in messages():
        catalog.add(msgid, context=context)
    with open(path, "wb") as f:
        write_po(f, catalog, width=100, omit_header=True)


if __name__ == "__main__":
    write_template(sys.argv[1])
