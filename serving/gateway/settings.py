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

Dialect = Literal["openai", "anthropic", "gemini"]
Locality = Literal["local", "hosted"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Timeouts(_Strict):
    """Seconds. `first_byte` bounds the wait for response headers (and the first stream event)."""

    connect: float = Field(default=5.0, gt=0)
    first_byte: float = Field(default=60.0, gt=0)
    total: float = Field(default=600.0, gt=0)
    stream_idle: float = Field(default=60.0, gt=0)


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


class Target(_Strict):
    """One step of a route's chain: a model on an upstream."""

    upstream: str
    model: str
    context_window: int | None = Field(default=None, gt=0)


class Route(_Strict):
    """A model name clients ask for, its aliases, and the ordered chain that serves it."""

    model: str = Field(min_length=1)
    aliases: list[str] = Field(default_factory=list)
    targets: list[Target] = Field(min_length=1)


class Server(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    max_body_bytes: int = Field(default=32 * 1024 * 1024, gt=0)
    api_keys_env: str | None = None


class Settings(_Strict):
    """The whole gateway configuration."""

    server: Server = Server()
    upstreams: list[Upstream] = Field(min_length=1)
    routes: list[Route] = Field(min_length=1)

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
        return self

    def upstream(self, name: str) -> Upstream:
        return next(u for u in self.upstreams if u.name == name)

    def route_for(self, model: str) -> Route | None:
        for route in self.routes:
            if model == route.model or model in route.aliases:
                return route
        return None


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
