"""Prometheus metrics of the service (GET /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

registry = CollectorRegistry()

connections = Gauge(
    "hadir_live_connections", "Open live-ingest websocket connections", registry=registry
)
panel_connections = Gauge(
    "hadir_panel_connections", "Open instructor panel websocket connections", registry=registry
)
events_total = Counter(
    "hadir_events_total", "Events journaled, by source", ["source"], registry=registry
)
duplicates_total = Counter(
    "hadir_duplicate_events_total", "Events re-sent with an id already journaled", registry=registry
)
rejected_total = Counter(
    "hadir_rejected_frames_total", "Frames or events refused, by code", ["code"], registry=registry
)
closes_total = Counter(
    "hadir_ws_closes_total",
    "Live connections closed by the server, by code",
    ["code"],
    registry=registry,
)
ack_latency = Histogram(
    "hadir_ack_latency_seconds",
    "Per journal write: time from receiving its oldest frame to its events being durable",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=registry,
)
journal_batch = Histogram(
    "hadir_journal_batch_events",
    "Events per journal write (one Redis round trip)",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500),
    registry=registry,
)
webhooks_total = Counter(
    "hadir_webhooks_total",
    "Platform webhooks, by provider and outcome",
    ["provider", "outcome"],
    registry=registry,
)
