"""Pydantic models of the deployment file.

A deployment file is YAML (or JSON)::

    gateway:
      host: 127.0.0.1
      port: 8000
    deployments:
      - name: smollm2            # the model name clients send
        runtime: embedded        # a registered RuntimeAdapter name
        model: smollm2           # a local path, or a model-store name (see inferplane.models)
        replicas: 1
        max_concurrent_sequences: 4

``INFERPLANE_*`` environment variables are read here and nowhere else
(:func:`env_overrides`).
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from inferplane.config.observability import TracingConfig
from inferplane.config.placement import DeploymentPlacement, PlacementConfig
from inferplane.config.scaling import AutoscaleConfig
from inferplane.config.tenants import DEFAULT_TENANT, TenantConfig
from inferplane.config.upstreams import (
    ENV_NAME_RE,
    ListenerTLS,
    literal_key_problem,
    upstream_problems,
)
from inferplane.errors import InferplaneError

__all__ = [
    "AutoscaleConfig",
    "BreakerConfig",
    "ConfigError",
    "DeploymentConfig",
    "DeploymentPlacement",
    "GatewayConfig",
    "InferplaneConfig",
    "ListenerTLS",
    "PlacementConfig",
    "ReplicaTarget",
    "RetryConfig",
    "TenantConfig",
    "TracingConfig",
    "admin_key",
    "config_json_schema",
    "env_overrides",
    "load_config",
]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")


class ConfigError(InferplaneError, ValueError):
    """The configuration is invalid; the message says what to change."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GatewayConfig(_Strict):
    """The HTTP gateway."""

    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port to listen on (0 = any free port).")
    max_body_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, description="Largest request body accepted, in bytes; larger gets 413 "
        "(at once when Content-Length says so, before 100 Continue)."
    )
    max_url_bytes: int = Field(
        8 * 1024, ge=256, description="Longest request target (path and query), bytes; longer gets 414 "
        "(nginx and Apache allow 8 KiB)."
    )
    max_header_line_bytes: int = Field(
        8 * 1024, ge=256, description="Longest single header field (name and value), bytes; longer gets 431 "
        "(nginx and Apache allow 8 KiB)."
    )
    max_head_bytes: int = Field(
        32 * 1024, ge=1024, description="Largest request head (request line and all headers), bytes; larger "
        "gets 431 (nginx allows 4 x 8 KiB)."
    )
    max_header_count: int = Field(
        100, ge=8, description="Most header fields in one request; more gets 431 (Apache's default)."
    )
    request_head_timeout_s: float = Field(
        20.0, gt=0, description="A request head must be complete this long after its first byte, seconds, "
        "however slowly it arrives (slowloris); else 408 and close (Apache mod_reqtimeout's default)."
    )
    max_connections: int = Field(
        4096, ge=1, description="Open client connections; one more is answered 503 with Retry-After and "
        "closed. Keep it below the process's open-file limit (ulimit -n)."
    )
    max_pipelined_requests: int = Field(
        32, ge=1, description="Requests a client may queue on one connection behind the one being served "
        "(reading pauses meanwhile); more gets 429 and close."
    )
    connect_timeout_s: float = Field(5.0, gt=0, description="Upstream TCP connect timeout, seconds.")
    idle_timeout_s: float = Field(
        75.0, gt=0, description="A client connection with no request in progress this long is closed, seconds."
    )
    first_byte_timeout_s: float = Field(
        600.0, gt=0, description="Longest wait for an upstream's response headers, seconds."
    )
    probe_after_s: float = Field(
        3.0, gt=0, description="A request that waited this long for its first byte (or a stream this long for "
        "its next chunk) probes its replica; if the probe fails the replica counts as frozen: the request "
        "moves to another replica (a stream ends with an error event), seconds.",
    )
    probe_timeout_s: float = Field(
        3.0, gt=0, description="How long that liveness probe may take before the replica counts as frozen, seconds."
    )
    stream_idle_timeout_s: float = Field(
        60.0, gt=0, description="A stream whose upstream sends nothing this long ends with an error event and "
        "its upstream connection is closed, seconds.",
    )
    upstream_max_body_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="Largest non-streamed upstream answer the gateway buffers, bytes; "
        "a larger one is a 502.",
    )
    api_keys: tuple[str, ...] = Field(
        (), description="If set, clients must send 'Authorization: Bearer <one of these>'."
    )
    ready_timeout_s: float = Field(
        300.0, gt=0, description="How long `serve` waits for a replica to become ready, seconds."
    )
    preferred_region: str | None = Field(
        None, description="Region whose replicas get traffic first (tiers: priority, then this region)."
    )
    scrape_interval_s: float = Field(
        5.0, gt=0, description="How often each endpoint's /metrics and health are polled, seconds."
    )
    queue_timeout_s: float = Field(
        60.0, gt=0, description="How long a request that finds no ready replica is held for one, seconds; "
        "then 503 with Retry-After."
    )
    max_held_requests: int = Field(
        1000, ge=0, description="Requests held per deployment while no replica is ready; more get 503 at once."
    )
    drain_timeout_s: float = Field(
        30.0, ge=0, description="On shutdown, how long requests in flight may take to finish, seconds."
    )
    # -- tenants, keys and limits (docs/tenants-and-limits.md) --
    admin_key_env: str | None = Field(
        None, description="Name of the environment variable that holds the admin key. When set, /admin/* "
        "answers only to 'Authorization: Bearer <admin key>'; API keys (api_keys, tenants) never open it. "
        "When unset, /admin/* is guarded by the API keys as before (open when there are none)."
    )
    tenants: tuple[TenantConfig, ...] = Field(
        (), description="Tenants, each with its own key (stored hashed), deployments, limits and priority."
    )
    limits_store: str | None = Field(
        None, description="Where rate-limit windows live: redis://HOST:PORT[/DB] to share them between "
        "gateways (serve --workers, several instances); unset: in this process."
    )
    limits_store_failure: Literal["open", "closed"] = Field(
        "open", description="When the limits store cannot be reached: 'open' admits requests unlimited "
        "(and logs it), 'closed' answers 503 until it is back."
    )
    limits_store_timeout_s: float = Field(
        0.25, gt=0, description="Longest wait for the limits store per request, seconds; then the "
        "failure policy applies."
    )
    reserved_completion_tokens: int = Field(
        256, ge=1, description="Tokens reserved against tpm_limit for the completion of a request that "
        "sets no max_tokens (the prompt's share is estimated from its size); settled to what the runtime "
        "reports when the request ends."
    )

    @field_validator("admin_key_env")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", v):
            raise ValueError("admin_key_env is the NAME of an environment variable (e.g. INFERPLANE_ADMIN_KEY), "
                             "not the key itself")
        return v

    @field_validator("limits_store")
    @classmethod
    def _store_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("limits_store must be a redis:// (or rediss://, unix://) URL, "
                             "e.g. redis://127.0.0.1:6379")
        return v

    @model_validator(mode="after")
    def _tenants_unique(self) -> GatewayConfig:
        names: set[str] = {DEFAULT_TENANT} if self.api_keys else set()
        hashes: set[str] = set()
        for t in self.tenants:
            if t.name in names:
                hint = " (the api_keys list is the tenant 'default')" if t.name == DEFAULT_TENANT else ""
                raise ValueError(f"tenant name {t.name!r} is used twice{hint}; names must be unique")
            if t.key_sha256 in hashes:
                raise ValueError(f"tenant {t.name!r}: its key_sha256 is another tenant's; each key names one tenant")
            names.add(t.name)
            hashes.add(t.key_sha256)
        return self
    # -- traces and access log (observability/tracing.py, observability/access_log.py) --
    tracing: TracingConfig | None = Field(
        None, description="OpenTelemetry traces over OTLP/HTTP (needs pip install 'inferplane[tracing]'); "
        "off when absent."
    )
    access_log: str | None = Field(
        None, description="Write one JSON line per request to this file ('-': standard output); off when "
        "absent. Replay it with `inferplane bench --workload trace:FILE`."
    )
    log_prompts: bool = Field(
        False, description="Put the prompt (messages or prompt) into the access log; off by default, when "
        "only lengths and prefix fingerprints are logged."
    )
    tls: ListenerTLS | None = Field(
        None, description="Serve HTTPS on the listener with this certificate and key (default: plain HTTP)."
    )
    upstream_ca_file: Path | None = Field(
        None, description="PEM bundle of the CAs that sign the https:// endpoints' certificates, for every "
        "endpoint without its own ca_file (default: the system's CA store)."
    )


def _env_name(v: str | None) -> str | None:
    if v is not None and not ENV_NAME_RE.match(v):
        raise ValueError("api_key_env is the NAME of an environment variable (letters, digits and _, e.g. "
                         "VLLM_API_KEY) that holds the key, not the key itself")
    return v


class ReplicaTarget(_Strict):
    """An endpoint that already runs somewhere: inferplane routes to it but does not launch it."""

    url: str = Field(description="Base URL of the runtime, e.g. http://127.0.0.1:8080 (no /v1).")
    region: str | None = Field(None, description="Region label, for tiered routing.")
    priority: int = Field(0, description="Tier; lower is preferred.")
    api_key_env: str | None = Field(
        None, description="Environment variable holding this endpoint's API key, sent in the header its runtime "
        "expects (OpenAI-compatible servers: Authorization: Bearer). The key itself never goes in this file. "
        "Default: the deployment's api_key_env.",
    )
    ca_file: Path | None = Field(
        None, description="PEM bundle of the CA(s) that signed this https:// endpoint's certificate (a private "
        "CA, a self-signed certificate). Default: gateway.upstream_ca_file, else the system's CA store.",
    )
    tls_verify: bool = Field(
        True, description="Check this https:// endpoint's certificate and host name. false accepts any "
        "certificate (anyone on the path can read and change the traffic): for a test bench only.",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_literal_key(cls, data: Any) -> Any:
        problem = literal_key_problem(data)
        if problem:
            raise ValueError(problem)
        return data

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        if "@" in v.split("/", 3)[2]:
            raise ValueError("url must not carry credentials (user:password@); put the key in an environment "
                             "variable and name it in api_key_env")
        return v.rstrip("/").removesuffix("/v1")

    @field_validator("api_key_env")
    @classmethod
    def _key_env(cls, v: str | None) -> str | None:
        return _env_name(v)

    @model_validator(mode="after")
    def _tls_only_for_https(self) -> ReplicaTarget:
        if not self.url.startswith("https://") and (self.ca_file is not None or not self.tls_verify):
            field = "ca_file" if self.ca_file is not None else "tls_verify"
            raise ValueError(f"{field} applies to https:// endpoints, and {self.url} is plain http")
        return self


class RetryConfig(_Strict):
    """Retries before the first byte went to the client (never after)."""

    max_attempts: int = Field(3, ge=1, le=10, description="Attempts across replicas, the first one included.")
    backoff_s: float = Field(
        0.05, ge=0, le=10, description="Wait before the 2nd attempt, seconds; doubles for each further one."
    )


class BreakerConfig(_Strict):
    """Per-replica circuit breaker."""

    failure_threshold: int = Field(5, ge=1, description="Consecutive failures that open the breaker.")
    open_s: float = Field(10.0, gt=0, description="How long an open breaker keeps traffic away, seconds.")


class DeploymentConfig(_Strict):
    """One served model name, its runtime, settings and replicas."""

    name: str = Field(description="Model name clients send in the 'model' field.")
    runtime: str = Field("embedded", description="Runtime adapter: see `inferplane runtimes`.")
    model: str = Field(
        "smollm2",
        description="Model to load: a local path (GGUF file or HF folder), a model-store name "
        "(`inferplane models`), or a runtime-specific id.",
    )
    replicas: int = Field(
        1, ge=0, le=64, description="Local replicas to launch (the start count when autoscale is set)."
    )
    autoscale: AutoscaleConfig | None = Field(
        None, description="Scale the local replicas with load between min_replicas and max_replicas."
    )
    drain_timeout_s: float = Field(
        30.0, ge=0, description="A replica taken out of service finishes its requests for at most this long, "
        "seconds, before it is stopped."
    )
    endpoints: tuple[ReplicaTarget, ...] = Field(
        (), description="Already-running endpoints of this deployment (not launched by inferplane)."
    )
    api_key_env: str | None = Field(
        None, description="Environment variable holding the API key of the servers listed under 'endpoints' "
        "(each may name its own); the key itself never goes in this file.",
    )
    upstream_model: str | None = Field(
        None, min_length=1,
        description="The name the listed endpoints' server knows the model by (vLLM's --served-model-name, "
        "an Ollama tag), when it differs from `name`; the gateway rewrites the request's 'model' field to it. "
        "Default: discovered from each endpoint's GET /v1/models when it serves exactly one model. "
        "Replicas inferplane launches always serve under `name`.",
    )
    context_length_tokens: int | None = Field(
        None, ge=64, description="Context window per sequence, tokens (runtime default if unset)."
    )
    max_concurrent_sequences: int = Field(
        4, ge=1, le=1024, description="Sequences a replica decodes at once (llama.cpp slots, vLLM max-num-seqs)."
    )
    threads: int | None = Field(
        None, ge=1, description="CPU threads per replica (default: the cores that are free, split across replicas)."
    )
    dtype: str | None = Field(None, description="Weights/activation dtype, e.g. float32, bfloat16, auto.")
    quantization: str | None = Field(None, description="Quantization method, runtime-specific (e.g. awq, fp8).")
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs per replica for tensor parallelism.")
    gpu_memory_fraction: float | None = Field(
        None, gt=0, le=1, description="Fraction of GPU memory a replica may use."
    )
    prefix_caching: bool = Field(True, description="Reuse KV cache across requests sharing a prefix.")
    executable: str | None = Field(
        None, description="Path of the runtime's server binary, where the runtime has one (e.g. llama-server)."
    )
    extra_args: tuple[str, ...] = Field((), description="Arguments appended verbatim to the runtime's command line.")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment for the runtime process.")
    region: str | None = Field(None, description="Region label of the launched replicas.")
    priority: int = Field(0, description="Tier of the launched replicas; lower is preferred.")
    ready_timeout_s: float | None = Field(
        None, gt=0, description="Readiness wait for this deployment's replicas, seconds (default: gateway's)."
    )
    policy: Literal["least_load", "round_robin", "power_of_two", "session", "prefix"] = Field(
        "prefix", description="Routing policy among this deployment's replicas (prefix = cache-aware with "
        "load balancing)."
    )
    fallback: str | None = Field(
        None, description="Another deployment that serves this one's requests when none of its replicas can."
    )
    retry: RetryConfig = Field(
        default_factory=RetryConfig,  # type: ignore[arg-type]
        description="Retries on another replica before the first byte went to the client.",
    )
    breaker: BreakerConfig = Field(
        default_factory=BreakerConfig,  # type: ignore[arg-type]
        description="Circuit breaker of each replica: keeps traffic away from one that keeps failing.",
    )
    embeddings: bool = Field(
        False, description="The replicas serve POST /v1/embeddings and nothing else: chat, completions and "
        "responses requests to this deployment get 400, and a chat deployment's embeddings requests get 400 "
        "naming this field. llama.cpp runtimes (embedded, llamacpp) start in embedding mode; vLLM with "
        "--runner pooling. Serve chat and embeddings of one model as two deployments.",
    )
    embedding_pooling: Literal["mean", "cls", "last"] | None = Field(
        None, description="How token vectors become one embedding (llama.cpp's --pooling). Default: the model "
        "file's own; the embedded runtime takes mean when the file names none (a chat model's GGUF).",
    )
    tool_call_parser: str | None = Field(
        None, min_length=1, description="vLLM/SGLang tool-call parser for this model (e.g. hermes, llama3_json, "
        "mistral, qwen25): launched with --enable-auto-tool-choice --tool-call-parser; without it, requests "
        "with tools get 400 on those runtimes.",
    )
    saturation: float = Field(
        2.0, gt=0, description="Requests in flight per sequence slot at which a tier counts as saturated "
        "and traffic spills to the next tier."
    )
    max_concurrent_per_replica: int | None = Field(
        None, ge=1, description="Requests the gateway lets one replica have at once; when every replica "
        "has that many, more wait in the gateway's held-request queue (bounded by queue_timeout_s and "
        "max_held_requests) and are let go by priority, fairly across tenants. Default: the replica's "
        "sequence slots (max_concurrent_sequences) for replicas inferplane launches; no bound for the "
        "listed endpoints, whose slots inferplane does not know.",
    )

    @field_validator("api_key_env")
    @classmethod
    def _key_env(cls, v: str | None) -> str | None:
        return _env_name(v)
    placement: DeploymentPlacement = Field(
        default_factory=DeploymentPlacement,  # type: ignore[arg-type]
        description="How the replicas are placed on a cluster: spread or pack, node labels, memory "
        "(placement backend ray; see docs/cluster.md).",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME_RE.match(v):
            raise ValueError("name must be 1-128 characters of letters, digits and . _ : / -, starting alphanumeric")
        return v

    @model_validator(mode="before")
    @classmethod
    def _start_count(cls, data: Any) -> Any:
        problem = literal_key_problem(data)
        if problem:
            raise ValueError(problem)
        # with autoscale and no replicas given, start at min_replicas (at least 1, so the
        # first request after `serve` does not wait for a cold start)
        if isinstance(data, dict) and isinstance(data.get("autoscale"), dict) and "replicas" not in data:
            a = data["autoscale"]
            lo, hi = a.get("min_replicas", 1), a.get("max_replicas", 4)
            if isinstance(lo, int) and isinstance(hi, int):
                data = {**data, "replicas": min(max(lo, 1), hi)}
        return data

    @model_validator(mode="after")
    def _replicas_in_bounds(self) -> DeploymentConfig:
        a = self.autoscale
        if a is not None and not a.min_replicas <= self.replicas <= a.max_replicas:
            raise ValueError(
                f"deployment {self.name!r}: replicas ({self.replicas}) must lie within autoscale's "
                f"min_replicas..max_replicas ({a.min_replicas}..{a.max_replicas})"
            )
        if self.embeddings and self.tool_call_parser is not None:
            raise ValueError(f"deployment {self.name!r}: an embeddings deployment does not call tools; "
                             "remove tool_call_parser (or embeddings: true)")
        if self.embedding_pooling is not None and not self.embeddings:
            raise ValueError(f"deployment {self.name!r}: embedding_pooling applies to embeddings: true deployments")
        if self.upstream_model is not None and not self.endpoints:
            raise ValueError(
                f"deployment {self.name!r}: upstream_model applies to the servers listed under 'endpoints', "
                "and there are none (replicas inferplane launches serve under the deployment's name)"
            )
        return self

    def max_local_replicas(self) -> int:
        """The most local replicas this deployment may run at once."""
        return max(self.replicas, self.autoscale.max_replicas if self.autoscale else 0)


class InferplaneConfig(_Strict):
    """The whole deployment file."""

    gateway: GatewayConfig = Field(default_factory=GatewayConfig)  # type: ignore[arg-type]
    deployments: tuple[DeploymentConfig, ...] = Field(min_length=1)
    placement: PlacementConfig = Field(
        default_factory=PlacementConfig,  # type: ignore[arg-type]
        description="Where replicas are launched: this machine (local) or a Ray cluster (ray).",
    )

    @model_validator(mode="after")
    def _unique_names(self) -> InferplaneConfig:
        seen: set[str] = set()
        for d in self.deployments:
            if d.name in seen:
                raise ValueError(f"deployment name {d.name!r} is used twice; names must be unique")
            seen.add(d.name)
        for t in self.gateway.tenants:
            unknown = [n for n in t.deployments or () if n not in seen]
            if unknown:
                raise ValueError(f"tenant {t.name!r}: deployments {unknown} are not served "
                                 f"(known: {', '.join(sorted(seen))})")
        for d in self.deployments:
            if d.fallback is not None and (d.fallback not in seen or d.fallback == d.name):
                raise ValueError(
                    f"deployment {d.name!r}: fallback {d.fallback!r} must name another deployment "
                    f"(known: {', '.join(sorted(seen - {d.name})) or 'none'})"
                )
        return self


def config_json_schema() -> dict[str, Any]:
    """JSON schema of the deployment file (``inferplane config schema``)."""
    return InferplaneConfig.model_json_schema()


def load_config(path: str | Path) -> InferplaneConfig:
    """Read and validate a deployment file.

    Raises ConfigError with a message naming the file and each bad field.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping with 'deployments', got {type(data).__name__}")
    return parse_config(data, source=str(p))


def parse_config(data: dict[str, Any], *, source: str = "config",
                 environ: dict[str, str] | None = None) -> InferplaneConfig:
    """Validate a deployment file's data; also checks that every ``api_key_env`` is set and every
    CA bundle and listener certificate loads (``environ``: default the process environment).

    Raises ConfigError naming each bad setting.
    """
    try:
        config = InferplaneConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation(exc, source)) from exc
    problems = upstream_problems(config, environ)
    if problems:
        raise ConfigError("\n".join([f"{source}: invalid configuration", *(f"  {p}" for p in problems)]))
    return config


def _format_validation(exc: ValidationError, source: str) -> str:
    errors = exc.errors()
    item_failed = any(len(e["loc"]) > 1 and e["loc"][0] == "deployments" for e in errors)
    lines = [f"{source}: invalid configuration"]
    for err in errors:
        if item_failed and err["type"] == "too_short" and tuple(err["loc"]) == ("deployments",):
            continue  # pydantic's echo of a deployment that failed: says nothing new
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = _unknown_field(err["loc"])
        lines.append(f"  {loc}: {msg}")
    return "\n".join(lines)


def _unknown_field(loc: tuple[int | str, ...]) -> str:
    """``unknown field; did you mean 'replicas'?`` for a typo'd field name."""
    model: type[BaseModel] | None = InferplaneConfig
    for part in loc[:-1]:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part)
        model = _model_of(field.annotation) if field is not None else None
    known = sorted(model.model_fields) if model is not None else []
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known fields: {', '.join(known)}" if known else ""
    return f"unknown field{hint}"


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside ``annotation`` (``tuple[DeploymentConfig, ...]`` -> DeploymentConfig)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def admin_key(gateway: GatewayConfig, environ: dict[str, str] | None = None) -> str | None:
    """The admin key from the environment variable ``gateway.admin_key_env`` names (None: not set up).

    Raises ConfigError when the variable is named but empty or missing: a gateway that
    was told to guard /admin/* must not start with it open.
    """
    if gateway.admin_key_env is None:
        return None
    env = os.environ if environ is None else environ
    key = env.get(gateway.admin_key_env, "").strip()
    if not key:
        raise ConfigError(f"gateway.admin_key_env names {gateway.admin_key_env}, which is not set (or empty); "
                          f"export {gateway.admin_key_env}=<a key, e.g. from `inferplane keys new`>")
    return key


def env_overrides(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The ``INFERPLANE_*`` settings the CLI honours, read from the environment.

    ``INFERPLANE_HOST``, ``INFERPLANE_PORT``, ``INFERPLANE_MODEL_CACHE`` (model store
    folder), ``INFERPLANE_API_KEYS`` (comma-separated), ``INFERPLANE_ADMIN_KEY`` (what
    ``status`` / ``reload`` send to /admin/*; a gateway reads its admin key from the variable
    ``gateway.admin_key_env`` names, see ``admin_key``).
    """
    env = os.environ if environ is None else environ
    keys = ("INFERPLANE_HOST", "INFERPLANE_PORT", "INFERPLANE_MODEL_CACHE", "INFERPLANE_API_KEYS",
            "INFERPLANE_ADMIN_KEY")
    return {k: env[k] for k in keys if env.get(k)}
