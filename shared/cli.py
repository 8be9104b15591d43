"""The `cmcoord` command. Each service adds its own sub-commands through the
`cmcoord.cli` entry-point group, so this module imports no service."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path

import typer

from shared.settings import CommonSettings

app = typer.Typer(no_args_is_help=True, help="CMCoord Hub: roster, notifications, regional calls and lessons.")


@app.command()
def up(
    demo: bool = typer.Option(False, help="load the sample roster once the services are ready"),
    nats_port: int = typer.Option(4222, help="nats-server client port (loopback only)"),
    nats_http_port: int = typer.Option(8222, help="nats-server monitoring port"),
    health_port_base: int = typer.Option(8101, help="first service health port; the others follow"),
    sandbox_port: int = typer.Option(8081, help="the local Telegram sandbox (when TELEGRAM_BOT_TOKEN is not set)"),
) -> None:
    """Run nats-server and every service on this machine until Ctrl-C."""
    from shared.supervisor import Supervisor

    settings = CommonSettings()
    after = [[sys.executable, "-m", "shared.cli", "roster", "import", "--sample"]] if demo else []
    supervisor = Supervisor(
        home=settings.home.resolve(), nats_port=nats_port, nats_http_port=nats_http_port,
        health_port_base=health_port_base,
        sandbox_port=None if os.environ.get("TELEGRAM_BOT_TOKEN") else sandbox_port,
    )
    raise typer.Exit(asyncio.run(supervisor.run(after_ready=after)))


@app.command()
def status() -> None:
    """Each service's health and each consumer's lag."""
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
    """The event catalogue generated from the schemas."""
    from shared.events import catalogue, contract_files

    if write is not None:
        write.mkdir(parents=True, exist_ok=True)
        for name, text in contract_files().items():
            (write / name).write_text(text)
        typer.echo(f"wrote {len(contract_files())} files to {write}")
        return
    items = catalogue()
    if fmt == "json":
        typer.echo(json.dumps(items, indent=2, default=str))
        return
    typer.echo("| subject | description |\n|---|---|")
    for item in items:
        typer.echo(f"| `{item['subject']}` | {item['description'] or ''} |")


def _add_service_commands() -> None:
    for ep in entry_points(group="cmcoord.cli"):
        app.add_typer(ep.load(), name=ep.name)


def main() -> None:
    _add_service_commands()
    app()


if __name__ == "__main__":
    main()
