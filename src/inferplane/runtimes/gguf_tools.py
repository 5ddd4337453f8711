"""Tool calling on llama.cpp runtimes (embedded, llamacpp): what the chat template allows.

llama.cpp renders tools into the prompt with the model's Jinja chat template (``--jinja``,
on by default in the embedded runtime: ``CommonParams.use_jinja`` is True) and reports the
template's ``supports_tools`` in ``/props`` ``chat_template_caps``. A template that never
names ``tools`` cannot render them, and then llama.cpp answers a tool request with plain
text: SmolLM2's template is such a one (measured: ``supports_tools: false``, the prompt
without the tools, an ordinary text answer even with ``tool_choice: "required"``). So the
gateway refuses ``tools`` for such a deployment with a 400 naming the field.

A forced ``tool_choice`` is refused on these runtimes as well: llama.cpp reads ``tool_choice``
as a string only (an object is dropped with "Wrong type supplied for parameter 'tool_choice',
using default value"), and with ``"required"`` the answer was plain text even from a template
that renders tools (measured with SmolLM2 and a Hermes-style template), so "required" could
not be told from "auto" by the client.

Reads the GGUF header (or the ``--chat-template-file`` named in ``extra_args``) once per
deployment, when the gateway builds its view of it; never per request.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from inferplane.runtimes.base import ToolSupport

if TYPE_CHECKING:
    from inferplane.config import DeploymentConfig

__all__ = ["FORCED_CHOICE_REASON", "gguf_tool_support", "template_renders_tools"]

FORCED_CHOICE_REASON = (
    "llama.cpp does not enforce a forced tool_choice (a named function is dropped, and 'required' answered "
    "with plain text); send tool_choice 'auto' or 'none'"
)


def template_renders_tools(template: str) -> bool:
    """Whether a Jinja chat template reads the ``tools`` variable at all (a necessary condition)."""
    return "tools" in template


def _template(d: DeploymentConfig) -> tuple[str | None, str]:
    """(template text, where it came from) for a deployment."""
    args = list(d.extra_args)
    for flag in ("--chat-template-file",):
        if flag in args and args.index(flag) + 1 < len(args):
            path = args[args.index(flag) + 1]
            try:
                return Path(path).read_text(encoding="utf-8"), path
            except OSError:
                return None, path
    from inferplane.choose.model_info import ModelInfoError, read_gguf

    try:
        return read_gguf(d.model).chat_template, d.model
    except ModelInfoError:
        return None, d.model


def gguf_tool_support(d: DeploymentConfig) -> ToolSupport:
    """ToolSupport for a llama.cpp deployment, from its chat template."""
    if d.embeddings:
        return ToolSupport(False, f"deployment {d.name!r} serves embeddings only")
    if "--chat-template" in d.extra_args or d.endpoints:
        # a built-in template picked by name, or servers inferplane did not start: their template is
        # unknown here, so tools pass through and the runtime decides
        return ToolSupport(True, forced_choice=False, forced_reason=FORCED_CHOICE_REASON)
    text, source = _template(d)
    if text is None:
        return ToolSupport(False, f"the model's file ({source}) has no chat template that llama.cpp could "
                                  "render tools with; give one that does with extra_args "
                                  "[--chat-template-file, FILE.jinja]")
    if not template_renders_tools(text):
        return ToolSupport(False, f"the chat template of this model ({source}) does not render tools, so "
                                  "llama.cpp would answer with plain text; give a tool-capable template with "
                                  "extra_args [--chat-template-file, FILE.jinja]")
    return ToolSupport(True, forced_choice=False, forced_reason=FORCED_CHOICE_REASON)
