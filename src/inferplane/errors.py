"""inferplane's one exception tree.

Every error inferplane raises on purpose derives from :class:`InferplaneError`; the classes
live beside the code that raises them, and this module holds the root and the classes that
belong to no single package. Foreign exceptions (``OSError``, ``orjson.JSONDecodeError``,
httptools' parser errors, a translator's ``KeyError``) are caught where they enter and
re-raised as one of these with ``raise ... from exc``, so callers catch our classes only::

    InferplaneError
    ├── ConfigError (ValueError)          config/models.py   a deployment file or flag that cannot work
    ├── Rejection                         gateway/surfaces/base.py
    │                                     the gateway refuses a client request: status, message, code,
    │                                     param, headers; each surface renders it in its API's shape
    ├── UnsupportedRequest (ValueError)   runtimes/base.py   a runtime cannot honour a parameter (a 400)
    ├── TranslationError (ValueError)     here               a runtime's answer a dialect cannot read
    ├── NoReplica                         routing/held.py    nothing can serve the request now (a 503
    │                                                        with Retry-After)
    ├── UpstreamError                     gateway/upstream.py   talking to a replica failed
    │   ├── StaleConnection                a reused keep-alive connection was already closed: resend
    │   ├── ConnectFailed                  no TCP connection
    │   ├── UpstreamBroken                 the connection broke mid-response
    │   ├── UpstreamTimeout                no response status in time
    │   │   └── UpstreamStalled            a started stream went silent
    │   └── UpstreamTooLarge               a body read whole was over the limit
    ├── LaunchError (ValueError)          runtimes/base.py   a deployment a runtime cannot launch
    ├── UnknownRuntimeError (KeyError)    runtimes/registry.py
    ├── PlacementError                    placement/backend.py
    │   (ReplicaStartError (RuntimeError) beside it: a replica process that did not come up)
    ├── ModelError                        models/store.py    a model that cannot be found or fetched
    └── ServeError                        server.py          ``inferplane serve`` cannot start

The built-in base kept beside ours (``ValueError``, ``KeyError``) is for callers written before
the tree existed; new code catches the inferplane class.
"""

from __future__ import annotations

__all__ = ["InferplaneError", "TranslationError"]


class InferplaneError(Exception):
    """The root of every error inferplane raises on purpose."""


class TranslationError(InferplaneError, ValueError):
    """A runtime's answer (a body or a stream chunk) that its dialect's translator cannot read.

    Raised at the translation boundary with the translator's own exception as ``__cause__``;
    the proxy treats it as the replica's fault (``invalid_response`` before the first byte,
    an error event that ends the stream after it).
    """
