"""Which model an existing endpoint serves, and under which name to ask it.

A server inferplane did not start (``endpoints:`` in a deployment) knows its model by its
own name (vLLM's ``--served-model-name``, llama-server's ``--alias``, an Ollama tag), which
need not be the deployment's name clients send. Its ``GET /v1/models`` (OpenAI's list:
``{"object": "list", "data": [{"id": ..., "owned_by": ...}]}``) says what it serves.

:func:`match_model` is the rule, pure:

1. ``wanted`` set (the deployment's ``upstream_model``, or a name discovered earlier):
   the endpoint is usable when it lists that name.
2. Otherwise: the one model it lists; or the deployment's own name when it lists several
   and that is one of them; several others: ambiguous (``serve`` refuses to start, listing them).

:func:`fetch_served` does the one request (with the endpoint's TLS settings and key); it never
raises for I/O trouble, and says why an endpoint gave no list (a certificate that did not verify,
a 401 for a missing or wrong key, no answer).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import orjson

from inferplane.runtimes.access import PLAIN, UpstreamAccess
from inferplane.runtimes.probe import aiohttp_ssl, io_problem

__all__ = ["Finding", "ModelMatch", "Served", "fetch_served", "match_model", "parse_model_list", "survey"]


@dataclass(frozen=True, slots=True)
class Served:
    """What an endpoint's ``GET /v1/models`` listed."""

    ids: tuple[str, ...]
    owned_by: str = ""
    """The ``owned_by`` of the first model (vLLM says ``vllm``, llama-server ``llamacpp``)."""


@dataclass(frozen=True, slots=True)
class ModelMatch:
    model: str | None
    """The name to send to the endpoint; None when it cannot serve the deployment."""
    problem: str = ""
    """Why not, in words (empty when ``model`` is set)."""
    ambiguous: bool = False
    """It lists several models and none was chosen."""


def parse_model_list(body: bytes) -> Served:
    """The model ids of an OpenAI model list. Raises ValueError when ``body`` is not one."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, list):
        raise ValueError("not an OpenAI model list (no 'data' array)")
    ids = tuple(m["id"] for m in data if isinstance(m, dict) and isinstance(m.get("id"), str))
    owner = next((m.get("owned_by") for m in data if isinstance(m, dict)), "")
    return Served(ids, owner if isinstance(owner, str) else "")


async def fetch_served(session: aiohttp.ClientSession, base_url: str, timeout_s: float, *,
                       access: UpstreamAccess = PLAIN) -> Served | str:
    """What ``base_url`` serves, or, when it does not answer 2xx with a model list in time, why not."""
    try:
        async with session.get(base_url + "/v1/models", headers=access.headers() or None,
                               ssl=aiohttp_ssl(access),
                               timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            body = await resp.read()
            status = resp.status
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        return io_problem(exc, timeout_s)
    if status in (401, 403):
        if access.key_source:
            return f"GET /v1/models answered {status}: it does not accept the API key in {access.key_source}"
        return f"GET /v1/models answered {status}: it wants an API key (set the endpoint's api_key_env)"
    if not 200 <= status < 300:
        return f"GET /v1/models answered {status}"
    try:
        return parse_model_list(body)
    except ValueError as exc:
        return f"GET /v1/models: {exc}"


def match_model(served: Served, *, deployment: str, wanted: str | None) -> ModelMatch:
    """The name to ask an endpoint that lists ``served`` for, by the rule in the module docstring."""
    listed = ", ".join(served.ids) or "none"
    if wanted:
        if wanted in served.ids:
            return ModelMatch(wanted)
        return ModelMatch(None, f"it does not serve {wanted!r} (it serves: {listed})")
    if len(served.ids) == 1:
        return ModelMatch(served.ids[0])
    if deployment in served.ids:
        return ModelMatch(deployment)
    if not served.ids:
        return ModelMatch(None, "its /v1/models lists no model")
    return ModelMatch(None, f"it serves several models ({listed}); set the deployment's upstream_model "
                            "to the one to use", ambiguous=True)


@dataclass(frozen=True, slots=True)
class Finding:
    """What one listed endpoint said when ``serve`` started."""

    url: str
    served: Served | None
    """None: it did not answer (yet)."""
    match: ModelMatch | None
    problem: str = ""
    """Why it gave no model list (when ``served`` is None)."""

    def line(self, runtime: str) -> str:
        """The endpoint in words, for the startup line."""
        if self.served is None:
            return f"{self.url}: {self.problem}" if self.problem else f"{self.url} does not answer yet"
        if self.match is None or self.match.model is None:
            return f"{self.url} answers, but {self.match.problem if self.match else 'lists no model'}"
        return f"{self.served.owned_by or runtime} at {self.url}, model {self.match.model!r}"


async def survey(urls: tuple[str, ...], *, deployment: str, wanted: str | None, timeout_s: float,
                 access: Callable[[str], UpstreamAccess] = lambda _url: PLAIN) -> list[Finding]:
    """Ask each of ``urls`` what it serves (concurrently, each bounded by ``timeout_s``)."""
    async with aiohttp.ClientSession() as session:
        answers = await asyncio.gather(*(fetch_served(session, u, timeout_s, access=access(u)) for u in urls))
    return [Finding(u, None, None, s) if isinstance(s, str)
            else Finding(u, s, match_model(s, deployment=deployment, wanted=wanted))
            for u, s in zip(urls, answers, strict=True)]
