"""One candidate's measured outcome as plain data, and its JSON form (one line of ``results.jsonl``).

``from_outcome`` condenses a bench ``RunOutcome``: throughput, goodput, SLO attainment and,
for each SLO, the observed value at its percentile with failed requests counted as +inf
(the same pools the bench uses to decide ``slo_met``), so the ranking can say how far a
candidate is from a target it missed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from inferplane.bench.analysis import RunOutcome
from inferplane.bench.metrics import request_metrics
from inferplane.bench.slo import SloTarget
from inferplane.bench.stats import json_num, percentile
from inferplane.choose.plan import Candidate
from inferplane.config.models import DeploymentConfig

__all__ = ["CandidateResult", "SloValue", "from_outcome", "not_measured"]


@dataclass(frozen=True, slots=True)
class SloValue:
    """One SLO and what a run achieved (``observed_s`` is +inf when requests failed past it)."""

    label: str
    metric: str
    percentile: float
    threshold_s: float
    observed_s: float
    met: bool

    @property
    def ratio(self) -> float:
        """observed / threshold: <= 1 meets it."""
        return self.observed_s / self.threshold_s if self.threshold_s > 0 else math.inf


@dataclass(frozen=True, slots=True)
class CandidateResult:
    """What measuring one candidate gave. ``status``: "ok", "failed" or "interrupted"."""

    id: str
    runtime: str
    label: str
    device: str
    deployment: DeploymentConfig
    status: str
    error: str = ""
    replicas: int = 1
    startup_s: float | None = None
    n_requests: int = 0
    n_ok: int = 0
    duration_s: float = 0.0
    request_throughput: float = 0.0
    output_throughput: float = 0.0
    goodput_rps: float = 0.0
    """Requests meeting every SLO per second (all successful requests when there are no SLOs)."""
    slo_attainment: float | None = None
    slos: tuple[SloValue, ...] = ()
    ttft_p50_s: float = math.nan
    ttft_p95_s: float = math.nan
    ttft_p99_s: float = math.nan
    tpot_p50_s: float = math.nan
    tpot_p95_s: float = math.nan
    tpot_p99_s: float = math.nan
    e2e_p95_s: float = math.nan
    warnings: tuple[str, ...] = field(default=())
    report_dir: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.n_ok > 0

    @property
    def meets_slos(self) -> bool:
        return self.ok and all(s.met for s in self.slos)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if name == "deployment":
                value = value.model_dump(mode="json", exclude_unset=True)
            elif name == "slos":
                value = [{k: json_num(getattr(s, k)) if isinstance(getattr(s, k), float) else getattr(s, k)
                          for k in s.__dataclass_fields__} for s in value]
            elif isinstance(value, float):
                value = json_num(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CandidateResult:
        def num(v: Any) -> float:
            return math.nan if v is None else math.inf if v == "inf" else float(v)

        kw = dict(data)
        kw["deployment"] = DeploymentConfig.model_validate(data["deployment"])
        kw["slos"] = tuple(SloValue(s["label"], s["metric"], num(s["percentile"]), num(s["threshold_s"]),
                                    num(s["observed_s"]), bool(s["met"])) for s in data.get("slos", ()))
        kw["warnings"] = tuple(data.get("warnings", ()))
        for name in ("ttft_p50_s", "ttft_p95_s", "ttft_p99_s", "tpot_p50_s", "tpot_p95_s", "tpot_p99_s",
                     "e2e_p95_s", "duration_s", "request_throughput", "output_throughput", "goodput_rps"):
            if name in kw:
                kw[name] = num(kw[name])
        return cls(**kw)


def not_measured(c: Candidate, status: str, error: str, startup_s: float | None = None) -> CandidateResult:
    """A candidate that failed to start or was interrupted."""
    return CandidateResult(c.id, c.runtime, c.label, c.device, c.deployment, status, error, startup_s=startup_s)


def _slo_values(run: RunOutcome, slos: Sequence[SloTarget]) -> tuple[SloValue, ...]:
    per = [(r, request_metrics(r)) for r in run.records]
    pools: dict[str, list[float]] = {
        "ttft": [m.ttft_s if r.ok and m.ttft_s is not None else math.inf for r, m in per],
        "e2e": [m.e2e_s if r.ok else math.inf for r, m in per],
        "tpot": [m.tpot_s if r.ok and m.tpot_s is not None else math.inf for r, m in per
                 if m.tpot_s is not None or not r.ok],
    }
    out = []
    for s in slos:
        observed = percentile(sorted(pools[s.metric]), s.percentile)
        out.append(SloValue(s.label(), s.metric, s.percentile, s.threshold_s, observed,
                            bool(observed <= s.threshold_s)))
    return tuple(out)


def _pct(run: RunOutcome, metric: str, q: float) -> float:
    per = [request_metrics(r) for r in run.records if r.ok]
    values = sorted(v for m in per if (v := getattr(m, f"{metric}_s")) is not None)
    return percentile(values, q)


def from_outcome(c: Candidate, run: RunOutcome, slos: Sequence[SloTarget], *, startup_s: float,
                 report_dir: str = "") -> CandidateResult:
    m = run.metrics
    return CandidateResult(
        id=c.id, runtime=c.runtime, label=c.label, device=c.device, deployment=c.deployment,
        status="ok" if m.n_ok else "failed", error="" if m.n_ok else f"every request failed: {m.errors}",
        replicas=c.deployment.replicas, startup_s=startup_s, n_requests=m.n_requests, n_ok=m.n_ok,
        duration_s=m.duration_s, request_throughput=m.request_throughput, output_throughput=m.output_throughput,
        goodput_rps=m.goodput_rps if m.goodput_rps is not None else m.request_throughput,
        slo_attainment=m.slo_attainment, slos=_slo_values(run, slos),
        ttft_p50_s=m.ttft.p50, ttft_p95_s=m.ttft.p95, ttft_p99_s=m.ttft.p99,
        tpot_p50_s=m.tpot.p50, tpot_p95_s=m.tpot.p95, tpot_p99_s=m.tpot.p99, e2e_p95_s=m.e2e.p95,
        warnings=run.warnings, report_dir=report_dir,
    )  # fmt: skip
