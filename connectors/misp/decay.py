"""When a MISP attribute decays, from the decay scores MISP attaches to restSearch results.

MISP's polynomial model (``app/Model/DecayingModelsFormulas/Polynomial.php``, MISP 2.5) scores an
attribute ``t`` seconds after its last sighting or change as::

    score = base_score * (1 - (t / (lifetime_days * 86400)) ** (1 / decay_speed))

and calls it decayed once the score is below the model's threshold. Solving for the threshold gives
the moment of decay, which becomes the indicator's ``valid_until``. MISP filters an attribute out only
when every model says it decayed, so the latest moment among the models counts.

MISP's ``excludeDecayed`` filter has had paging and speed bugs, so the scores are requested with
``includeDecayScore`` and ``includeFullModel`` and filtered here instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

SECONDS_PER_DAY = 86_400


def decay_expiry(scores: Iterable[Mapping[str, Any]], now: datetime) -> datetime | None:
    """Return when the attribute falls below every model's threshold, or None when that is unknown.

    A moment in the past means the attribute has already decayed. None means there are no scores, or a
    model that has not decayed uses a formula other than the polynomial one, or lacks its parameters.
    """
    moments: list[datetime] = []
    for entry in scores:
        moment = _model_expiry(entry, now)
        if moment is None:
            return None
        moments.append(moment)
    return max(moments) if moments else None


def _model_expiry(entry: Mapping[str, Any], now: datetime) -> datetime | None:
    model = entry.get("DecayingModel")
    model = model if isinstance(model, Mapping) else {}
    parameters = model.get("parameters")
    formula = str(model.get("formula") or "Polynomial")
    decayed = _truthy(entry.get("decayed"))

    try:
        score = float(entry["score"])
        base = float(entry["base_score"])
        lifetime = float(parameters["lifetime"]) * SECONDS_PER_DAY  # type: ignore[index]
        speed = float(parameters["decay_speed"])  # type: ignore[index]
        threshold = float(parameters["threshold"])  # type: ignore[index]
    except (KeyError, TypeError, ValueError):
        return now if decayed else None
    if formula.lower() != "polynomial" or lifetime <= 0 or speed <= 0:
        return now if decayed else None
    if base <= 0 or base <= threshold:
        return now

    # Seconds since the clock of the model started, read back from the score, and the threshold moment.
    elapsed = lifetime * max(0.0, 1 - score / base) ** speed
    crossing = lifetime * (1 - threshold / base) ** speed
    return now + timedelta(seconds=crossing - elapsed)


def _truthy(value: Any) -> bool:
    return value is True or value in (1, "1", "true", "True")
