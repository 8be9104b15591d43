"""The event bus over NATS JetStream, and request/reply over core NATS.

- `connect` reconnects forever (nats-py's defaults give up after ~2 minutes);
- `ensure_streams` creates or updates each owner's file-backed stream with an
  explicit duplicate window (run by `cmcoord nats-init`, shared/topology.py);
- `Bus.publish` sends an envelope with `Nats-Msg-Id` = event id, so JetStream
  drops a re-publish of the same event inside the window;
- `ConsumerRunner` is a durable pull consumer with explicit acks. A transient
  failure (`is_transient`: a database locked or away, NATS timing out) is
  retried with a capped backoff for as long as it lasts and never dead-lettered;
  a message that fails validation, has no handler, or fails with an unknown
  error `max_deliver` times is copied to the dead-letter stream with the reason
  and terminated, and the runner keeps consuming. `cmcoord deadletter replay`
  gives a dead letter back to its consumer on the consumer's own replay subject.
  The runner binds to a durable `cmcoord nats-init` declared (it creates none), and
  dead-letters an event whose source does not own its subject. It re-binds its
  pull subscription after every reconnect, and whenever
  fetches stop answering, so it resumes after a nats-server restart of any
  length (see nats.py issue #504).

One module per concern; what the services use is importable from `shared.bus`:
- `connection`: `connect`, `Bus` (publish, publish many, ask a query, close);
- `rpc`: answering a query as JSON (`json_endpoint`, `answers_finished` at stop), `QueryError`, `QueryFailure`;
- `streams`: the streams and durables JetStream is configured with, `TopologyMissing`;
- `pull`: `PullRequests`, a durable's fetches each with its own reply inbox;
- `consumer`: `ConsumerRunner`, and `delivery_count` (how many times the message being handled was delivered);
- `failures`: `TransientError`, `PermanentError`, `is_transient`.
"""

from shared.bus.connection import Bus, connect, inbox_prefix
from shared.bus.consumer import BatchHandler, ConsumerRunner, ConsumerStats, Handler, delivery_count
from shared.bus.failures import PermanentError, TransientError, is_transient
from shared.bus.pull import PullRequests
from shared.bus.rpc import QueryError, QueryFailure, QueryHandler, answers_finished, decode_reply, json_endpoint
from shared.bus.streams import (
    DEAD_LETTER_PREFIX,
    OWNERS,
    StreamSpec,
    TopologyMissing,
    all_streams,
    dead_letter_stream,
    durable_config,
    ensure_streams,
    explain_missing,
    filters_of,
    owner_stream,
    raise_if_placement_pending,
    replay_subject,
)

__all__ = [
    "DEAD_LETTER_PREFIX", "OWNERS", "BatchHandler", "Bus", "ConsumerRunner", "ConsumerStats", "Handler",
    "PermanentError", "PullRequests", "QueryError", "QueryFailure", "QueryHandler", "StreamSpec", "TopologyMissing",
    "TransientError", "all_streams", "answers_finished", "connect", "dead_letter_stream", "decode_reply", "delivery_count",
    "durable_config", "ensure_streams", "explain_missing", "filters_of", "inbox_prefix", "is_transient",
    "json_endpoint", "owner_stream", "raise_if_placement_pending", "replay_subject",
]
