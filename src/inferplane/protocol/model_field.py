"""Rewriting a request body's top-level ``"model"`` value without re-encoding the body.

Hot path (an endpoint that knows the model by another name). The body was parsed once
already, so its top-level ``model`` value is known; this replaces exactly those bytes and
copies the rest as it came (one ``memcpy``-speed copy; prompts are not re-encoded).

Why a byte scan finds the right place: inside a JSON string a ``"`` is always escaped, so
``"model"`` followed by optional whitespace and ``:`` can only be an object key (or a key
that ends in ``\\"model``, which the backslash check rejects). When the body holds exactly
one such key, it is the top-level one the parse saw. With two or more (a tool schema with
a ``model`` property, say), or a value spelled with other escapes than orjson's,
:func:`replace_model` answers None and the caller re-encodes the parsed request instead.
"""

from __future__ import annotations

import orjson

__all__ = ["replace_model"]

_KEY = b'"model"'
_WS = b" \t\r\n"


def _skip_ws(body: bytes, j: int) -> int:
    n = len(body)
    while j < n and body[j] in _WS:
        j += 1
    return j


def replace_model(body: bytes, old: str, new: str) -> bytes | None:
    """``body`` with its top-level ``"model": old`` value set to ``new``; None when unsure where it is."""
    value_at = -1
    i = body.find(_KEY)
    while i >= 0:
        j = _skip_ws(body, i + len(_KEY))
        if j < len(body) and body[j] == 0x3A:  # ':' - a key
            if value_at >= 0 or (i > 0 and body[i - 1] == 0x5C):  # a second key, or one ending in \"model
                return None
            value_at = _skip_ws(body, j + 1)
        i = body.find(_KEY, j)
    if value_at < 0:
        return None
    encoded = orjson.dumps(old)
    if not body.startswith(encoded, value_at):
        return None
    return b"".join((body[:value_at], orjson.dumps(new), body[value_at + len(encoded):]))
