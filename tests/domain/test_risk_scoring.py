"""Risk scoring and the pure checks: levels, floors, catalogue merging, thresholds, pass-through."""

from __future__ import annotations

import pytest

from fundtrail.domain.risk import (
    Evidence,
    FiredIndicator,
    IndicatorDefinition,
    PassThrough,
    Payment,
    RiskLevel,
    assess,
    definition_from_mapping,
    fifo_pass_through,
    level_of_score,
    matches_categories,
    merge_catalogue,
    near_threshold,
    rapid_movement,
)


def _ind(ident: str, weight: int, floor: RiskLevel = RiskLevel.NONE) -> IndicatorDefinition:
    return IndicatorDefinition(ident, ident.title(), "d", "s", "sec", "exposure", weight, floor)


def _fired(ident: str, weight: int, floor: RiskLevel = RiskLevel.NONE) -> FiredIndicator:
    return FiredIndicator(_ind(ident, weight, floor), f"{ident} fired", (Evidence("tag", "x"),))


def test_no_indicator_is_no_risk() -> None:
    result = assess([])
    assert (result.level, result.score, result.indicators) == (RiskLevel.NONE, 0, ())
    assert result.explanation() == ["level none, score 0: no indicator fired"]


def test_scores_combine_like_independent_signals() -> None:
    # 1 - (1 - 0.4) * (1 - 0.25) = 0.55
    result = assess([_fired("mixer", 40), _fired("peel", 25)])
    assert result.score == 55 and result.level is RiskLevel.MEDIUM
    # The same indicator twice counts once.
    assert assess([_fired("mixer", 40), _fired("mixer", 40)]).score == 40


@pytest.mark.parametrize(("score", "level"), [(0, RiskLevel.NONE), (1, RiskLevel.LOW), (29, RiskLevel.LOW),
                                              (30, RiskLevel.MEDIUM), (59, RiskLevel.MEDIUM),
                                              (60, RiskLevel.HIGH), (89, RiskLevel.HIGH),
                                              (90, RiskLevel.SEVERE), (100, RiskLevel.SEVERE)])
def test_level_bands(score: int, level: RiskLevel) -> None:
    assert level_of_score(score) is level


def test_a_floor_raises_the_level() -> None:
    # A weak indicator with a severe floor (direct sanctions) makes the address severe whatever the score.
    result = assess([_fired("weak", 10), _fired("sanctioned", 10, RiskLevel.SEVERE)])
    assert result.score == 19 and result.level is RiskLevel.SEVERE
    # Strongest first in the explanation: floors before weights.
    assert [f.definition.id for f in result.indicators] == ["sanctioned", "weak"]
    assert result.explanation()[0] == "sanctioned (weight 10, at least severe): sanctioned fired"
    assert result.to_dict()["indicators"][0]["evidence"] == [{"kind": "tag", "description": "x"}]


def test_merge_catalogue_overrides_and_extends() -> None:
    base = {"mixer": IndicatorDefinition("mixer", "Mixer", "d", "s", "sec", "mixer", 40,
                                         parameters={"categories": ["mixing_service"], "other": 1})}
    merged = merge_catalogue(base, [
        {"id": "mixer", "weight": 55, "floor": "medium", "parameters": {"categories": ["coinjoin"]}},
        {"id": "drugs", "title": "Drugs", "description": "d", "source": "s", "check": "exposure",
         "weight": 30, "parameters": {"categories": ["drugs"]}},
        {"id": "drugs", "enabled": False},
    ])
    assert merged["mixer"].weight == 55 and merged["mixer"].floor is RiskLevel.MEDIUM
    # Parameters merge key by key: "other" survives, "categories" is replaced.
    assert merged["mixer"].parameters == {"categories": ["coinjoin"], "other": 1}
    assert merged["drugs"].check == "exposure" and merged["drugs"].enabled is False
    assert base["mixer"].weight == 40  # the base catalogue is not changed
    assert definition_from_mapping({"id": "x", "title": "t", "description": "d", "source": "s",
                                    "check": "mixer", "weight": 5}).floor is RiskLevel.NONE


def test_categories_match_through_broader_concepts() -> None:
    ancestors = {"pyramid_scheme": ["pyramid_scheme", "ponzi_scheme", "investment_fraud", "financial_crime"],
                 "exchange": ["exchange", "service"]}
    assert matches_categories([None, "pyramid_scheme"], ["investment_fraud"], ancestors) == "pyramid_scheme"
    assert matches_categories(["exchange"], ["investment_fraud"], ancestors) is None
    assert matches_categories(["bridge"], ["bridge"], ancestors) == "bridge"  # not a concept: exact match


def test_near_threshold() -> None:
    pays = [Payment(f"t{v}", v, 1, 0) for v in (899_999, 900_000, 950_000, 999_999, 1_000_000)]
    # [threshold * 0.9, threshold): 900,000 up to 999,999.
    assert [p.value for p in near_threshold(pays, 1_000_000, 0.1)] == [900_000, 950_000, 999_999]


def test_fifo_pass_through_matches_oldest_value_first() -> None:
    received = [Payment("in1", 100, 10, 1_000), Payment("in2", 50, 12, 2_000)]
    sent = [Payment("out1", 120, 13, 2_300)]
    links = fifo_pass_through(received, sent)
    assert links == [PassThrough("in1", "out1", 100, 3, 1_300), PassThrough("in2", "out1", 20, 1, 300)]
    moved = rapid_movement(150, links, max_blocks=1, max_seconds=None)
    assert (moved.rapid, round(moved.ratio, 3)) == (20, 0.133)
    moved = rapid_movement(150, links, max_blocks=None, max_seconds=3_600)
    assert moved.rapid == 120 and moved.ratio == 0.8
