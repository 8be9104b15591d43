"""Prometheus figures on each service's health port (`GET /metrics`).

Every service: events handled, failed and dead-lettered per consumer, and each
consumer's lag (messages not yet delivered, and delivered but not acknowledged),
read from JetStream at scrape time. A service adds its own: notifications by
state (notify), delivery latency (bot), AARs overdue (lessons). And the process
itself (`process_*`: CPU seconds, resident memory, open file descriptors, start
time; `python_info`) with `cmcoord_build_info` (service, package version, Python)
for dashboards and alerts (deploy/prometheus, deploy/grafana). One registry per
service object, so several services can share a process (the tests do): each
then shows the same process figures.
"""

from __future__ import annotations

import platform
from collections.abc import Awaitable, Callable, Iterator
from importlib import metadata
from typing import TYPE_CHECKING

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from shared.bus import Bus, ConsumerRunner

log = structlog.get_logger("metrics")
PREFIX = "cmcoord"
PACKAGE = "cmcoord-hub"


def package_version() -> str:
    """The installed package's version (what `pip install` put there), "unknown" when run from a bare tree."""
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return "unknown"


class ServiceMetrics:
    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry()
        self.consumers: list[ConsumerRunner] = []
        self.bus: Bus | None = None
        self._lag: dict[str, tuple[int, int]] = {}
        self._refresh: list[Callable[[], Awaitable[None]]] = []
        self.registry.register(_Consumers(self))
        ProcessCollector(registry=self.registry)  # process_cpu_seconds_total, _resident_memory_bytes, _open_fds...
        PlatformCollector(registry=self.registry)  # python_info
        self.gauge("build_info", "Always 1: the service, its package version and Python",
                   ("service", "version", "python")).labels(service, package_version(),
                                                            platform.python_version()).set(1)

    def gauge(self, name: str, documentation: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(f"{PREFIX}_{name}", documentation, labels, registry=self.registry)

    def counter(self, name: str, documentation: str, labels: tuple[str, ...] = ()) -> Counter:
        return Counter(f"{PREFIX}_{name}", documentation, labels, registry=self.registry)

    def histogram(self, name: str, documentation: str, buckets: tuple[float, ...]) -> Histogram:
        return Histogram(f"{PREFIX}_{name}", documentation, buckets=buckets, registry=self.registry)

    def on_scrape(self, refresh: Callable[[], Awaitable[None]]) -> None:
        """Run `refresh` before each scrape (figures counted in the store)."""
        self._refresh.append(refresh)

    async def render(self) -> tuple[bytes, str]:
        for refresh in self._refresh:
            try:
                await refresh()
            except Exception as exc:  # the store away: the other figures still go out
                log.warning("metric_refresh_failed", error=str(exc) or type(exc).__name__)
        await self._consumer_lag()
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    async def _consumer_lag(self) -> None:
        if self.bus is None or not self.bus.connected:
            return
        for consumer in self.consumers:
            try:
                info = await self.bus.js.consumer_info(consumer.stream, consumer.durable, timeout=2)
            except Exception as exc:  # not bound yet, or NATS away
                log.warning("consumer_lag_unavailable", consumer=consumer.durable, error=str(exc) or type(exc).__name__)
                continue
            self._lag[consumer.durable] = (int(info.num_pending or 0), int(info.num_ack_pending or 0))


class _Consumers:
    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        handled = CounterMetricFamily(f"{PREFIX}_events_handled", "Events applied, per consumer", labels=["consumer"])
        failed = CounterMetricFamily(f"{PREFIX}_events_failed", "Handler failures (retried), per consumer",
                                     labels=["consumer"])
        dead = CounterMetricFamily(f"{PREFIX}_events_dead_lettered", "Events given up and dead-lettered",
                                   labels=["consumer"])
        pending = GaugeMetricFamily(f"{PREFIX}_consumer_pending", "Messages not yet delivered to the consumer",
                                    labels=["consumer"])
        unacked = GaugeMetricFamily(f"{PREFIX}_consumer_ack_pending", "Messages delivered, not yet acknowledged",
                                    labels=["consumer"])
        for consumer in self.metrics.consumers:
            handled.add_metric([consumer.durable], consumer.stats.handled)
            failed.add_metric([consumer.durable], consumer.stats.failed)
            dead.add_metric([consumer.durable], consumer.stats.dead_lettered)
            if consumer.durable in self.metrics._lag:
                waiting, in_hand = self.metrics._lag[consumer.durable]
                pending.add_metric([consumer.durable], waiting)
                unacked.add_metric([consumer.durable], in_hand)
        yield from (handled, failed, dead, pending, unacked)
