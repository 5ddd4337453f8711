"""Ranking with fixed inputs: goodput per replica, per dollar, ties, SLOs nobody meets, failures."""

from __future__ import annotations

import pytest

from inferplane.choose.rank import parse_prices, price_for, rank

TTFT = "ttft_p95<=1000ms"
TPOT = "tpot_p95<=100ms"


def slos(ttft_s: float, tpot_s: float = 0.05) -> list[tuple[str, float, float]]:
    return [(TTFT, 1.0, ttft_s), (TPOT, 0.1, tpot_s)]


def test_highest_goodput_per_replica_wins(make_result) -> None:
    r = rank([make_result("a", 1.0, slos=slos(0.5)), make_result("b", 3.0, slos=slos(0.9)),
              make_result("c", 2.0, slos=slos(0.2))])
    assert [e.result.id for e in r.entries] == ["b", "c", "a"]
    assert r.winner is not None and r.winner.result.id == "b"
    assert r.any_meets and r.verdict.startswith("Winner: b") and "meets every SLO" in r.verdict
    assert [e.rank for e in r.entries] == [1, 2, 3]


def test_goodput_is_divided_by_replicas(make_result) -> None:
    r = rank([make_result("two-replicas", 3.0, replicas=2), make_result("one", 2.0)])
    assert r.winner.result.id == "one"
    assert r.entries[1].goodput_per_replica == pytest.approx(1.5)


def test_near_tie_is_broken_by_output_throughput_and_explained(make_result) -> None:
    r = rank([make_result("a", 1.00, out_tok_s=40.0), make_result("b", 1.01, out_tok_s=55.0),
              make_result("c", 0.5)])
    assert [e.result.id for e in r.entries] == ["b", "a", "c"]
    r2 = rank([make_result("a", 1.01, out_tok_s=55.0), make_result("b", 1.00, out_tok_s=40.0)])
    assert [e.result.id for e in r2.entries] == ["a", "b"]
    r3 = rank([make_result("a", 1.00, out_tok_s=55.0), make_result("b", 1.01, out_tok_s=40.0)])
    assert [e.result.id for e in r3.entries] == ["a", "b"]  # within 2%: the throughput decides
    (note,) = r3.notes
    assert "a and b tie on goodput per replica" in note and "within 2%" in note
    assert "higher output throughput (55.0 vs 40.0 tok/s)" in note


def test_exact_tie_falls_back_to_attainment_then_ttft_then_id(make_result) -> None:
    att = rank([make_result("a", 1.0, attainment=0.9), make_result("b", 1.0, attainment=1.0)])
    assert [e.result.id for e in att.entries] == ["b", "a"] and "higher SLO attainment" in att.notes[0]
    ttft = rank([make_result("a", 1.0, ttft_p95=0.9), make_result("b", 1.0, ttft_p95=0.3)])
    assert [e.result.id for e in ttft.entries] == ["b", "a"] and "lower TTFT p95 (300 vs 900 ms)" in ttft.notes[0]
    same = rank([make_result("zeta", 1.0), make_result("alpha", 1.0)])
    assert [e.result.id for e in same.entries] == ["alpha", "zeta"]
    assert "candidate id (alphabetical)" in same.notes[0]
    assert rank([make_result("zeta", 1.0), make_result("alpha", 1.0)][::-1]).entries[0].result.id == "alpha"


def test_tie_tolerance_is_configurable(make_result) -> None:
    results = [make_result("a", 1.00, out_tok_s=55.0), make_result("b", 1.01, out_tok_s=40.0)]
    assert rank(results, tie_tolerance=0.0).entries[0].result.id == "b"


def test_slo_misses_rank_below_any_candidate_meeting_them(make_result) -> None:
    r = rank([make_result("fast-but-late", 5.0, slos=slos(1.5)), make_result("slow-on-time", 1.0, slos=slos(0.8))])
    assert [e.result.id for e in r.entries] == ["slow-on-time", "fast-but-late"]
    assert r.entries[1].note == "misses ttft_p95 1.50 s > 1.00 s"


def test_nobody_meets_the_slos_says_so_and_recommends_the_closest(make_result) -> None:
    r = rank([make_result("far", 4.0, slos=slos(3.0)), make_result("close", 1.0, slos=slos(1.2, 0.11)),
              make_result("tpot-miss", 2.0, slos=slos(0.5, 0.25))])
    assert not r.any_meets
    assert [e.result.id for e in r.entries] == ["far", "tpot-miss", "close"]  # the ranking: by goodput
    assert [e.score for e in r.entries] == sorted((e.score for e in r.entries), reverse=True)
    assert [e.result.id for e in r.closest] == ["close", "tpot-miss", "far"]  # the separate, labelled list
    assert r.winner is not None and r.winner.result.id == "close"
    assert r.verdict.startswith("No candidate meets the SLOs (ttft_p95<=1000ms, tpot_p95<=100ms). Closest: close")
    assert "ttft_p95 1.20 s vs target 1.00 s (1.20x)" in r.verdict


def test_failed_candidates_come_last_and_nothing_ran_means_no_winner(make_result) -> None:
    r = rank([make_result("broken", 9.0, status="failed"), make_result("ok", 0.1)])
    assert [e.result.id for e in r.entries] == ["ok", "broken"] and r.entries[1].note == "failed: boom"
    none = rank([make_result("x", 1.0, status="failed"), make_result("y", 1.0, status="interrupted")])
    assert none.winner is None and "nothing to recommend" in none.verdict


def test_per_dollar_ranking_when_every_candidate_has_a_price(make_result) -> None:
    results = [make_result("gpu-box", 10.0, runtime="vllm", device="nvidia"), make_result("cpu-box", 1.0)]
    assert rank(results).winner.result.id == "gpu-box"
    priced = rank(results, parse_prices("nvidia=4.0,cpu=0.10"))
    assert priced.metric == "good requests per USD"
    assert priced.winner.result.id == "cpu-box"
    assert priced.winner.per_dollar == pytest.approx(1.0 * 3600 / 0.10)
    partial = rank(results, {"cpu": 0.1})
    assert partial.metric == "goodput per replica (req/s)" and "no price for gpu-box" in partial.notes[0]


def test_price_lookup_order_and_parsing(make_result) -> None:
    r = make_result("embedded-parallel4", 1.0)
    assert price_for(r, {"cpu": 1.0, "embedded": 2.0, "embedded-parallel4": 3.0}) == 3.0
    assert price_for(r, {"cpu": 1.0, "embedded": 2.0}) == 2.0
    assert price_for(make_result("v", 1.0, runtime="vllm", device="nvidia"), {"gpu": 2.5, "default": 1}) == 2.5
    assert parse_prices("cpu=$0.10/h, vllm=0.25") == {"cpu": 0.10, "vllm": 0.25}
    for bad in ("cpu", "cpu=0", "cpu=abc", "=1"):
        with pytest.raises(ValueError, match="bad --price"):
            parse_prices(bad)


def test_runner_up_prefers_another_runtime(make_result) -> None:
    r = rank([make_result("e4", 3.0), make_result("e1", 2.5), make_result("v", 1.0, runtime="vllm")])
    assert r.runner_up is not None and r.runner_up.result.id == "v"
    only = rank([make_result("e4", 3.0), make_result("e1", 2.5)])
    assert only.runner_up is not None and only.runner_up.result.id == "e1"
    assert rank([make_result("e4", 3.0)]).runner_up is None
