"""Rank measured candidates under the user's SLOs. Pure: same results in, same ranking out.

Order:

1. Candidates that ran and met every SLO (every candidate that ran, when there are no SLOs),
   by score: goodput per replica (req/s), or good requests per US dollar when every one of
   them has an hourly price. Scores within ``tie_tolerance`` (relative) of a group's best
   are a tie; ties are broken by, in turn, higher SLO attainment, higher output tokens/s,
   lower TTFT p95, then the candidate id - and the note says which one decided.
2. Candidates that ran but missed an SLO, by the same score (a ranking by goodput is
   ordered by goodput).
3. Candidates that failed or were interrupted, by id.

Apart from the ranking, ``closest`` lists the candidates that missed an SLO by how close
they came: the smallest worst ratio observed / target over the SLOs (then score, then id).
When no candidate meets the SLOs, the ranking says so and recommends the first of these.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from inferplane.choose.results import CandidateResult

__all__ = ["Ranked", "Ranking", "parse_prices", "price_for", "rank"]

TIE_TOLERANCE = 0.02


@dataclass(frozen=True, slots=True)
class Ranked:
    rank: int
    result: CandidateResult
    goodput_per_replica: float
    per_dollar: float | None
    """Good requests per USD (goodput per replica x 3600 / hourly price), when priced."""
    score: float
    meets_slos: bool
    slo_gap: float
    """Worst observed/target ratio over the SLOs (<= 1 meets all; +inf when it failed)."""
    note: str = ""


@dataclass(frozen=True, slots=True)
class Ranking:
    entries: tuple[Ranked, ...]
    metric: str
    """What ``score`` is, e.g. "goodput per replica (req/s)"."""
    winner: Ranked | None
    """The recommendation: best meeting the SLOs, else the closest; None when nothing ran."""
    any_meets: bool
    verdict: str
    notes: tuple[str, ...] = ()
    closest: tuple[Ranked, ...] = ()
    """The candidates that ran and missed an SLO, closest to meeting them first."""

    @property
    def runner_up(self) -> Ranked | None:
        """The best other candidate that ran, preferring another runtime (a fallback should not
        share the winner's failure modes)."""
        others = [e for e in self.entries if e is not self.winner and e.result.ok]
        other_runtime = [e for e in others if self.winner and e.result.runtime != self.winner.result.runtime]
        best = other_runtime or others
        return best[0] if best else None


def parse_prices(spec: str | None) -> dict[str, float]:
    """``"cpu=0.10,vllm=0.25,nvidia=2.5"`` -> {key: USD per hour}. Raises ``ValueError``."""
    prices: dict[str, float] = {}
    for item in filter(None, (p.strip() for p in (spec or "").split(","))):
        key, eq, value = item.partition("=")
        try:
            usd = float(value.strip().removeprefix("$").removesuffix("/h"))
        except ValueError:
            usd = -1.0
        if not eq or not key.strip() or usd <= 0:
            raise ValueError(f"bad --price {item!r}: expected RUNTIME_OR_HARDWARE=USD_PER_HOUR, e.g. cpu=0.10")
        prices[key.strip()] = usd
    return prices


def price_for(result: CandidateResult, prices: Mapping[str, float]) -> float | None:
    """Hourly price of one replica: by candidate id, runtime, device, "gpu" (any GPU), then "default"."""
    keys = [result.id, result.runtime, result.device, "gpu" if result.device != "cpu" else "", "default"]
    return next((prices[k] for k in keys if k and k in prices), None)


def _gap(r: CandidateResult) -> float:
    if not r.ok:
        return math.inf
    return max((s.ratio for s in r.slos), default=0.0)


def _tiebreak(e: Ranked) -> tuple[float, float, float, str]:
    r = e.result
    ttft = r.ttft_p95_s if not math.isnan(r.ttft_p95_s) else math.inf
    return (-(r.slo_attainment or 0.0), -r.output_throughput, ttft, r.id)


_TIE_WHY = ("higher SLO attainment", "higher output throughput", "lower TTFT p95", "candidate id (alphabetical)")


def _fmt_tie(a: Ranked, b: Ranked, metric: str, tol: float) -> str:
    ka, kb = _tiebreak(a), _tiebreak(b)
    idx = next((i for i in range(4) if ka[i] != kb[i]), 3)
    values = ""
    if idx == 0:
        values = f" ({(a.result.slo_attainment or 0):.0%} vs {(b.result.slo_attainment or 0):.0%})"
    elif idx == 1:
        values = f" ({a.result.output_throughput:.1f} vs {b.result.output_throughput:.1f} tok/s)"
    elif idx == 2:
        values = f" ({a.result.ttft_p95_s * 1e3:.0f} vs {b.result.ttft_p95_s * 1e3:.0f} ms)"
    return (f"{a.result.label} and {b.result.label} tie on {metric} ({a.score:.4g} vs {b.score:.4g}, "
            f"within {tol:.0%}); {a.result.label} ranks first by {_TIE_WHY[idx]}{values}")


def _order_with_ties(items: list[Ranked], metric: str, tol: float) -> tuple[list[Ranked], list[str]]:
    rest = sorted(items, key=lambda e: (-e.score, _tiebreak(e)))
    out: list[Ranked] = []
    notes: list[str] = []
    while rest:
        top = rest[0].score
        cluster = [e for e in rest if e.score >= top - abs(top) * tol]
        cluster.sort(key=_tiebreak)
        for a, b in itertools.pairwise(cluster):
            notes.append(_fmt_tie(a, b, metric, tol))
        out += cluster
        taken = {id(e) for e in cluster}
        rest = [e for e in rest if id(e) not in taken]
    return out, notes


def rank(results: Sequence[CandidateResult], prices: Mapping[str, float] | None = None,
         *, tie_tolerance: float = TIE_TOLERANCE) -> Ranking:
    prices = prices or {}
    ran = [r for r in results if r.ok]
    priced = bool(prices) and bool(ran) and all(price_for(r, prices) for r in ran)
    metric = "good requests per USD" if priced else "goodput per replica (req/s)"
    notes: list[str] = []
    if prices and ran and not priced:
        missing = ", ".join(r.label for r in ran if price_for(r, prices) is None)
        notes.append(f"no price for {missing}: ranked by goodput per replica instead of per dollar")
    entries = []
    for r in results:
        per_replica = r.goodput_rps / max(1, r.replicas) if r.ok else 0.0
        price = price_for(r, prices)
        per_dollar = per_replica * 3600 / price if price else None
        score = (per_dollar or 0.0) if priced else per_replica
        entries.append(Ranked(0, r, per_replica, per_dollar, score, r.meets_slos, _gap(r)))
    meeting, tie_notes = _order_with_ties([e for e in entries if e.meets_slos], metric, tie_tolerance)
    missing_slo, _ = _order_with_ties([e for e in entries if e.result.ok and not e.meets_slos], metric,
                                      tie_tolerance)
    failed = sorted((e for e in entries if not e.result.ok), key=lambda e: e.result.id)
    ordered = [Ranked(i + 1, e.result, e.goodput_per_replica, e.per_dollar, e.score, e.meets_slos, e.slo_gap,
                      _entry_note(e)) for i, e in enumerate(meeting + missing_slo + failed)]
    closest = tuple(sorted((e for e in ordered if e.result.ok and not e.meets_slos),
                           key=lambda e: (e.slo_gap, -e.score, e.result.id)))
    any_meets = bool(meeting)
    winner = ordered[0] if any_meets else (closest[0] if closest else None)
    return Ranking(tuple(ordered), metric, winner, any_meets, _verdict(winner, any_meets, results, metric),
                   tuple(notes + tie_notes), closest)


def _entry_note(e: Ranked) -> str:
    r = e.result
    if not r.ok:
        return f"{r.status}: {r.error}" if r.error else r.status
    missed = [f"{s.label.split('<=')[0]} {_dur(s.observed_s)} > {_dur(s.threshold_s)}" for s in r.slos if not s.met]
    return "misses " + ", ".join(missed) if missed else ""


def _dur(seconds: float) -> str:
    if math.isinf(seconds):
        return "inf (failures)"
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1e3:.0f} ms"


def _verdict(winner: Ranked | None, any_meets: bool, results: Sequence[CandidateResult], metric: str) -> str:
    if winner is None:
        return "No candidate completed a run: nothing to recommend (see the errors above)."
    r = winner.result
    value = f"{winner.score:.4g} {metric}"
    if any_meets:
        slo = " and meets every SLO" if r.slos else ""
        return f"Winner: {r.label} - {value}{slo}."
    worst = max(r.slos, key=lambda s: s.ratio)
    targets = ", ".join(s.label for s in r.slos)
    return (f"No candidate meets the SLOs ({targets}). Closest: {r.label} - "
            f"{worst.label.split('<=')[0]} {_dur(worst.observed_s)} vs target {_dur(worst.threshold_s)} "
            f"({worst.ratio:.2f}x); {value}. Relax the SLOs, lower the load, or try bigger hardware.")
