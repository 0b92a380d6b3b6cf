"""Every Prometheus metric the gateway exports, in one place.

Names follow Prometheus conventions: a `serving_` namespace (vLLM owns `vllm:`), base units,
`_total` counters, histograms rather than averaged gauges. Labels are bounded: `route` is a
configured route name (or "unknown"), never a client-supplied string, key or prompt.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# Labels are bounded by design (above); this only guards the cache against a mistake.
_MAX_CHILDREN = 10_000


class Metrics:
    """Built once per app with its own registry, so tests can build many apps side by side."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self._children: dict[tuple[Any, tuple[str, ...]], Any] = {}
        r = self.registry
        self.requests = Counter(
            "serving_requests",
            "Requests answered, by route, serving target, client dialect and HTTP status",
            ["route", "target", "dialect", "status"],
            registry=r,
        )
        self.request_duration = Histogram(
            "serving_request_duration_seconds",
            "Time from request arrival to the last byte of the response",
            ["route", "dialect", "stream"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.time_to_first_token = Histogram(
            "serving_time_to_first_token_seconds",
            "Time from request arrival to the first streamed event sent to the client",
            ["route", "dialect"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "serving_tokens",
            "Tokens processed, by route, target and direction (input or output)",
            ["route", "target", "direction"],
            registry=r,
        )
        self.upstream_attempts = Counter(
            "serving_upstream_attempts",
            "Attempts at upstream targets, by outcome (ok or the error class)",
            ["target", "outcome"],
            registry=r,
        )
        self.fallbacks = Counter(
            "serving_fallbacks",
            "Times a request moved on to the next target of its chain, by reason",
            ["route", "reason"],
            registry=r,
        )
        self.circuit_state = Gauge(
            "serving_circuit_state",
            "Circuit breaker state per target: 0 closed, 1 half-open, 2 open",
            ["target"],
            registry=r,
        )
        self.cost = Counter(
            "serving_cost_usd",
            "Estimated cost of answered requests in US dollars",
            ["route", "target"],
            registry=r,
        )
        self.saved = Counter(
            "serving_saved_usd",
            "Estimated savings of answers served locally: the route's first hosted target's price"
            " for the same tokens minus the local cost, in US dollars",
            ["route", "target"],
            registry=r,
        )
        self.retries = Counter(
            "serving_retries",
            "Retries of the same target before the chain moved on, by failure reason",
            ["target", "reason"],
            registry=r,
        )
        self.skips = Counter(
            "serving_target_skips",
            "Targets passed over without an attempt, by reason"
            " (circuit_open, unhealthy, private, capability, context_window)",
            ["route", "target", "reason"],
            registry=r,
        )
        self.circuit_transitions = Counter(
            "serving_circuit_transitions",
            "Circuit breaker state changes per target, by the state entered",
            ["target", "state"],
            registry=r,
        )
        self.private_requests = Counter(
            "serving_private_requests",
            "Requests routed as private, by what marked them (header, key or a detector name)",
            ["route", "reason"],
            registry=r,
        )
        self.privacy_blocked = Counter(
            "serving_privacy_blocked",
            "Private requests refused because no local target could serve them",
            ["route"],
            registry=r,
        )
        self.escalations = Counter(
            "serving_escalations",
            "Requests that complexity routing moved to another route's chain",
            ["route", "to"],
            registry=r,
        )
        self.endpoint_healthy = Gauge(
            "serving_endpoint_healthy",
            "Background health of each pool endpoint: 1 healthy, 0 not",
            ["upstream", "endpoint"],
            registry=r,
        )
        self.health_checks = Counter(
            "serving_health_checks",
            "Background health probes of pool endpoints, by result",
            ["upstream", "endpoint", "result"],
            registry=r,
        )
        self.privacy_doubts = Counter(
            "serving_privacy_doubts",
            "Requests treated as private because the privacy scan could not complete, by why"
            " (too_large, timeout, decode_error, detector_error, facts_error)",
            ["route", "reason"],
            registry=r,
        )
        self.privacy_scan_seconds = Histogram(
            "serving_privacy_scan_seconds",
            "Time the privacy detectors took on one request's text",
            buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30),
            registry=r,
        )
        self.max_tokens_lowered = Counter(
            "serving_max_tokens_lowered",
            "Attempts whose output budget was lowered to fit the target's context window",
            ["route", "target"],
            registry=r,
        )
        self.prompt_tokens_estimated = Histogram(
            "serving_prompt_tokens_estimated",
            "Prompt size estimated before dispatch, in tokens",
            ["route"],
            buckets=(64, 256, 1024, 4096, 16384, 32768, 65536, 131072, 262144, 1048576),
            registry=r,
        )
        # Streams (#12/#13): continuations of broken streams, and streams the gateway ended.
        self.continuations_attempted = Counter(
            "serving_stream_continuations_attempted",
            "Broken streams whose answer was asked of another target from the partial answer",
            ["route", "target"],
            registry=r,
        )
        self.continuations_succeeded = Counter(
            "serving_stream_continuations_succeeded",
            "Continuations that finished the client's answer",
            ["route", "target"],
            registry=r,
        )
        self.streams_ended = Counter(
            "serving_streams_ended_by_gateway",
            "Streams the gateway ended itself, by why (deadline: timeouts.total passed;"
            " client_idle: the client stopped reading)",
            ["route", "reason"],
            registry=r,
        )
        # Admission control and drain (admission.py, drain.py).
        self.upstream_in_flight = Gauge(
            "serving_upstream_in_flight",
            "Requests in flight to each upstream (holding an admission slot)",
            ["upstream"],
            registry=r,
        )
        self.upstream_queued = Gauge(
            "serving_upstream_queued",
            "Requests waiting for an admission slot of each upstream",
            ["upstream"],
            registry=r,
        )
        self.admission_rejected = Counter(
            "serving_admission_rejected",
            "Requests refused by admission control, by scope (an upstream name, or gateway)"
            " and why (queue_full, queue_timeout, in_flight, draining)",
            ["scope", "reason"],
            registry=r,
        )
        self.in_flight = Gauge(
            "serving_in_flight_requests",
            "API requests in flight in this gateway process (streams included)",
            registry=r,
        )
        self.draining = Gauge(
            "serving_draining", "1 while the gateway drains after SIGTERM, else 0", registry=r
        )
        # Per-key limits (policy/limits.py). `key` is the key's configured name (or its place
        # in the config), never the key: bounded by the config.
        self.key_limited = Counter(
            "serving_key_limited",
            "Requests refused by their API key's limits, by key name and limit"
            " (requests, tokens, budget)",
            ["key", "reason"],
            registry=r,
        )
        self.key_denied = Counter(
            "serving_key_denied",
            "Requests refused because their API key may not use the route asked for",
            ["key", "route"],
            registry=r,
        )
        self.key_limit_errors = Counter(
            "serving_key_limit_errors",
            "Times the limits store (in-process or Redis) could not answer, by operation",
            ["operation"],
            registry=r,
        )

        self.route_decisions = Counter(
            "serving_route_decisions",
            "Requests whose chain a route's rules chose, by the rule that fired"
            ' ("none": the route\'s own chain) and the route it named',
            ["route", "rule", "to"],
            registry=r,
        )
        self.classifier_decisions = Counter(
            "serving_classifier_decisions",
            "Complexity classifications, by classifier (features, trained, model, forced,"
            " fallback) and tier",
            ["route", "classifier", "tier"],
            registry=r,
        )
        self.classifier_fallbacks = Counter(
            "serving_classifier_fallbacks",
            "Model-classifier calls that fell back to the features classifier, by why"
            " (timeout, error)",
            ["route", "reason"],
            registry=r,
        )

    def child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, cached. prometheus_client validates, stringifies and takes
        a lock on every labels() call: a quarter of the lifecycle's own per-request time
        (docs/benchmarks.md, scripts/bench/micro_lifecycle.py). Children are never removed
        from these metrics, so a cached one stays the registry's."""
        key = (metric, labels)
        found = self._children.get(key)
        if found is None:
            found = metric.labels(*labels)
            if len(self._children) < _MAX_CHILDREN:
                self._children[key] = found
        return found

    def render(self) -> bytes:
        return generate_latest(self.registry)
