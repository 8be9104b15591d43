"""Who may publish and subscribe to what on NATS: one user per service.

A service publishes its own events (`cmcoord.<owner>.>`), asks the queries it
needs (`cmcoord.<other>.svc.<verb>`), sends the commands it owns the right to
(lessons asks notify to tell people), acknowledges and pulls through the
JetStream API, and answers its own queries. Nobody else's events can be
forged: the roster's user cannot publish `cmcoord.notify.…` or `cmcoord.lessons.…`.

The JetStream API (`$JS.API.>`) stays open to every service user: streams and
consumers are created by the services themselves at start. `deploy/nats/auth.conf`
is generated from this table (`cmcoord nats-auth`); passwords come from the
server's environment (`$CMCOORD_<SERVICE>_NATS_PASSWORD`).
"""

from __future__ import annotations

from shared.events import SUBJECT_ROOT

COMMON_PUBLISH = ("$JS.API.>", "$JS.ACK.>", "$JS.FC.>", "_INBOX.>", "$SRV.>", f"{SUBJECT_ROOT}.deadletter.>")
COMMON_SUBSCRIBE = ("_INBOX.>", "$SRV.>")

PERMISSIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "roster": {"publish": ("cmcoord.roster.>",), "subscribe": ("cmcoord.roster.svc.>",)},
    "notify": {"publish": ("cmcoord.notify.>", "cmcoord.roster.svc.>"), "subscribe": ("cmcoord.notify.svc.>",)},
    "lessons": {"publish": ("cmcoord.lessons.>", "cmcoord.notify.notification.requested.v1", "cmcoord.roster.svc.>",
                            "$O.DOCUMENTS.>"),
                "subscribe": ("cmcoord.lessons.svc.>",)},
    "bot": {"publish": ("cmcoord.bot.>", "cmcoord.roster.svc.>", "cmcoord.notify.svc.>", "cmcoord.lessons.svc.>"),
            "subscribe": ()},
}


def permissions_of(service: str) -> dict[str, list[str]]:
    p = PERMISSIONS[service]
    return {"publish": [*p["publish"], *COMMON_PUBLISH], "subscribe": [*p["subscribe"], *COMMON_SUBSCRIBE]}


def authorization(passwords: dict[str, str] | None = None) -> str:
    """An `authorization { users = [...] }` block for nats-server: each service's user and
    permissions; a password given here, else the server's environment variable."""
    lines = ["authorization {", "  users = ["]
    for service in PERMISSIONS:
        p = permissions_of(service)
        password = f'"{passwords[service]}"' if passwords and service in passwords \
            else f"$CMCOORD_{service.upper()}_NATS_PASSWORD"
        allow = {kind: ", ".join(f'"{s}"' for s in subjects) for kind, subjects in p.items()}
        lines += [f'    {{ user: "{service}", password: {password}, permissions: {{',
                  f"        publish: {{ allow: [{allow['publish']}] }}",
                  f"        subscribe: {{ allow: [{allow['subscribe']}] }}", "    } }"]
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"
