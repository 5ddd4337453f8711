"""The deployment file for the winner: the settings that were measured, runnable with
``inferplane serve --config``.

With ``fallback=True`` the runner-up (another runtime when one ran) becomes a second
deployment, ``<name>-fallback``, and the winner names it in ``fallback:`` so the gateway
sends requests there when no winner replica can take them. The document is validated with
``parse_config`` before anything is written; a header comment records what was measured.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

from inferplane.choose.rank import Ranked, Ranking
from inferplane.config.models import DeploymentConfig, InferplaneConfig, parse_config

__all__ = ["EmitError", "deployment_document", "write_deployment"]

_MEASUREMENT_ONLY = frozenset({"ready_timeout_s"})
"""Fields set for the measurement that users should not inherit unless they matter."""


class EmitError(ValueError):
    """No deployment can be written (nothing ran), or the result is not a valid config."""


def _dep(d: DeploymentConfig, name: str) -> dict[str, Any]:
    data = d.model_dump(mode="json", exclude_unset=True)
    data["name"] = name
    data["runtime"] = d.runtime  # always explicit, even when it is the default
    data["model"] = d.model
    if (d.ready_timeout_s or 0) <= 300:
        for key in _MEASUREMENT_ONLY:
            data.pop(key, None)
    order = ["name", "runtime", "model", "replicas", "max_concurrent_sequences", "threads"]
    return {k: data[k] for k in order if k in data} | {k: v for k, v in data.items() if k not in order}


def deployment_document(ranking: Ranking, *, name: str, fallback: bool = False, host: str = "127.0.0.1",
                        port: int = 8000) -> tuple[dict[str, Any], InferplaneConfig]:
    """(YAML-ready dict, validated config). Raises ``EmitError``."""
    winner = ranking.winner
    if winner is None:
        raise EmitError("no candidate completed a run: there is no deployment to write")
    first = _dep(winner.result.deployment, name)
    deployments = [first]
    second: Ranked | None = ranking.runner_up if fallback else None
    if second is not None:
        fb_name = f"{name}-fallback"
        first["fallback"] = fb_name
        deployments.append(_dep(second.result.deployment, fb_name))
    doc = {"gateway": {"host": host, "port": port}, "deployments": deployments}
    try:
        cfg = parse_config(doc, source="emitted deployment")
    except ValueError as exc:
        raise EmitError(str(exc)) from exc
    return doc, cfg


def _header(ranking: Ranking, workload: str, slos: str) -> str:
    lines = [f"Written by `inferplane choose` on {time.strftime('%Y-%m-%d %H:%M:%S %Z')}.",
             f"Workload: {workload}", f"SLOs: {slos or 'none'}", ranking.verdict]
    for e in ranking.entries[:4]:
        r = e.result
        meas = (f"goodput/replica {e.goodput_per_replica:.3g} req/s, out {r.output_throughput:.1f} tok/s, "
                f"TTFT p95 {r.ttft_p95_s * 1e3:.0f} ms, TPOT p95 {r.tpot_p95_s * 1e3:.0f} ms") if r.ok else r.status
        lines.append(f"  #{e.rank} {r.label}: {meas}")
    lines.append("Run it: inferplane serve --config THIS_FILE")
    return "".join(f"# {line}\n" for line in lines)


def write_deployment(path: Path, ranking: Ranking, *, name: str, fallback: bool = False,
                     workload: str = "", slos: str = "") -> InferplaneConfig:
    """Validate, then write the deployment file (atomically). Returns the config."""
    doc, cfg = deployment_document(ranking, name=name, fallback=fallback)
    text = _header(ranking, workload, slos) + yaml.safe_dump(doc, sort_keys=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return cfg
