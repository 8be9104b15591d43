"""Who may publish and subscribe to what on NATS: one user per service, and the operator.

Generated from the bus's topology (shared/topology.py), so a service can do its own
work and nothing else:
- publish its own events (`cmcoord.<service>.…`), but no replay (only the operator
  gives dead letters back), and ask the queries and send the commands it needs
  (lessons asks notify to tell people);
- use the JetStream API only for its own work: info on its own stream, info, pull and
  ack on its own durables, dead-letter what its own durables give up on. No event
  stream or durable is created, changed, purged or deleted by a service, and no
  message of another service's stream is read: `cmcoord nats-init`, run with the
  operator's identity, declares the topology. The one exception is the documents
  bucket (files sent with notifications): its readers (lessons, the bot) open
  short-lived consumers on it and may list stream names, as nats-py's object store
  does, and its writer (lessons) may purge it (a file stored again replaces its chunks);
- receive replies only in its own inboxes (`_INBOX.<service>.…`, nats-py's
  `inbox_prefix`) and answer only requests made to it (`allow_responses`).
The operator (`admin`) has no limits: `cmcoord nats-init`, `deadletter`, `status`.

`deploy/nats/auth.conf` is generated from this (`cmcoord nats-auth`); passwords come
from the server's environment (`$CMCOORD_<IDENTITY>_NATS_PASSWORD`).
"""

from __future__ import annotations

from shared.bus import DEAD_LETTER_PREFIX, OWNERS, inbox_prefix
from shared.events import REGISTRY
from shared.topology import DOCUMENT_READERS, DOCUMENT_WRITERS, DOCUMENTS_BUCKET, DOCUMENTS_STREAM, durables_of

ADMIN = "admin"
SERVICES = OWNERS

# The queries each service asks of the others, verb by verb (`cmcoord.<other>.svc.<verb>`):
# notify cannot read the directory or register an account, only what it tells people needs.
QUERIES: dict[str, tuple[str, ...]] = {
    "roster": (),
    "notify": ("roster.recipients", "roster.post_holder", "roster.handover_note"),
    "lessons": ("roster.recipients", "roster.rights"),
    "hns4d": ("roster.recipients",  # names of parties' liaisons and of submitters, for the texts
              "roster.rights"),  # who may see a record: the submitter's organisation, the country's officers…
    "bot": ("roster.person_by_telegram", "roster.register", "roster.contacts", "roster.counterparts",
            "roster.rights", "roster.recipients",  # /send: who may send to a region, and who is in it
            "notify.calls", "notify.pending", "notify.message_status", "lessons.search", "lessons.aars",
            "notify.call_summary", "hns4d.submit", "hns4d.mine"),
}
ANSWERS = ("roster", "notify", "lessons", "hns4d")  # services answering queries (`cmcoord.<service>.svc.<verb>`)


def commands_of(service: str) -> list[str]:
    """The commands `service` sends to another service: events of another's subject naming it a sender."""
    return sorted(cls.subject() for cls in REGISTRY.values() if service in cls.senders and cls.owner() != service)
def _documents(service: str) -> list[str]:
    subjects: list[str] = []
    if service in DOCUMENT_READERS:
        s = DOCUMENTS_STREAM
        # nats-py's object store finds the bucket's stream by subject (STREAM.NAMES: names only)
        subjects += ["$JS.API.STREAM.NAMES", f"$JS.API.STREAM.INFO.{s}", f"$JS.API.STREAM.MSG.GET.{s}",
                     f"$JS.API.DIRECT.GET.{s}.>",
                     f"$JS.API.CONSUMER.CREATE.{s}", f"$JS.API.CONSUMER.CREATE.{s}.>",
                     f"$JS.API.CONSUMER.DELETE.{s}.>", f"$JS.FC.{s}.>"]
    if service in DOCUMENT_WRITERS:
        # a file stored again under its name replaces the old chunks (a purge of the bucket's stream)
        subjects += [f"$O.{DOCUMENTS_BUCKET}.>", f"$JS.API.STREAM.PURGE.{DOCUMENTS_STREAM}"]
    return subjects


def permissions_of(service: str) -> dict[str, list[str]]:
    """The subjects `service`'s user may publish to, subscribe to, and may not publish to."""
    asks = [f"cmcoord.{owner}.svc.{verb}" for owner, _, verb in (q.partition(".") for q in QUERIES[service])]
    publish = [f"cmcoord.{service}.>", *commands_of(service), *asks, f"$JS.API.STREAM.INFO.{service.upper()}"]
    for d in durables_of(service):
        publish += [f"$JS.API.CONSUMER.INFO.{d.stream}.{d.name}", f"$JS.API.CONSUMER.MSG.NEXT.{d.stream}.{d.name}",
                    f"$JS.ACK.{d.stream}.{d.name}.>", f"{DEAD_LETTER_PREFIX}.{d.name}"]
    publish += _documents(service)
    subscribe = [f"{inbox_prefix(service)}.>"]
    if service in ANSWERS:
        # its queries, and the micro framework's discovery ($SRV.PING, $SRV.INFO.<name>, …)
        subscribe += [f"cmcoord.{service}.svc.>", "$SRV.*", f"$SRV.*.{service}", f"$SRV.*.{service}.>"]
    return {"publish": publish, "subscribe": subscribe, "deny_publish": [f"cmcoord.{service}.replay.>"]}


PERMISSIONS: dict[str, dict[str, list[str]]] = {service: permissions_of(service) for service in SERVICES}


def _quoted(subjects: list[str]) -> str:
    return ", ".join(f'"{s}"' for s in subjects)


def authorization(passwords: dict[str, str] | None = None) -> str:
    """An `authorization { users = [...] }` block for nats-server: the operator and each service's
    user with its permissions; a password given here, else the server's environment variable."""
    def password(identity: str) -> str:
        if passwords and identity in passwords:
            return '"' + passwords[identity].replace("\\", "\\\\").replace('"', '\\"') + '"'
        return f"$CMCOORD_{identity.upper()}_NATS_PASSWORD"

    lines = ["authorization {", "  users = [",
             f'    {{ user: "{ADMIN}", password: {password(ADMIN)} }}  # the operator: cmcoord nats-init, deadletter']
    for service, p in PERMISSIONS.items():
        lines += [f'    {{ user: "{service}", password: {password(service)}, permissions: {{',
                  f"        publish: {{ allow: [{_quoted(p['publish'])}], deny: [{_quoted(p['deny_publish'])}] }}",
                  f"        subscribe: {{ allow: [{_quoted(p['subscribe'])}] }}"]
        if service in ANSWERS:
            lines.append("        allow_responses: true")
        lines.append("    } }")
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


def markdown_table() -> str:
    """The permissions as a table for the deployment guide."""
    rows = ["| user | may publish | may subscribe |", "|---|---|---|",
            "| `admin` | everything (the operator: `cmcoord nats-init`, `deadletter`, `status`) | everything |"]
    for service, p in PERMISSIONS.items():
        deny = "; not " + ", ".join(f"`{s}`" for s in p["deny_publish"])
        answers = "; replies to requests made to it" if service in ANSWERS else ""
        rows.append(f"| `{service}` | {', '.join(f'`{s}`' for s in p['publish'])}{deny}{answers} | "
                    f"{', '.join(f'`{s}`' for s in p['subscribe'])} |")
    return "\n".join(rows) + "\n"
