"""The contracts between services: the events' JSON schemas and examples (the *.json files here,
from the shared.events package) and the typed request/reply queries, one module per answering service
(`roster`, `notify`, `lessons`; the base in `query`), with their schemas and examples beside them."""
