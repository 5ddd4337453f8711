"""The runtime adapter contract: everything inferplane knows about one kind of engine.

An adapter is a stateless object; the gateway, supervisor and scraper use it like this:

1. ``capabilities()`` - static facts (formats, hardware, features), used by ``choose``
   and by ``inferplane runtimes``.
2. ``availability()`` - whether the runtime can be launched on this machine, and why not.
3. ``launch_spec(deployment, port, resources)`` - pure: the argv, env and probe of one
   replica. The supervisor runs it; nothing else starts runtime processes.
4. ``probe`` (a ``ProbeSpec``) - the request that tells the replica is ready for traffic.
5. ``parse_metrics(text)`` - the runtime's Prometheus text mapped onto ``EndpointStats``.
6. ``dialect`` - how the gateway talks to it; OpenAI-speaking runtimes pass bytes through.

Adapters never do I/O in ``launch_spec`` or ``parse_metrics`` and raise only
``LaunchError`` (bad deployment for this runtime) from ``launch_spec``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from inferplane.errors import InferplaneError
from inferplane.observability.stats import EndpointStats

if TYPE_CHECKING:
    from inferplane.config import DeploymentConfig

__all__ = [
    "OPENAI_DIALECT",
    "Availability",
    "Capabilities",
    "Dialect",
    "EndpointStats",
    "LaunchError",
    "LaunchSpec",
    "ProbeSpec",
    "Resources",
    "RuntimeAdapter",
    "StreamTranslator",
    "ToolSupport",
    "UnsupportedRequest",
]


class LaunchError(InferplaneError, ValueError):
    """The deployment cannot be launched on this runtime; the message says what to change."""


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a runtime supports, as data."""

    architectures: tuple[str, ...]
    """Model families, e.g. ("llama", "qwen2", "gemma3"), or ("*",) for 'most HF decoder models'."""
    weight_formats: tuple[str, ...]
    """e.g. ("gguf",), ("safetensors",), ("mlc",), ("trt-engine", "safetensors")."""
    quantizations: tuple[str, ...]
    hardware: tuple[str, ...]
    """Any of "cpu", "nvidia", "amd", "intel-gpu", "apple", "ascend", "tpu"."""
    multi_gpu: bool = False
    prefix_caching: bool = False
    speculative_decoding: bool = False
    structured_output: bool = False
    lora: bool = False
    embeddings: bool = False
    pd_disaggregation: bool = False
    streams_usage: bool = True
    """Honours ``stream_options.include_usage``."""
    max_choices: int = 1
    """Largest ``n`` (choices per request) the runtime honours."""
    needs_local_model_file: bool = False
    """The model must be resolved to a local file before launch (GGUF runtimes)."""
    install_hint: str = ""
    needs_gpu: bool = False
    """Cannot run without a GPU (of a kind listed in ``hardware``)."""
    api: str = "openai"
    """What the runtime speaks: "openai" (bytes pass through) or the name of a translated dialect."""
    content_parts: tuple[str, ...] | None = None
    """Chat content part types it accepts (e.g. ("text",) for a text-only server); None: not checked."""
    tools: bool = True
    """Accepts ``tools`` / ``tool_choice`` in chat requests (per deployment: ``tool_support_for``)."""
    responses_api: bool = False
    """Serves ``POST /v1/responses`` itself (the gateway passes the request through; else it
    translates the request onto chat completions)."""
    embedding_token_ids: bool = True
    """An embeddings ``input`` may be token ids (else only strings)."""
    embedding_dimensions: bool = False
    """Honours an embeddings request's ``dimensions`` (shortened vectors)."""
    embedding_launch: bool = False
    """``launch_spec`` starts a replica in embedding mode for an ``embeddings: true`` deployment
    (else such a deployment must list ``endpoints`` started for embeddings)."""
    traces: bool = False
    """Continues a W3C trace: reads the ``traceparent`` header the gateway sends (its spans
    become children of the gateway's request span when the runtime itself exports traces)."""


@dataclass(frozen=True, slots=True)
class ToolSupport:
    """Whether one deployment's replicas can call tools, and which ``tool_choice`` values hold.

    The gateway refuses what is not here with a 400 naming the field: a runtime that ignores
    ``tools`` or a forced ``tool_choice`` answers with plain text, which a client cannot tell
    from the model choosing not to call.
    """

    tools: bool
    reason: str = ""
    """Why not (or what to set), in words for the client."""
    forced_choice: bool = True
    """``tool_choice`` "required" / a named function is enforced (else refused)."""
    forced_reason: str = ""


@dataclass(frozen=True, slots=True)
class Availability:
    usable: bool
    reason: str
    """Why not, or what was found (version, path)."""


@dataclass(frozen=True, slots=True)
class Resources:
    """What the placement backend grants one replica."""

    threads: int | None = None
    gpu_ids: tuple[int, ...] = ()
    aux_port: int | None = None
    """A second free loopback port, for runtimes that serve metrics on their own port (MAX)."""
    host: str = "127.0.0.1"
    """Address the runtime listens on: loopback here; the node's address when a cluster backend
    places the replica on a node the gateway reaches over the network (Ray)."""


@dataclass(frozen=True, slots=True)
class ProbeSpec:
    """The HTTP request that says a replica can take traffic: a 2xx answer means ready."""

    path: str = "/health"
    method: str = "GET"
    body: bytes | None = None
    """For runtimes whose /health answers before the model works: a tiny real request."""


@dataclass(frozen=True, slots=True)
class LaunchSpec:
    """How to start one replica. Pure data."""

    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    probe: ProbeSpec = field(default_factory=ProbeSpec)
    metrics_path: str = "/metrics"
    metrics_port: int | None = None
    """When the runtime serves metrics on another port than its API."""
    files: tuple[tuple[str, str], ...] = ()
    """(absolute path, text) the supervisor writes before starting the process (a runtime's options
    file the argv names); the adapter picks paths that depend only on the text."""


class StreamTranslator(Protocol):
    """Turns a runtime's streamed response bytes into OpenAI SSE bytes, chunk by chunk."""

    def feed(self, chunk: bytes) -> bytes:
        """OpenAI SSE bytes for this upstream chunk (may be empty while buffering)."""
        ...

    def end(self) -> bytes:
        """Bytes to send after the upstream ended cleanly (e.g. ``data: [DONE]``)."""
        ...


class Dialect:
    """How the gateway talks to a runtime's API.

    The default speaks OpenAI: ``passthrough`` is True and the gateway forwards request
    and response bytes unchanged, never calling the translation methods. A runtime with
    another API (Ollama's native one, TGI's ``/generate``) subclasses this, sets
    ``passthrough = False`` and translates; clients only ever see OpenAI.
    Implementations are stateless and shared; ``stream()`` returns a fresh translator.
    """

    name = "openai"
    passthrough = True
    chat_path = "/v1/chat/completions"
    completions_path = "/v1/completions"
    models_path = "/v1/models"
    api_key_header: tuple[str, str] | None = ("Authorization", "Bearer ")
    """(header name, value prefix) that carries an endpoint's API key (``api_key_env``); None: the
    runtime takes no key. OpenAI-compatible servers started with their key option compare
    ``Authorization`` with ``"Bearer " + key``: vLLM ``--api-key``/``VLLM_API_KEY``
    (vllm/entrypoints/openai/api_server.py, /v1 paths only; checked live, see
    tests/integration/runtimes/test_vllm_tls_live.py), SGLang ``--api-key``
    (python/sglang/srt/utils.py ``add_api_key_middleware``: all but /health and /metrics), TGI
    ``--api-key`` (huggingface/text-generation-inference@db931fc router/src/server.rs: the
    generation routes; /health, /metrics, /v1/models stay open), llama-server ``--api-key``
    (tools/server: all but /health and /v1/models; it also reads ``X-Api-Key``), LMDeploy
    ``--api-keys`` (InternLM/lmdeploy@1263d5c lmdeploy/serve/utils/server_utils.py)."""

    embeddings_path = "/v1/embeddings"
    responses_path = "/v1/responses"

    def path(self, route: str) -> str:
        """The upstream path of ``route`` (a ``protocol.routes.Route``) when bytes pass through."""
        if route == "chat":
            return self.chat_path
        if route == "completions":
            return self.completions_path
        return self.embeddings_path if route == "embeddings" else self.responses_path

    def request(self, route: str, body: dict[str, Any], raw: bytes) -> tuple[str, bytes]:
        """(upstream path, upstream body) for a validated OpenAI request. ``route``: chat | completions.

        May raise ``UnsupportedRequest`` for a parameter the runtime cannot honour.
        """
        return (self.chat_path if route == "chat" else self.completions_path), raw

    def response(self, route: str, model: str, status: int, body: bytes) -> tuple[int, bytes]:
        """(status, OpenAI body) for a non-streamed upstream answer."""
        return status, body

    def stream(self, route: str, model: str, include_usage: bool = False) -> StreamTranslator | None:
        """A translator for a streamed answer, or None to pass bytes through.

        ``include_usage``: end with OpenAI's usage-only chunk (``stream_options.include_usage``).
        """
        return None


class UnsupportedRequest(InferplaneError, ValueError):
    """The runtime cannot honour a parameter of the request (the gateway answers 400)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


OPENAI_DIALECT = Dialect()


class RuntimeAdapter(ABC):
    """Base of all adapters. Subclasses set ``name`` and implement the abstract methods."""

    name: ClassVar[str]
    dialect: ClassVar[Dialect] = OPENAI_DIALECT

    @abstractmethod
    def capabilities(self) -> Capabilities: ...

    @abstractmethod
    def availability(self) -> Availability: ...

    @abstractmethod
    def launch_spec(self, deployment: DeploymentConfig, port: int, resources: Resources) -> LaunchSpec: ...

    @abstractmethod
    def parse_metrics(self, text: str) -> EndpointStats: ...

    def probe(self) -> ProbeSpec:
        """The readiness request for a replica of this runtime (also used for existing URLs)."""
        return ProbeSpec()

    def availability_for(self, deployment: DeploymentConfig) -> Availability:
        """``availability()`` for one deployment: a user-supplied ``executable`` stands for the install."""
        if deployment.executable:
            from inferplane.runtimes._common import executable_availability

            return executable_availability(deployment.executable)
        return self.availability()

    def content_parts_for(self, deployment: DeploymentConfig) -> tuple[str, ...] | None:
        """Chat content part types this deployment accepts (None: not checked); see ``Capabilities``."""
        return self.capabilities().content_parts

    def tool_support_for(self, deployment: DeploymentConfig) -> ToolSupport:
        """Tool calling for this deployment (may read the model file's header; no network)."""
        caps = self.capabilities()
        return ToolSupport(caps.tools, "" if caps.tools else f"runtime {self.name!r} does not take tool calls")

    def dialect_for(self, deployment: DeploymentConfig) -> Dialect:
        """The dialect for this deployment's endpoints (e.g. with the runtime's own model name)."""
        return self.dialect
