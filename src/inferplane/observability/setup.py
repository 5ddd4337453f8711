"""Building the optional request observers (traces, access log) from the gateway config.

``serve``'s composition root calls :func:`optional_observers` once, passes the observers to
the ``Gateway`` and calls ``close()`` on the result at shutdown (after the last request),
which writes the access log's pending lines and exports the buffered spans.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from inferplane.config.models import ConfigError, GatewayConfig
from inferplane.observability.access_log import AccessLog, LineWriter
from inferplane.observability.observer import RequestObserver

__all__ = ["OptionalObservers", "optional_observers"]


@dataclass(slots=True)
class OptionalObservers:
    observers: list[RequestObserver] = field(default_factory=list)
    descriptions: list[str] = field(default_factory=list)
    """One line per observer for the startup log (``access log -> PATH``, ``traces -> URL``)."""

    def close(self) -> None:
        """Flush and stop each observer's background work (idempotent)."""
        for o in self.observers:
            close = getattr(o, "close", None)
            if close is not None:
                close()


def optional_observers(cfg: GatewayConfig) -> OptionalObservers:
    """The observers ``cfg`` asks for (none by default: then nothing is added to the hot path).

    Raises ``ConfigError`` when one cannot start: the access log's path cannot be opened,
    or tracing is configured without the OpenTelemetry SDK (the message has the install command).
    """
    out = OptionalObservers()
    if cfg.tracing is not None:
        from inferplane.observability.tracing import TracingUnavailable, build_tracing

        try:
            out.observers.append(build_tracing(cfg.tracing))
        except TracingUnavailable as exc:
            raise ConfigError(str(exc)) from exc
        out.descriptions.append(f"traces -> {cfg.tracing.traces_url} (OTLP/HTTP, sample ratio "
                                f"{cfg.tracing.sample_ratio:g})")
    if cfg.access_log is not None:
        try:
            writer = LineWriter(cfg.access_log)
        except OSError as exc:
            out.close()
            raise ConfigError(f"gateway.access_log: cannot open {cfg.access_log!r}: {exc.strerror or exc}") from exc
        out.observers.append(AccessLog(writer, log_prompts=cfg.log_prompts))
        where = "standard output" if cfg.access_log == "-" else cfg.access_log
        out.descriptions.append(f"access log -> {where}" + (" (with prompts)" if cfg.log_prompts else ""))
    return out
