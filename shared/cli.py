"""The `cmcoord` command. Each service adds its own sub-commands through the
`cmcoord.cli` entry-point group, so this module imports no service."""

from __future__ import annotations

import json
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from shared.clock_cli import app as clock_app
from shared.home import StoreMissing, record_home, recorded_home, recorded_home_file, refuse_missing_stores

if TYPE_CHECKING:
    from shared.settings import CommonSettings

app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                  help="CMCoord Hub: roster, notifications, regional calls and lessons.")
_home_from_record = False  # CMCOORD_HOME was not set: this process took the home `cmcoord up` recorded
# The commands whose job may be to make their service's store (besides `up`): a first import starts a roster,
# `migrate` readies a store before the service's first start, a region's call may be set before notify starts.
MAY_CREATE_STORE = {("roster", "import"), ("calls", "set"),
                    *((service, "migrate") for service in ("roster", "notify", "lessons", "hns4d", "bot"))}


@app.callback()
def _home(ctx: typer.Context) -> None:
    """Every command but `up` works on the stack `cmcoord up` runs: CMCOORD_HOME if set, else the home
    `up` recorded, else ./.cmcoord; and, unless its job is to make one, none of them makes an empty store
    where it finds none."""
    global _home_from_record
    group = ctx.invoked_subcommand
    if group == "up":
        return
    if not os.environ.get("CMCOORD_HOME") and (home := recorded_home()) is not None:
        os.environ["CMCOORD_HOME"] = str(home)  # every service's settings read it
        _home_from_record = True
    if (group, _command_after(group)) not in MAY_CREATE_STORE:
        ctx.call_on_close(refuse_missing_stores())  # for this command only (tests run commands in-process)


def _words(argv: list[str]) -> list[str]:
    """The command line's words that are not options: the group, then its command (groups take no options
    before it)."""
    return [arg for arg in argv if not arg.startswith("-")]


def _command_after(group: str | None) -> str | None:
    """The command named after `group` on the command line."""
    words = _words(sys.argv[1:])
    return words[words.index(group) + 1] if group in words and words.index(group) + 1 < len(words) else None


def store_missing_line(exc: StoreMissing) -> str:
    """One line: where the store was looked for, why there, and how to point at the right one."""
    home = Path(os.environ.get("CMCOORD_HOME") or ".cmcoord").resolve()
    if exc.path.resolve().parent != home:
        why = "the folder its CMCOORD_<SERVICE>_DATABASE_URL names"
    elif _home_from_record:
        why = f"the home the last `cmcoord up` recorded in {recorded_home_file()}"
    elif os.environ.get("CMCOORD_HOME"):
        why = "CMCOORD_HOME"
    else:
        why = "./.cmcoord under the current folder: CMCOORD_HOME is not set and no `cmcoord up` recorded a home"
    return (f"error: no store at {exc.path} (home: {why}); set CMCOORD_HOME to the folder `cmcoord up` names in its "
            "ready line (or run `cmcoord up` first); nothing was created")


@app.command()
def up(
    demo: bool = typer.Option(False, help="load the sample roster once the services are ready"),
    nats_port: int = typer.Option(4222, help="nats-server client port (loopback only)"),
    nats_http_port: int = typer.Option(8222, help="nats-server monitoring port"),
    health_port_base: int = typer.Option(8101, help="first service health port; the others follow"),
    sandbox_port: int = typer.Option(8081, help="the local Telegram sandbox (when TELEGRAM_BOT_TOKEN is not set)"),
    mail_port: int = typer.Option(8025, help="the sandbox's mail catcher (SMTP on loopback), which notify e-mails "
                                  "those Telegram cannot reach; 0: no e-mail"),
    public_port: int = typer.Option(8091, help="notify's public listener: calendar feeds and e-mail answer links; "
                                    "0: none"),
    speed: float | None = typer.Option(None, help="training: run the services' clock this many times faster than "
                                       "real time (60: a minute is an hour); `cmcoord clock` moves it on"),
    ready_timeout: float | None = typer.Option(
        None, min=0.1, help="seconds nats-server, then every service, may take to be ready before `up` gives up "
        "and says what is slow (default CMCOORD_UP_READY_TIMEOUT_SECONDS, 300)"),
) -> None:
    """Run nats-server and every service on this machine until Ctrl-C."""
    import asyncio

    from shared.settings import CommonSettings
    from shared.supervisor import NotReady, Supervisor, UpSettings

    settings = CommonSettings()
    _training_clock(settings, speed)
    up_settings = UpSettings() if ready_timeout is None else UpSettings(ready_timeout_seconds=ready_timeout)
    record_home(settings.home)  # `cmcoord` commands run later from any folder find this stack
    after = [[sys.executable, "-m", "shared.cli", "roster", "import", "--sample"]] if demo else []
    supervisor = Supervisor(
        home=settings.home.resolve(), nats_port=nats_port, nats_http_port=nats_http_port,
        health_port_base=health_port_base,
        sandbox_port=None if os.environ.get("TELEGRAM_BOT_TOKEN") else sandbox_port, settings=up_settings,
        mail_port=mail_port or None, public_port=public_port or None,
    )
    try:
        code = asyncio.run(supervisor.run(after_ready=after))
    except NotReady as exc:  # everything it started is stopped already
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    raise typer.Exit(code)


def _training_clock(settings: CommonSettings, speed: float | None) -> None:
    """With --speed, every service reads one clock file (kept in the home folder unless CMCOORD_CLOCK_FILE names
    one), and the rotation scan accepts the jumps a trainer makes. Without it, a training clock left in the home
    folder by an earlier session is removed: the services run on the system clock again."""
    from shared.clock import MAX_SPEED, set_shared_clock
    from shared.clock_cli import CLOCK_FILE

    left = settings.home / CLOCK_FILE
    if speed is None:
        if settings.clock_file is None and left.exists():
            left.unlink()
        return
    if not 0 < speed <= MAX_SPEED:
        raise typer.BadParameter(f"the speed must be above 0 and at most {MAX_SPEED:g}", param_hint="--speed")
    path = (settings.clock_file or left).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    set_shared_clock(path, speed=speed)
    os.environ["CMCOORD_CLOCK_FILE"] = str(path)
    os.environ.setdefault("CMCOORD_ROSTER_SCAN_MAX_JUMP_HOURS", "0")  # a trainer's jump is no misset clock


@app.command()
def status() -> None:
    """Each service's health and each consumer's lag."""
    import asyncio

    from shared.settings import CommonSettings
    from shared.status import collect_status

    settings = CommonSettings()
    state_file = settings.home / "up.json"
    state = json.loads(state_file.read_text()) if state_file.exists() else None
    ok = asyncio.run(collect_status(settings=settings, state=state, out=typer.echo))
    raise typer.Exit(0 if ok else 1)


@app.command("events")
def events_catalogue(
    fmt: str = typer.Option("markdown", "--format", help="markdown or json"),
    write: Path | None = typer.Option(None, help="write a JSON Schema and an example per event into this folder"),
) -> None:
    """The catalogue of events and queries (request/reply, `cmcoord.<owner>.svc.<verb>`) from their schemas."""
    from shared.contracts.catalogue import query_catalogue, query_contract_files
    from shared.events import catalogue, contract_files

    if write is not None:
        write.mkdir(parents=True, exist_ok=True)
        files = {**contract_files(), **query_contract_files()}
        for name, text in files.items():
            (write / name).write_text(text)
        typer.echo(f"wrote {len(files)} files to {write}")
        return
    items = catalogue()
    queries = query_catalogue()
    if fmt == "json":
        typer.echo(json.dumps([*items, *queries], indent=2, default=str))
        return
    typer.echo("| subject | description |\n|---|---|")
    for item in [*items, *queries]:
        typer.echo(f"| `{item['subject']}` | {item['description'] or ''} |")


@app.command("nats-auth")
def nats_auth(
    out: Path | None = typer.Option(None, help="write here (deploy/nats/auth.conf) instead of printing"),
    markdown: bool = typer.Option(False, help="print the permissions as the table of deploy/README.md instead"),
) -> None:
    """nats-server's users and permissions: the operator and one user per service (passwords from the server's
    environment)."""
    from shared.permissions import authorization, markdown_table

    if markdown:
        typer.echo(markdown_table(), nl=False)
        return
    text = "# Generated by `cmcoord nats-auth` from shared/permissions.py: edit that, not this.\n" + authorization()
    if out is None:
        typer.echo(text, nl=False)
        return
    out.write_text(text)
    typer.echo(f"wrote {out}")


app.add_typer(clock_app, name="clock")

deadletter_app = typer.Typer(no_args_is_help=True, help="Dead letters: list, show, and give them back to their "
                             "consumer once the cause is fixed.")
app.add_typer(deadletter_app, name="deadletter")


async def _operator_connection(error: type[Exception]) -> Any:
    """A NATS connection with the operator's identity (OperatorSettings); `error` with a clear
    message when NATS cannot be reached or refuses the identity."""
    import asyncio

    import nats
    import nats.errors

    from shared.bus.connection import any_listening, inbox_prefix
    from shared.permissions import ADMIN
    from shared.settings import OperatorSettings

    async def quiet(_exc: Exception) -> None:
        pass  # the failure is reported once, by the caller, not as a traceback per attempt

    settings = OperatorSettings()
    url = settings.nats_url
    auth = settings.nats_auth()
    try:
        if not await any_listening(url):  # nats-py's first connect would try forever
            raise ConnectionRefusedError("nothing listening")
        return await asyncio.wait_for(nats.connect([u.strip() for u in url.split(",")], connect_timeout=2,
                                                   allow_reconnect=False, error_cb=quiet,
                                                   inbox_prefix=inbox_prefix(ADMIN), **auth), timeout=10)
    except (OSError, TimeoutError, nats.errors.Error) as exc:
        who = f" as {auth['user']}" if auth.get("user") else " (no user: set CMCOORD_ADMIN_NATS_USER and _PASSWORD)"
        raise error(f"cannot reach NATS at {url}{who} ({exc or type(exc).__name__})") from exc


def _dead_letters(work: Any) -> Any:
    """Run `work(js)` against CMCOORD_NATS_URL as the operator; a clear message and exit code 1 when it fails."""
    import asyncio

    import nats.errors

    from shared.deadletter import DeadLetterError

    async def run() -> Any:
        nc = await _operator_connection(DeadLetterError)
        try:
            return await work(nc.jetstream())
        except nats.errors.Error as exc:
            raise DeadLetterError(f"NATS refused or did not answer: {exc or type(exc).__name__}") from exc
        finally:
            await nc.close()

    try:
        return asyncio.run(run())
    except DeadLetterError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


class InitError(Exception):
    """`cmcoord nats-init` could not do its work; the message says why."""


@app.command("nats-init")
def nats_init(
    replicas: int = typer.Option(1, min=1, max=5, help="replicas of every stream and the documents bucket "
                                 "(3 on a three-node cluster)"),
    ack_wait: float = typer.Option(30.0, min=1, help="seconds a message may stay unacknowledged before it is "
                                   "redelivered (a consumer that died holding it)"),
) -> None:
    """Create or update the streams, durable consumers and documents bucket (the operator's identity).

    The services only check that these exist; run this before the first start and after an upgrade.
    """
    import asyncio

    import nats.errors

    from shared.topology import init_topology_when_ready

    async def run() -> list[str]:
        nc = await _operator_connection(InitError)
        try:
            return await init_topology_when_ready(nc.jetstream(), replicas=replicas, ack_wait=ack_wait)
        except nats.errors.Error as exc:
            raise InitError(f"NATS refused: {exc or type(exc).__name__}") from exc
        finally:
            await nc.close()

    try:
        done = asyncio.run(run())
    except InitError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    for line in done:
        typer.echo(line)


@deadletter_app.command("list")
def deadletter_list(
    consumer: str | None = typer.Option(None, help="only this durable consumer's (e.g. notify--on_requests)"),
    fmt: str = typer.Option("table", "--format", help="table or json"),
) -> None:
    """Every dead letter, oldest first: its number, when, which consumer, the event and why."""
    from shared.deadletter import list_dead_letters

    if fmt not in ("table", "json"):
        typer.echo(f"error: --format is table or json, not {fmt}", err=True)
        raise typer.Exit(2)
    letters = _dead_letters(lambda js: list_dead_letters(js, consumer=consumer))
    if fmt == "json":
        typer.echo(json.dumps([letter.summary() for letter in letters], indent=2))
        return
    if not letters:
        typer.echo("no dead letters")
        return
    for letter in letters:
        item = letter.summary()
        when = (item["dead_lettered_at"] or "")[:19]
        typer.echo(f"{item['seq']:>6}  {when}  {item['consumer']:<28} {item['event_type'] or '(malformed)':<32} "
                   f"{item['event_id'] or '-'}  {item['reason'][:120]}")


@deadletter_app.command("show")
def deadletter_show(
    seq: int = typer.Argument(..., help="the dead letter's number, from `cmcoord deadletter list`"),
) -> None:
    """One dead letter in full: why, where from, its headers and the message."""
    from shared.deadletter import get_dead_letter

    letter = _dead_letters(lambda js: get_dead_letter(js, seq))
    typer.echo(json.dumps(letter.full(), indent=2, ensure_ascii=False))


@deadletter_app.command("replay")
def deadletter_replay(
    seqs: list[int] = typer.Argument(None, help="dead letters to replay, by number"),
    consumer: str | None = typer.Option(None, help="every dead letter of this durable consumer"),
    all_: bool = typer.Option(False, "--all", help="every dead letter"),
) -> None:
    """Give dead letters back to the consumer that gave up on them, once the cause is fixed.

    Only that consumer sees the event again; what was replayed is removed, so a second replay does nothing.
    """
    from shared.deadletter import DeadLetterError, get_dead_letter, list_dead_letters, replay

    chosen = sum([bool(seqs), consumer is not None, all_])
    if chosen != 1:
        typer.echo("error: name dead letters by number, or give --consumer, or --all (one of them)", err=True)
        raise typer.Exit(2)

    async def work(js: Any) -> tuple[int, list[str]]:
        if seqs:
            letters = [await get_dead_letter(js, seq) for seq in seqs]
        else:
            letters = await list_dead_letters(js, consumer=consumer)
        errors: list[str] = []
        for letter in letters:
            try:
                at = await replay(js, letter)
            except DeadLetterError as exc:  # the others still go
                errors.append(str(exc))
                continue
            typer.echo(f"replayed {letter.seq} to {letter.consumer} ({letter.stream} #{at})")
        return len(letters), errors

    total, errors = _dead_letters(work)
    for error in errors:
        typer.echo(f"error: {error}", err=True)
    if total == 0:
        typer.echo("no dead letters to replay")
    raise typer.Exit(1 if errors else 0)


def _add_service_commands(argv: list[str]) -> None:
    """Each service's commands, from the `cmcoord.cli` entry points: only the group the command line
    names (`cmcoord roster …` imports the roster's modules, not the bot's), none for a command of
    this module (`up`, `status`, `clock` …), every group for the overview (`cmcoord --help`, a typo)."""
    named = next(iter(_words(argv)), None)
    own = {info.name or typer.main.get_command_name(info.callback.__name__) for info in app.registered_commands
           if info.callback is not None} | {info.name for info in app.registered_groups}
    if named in own:
        return
    groups = {ep.name: ep for ep in entry_points(group="cmcoord.cli")}
    chosen = [groups[named]] if named in groups else list(groups.values())
    for ep in chosen:
        app.add_typer(ep.load(), name=ep.name)


def main() -> None:
    _add_service_commands(sys.argv[1:])
    try:
        app()
    except StoreMissing as exc:  # raised wherever a command opens a store: one line, not a traceback
        typer.echo(store_missing_line(exc), err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
