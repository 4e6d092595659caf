"""Prometheus metrics of one server: per-route latency and errors, and the engine's state.

Request latency and errors are recorded as requests finish; the queue, batch
sizes, padding and compile/capture counts are read from ``MicroBatcher.stats()`` and
``Pipeline.stats()`` when ``/metrics`` is scraped, so no engine code knows Prometheus.
Each server has its own registry (no process-global state).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
# MicroBatcher.stats() counts exported as pipejit_requests_<name>_total
BATCHER_COUNTS = (
    "submitted",
    "completed",
    "failed",
    "timed_out",
    "cancelled",
    "rejected",
    "splits",
)
PIPELINE_COUNTS = (
    "compiles",
    "captures",
    "graph_hits",
    "oom_splits",
    "decode_steps",
    "real_tokens",
    "padded_tokens",
)


class ServerMetrics:
    """The registry, the per-request instruments, and ``render()`` for ``/metrics``."""

    def __init__(self, batcher_stats: Callable[[], dict], pipeline_stats: Callable[[], dict]):
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "pipejit_http_request_duration_seconds",
            "Time from a request's arrival to its answer, per route and status",
            ["route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "pipejit_http_errors",
            "Requests answered with an error, per route and error type",
            ["route", "error_type"],
            registry=self.registry,
        )
        self.registry.register(_EngineCollector(batcher_stats, pipeline_stats))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _EngineCollector(Collector):
    def __init__(self, batcher_stats: Callable[[], dict], pipeline_stats: Callable[[], dict]):
        self.batcher_stats = batcher_stats
        self.pipeline_stats = pipeline_stats

    def collect(self) -> Iterator[Any]:
        batcher = self.batcher_stats()
        pipe = self.pipeline_stats()
        yield GaugeMetricFamily(
            "pipejit_queue_depth", "Inputs waiting in the micro-batcher", batcher["queue_depth"]
        )
        yield GaugeMetricFamily(
            "pipejit_queue_capacity", "The micro-batcher's queue limit", batcher["max_queue"]
        )
        for name in BATCHER_COUNTS:
            yield CounterMetricFamily(
                f"pipejit_requests_{name}", f"Micro-batcher inputs {name}", value=batcher[name]
            )
        yield _batch_histogram(batcher["batch_sizes"])
        for name in PIPELINE_COUNTS:
            yield CounterMetricFamily(f"pipejit_{name}", f"Pipeline {name}", value=pipe[name])
        yield GaugeMetricFamily(
            "pipejit_padding_ratio",
            "Share of the tokens run that were padding, since start",
            pipe["padding_ratio"],
        )


def _batch_histogram(sizes: dict[int, int]) -> HistogramMetricFamily:
    """The micro-batcher's batch-size counts as a Prometheus histogram."""
    buckets = []
    for bound in BATCH_BUCKETS:
        buckets.append((str(bound), sum(n for s, n in sizes.items() if s <= bound)))
    total = sum(sizes.values())
    buckets.append(("+Inf", total))
    return HistogramMetricFamily(
        "pipejit_batch_size",
        "Inputs per micro-batch taken from the queue",
        buckets=buckets,
        sum_value=sum(s * n for s, n in sizes.items()),
    )
