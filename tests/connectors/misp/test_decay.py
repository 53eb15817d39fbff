"""Tests of decay expiry computed from MISP decay scores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from stixbridge.connectors.misp.decay import decay_expiry

NOW = datetime(2024, 6, 15, tzinfo=UTC)


def _score(elapsed_days: float, *, lifetime: float = 120, speed: float = 2, threshold: float = 30,
           base: float = 80, formula: str = "Polynomial", full: bool = True) -> dict[str, Any]:  # fmt: skip
    """A decay score as MISP computes it for an attribute last changed ``elapsed_days`` ago."""
    score = max(0.0, base * (1 - (elapsed_days / lifetime) ** (1 / speed)))
    model: dict[str, Any] = {"id": "1", "name": "model"}
    if full:
        model.update(formula=formula, parameters={"lifetime": lifetime, "decay_speed": speed, "threshold": threshold})
    return {"score": score, "base_score": base, "decayed": score < threshold, "DecayingModel": model}


def test_live_attribute_expires_at_threshold() -> None:
    # 120 days * (1 - 30/80) ** 2 = 46.875 days after the last change.
    expiry = decay_expiry([_score(10)], NOW)

    assert expiry is not None
    assert abs(expiry - (NOW + timedelta(days=36.875))) < timedelta(seconds=1)


def test_decayed_attribute_expired_in_past() -> None:
    expiry = decay_expiry([_score(60)], NOW)

    assert expiry is not None
    assert abs(expiry - (NOW - timedelta(days=13.125))) < timedelta(seconds=1)


def test_latest_model_counts() -> None:
    phishing = _score(1, lifetime=3, speed=2.3)
    nids = _score(10)

    assert decay_expiry([phishing, nids], NOW) == decay_expiry([nids], NOW)


def test_no_scores_no_expiry() -> None:
    assert decay_expiry([], NOW) is None


def test_model_without_parameters_unknown() -> None:
    assert decay_expiry([_score(10, full=False)], NOW) is None


def test_decayed_model_without_parameters_expires_now() -> None:
    assert decay_expiry([_score(100, full=False)], NOW) == NOW


def test_other_formula_unknown_unless_decayed() -> None:
    assert decay_expiry([_score(10, formula="Custom")], NOW) is None
    assert decay_expiry([_score(100, formula="Custom")], NOW) == NOW


def test_base_score_below_threshold_expires_now() -> None:
    assert decay_expiry([_score(0, base=20)], NOW) == NOW


def test_unknown_model_among_known_gives_none() -> None:
    assert decay_expiry([_score(10), _score(10, full=False)], NOW) is None


def test_scores_as_strings() -> None:
    entry = _score(10)
    entry.update(score=str(entry["score"]), base_score="80", decayed="0")

    expiry = decay_expiry([entry], NOW)

    assert expiry is not None
    assert abs(expiry - (NOW + timedelta(days=36.875))) < timedelta(seconds=1)
