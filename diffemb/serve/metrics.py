"""Prometheus metrics of one server, in a registry of its own (several apps can live in one test process)."""

from __future__ import annotations

from typing import Any

from diffemb.extras import require

_PURPOSE = "diffemb serve"
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)


class ServerMetrics:
    """Requests, texts, tokens, queue depth, pass sizes and latencies, exposed at `GET /metrics`."""

    def __init__(self) -> None:
        prometheus = require("prometheus_client", "serve", _PURPOSE)
        self._prometheus = prometheus
        self.registry = prometheus.CollectorRegistry()
        registry = self.registry
        self.requests = prometheus.Counter(
            "diffemb_requests", "HTTP requests answered", ["path", "status"], registry=registry
        )
        self.latency = prometheus.Histogram(
            "diffemb_request_seconds", "Time from request to response", ["path"], buckets=_LATENCY_BUCKETS,
            registry=registry,
        )  # fmt: skip
        self.texts = prometheus.Counter("diffemb_texts", "Texts embedded", ["role"], registry=registry)
        self.tokens = prometheus.Counter("diffemb_tokens", "Text tokens embedded (bodies)", registry=registry)
        self.queue_texts = prometheus.Gauge("diffemb_queue_texts", "Texts waiting for a pass", registry=registry)
        self.queue_requests = prometheus.Gauge(
            "diffemb_queue_requests", "Requests waiting for a pass", registry=registry
        )
        self.rejected = prometheus.Counter(
            "diffemb_rejected", "Requests refused with 429 because the queue was full", registry=registry
        )
        self.pass_texts = prometheus.Histogram(
            "diffemb_pass_texts", "Texts per encoder call (all requests of one pass)", buckets=_SIZE_BUCKETS,
            registry=registry,
        )  # fmt: skip
        self.pass_requests = prometheus.Histogram(
            "diffemb_pass_requests", "Requests packed into one encoder call", buckets=_SIZE_BUCKETS, registry=registry
        )
        self.pass_seconds = prometheus.Histogram(
            "diffemb_pass_seconds", "Duration of one encoder call", buckets=_LATENCY_BUCKETS, registry=registry
        )
        self.queue_seconds = prometheus.Histogram(
            "diffemb_queue_seconds", "Time a request waited before its pass started", buckets=_LATENCY_BUCKETS,
            registry=registry,
        )  # fmt: skip

    def exposition(self) -> tuple[bytes, str]:
        """The text format Prometheus scrapes, and its content type."""
        prometheus: Any = self._prometheus
        return prometheus.generate_latest(self.registry), prometheus.CONTENT_TYPE_LATEST
