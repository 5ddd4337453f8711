"""Upstream credentials and TLS settings of the deployment file, and their load-time checks.

The deployment file never holds a key: an endpoint names the environment variable that
does (``api_key_env``), and :func:`read_api_key` reads it - the one place inferplane reads
such a variable. What the proxy could not do is refused when the file is loaded, with the
setting's path in the message, not per request:

- ``api_key_env`` names a variable that is not set (or empty);
- ``ca_file`` / ``gateway.upstream_ca_file`` is not a readable PEM bundle;
- ``gateway.tls`` names a certificate or key that cannot be loaded.

A key read here is wrapped in :class:`Secret`, whose ``repr``/``str`` never show it.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from inferplane.config.models import InferplaneConfig, ReplicaTarget

__all__ = ["ENV_NAME_RE", "LITERAL_KEY_FIELDS", "ListenerTLS", "Secret", "endpoint_problems", "key_problem",
           "literal_key_problem", "read_api_key", "upstream_problems"]

ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
"""What an environment variable's name looks like (a key pasted into ``api_key_env`` does not)."""

LITERAL_KEY_FIELDS = frozenset({"api_key", "apikey", "api_token", "token", "key", "bearer", "authorization"})
"""Field names under which someone would write a key itself into the file: refused with a pointer."""


class ListenerTLS(BaseModel):
    """TLS on the gateway's own listener (HTTP/1.1 over TLS)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cert_file: Path = Field(description="PEM certificate chain the gateway presents (server certificate first).")
    key_file: Path = Field(description="PEM private key of that certificate (unencrypted).")


class Secret:
    """A credential read from the environment; shows as ``'***'`` anywhere it is printed."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The key itself - only for the one header that carries it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def literal_key_problem(data: object) -> str | None:
    """The message for a key written into the file itself (``api_key: sk-...``), else None.

    The message names the field, never its value.
    """
    if not isinstance(data, dict):
        return None
    found = sorted(k for k in data if isinstance(k, str) and k.lower() in LITERAL_KEY_FIELDS)
    if not found:
        return None
    return (f"{found[0]!r} would put the key itself in the deployment file, which inferplane refuses; "
            "export the key in an environment variable and name that variable in 'api_key_env' "
            "(e.g. api_key_env: VLLM_API_KEY)")


def read_api_key(env_name: str, environ: Mapping[str, str] | None = None) -> Secret | None:
    """The key in environment variable ``env_name``; None when it is unset or empty."""
    env = os.environ if environ is None else environ
    value = env.get(env_name, "").strip()
    return Secret(value) if value else None


def upstream_problems(config: InferplaneConfig, environ: Mapping[str, str] | None = None) -> list[str]:
    """Everything about upstream keys and TLS files the gateway could not use, as ``path: problem`` lines."""
    out: list[str] = []
    gw = config.gateway
    if gw.upstream_ca_file is not None:
        out += _ca_problem("gateway.upstream_ca_file", gw.upstream_ca_file)
    if gw.tls is not None:
        out += _listener_problem(gw.tls)
    for path, env_name in _key_settings(config):
        problem = key_problem(path, env_name, environ)
        if problem is not None:
            out.append(problem)
    for i, dep in enumerate(config.deployments):
        for j, target in enumerate(dep.endpoints):
            if target.ca_file is not None:
                out += _ca_problem(f"deployments.{i}.endpoints.{j}.ca_file", target.ca_file)
    return out


def key_problem(path: str, env_name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """Why the key in ``env_name`` cannot be sent (``path: problem``), or None when it can."""
    key = read_api_key(env_name, environ)
    if key is None:
        return (f"{path}: environment variable {env_name} is not set (or empty); export it with the "
                "endpoint's API key before starting inferplane")
    if not all(" " < c < "\x7f" for c in key.reveal()):
        return (f"{path}: environment variable {env_name} holds characters an HTTP header cannot carry "
                "(spaces, line breaks, control or non-ASCII characters); it must hold the key alone")
    return None


def endpoint_problems(target: ReplicaTarget, default_key_env: str | None = None,
                      environ: Mapping[str, str] | None = None, *, path: str = "") -> list[str]:
    """What about one endpoint's key and CA file the gateway could not use, as ``path`` + ``field:
    problem`` lines: the checks :func:`upstream_problems` makes of the file's endpoints, for one
    that joins at run time (``POST /admin/deployments/{name}/endpoints``). ``default_key_env``:
    its deployment's ``api_key_env``, used when the endpoint names none."""
    out: list[str] = []
    env_name = target.api_key_env or default_key_env
    if env_name is not None:
        field = "api_key_env" if target.api_key_env else "deployment's api_key_env"
        problem = key_problem(f"{path}{field}", env_name, environ)
        if problem is not None:
            out.append(problem)
    if target.ca_file is not None:
        out += _ca_problem(f"{path}ca_file", target.ca_file)
    return out


def _key_settings(config: InferplaneConfig) -> Iterator[tuple[str, str]]:
    for i, dep in enumerate(config.deployments):
        if dep.api_key_env is not None and dep.endpoints:
            yield f"deployments.{i}.api_key_env", dep.api_key_env
        for j, target in enumerate(dep.endpoints):
            if target.api_key_env is not None:
                yield f"deployments.{i}.endpoints.{j}.api_key_env", target.api_key_env


def _ca_problem(path: str, ca_file: Path) -> list[str]:
    try:
        ssl.create_default_context(cafile=str(ca_file))
    except FileNotFoundError:
        return [f"{path}: CA bundle {ca_file} does not exist"]
    except PermissionError:
        return [f"{path}: CA bundle {ca_file} cannot be read (permission denied)"]
    except (ssl.SSLError, OSError, ValueError) as exc:
        return [f"{path}: {ca_file} is not a PEM CA bundle ({_reason(exc)})"]
    return []


def _listener_problem(tls: ListenerTLS) -> list[str]:
    for name, p in (("cert_file", tls.cert_file), ("key_file", tls.key_file)):
        if not p.is_file():
            return [f"gateway.tls.{name}: {p} does not exist"]
        if not os.access(p, os.R_OK):
            return [f"gateway.tls.{name}: {p} cannot be read (permission denied)"]
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(str(tls.cert_file), str(tls.key_file))
    except (ssl.SSLError, OSError, ValueError) as exc:
        return [f"gateway.tls: cannot load the certificate {tls.cert_file} with the key {tls.key_file} "
                f"({_reason(exc)}); both must be PEM, the key unencrypted and matching the certificate"]
    return []


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason).lower().replace("_", " ")
    return str(exc)
