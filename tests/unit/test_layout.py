"""Every service has the same shape, and events and queries are its only coupling to the others.

A newcomer finds a new handler's place the same way in each service: `handlers` (every
`on_*` and every use case that changes the store or emits), `consumers` (which durable takes
which event, to which handler), `queries` (what it answers), `jobs` (its periodic work),
`store` (reads and repository functions), `models`, `config`, `bootstrap` (the one place the
parts are put together), `cli` and `__main__`, beside its own pure rules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SERVICES_DIR = Path(__file__).resolve().parents[2] / "services"
SERVICES = ("roster", "notify", "lessons", "bot")
EVERY = {"__main__", "config", "bootstrap", "models", "store", "handlers", "consumers", "jobs", "cli"}
ANSWERING = {"roster", "notify", "lessons"}  # the bot asks; it answers no queries


def _modules(service: str) -> set[str]:
    folder = SERVICES_DIR / service
    return {p.stem for p in folder.glob("*.py")} | {p.name for p in folder.iterdir()
                                                    if p.is_dir() and (p / "__init__.py").exists()}


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_has_the_same_modules(service: str) -> None:
    wanted = EVERY | ({"queries"} if service in ANSWERING else set())
    missing = wanted - _modules(service)
    assert not missing, f"services/{service} lacks {sorted(missing)}"


@pytest.mark.parametrize("service", SERVICES)
def test_a_store_reads_and_keeps_records_and_emits_no_event(service: str) -> None:
    """What changes state and says so in an event is a handler's: no store calls `emit`."""
    store = SERVICES_DIR / service / "store.py"
    emits = [node.lineno for node in ast.walk(ast.parse(store.read_text()))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "emit"]
    assert not emits, f"services/{service}/store.py emits at lines {emits}"


def test_a_service_and_its_commands_open_its_store_one_way() -> None:
    """`store.open_store`: the service's bootstrap and its CLIs write events under the same source."""
    def opens(node: ast.AST) -> bool:
        return isinstance(node, ast.Call) and (
            (isinstance(node.func, ast.Name) and node.func.id == "Database")
            or (isinstance(node.func, ast.Attribute) and node.func.attr == "Database"))

    opened = [f"{path.relative_to(SERVICES_DIR.parent)}:{node.lineno}" for service in SERVICES
              for path in (SERVICES_DIR / service).rglob("*.py") if path != SERVICES_DIR / service / "store.py"
              for node in ast.walk(ast.parse(path.read_text())) if opens(node)]
    assert not opened, f"a store opened apart from store.open_store: {opened}"


def _imported(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_no_service_imports_another() -> None:
    folders = [p for p in SERVICES_DIR.iterdir() if p.is_dir() and (p / "__init__.py").exists()]
    assert {p.name for p in folders} >= set(SERVICES)
    crossings = []
    for folder in folders:
        for path in folder.rglob("*.py"):
            for name in _imported(path):
                parts = name.split(".")
                if parts[0] == "services" and len(parts) > 1 and parts[1] != folder.name:
                    crossings.append(f"{path.relative_to(SERVICES_DIR.parent)} imports {name}")
    assert not crossings, "\n".join(sorted(crossings))


def test_shared_code_imports_no_service() -> None:
    shared = SERVICES_DIR.parent / "shared"
    crossings = [f"{path.relative_to(shared.parent)} imports {name}" for path in shared.rglob("*.py")
                 for name in _imported(path) if name.split(".")[0] == "services"]
    assert not crossings, "\n".join(sorted(crossings))
