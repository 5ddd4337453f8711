"""The OpenAI surface's embeddings and Responses routes, and the deployment kind each route needs.

- ``POST /v1/embeddings`` goes to deployments with ``embeddings: true`` only (llama.cpp serves
  a replica in embedding mode, vLLM with the pooling runner); the request bytes pass through.
- ``POST /v1/responses``: passed through to a runtime with a Responses API of its own
  (``Capabilities.responses_api``: vLLM); for the others translated onto chat completions
  (protocol/responses.py) and the chat answer encoded back (``ResponsesEncoder``).
- chat, completions and responses to an embeddings deployment, and embeddings to a chat one,
  are 400s that say which deployment field decides it.

Request logic only: everything here returns the canonical request or raises ``Rejection``;
``OpenAISurface`` (openai.py) mounts the routes and calls it.
"""

from __future__ import annotations

from typing import Any

import orjson

from inferplane.config import DeploymentConfig
from inferplane.gateway.surfaces.base import InferenceRequest, Rejection, Served
from inferplane.protocol.embeddings import check_embeddings
from inferplane.protocol.parts import check_parts, check_tools
from inferplane.protocol.problems import RequestProblem
from inferplane.protocol.responses import (
    ResponsesStream,
    check_responses,
    new_response_id,
    to_chat,
    to_response,
)
from inferplane.protocol.routes import Route

__all__ = ["ResponsesEncoder", "check_deployment_kind", "check_tool_support", "check_tool_use", "model_object",
           "parse_embeddings", "parse_responses", "responses_encoder"]


def _refuse(problem: RequestProblem) -> Rejection:
    return Rejection(400, problem.message, param=problem.param, code=problem.code)


def check_deployment_kind(route: Route, config: DeploymentConfig) -> RequestProblem | None:
    """A 400 when the route needs the other kind of deployment."""
    if (route is Route.EMBEDDINGS) is config.embeddings:  # the hot path: one comparison
        return None
    name = config.name
    if route is Route.EMBEDDINGS:
        return RequestProblem(f"the model {name!r} does not serve embeddings: its deployment does not set "
                              "'embeddings: true' (llama.cpp and vLLM embed from a replica started for it; add "
                              "an embeddings deployment of the model)", "model", "unsupported_value")
    return RequestProblem(f"the model {name!r} serves embeddings only (its deployment sets 'embeddings: true'); "
                          "send chat, completions and responses to a chat deployment", "model", "unsupported_value")


def check_tool_use(data: dict[str, Any], s: Served) -> RequestProblem | None:
    """Content parts and tools of a chat request against what the deployment can honour
    (for a chat request made from another API's; ``check_chat`` checks a client's own parts)."""
    problem = check_parts(data, s.parts, s.config.runtime)
    if problem is not None or ("tools" not in data and "tool_choice" not in data):
        return problem
    return check_tool_support(data, s)


def check_tool_support(data: dict[str, Any], s: Served) -> RequestProblem | None:
    """``tools`` / ``tool_choice`` of a chat request against what the deployment can honour."""
    t = s.tools
    return check_tools(data, t.tools, s.config.runtime, reason=t.reason, forced_choice=t.forced_choice,
                       forced_reason=t.forced_reason)


def _not_found(model: Any) -> Rejection:
    return Rejection(404, f"the model {model!r} does not exist; GET /v1/models lists the served models",
                   param="model", code="model_not_found")


def parse_embeddings(data: dict[str, Any], body: bytes, s: Served | None) -> InferenceRequest:
    """The canonical request for ``POST /v1/embeddings`` (the client's bytes, as they came)."""
    caps = s.capabilities if s is not None else None
    problem = check_embeddings(data, token_ids=caps.embedding_token_ids if caps else True,
                               dimensions=caps.embedding_dimensions if caps else True,
                               runtime=s.config.runtime if s else "")
    if problem is not None:
        raise _refuse(problem)
    if s is None:
        raise _not_found(data.get("model"))
    problem = check_deployment_kind(Route.EMBEDDINGS, s.config)
    if problem is not None:
        raise _refuse(problem)
    user = data.get("user")
    return InferenceRequest(Route.EMBEDDINGS, s, data, body, False, False, user if isinstance(user, str) else None)


def parse_responses(data: dict[str, Any], body: bytes, s: Served | None, session: str | None) -> InferenceRequest:
    """The canonical request for ``POST /v1/responses``: itself where the runtime has the route,
    else the chat request it translates to (``extra``: the ResponsesEncoder its answer goes
    through, one per request; ``responses_encoder`` hands it out)."""
    problem = check_responses(data)
    if problem is not None:
        raise _refuse(problem)
    if s is None:
        raise _not_found(data.get("model"))
    chat = to_chat(data)
    problem = check_deployment_kind(Route.RESPONSES, s.config) or check_tool_use(chat, s)
    if problem is not None:
        raise _refuse(problem)
    stream = data.get("stream") is True
    mot = data.get("max_output_tokens")
    if s.capabilities.responses_api:
        return InferenceRequest(Route.RESPONSES, s, data, body, stream, stream, session, mot)
    return InferenceRequest(Route.CHAT, s, chat, orjson.dumps(chat), stream, stream, session, mot,
                            extra=ResponsesEncoder(data, new_response_id()))


def responses_encoder(req: InferenceRequest) -> ResponsesEncoder | None:
    """The encoder for a Responses request translated onto chat (None for every other request)."""
    extra = req.extra
    return extra if isinstance(extra, ResponsesEncoder) else None


def model_object(name: str, created: int, runtime: str, ready_replicas: int) -> dict[str, Any]:
    """OpenAI's model object (openai-python ``types/model.py``), plus inferplane's two fields."""
    return {"id": name, "object": "model", "created": created, "owned_by": "inferplane", "runtime": runtime,
            "ready_replicas": ready_replicas}


class ResponsesEncoder:
    """Chat answers to one Responses request, as the Responses API's object or events. One per request."""

    stream_content_type = "text/event-stream"

    def __init__(self, request: dict[str, Any], response_id: str) -> None:
        self._request = request
        self._rid = response_id
        self._stream = ResponsesStream(request, rid=response_id)

    def body(self, data: bytes) -> bytes:
        """The Response object for a whole 2xx chat answer."""
        return orjson.dumps(to_response(orjson.loads(data), self._request, rid=self._rid))

    def chunk(self, data: bytes) -> bytes:
        return self._stream.feed(data)

    def end(self) -> bytes:
        return self._stream.end()

    def error_event(self, message: str, code: str) -> bytes:
        """An ``error`` event that ends the stream (nothing follows it)."""
        return self._stream.feed(b"data: " + orjson.dumps({"error": {"message": message, "code": code}}) + b"\n\n")
