"""The gateway's one typed settings object, parsed from a YAML file and built once.

The file is the whole configuration (docs/gateway-config.md is its reference). Secrets never
live in it: upstream keys are named by environment variable (`api_key_env`) or by a mounted
file (`api_key_file`) and read when the app is built.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Dialect = Literal["openai", "anthropic", "gemini", "responses"]
Locality = Literal["local", "hosted"]
# Why a chain moves on (policy/fallback.py classifies every upstream failure into one of these).
FailureReason = Literal[
    "connect",  # could not connect, or the connection was reset before an answer
    "timeout",  # no first byte in time, or the upstream's own 408/504
    "rate_limited",  # 429
    "overloaded",  # 529
    "server_error",  # other 5xx, 409, malformed or wrongly typed answers, a stream cut early
    "context_window",  # the upstream said the prompt does not fit its context window
    "capability",  # the target cannot do what the request needs (e.g. tools on a plain engine)
    "upstream_auth",  # 401/403 from the upstream: the gateway's key for it is wrong
    "not_found",  # 404 from the upstream: the target's model is not served there
    "invalid_request",  # other 4xx: the client's request is at fault
    "saturated",  # the gateway's own concurrency limit for the upstream is full (admission.py)
]
DEFAULT_FALLBACK_ON: tuple[FailureReason, ...] = (
    "connect",
    "timeout",
    "rate_limited",
    "overloaded",
    "server_error",
    "context_window",
    "capability",
    "upstream_auth",
    "not_found",
    "saturated",
)
DEFAULT_RETRY_ON: tuple[FailureReason, ...] = (
    "connect",
    "rate_limited",
    "overloaded",
    "server_error",
)
PII_DETECTORS = ("email", "phone", "card", "iban", "national_id", "secret")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Timeouts(_Strict):
    """Seconds. `first_byte` bounds the wait for response headers; `first_token` the wait for a
    stream's first content (text, a tool call, a refusal; a role-only opening chunk does not
    count), from the request's start, and defaults to `first_byte`. Passing either moves the
    chain on, before the client has seen a byte."""

    connect: float = Field(default=5.0, gt=0)
    first_byte: float = Field(default=60.0, gt=0)
    first_token: float | None = Field(default=None, gt=0)
    total: float = Field(default=600.0, gt=0)
    stream_idle: float = Field(default=60.0, gt=0)

    @property
    def first_token_limit(self) -> float:
        return self.first_token if self.first_token is not None else self.first_byte


class Retry(_Strict):
    """Retries on the same target before moving on (exponential backoff with jitter).

    The n-th retry waits `min(backoff_max, backoff_base * 2**n)`, minus up to `jitter` of it at
    random; an upstream's `retry-after`/`retry-after-ms` raises the wait to what it asked for,
    and when it asks for more than `retry_after_cap` the chain moves on instead of waiting.
    """

    attempts: int = Field(default=1, ge=0, le=10)  # retries after the first try
    backoff_base: float = Field(default=0.25, ge=0)
    backoff_max: float = Field(default=4.0, ge=0)
    jitter: float = Field(default=0.5, ge=0, le=1)
    retry_after_cap: float = Field(default=5.0, ge=0)
    retry_on: list[FailureReason] = Field(default_factory=lambda: list(DEFAULT_RETRY_ON))


class Circuit(_Strict):
    """A breaker per target: closed → open on a failure rate over a rolling window (once
    `min_requests` were seen in it), or on `consecutive_failures` in a row → half-open after
    `cooldown` → closed when probes succeed."""

    enabled: bool = True
    window: float = Field(default=30.0, gt=0)  # seconds
    min_requests: int = Field(default=5, ge=1)
    failure_rate: float = Field(default=0.5, gt=0, le=1)
    cooldown: float = Field(default=15.0, gt=0)  # seconds open before half-open probes
    half_open_probes: int = Field(default=1, ge=1)  # concurrent probes; all must succeed
    # Open at once after this many failures in a row (0: off), whatever the window holds: a
    # target that just died would otherwise take the window's earlier successes to outvote.
    consecutive_failures: int = Field(default=5, ge=0)


class HealthCheck(_Strict):
    """Background probes of every endpoint of a pool (GET root + `health_path`)."""

    enabled: bool | None = None  # default: on for local upstreams, off for hosted ones
    interval: float = Field(default=5.0, gt=0)
    timeout: float = Field(default=2.0, gt=0)
    unhealthy_after: int = Field(default=2, ge=1)  # consecutive failed probes
    healthy_after: int = Field(default=1, ge=1)  # consecutive good probes


class Limits(_Strict):
    """Admission control for one upstream (gateway/admission.py): at most `max_concurrency`
    requests in flight to it (and `per_endpoint` to each endpoint of a pool), up to `queue`
    more waiting for a slot for at most `queue_timeout` seconds; beyond that the target is
    `saturated` and the chain moves on. None: no limit (the gateway-wide one still holds)."""

    max_concurrency: int | None = Field(default=None, ge=1)
    per_endpoint: int | None = Field(default=None, ge=1)
    queue: int = Field(default=0, ge=0)
    queue_timeout: float = Field(default=1.0, ge=0)
    retry_after: float = Field(default=1.0, gt=0)  # what a saturated answer tells clients


class LocalCost(_Strict):
    """What a self-hosted answer costs: GPU time at an hourly price and an assumed throughput.

    cost = gpu_hour_usd / 3600 * (input_tokens / input_tokens_per_second
                                  + output_tokens / output_tokens_per_second)
    The throughputs are aggregate (batched) figures for the whole replica, not one stream's.
    """

    gpu_hour_usd: float = Field(default=2.0, ge=0)
    input_tokens_per_second: float = Field(default=10000.0, gt=0)
    output_tokens_per_second: float = Field(default=1000.0, gt=0)


class Price(_Strict):
    """US dollars per million tokens."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)


class Upstream(_Strict):
    """One upstream service: a hosted API or a pool of local engine endpoints."""

    name: str = Field(min_length=1)
    dialect: Dialect = "openai"
    base_url: str | None = None
    endpoints: list[str] = Field(default_factory=list)
    locality: Locality = "local"
    api_key_env: str | None = None
    api_key_file: str | None = None
    timeouts: Timeouts = Timeouts()
    health_path: str = "/health"
    health: HealthCheck = HealthCheck()
    # Per-upstream overrides of the top-level `policy` defaults (None: use the default).
    retry: Retry | None = None
    circuit: Circuit | None = None
    fallback_on: list[FailureReason] | None = None
    local_cost: LocalCost | None = None  # local upstreams only; default `cost.local`
    # An `openai` upstream that also serves `/responses` (vLLM 0.32, hosted OpenAI): Responses
    # requests are forwarded to it untouched instead of translated to Chat Completions.
    responses_api: bool = False
    limits: Limits = Limits()

    @property
    def health_checked(self) -> bool:
        if self.health.enabled is None:
            return self.locality == "local"
        return self.health.enabled

    @model_validator(mode="after")
    def _has_endpoint(self) -> Upstream:
        if not self.base_url and not self.endpoints:
            raise ValueError("an upstream needs `base_url` or a non-empty `endpoints` list")
        return self

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https:// (got {value!r})")
        return value.rstrip("/") if value else value

    @property
    def urls(self) -> list[str]:
        """Every endpoint of the upstream, `base_url` first."""
        out = [self.base_url] if self.base_url else []
        return out + [u.rstrip("/") for u in self.endpoints]

    def api_key(self) -> str | None:
        """Read the key from the named env var or file; None when neither is set."""
        if self.api_key_env:
            value = os.environ.get(self.api_key_env)
            if value:
                return value
        if self.api_key_file:
            path = Path(self.api_key_file)
            if path.is_file():
                return path.read_text().strip()
        return None


class Capabilities(_Strict):
    """What a target can serve; None: the default (the catalog profile of a local model, the
    hosted table in policy/capabilities.yaml, else assumed able)."""

    tools: bool | None = None
    vision: bool | None = None
    audio: bool | None = None
    json_schema: bool | None = None


class Target(_Strict):
    """One step of a route's chain: a model on an upstream."""

    upstream: str
    model: str
    context_window: int | None = Field(default=None, gt=0)
    price: Price | None = None  # overrides the price table for this target (hosted only)
    # Whether this target can continue another target's broken stream from an assistant
    # prefill; None: the dialect's default (policy/continuation.py).
    continuation: Literal["prefill", "none"] | None = None
    capabilities: Capabilities = Capabilities()

    @property
    def label(self) -> str:
        """The bounded name used in headers, metrics, circuits and logs."""
        return f"{self.upstream}/{self.model}"


class Escalate(_Strict):
    """Complexity routing, declared: a request that matches goes to another route's chain.

    It matches when its estimated prompt has at least `min_prompt_tokens` tokens, or when
    `tools` is true and the request declares tools. Escalation is one hop (the other route's
    own `escalate` is not followed)."""

    to: str = Field(min_length=1)
    min_prompt_tokens: int | None = Field(default=None, gt=0)
    tools: bool = False


class Continuation(_Strict):
    """Mid-stream continuation on the next target when a stream breaks after content was sent."""

    enabled: bool = True
    max_continuations: int = Field(default=1, ge=0, le=5)
    # Seconds for the whole answer, continuations included, from the request's start; default:
    # the first target's `timeouts.total`.
    deadline: float | None = Field(default=None, gt=0)


Quality = Literal["basic", "good", "best"]
Tier = Literal["simple", "complex"]
Task = Literal["coding", "image", "audio", "long_document", "structured_extraction", "tool_use"]
Need = Literal["tools", "vision", "audio", "json_schema"]


class When(_Strict):
    """A rule's conditions; all that are set must hold (none set: always). Lists match any of
    their values, except `needs`, which needs all of them."""

    quality: list[Quality] | None = None  # the caller's hint (header, else the key's default)
    cost_sensitive: bool | None = None
    task: list[Task] | None = None  # any detected task among these
    needs: list[Need] | None = None  # every capability listed is needed by the request
    min_prompt_tokens: int | None = Field(default=None, ge=0)  # estimated prompt >= this
    max_prompt_tokens: int | None = Field(default=None, ge=0)  # estimated prompt <= this
    tier: list[Tier] | None = None  # the complexity classifier's tier (or the forced one)


class Rule(_Strict):
    """When the conditions hold, the request is served by another route's chain."""

    name: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9_.-]*$")  # a metric label
    when: When = When()
    to: str = Field(min_length=1)  # a route's model name


class Classifier(_Strict):
    """The complexity classifier a route's `tier` conditions ask (only when one is reached)."""

    kind: Literal["features", "model", "trained"] = "features"
    # score >= threshold: complex (default: features 0.4, trained 0.5; docs/routing.md)
    threshold: float | None = Field(default=None, ge=0, le=1)
    weights: str | None = None  # trained: a weights file (default: the bundled one)
    upstream: str | None = None  # model: a local upstream serving `model`
    model: str | None = None
    timeout: float = Field(default=0.5, gt=0)  # model: seconds before falling back to features

    @model_validator(mode="after")
    def _model_kind(self) -> Classifier:
        if self.kind == "model" and (self.upstream is None or self.model is None):
            raise ValueError("a `model` classifier needs `upstream` and `model`")
        return self


class Route(_Strict):
    """A model name clients ask for, its aliases, and the ordered chain that serves it."""

    model: str = Field(min_length=1)
    aliases: list[str] = Field(default_factory=list)
    targets: list[Target] = Field(min_length=1)
    escalate: Escalate | None = None
    continuation: Continuation = Continuation()
    rules: list[Rule] = Field(default_factory=list)  # first match names the chain (routing.md)
    classifier: Classifier = Classifier()


class RouteHints(_Strict):
    """Caller hints a key applies when its requests carry no header of their own."""

    quality: Quality | None = None
    cost_sensitive: bool | None = None


class Routing(_Strict):
    """Rule-based routing: caller hint headers and the opt-in decision log."""

    quality_header: str = "x-serving-quality"
    cost_sensitive_header: str = "x-serving-cost-sensitive"
    tier_header: str = "x-serving-tier"  # forces the complexity tier: simple | complex
    decision_log: str | None = None  # a JSON-lines file of redacted decisions (never content)
    long_document_tokens: int = Field(default=32000, gt=0)  # a prompt this long: long_document


def read_secret(env: str | None, file: str | None) -> str | None:
    """A secret from the named env var, else from the mounted file; None when neither has it."""
    if env:
        value = os.environ.get(env, "").strip()
        if value:
            return value
    if file:
        path = Path(file)
        if path.is_file():
            return path.read_text().strip() or None
    return None


class ClientKey(_Strict):
    """A key clients present to the gateway, with its policy (docs/keys.md). The key is read
    from an env var or a mounted file, never written in the config; either may hold the key
    itself or its salted hash (`sha256$...`, from `serving keys hash`), and a hash may also be
    written here as `key_hash`, since it is no secret."""

    name: str | None = None  # shown in logs and metrics instead of the key
    key_env: str | None = None
    key_file: str | None = None
    key_hash: str | None = None
    private: bool = False  # every request with this key is private (local targets only)
    models: list[str] | None = None  # route names or aliases it may use (default: all)
    requests_per_minute: int | None = Field(default=None, gt=0)
    tokens_per_minute: int | None = Field(default=None, gt=0)  # input + output tokens
    monthly_budget_usd: float | None = Field(default=None, ge=0)  # from the cost meter
    route_hints: RouteHints = RouteHints()  # routing defaults for this key's requests

    @model_validator(mode="after")
    def _has_source(self) -> ClientKey:
        if not self.key_env and not self.key_file and not self.key_hash:
            raise ValueError("a client key needs `key_env`, `key_file` or `key_hash`")
        return self

    @field_validator("key_hash")
    @classmethod
    def _is_hash(cls, value: str | None) -> str | None:
        from serving.gateway.policy.keys import parse_hash

        if value is not None:
            parse_hash(value)  # KeyFormatError is a ValueError: a config error naming the field
        return value

    def read(self) -> str | None:
        """The stored value (a key or its hash): the env var, the file, else `key_hash`."""
        return read_secret(self.key_env, self.key_file) or self.key_hash


class Drain(_Strict):
    """Graceful shutdown on SIGTERM (gateway/drain.py): `/ready` fails at once; for `window`
    seconds the listener stays up and new requests get a 503 with `retry-after`; requests in
    flight may finish until `deadline` seconds after the signal, then any still running are
    ended with the dialect's error (event) and the exit status says so."""

    window: float = Field(default=5.0, ge=0)
    deadline: float = Field(default=30.0, ge=0)
    retry_after: float = Field(default=5.0, gt=0)

    @model_validator(mode="after")
    def _deadline_covers_window(self) -> Drain:
        if self.deadline < self.window:
            raise ValueError("drain.deadline must be at least drain.window")
        return self


class Server(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    max_body_bytes: int = Field(default=32 * 1024 * 1024, gt=0)
    api_keys_env: str | None = None  # comma-separated keys with the default (non-private) policy
    keys: list[ClientKey] = Field(default_factory=list)
    log_format: Literal["text", "json"] = "text"  # json: one object per line (docs/operations)
    # Requests in flight in the whole process (streams included); beyond it: the overload answer.
    max_in_flight: int = Field(default=4096, ge=1)
    overload_retry_after: float = Field(default=1.0, gt=0)
    drain: Drain = Drain()
    # Seconds a streamed answer waits on a client that stopped reading (its socket full) before
    # the gateway drops the connection and releases the upstream stream (#13).
    client_idle: float = Field(default=60.0, gt=0)


class Policy(_Strict):
    """Failure-handling defaults for every upstream (each may override them)."""

    fallback_on: list[FailureReason] = Field(default_factory=lambda: list(DEFAULT_FALLBACK_ON))
    retry: Retry = Retry()
    circuit: Circuit = Circuit()


class CustomDetector(_Strict):
    name: str = Field(min_length=1, pattern=r"^[a-z0-9_]+$")  # a metric label: keep it short
    pattern: str = Field(min_length=1)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        import re2

        from serving.gateway.policy.privacy import compile_custom

        try:
            compile_custom(value)  # RE2 keeps every scan linear in the text's length
        except re2.error as exc:
            raise ValueError(
                f"not a valid regular expression for RE2 (no lookarounds or backreferences): {exc}"
            ) from exc
        return value


class Privacy(_Strict):
    """When a request is private: it may only go to `local` targets, or fail closed (503)."""

    header: str = "x-serving-private"  # a request header; "true"/"1"/"yes" marks it private
    detect: bool = True  # scan request text for personal data and secrets
    detectors: list[str] = Field(default_factory=lambda: list(PII_DETECTORS))
    custom: list[CustomDetector] = Field(default_factory=list)
    # Fail closed: a text the scan cannot finish within these limits is private.
    max_scan_bytes: int = Field(default=32 * 1024 * 1024, ge=0)
    scan_timeout: float = Field(default=10.0, gt=0)  # seconds, per request
    inline_scan_bytes: int = Field(default=64 * 1024, ge=0)  # larger texts: a worker thread

    @field_validator("detectors")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(PII_DETECTORS))
        if unknown:
            raise ValueError(f"unknown detectors {unknown} (known: {', '.join(PII_DETECTORS)})")
        return value


class Context(_Strict):
    """Prompt-size routing: targets whose `context_window` cannot hold the prompt plus the
    requested output are skipped before any attempt."""

    enabled: bool = True
    bytes_per_token: float = Field(default=3.5, gt=0)  # estimate = ceil(body bytes / this)
    default_output_tokens: int = Field(default=256, ge=0)  # when the request sets no maximum
    tokenize_upstream: str | None = None  # a local engine whose /tokenize counts exactly
    tokenize_margin: float = Field(default=0.25, ge=0, le=1)  # count exactly only within this
    # Tokens one attachment (image, audio clip, document) costs, by the target's dialect.
    attachment_tokens: dict[str, int] = Field(
        default_factory=lambda: {"openai": 765, "anthropic": 1600, "gemini": 258}
    )


class Cost(_Strict):
    prices: dict[str, Price] = Field(default_factory=dict)  # model name -> price; adds/overrides
    local: LocalCost = LocalCost()


class Admin(_Strict):
    """The /admin router (circuit control for drills); absent unless enabled."""

    enabled: bool = False
    key_env: str | None = None
    key_file: str | None = None

    def read_key(self) -> str | None:
        return read_secret(self.key_env, self.key_file)


class Ops(_Strict):
    """Where `/metrics` and the detailed `/ready` are served. With `port`, they listen there
    (and the API port keeps only `/health` and a bare `/ready`); with a key (`key_env` /
    `key_file`), the API port serves them to requests that present it as a bearer token."""

    port: int | None = Field(default=None, ge=0, le=65535)
    host: str | None = None  # default: server.host
    key_env: str | None = None
    key_file: str | None = None

    def read_key(self) -> str | None:
        return read_secret(self.key_env, self.key_file)


class CounterStore(_Strict):
    """How per-key limits treat their store (Redis when `state.redis_url` is set)."""

    on_error: Literal["allow", "deny"] = "allow"  # store down: serve uncounted, or 503
    timeout: float = Field(default=0.25, gt=0)  # seconds per Redis call before on_error


class State(_Strict):
    """Shared state: conversation records (Responses `store`) and, with several replicas, the
    counters behind per-key limits and budgets. In-process/SQLite by default; Redis when
    `redis_url` (or `redis_url_env`) is set."""

    backend: Literal["sqlite", "redis"] = "sqlite"  # where conversations live
    sqlite_path: str | None = None  # default: <cache dir>/state/responses.sqlite3
    redis_url: str | None = None  # e.g. redis://redis:6379/0; prefer redis_url_env for a password
    redis_url_env: str | None = None  # an env var holding the URL (wins over redis_url)
    key_prefix: str = "serving:"
    retention_seconds: float = Field(default=30 * 24 * 3600.0, gt=0)
    max_record_bytes: int = Field(default=16 * 1024 * 1024, gt=0)  # larger turns are not stored
    store_private: bool = False  # store private conversations too (otherwise `store` is ignored)
    counters: CounterStore = CounterStore()  # per-key limits and budgets (state/counters.py)

    def read_redis_url(self) -> str | None:
        return read_secret(self.redis_url_env, None) or self.redis_url


class Settings(_Strict):
    """The whole gateway configuration."""

    server: Server = Server()
    upstreams: list[Upstream] = Field(min_length=1)
    routes: list[Route] = Field(min_length=1)
    policy: Policy = Policy()
    privacy: Privacy = Privacy()
    context: Context = Context()
    cost: Cost = Cost()
    admin: Admin = Admin()
    state: State = State()
    routing: Routing = Routing()
    ops: Ops = Ops()

    @model_validator(mode="after")
    def _references_resolve(self) -> Settings:
        names = [u.name for u in self.upstreams]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate upstream names: {', '.join(dupes)}")
        known = set(names)
        seen: set[str] = set()
        for i, route in enumerate(self.routes):
            for j, target in enumerate(route.targets):
                if target.upstream not in known:
                    raise ValueError(
                        f"routes[{i}].targets[{j}].upstream: unknown upstream {target.upstream!r}"
                        f" (known: {', '.join(sorted(known))})"
                    )
            for name in [route.model, *route.aliases]:
                if name in seen:
                    raise ValueError(f"routes[{i}]: model name {name!r} is defined twice")
                seen.add(name)
        for i, route in enumerate(self.routes):
            if route.escalate is not None and route.escalate.to not in {
                r.model for r in self.routes if r is not route
            }:
                raise ValueError(
                    f"routes[{i}].escalate.to: {route.escalate.to!r} is not another route's model"
                )
        _rules_resolve(self)
        tokenizer = self.context.tokenize_upstream
        if tokenizer is not None and tokenizer not in known:
            raise ValueError(f"context.tokenize_upstream: unknown upstream {tokenizer!r}")
        if self.admin.enabled and not (self.admin.key_env or self.admin.key_file):
            raise ValueError("admin.enabled needs admin.key_env or admin.key_file")
        return self

    @model_validator(mode="after")
    def _keys_resolve(self) -> Settings:
        names = [k.name for k in self.server.keys if k.name]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"server.keys: duplicate key names: {', '.join(dupes)}")
        known = {n for r in self.routes for n in (r.model, *r.aliases)}
        for i, key in enumerate(self.server.keys):
            unknown = sorted(set(key.models or ()) - known)
            if unknown:
                raise ValueError(
                    f"server.keys[{i}].models: unknown route names {unknown}"
                    f" (known: {', '.join(sorted(known))})"
                )
        return self

    def upstream(self, name: str) -> Upstream:
        return next(u for u in self.upstreams if u.name == name)

    def retry_for(self, upstream: Upstream) -> Retry:
        return upstream.retry or self.policy.retry

    def circuit_for(self, upstream: Upstream) -> Circuit:
        return upstream.circuit or self.policy.circuit

    def fallback_on_for(self, upstream: Upstream) -> list[FailureReason]:
        return upstream.fallback_on if upstream.fallback_on is not None else self.policy.fallback_on

    def route_for(self, model: str) -> Route | None:
        for route in self.routes:
            if model == route.model or model in route.aliases:
                return route
        return None


def _rules_resolve(settings: Settings) -> None:
    """Every rule names another route; a `model` classifier names a local upstream."""
    models = {r.model for r in settings.routes}
    local = {u.name for u in settings.upstreams if u.locality == "local" and u.dialect == "openai"}
    for i, route in enumerate(settings.routes):
        for j, rule in enumerate(route.rules):
            if rule.to not in models or rule.to == route.model:
                raise ValueError(
                    f"routes[{i}].rules[{j}].to: {rule.to!r} is not another route's model"
                )
        names = [rule.name for rule in route.rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"routes[{i}].rules: duplicate rule names {', '.join(dupes)}")
        cls = route.classifier
        if cls.kind == "model" and cls.upstream not in local:
            raise ValueError(
                f"routes[{i}].classifier.upstream: {cls.upstream!r} is not a local"
                " OpenAI-compatible (vLLM) upstream"
            )


class ConfigError(Exception):
    """A config file that cannot be used; the message names the file and the field."""


def _describe(exc: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid gateway config"]
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"  - {where}: {err['msg']}")
    return "\n".join(lines)


def parse_settings(data: Any, source: str = "<config>") -> Settings:
    """Validate already-loaded YAML/JSON data."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping")
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from exc


def load_settings(path: str | Path) -> Settings:
    """Read and validate a YAML config file."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config file ({exc.strerror})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from exc
    return parse_settings(data, str(p))
