"""How to reach an endpoint: TLS for ``https://`` URLs and the header that carries its API key.

One :class:`UpstreamAccess` per endpoint URL, built once by ``serve`` from the deployment
file (:func:`build_access`) and used by everything that talks to endpoints - the proxy's
pooled client, the liveness probe, the health checker and the model discovery - so a
request and the probe that decides readiness see the same certificate checks and send the
same key.

TLS: verification is on unless an endpoint says ``tls_verify: false``; the CA bundle is the
endpoint's ``ca_file``, else ``gateway.upstream_ca_file``, else the system's store. The host
name in the URL is checked against the certificate and sent as SNI.

The key is kept only inside the prepared header; ``repr`` shows where it came from
(``$VLLM_API_KEY``), never the key.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from inferplane.config import DeploymentConfig, GatewayConfig
    from inferplane.config.models import ReplicaTarget
    from inferplane.config.upstreams import Secret
    from inferplane.runtimes.base import Dialect

__all__ = ["PLAIN", "AccessTable", "UpstreamAccess", "access_for_endpoint", "access_from_config", "build_access",
           "describe_tls_error", "endpoint_access", "tls_context"]


@dataclass(frozen=True, slots=True)
class UpstreamAccess:
    """TLS and credentials for one endpoint. Immutable; shared by every client of that URL."""

    ssl_context: ssl.SSLContext | None = None
    """For https:// URLs (None: the system's CAs with verification, made on first use)."""
    header: tuple[str, str] | None = field(default=None, repr=False)
    """(name, value) of the credential header; None: no key is sent."""
    key_source: str = ""
    """Where the key came from, for messages (``$VLLM_API_KEY``); never the key."""
    tls_note: str = ""
    """The TLS setting in words, for /admin/endpoints (``ca_file /etc/ca.pem``, ``system CAs``)."""

    def headers(self) -> dict[str, str]:
        """The credential as a header dict (for aiohttp); empty when there is none."""
        return {self.header[0]: self.header[1]} if self.header else {}

    def describe(self) -> dict[str, str | None]:
        """What /admin/endpoints shows: the key's source and the TLS setting, no secret."""
        return {"api_key_from": self.key_source or None, "tls": self.tls_note or None}


PLAIN = UpstreamAccess()
"""No key; for https:// the system's CAs (the default of every URL nobody configured)."""


def tls_context(ca_file: Path | None = None, *, verify: bool = True) -> ssl.SSLContext:
    """A client TLS context: certificates and host names checked against ``ca_file`` (only it,
    when given) or the system's store; ``verify=False`` checks nothing. Raises OSError or
    ssl.SSLError for a CA file that cannot be loaded (the config checks that at load)."""
    ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


_UNKNOWN_CA = ("set the endpoint's ca_file, or gateway.upstream_ca_file, to the CA that signed its certificate")
_VERIFY_HINTS = {
    2: _UNKNOWN_CA, 18: _UNKNOWN_CA, 19: _UNKNOWN_CA, 20: _UNKNOWN_CA, 21: _UNKNOWN_CA,
    **dict.fromkeys((62, 64), "use the host name or address the certificate was issued for in the endpoint's url"),
    10: "the endpoint needs a renewed certificate",
}
"""What to do, by OpenSSL's X509_V_ERR code (2, 18-21: issuer not trusted; 62/64: host name/IP mismatch; 10: expired)."""


def describe_tls_error(exc: BaseException) -> str | None:
    """A TLS failure in words (``certificate verify failed: self-signed certificate``, with what to
    do), or None when ``exc`` (or its cause) is not one."""
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            break
        cert_error = getattr(seen, "certificate_error", None)  # aiohttp's ClientConnectorCertificateError
        if isinstance(cert_error, BaseException):
            seen = cert_error
        if isinstance(seen, ssl.SSLCertVerificationError):
            what = getattr(seen, "verify_message", None) or getattr(seen, "reason", None) or str(seen)
            hint = _VERIFY_HINTS.get(getattr(seen, "verify_code", 0) or 0)
            return f"certificate verify failed: {what.rstrip('.')}" + (f" ({hint})" if hint else "")
        if isinstance(seen, ssl.SSLError):
            return f"TLS handshake failed: {(seen.reason or str(seen)).lower().replace('_', ' ')}"
        seen = seen.__cause__ or seen.__context__
    return None


class AccessTable:
    """Endpoint URL -> :class:`UpstreamAccess`; a URL the file does not list (a launched replica,
    one added through the admin API) gets ``default``: no key, the gateway-wide CA bundle."""

    def __init__(self, by_url: Mapping[str, UpstreamAccess] | None = None, default: UpstreamAccess = PLAIN) -> None:
        self._by_url = dict(by_url or {})
        self._default = default

    def __call__(self, url: str) -> UpstreamAccess:
        return self._by_url.get(url, self._default)

    def with_url(self, url: str, access: UpstreamAccess) -> AccessTable:
        """A new table: this one, with ``url``'s access set to ``access`` (an endpoint that joined)."""
        return AccessTable({**self._by_url, url: access}, self._default)

    def changed(self, other: AccessTable) -> set[str] | None:
        """URLs whose access differs between ``self`` and ``other`` (after a reload); None: any URL
        may have (the default changed)."""
        urls = self._by_url.keys() | other._by_url.keys()
        if self._default != other._default:
            return None
        return {u for u in urls if self(u) != other(u)}


def endpoint_access(gateway: GatewayConfig, dep: DeploymentConfig, target: ReplicaTarget, key: Secret | None,
                    dialect: Dialect, contexts: dict[tuple[str | None, bool], ssl.SSLContext] | None = None,
                    ) -> UpstreamAccess:
    """The access of one endpoint of ``dep``: its key (``key``, read from ``target.api_key_env``
    or else ``dep.api_key_env``) in the header ``dialect`` names, and for https:// its TLS
    context. ``contexts`` shares one context among endpoints with the same CA and verification.
    Raises ValueError when there is a key but the runtime takes none, OSError/ssl.SSLError for a
    CA file that cannot be loaded."""
    env_name = target.api_key_env or dep.api_key_env
    header = None
    if env_name is not None:
        if dialect.api_key_header is None:
            raise ValueError(f"deployment {dep.name!r}: runtime {dep.runtime!r} takes no API key, so "
                             f"api_key_env ({env_name}) cannot be sent; remove it")
        if key is None:
            raise ValueError(f"deployment {dep.name!r}: environment variable {env_name} (api_key_env) is not set "
                             "or empty; export it with the endpoint's API key")
        name, prefix = dialect.api_key_header
        header = (name, prefix + key.reveal())
    ctx, note = None, ""
    if target.url.startswith("https://"):
        ca = target.ca_file or gateway.upstream_ca_file
        k = (str(ca) if ca is not None else None, target.tls_verify)
        ctx = None if contexts is None else contexts.get(k)
        if ctx is None:
            ctx = tls_context(ca, verify=target.tls_verify)
            if contexts is not None:
                contexts[k] = ctx
        note = "verification off" if not target.tls_verify else f"ca_file {ca}" if ca else "system CAs"
    return UpstreamAccess(ctx, header, f"${env_name}" if env_name else "", note)


def build_access(gateway: GatewayConfig, deployments: tuple[DeploymentConfig, ...],
                 keys: Mapping[str, Secret], dialects: Mapping[str, Dialect]) -> AccessTable:
    """The access of every listed endpoint (:func:`endpoint_access` each).

    ``keys``: environment variable name -> its key (read by the config package);
    ``dialects``: deployment name -> its dialect (which says the header). Raises ValueError
    when an endpoint has a key but its runtime takes none, or a CA file cannot be loaded.
    """
    contexts: dict[tuple[str | None, bool], ssl.SSLContext] = {}
    out: dict[str, UpstreamAccess] = {}
    for dep in deployments:
        for target in dep.endpoints:
            env_name = target.api_key_env or dep.api_key_env
            out[target.url] = endpoint_access(gateway, dep, target, keys.get(env_name) if env_name else None,
                                              dialects[dep.name], contexts)
    ca = gateway.upstream_ca_file
    default = PLAIN if ca is None else UpstreamAccess(tls_context(ca), None, "", f"ca_file {ca}")
    return AccessTable(out, default)


def access_for_endpoint(gateway: GatewayConfig, dep: DeploymentConfig, target: ReplicaTarget,
                        environ: Mapping[str, str] | None = None) -> UpstreamAccess:
    """The access of an endpoint that joins ``dep`` at run time, checked as the deployment file's
    endpoints are at load (``config.upstreams.endpoint_problems``). Raises ValueError whose
    message lists the problems as ``field: problem`` (never the key)."""
    from inferplane.config.upstreams import endpoint_problems, read_api_key
    from inferplane.runtimes.registry import get_adapter  # the adapters import this module's users

    problems = endpoint_problems(target, dep.api_key_env, environ)
    if problems:
        raise ValueError("; ".join(problems))
    env_name = target.api_key_env or dep.api_key_env
    key = read_api_key(env_name, environ) if env_name else None
    try:
        return endpoint_access(gateway, dep, target, key, get_adapter(dep.runtime).dialect_for(dep))
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"ca_file: {exc}") from exc


def access_from_config(gateway: GatewayConfig, deployments: tuple[DeploymentConfig, ...],
                       environ: Mapping[str, str] | None = None) -> AccessTable:
    """:func:`build_access` with the keys read from the variables the deployments name.

    Raises ValueError for a variable that is unset or empty (the config check at load says so
    first; this catches one unset since), or what :func:`build_access` raises.
    """
    from inferplane.config.upstreams import read_api_key
    from inferplane.runtimes.registry import get_adapter  # the adapters import this module's users

    keys: dict[str, Secret] = {}
    for dep in deployments:
        for name in {n for n in (dep.api_key_env, *(t.api_key_env for t in dep.endpoints)) if n}:
            key = read_api_key(name, environ)
            if key is None:
                raise ValueError(f"deployment {dep.name!r}: environment variable {name} (api_key_env) is not set "
                                 "or empty; export it with the endpoint's API key")
            keys[name] = key
    return build_access(gateway, deployments, keys, {d.name: get_adapter(d.runtime).dialect_for(d) for d in deployments})
