"""Exposure targets of :func:`poppk.forecast.recommend.recommend_dose`: their grammar and clauses.

A target is one clause or several joined by ``and``:

``auc_ss in [a, b]``
    the metric within a range: the dose maximising P(a ≤ metric ≤ b);
``P(cmax_c1 > x) <= p``
    a chance constraint (toxicity): only doses with P(metric > x) ≤ p;
``P(ctrough_ss < x) <= p``
    the same below a bound (efficacy);
``auc_ss = a``
    the dose whose median exposure is a;
``P(event) <= p``
    her probability of the adverse event of an exposure-toxicity model
    (:func:`poppk.simulate.toxicity.fit_exposure_toxicity`, passed as
    ``toxicity=``) at most p: the logistic curve averaged over her exposure
    posterior and the curve's own posterior.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from poppk.errors import ConfigError
from poppk.simulate.exposure import DOSE_LINEAR_METRICS

__all__ = ["Clause", "parse_target"]

_NUM = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
_METRIC = r"([a-z_0-9]+)"


@dataclass(frozen=True)
class Clause:
    """One clause of a target.

    Attributes
    ----------
    kind
        ``"range"``, ``"above"`` (P(metric > bound) ≤ p), ``"below"``
        (P(metric < bound) ≤ p), ``"median"`` or ``"event"`` (P(adverse
        event) ≤ p; its metric is the exposure-toxicity model's).
    metric
        A dose-proportional exposure metric.
    low, high
        Range ends, or the bound (``low``) of a chance constraint, or the
        median target.
    p
        The largest probability allowed (chance constraints).
    """

    kind: str
    metric: str
    low: float
    high: float = float("nan")
    p: float = float("nan")

    @property
    def text(self) -> str:
        """The clause as written back."""
        if self.kind == "range":
            return f"{self.metric} in [{self.low:g}, {self.high:g}]"
        if self.kind == "median":
            return f"median {self.metric} = {self.low:g}"
        if self.kind == "event":
            return f"P(event) <= {self.p:g}"
        sign = ">" if self.kind == "above" else "<"
        return f"P({self.metric} {sign} {self.low:g}) <= {self.p:g}"

    def probability(self, x: np.ndarray) -> np.ndarray:
        """Per candidate (rows of ``x``, samples in columns): P(range) or the tail probability."""
        if self.kind == "range":
            return np.mean((x >= self.low) & (x <= self.high), axis=-1)
        if self.kind == "above":
            return np.mean(x > self.low, axis=-1)
        if self.kind == "below":
            return np.mean(x < self.low, axis=-1)
        if self.kind == "event":
            raise ConfigError("the probability of an event clause needs the exposure-toxicity model")
        return np.mean(x <= self.low, axis=-1)

    def met(self, x: np.ndarray) -> np.ndarray:
        """Whether each candidate meets the clause (a range or median clause is an objective, always met)."""
        if self.kind in ("above", "below"):
            return self.probability(x) <= self.p + 1e-12
        return np.ones(x.shape[0], dtype=bool)


def _metric(name: str, text: str) -> str:
    if name not in DOSE_LINEAR_METRICS:
        raise ConfigError(f"target {text!r}: unknown or not dose-proportional metric {name!r}; "
                          f"valid: {', '.join(DOSE_LINEAR_METRICS)}")
    return name


def parse_target(text: str) -> tuple[Clause, ...]:
    """Clauses of a target text (see the module doc).

    Examples
    --------
    >>> [c.text for c in parse_target("auc_ss in [4000, 8000] and P(cmax_c1 > 250) <= 0.1")]
    ['auc_ss in [4000, 8000]', 'P(cmax_c1 > 250) <= 0.1']
    """
    clauses = []
    for part in [p.strip() for p in re.split(r"\s+and\s+|;", str(text).strip().lower()) if p.strip()]:
        p = part.replace(" ", "")
        if (m := re.fullmatch(_METRIC + r"in\[" + _NUM + r"," + _NUM + r"\]", p)):
            lo, hi = float(m.group(2)), float(m.group(3))
            if not 0 <= lo < hi:
                raise ConfigError(f"target {part!r}: the range needs 0 <= low < high, got [{lo:g}, {hi:g}]")
            clauses.append(Clause("range", _metric(m.group(1), text), lo, hi))
        elif (m := re.fullmatch(r"p\((?:event|ae|toxicity)\)<=?" + _NUM, p)):
            prob = float(m.group(1))
            if not 0 < prob < 1:
                raise ConfigError(f"target {part!r}: needs a probability in (0, 1)")
            clauses.append(Clause("event", "", float("nan"), p=prob))
        elif (m := re.fullmatch(r"p\(" + _METRIC + r"([<>])=?" + _NUM + r"\)<=?" + _NUM, p)):
            bound, prob = float(m.group(3)), float(m.group(4))
            if not (bound > 0 and 0 < prob < 1):
                raise ConfigError(f"target {part!r}: needs a bound > 0 and a probability in (0, 1)")
            clauses.append(Clause("above" if m.group(2) == ">" else "below", _metric(m.group(1), text), bound, p=prob))
        elif (m := re.fullmatch(r"(?:median)?" + _METRIC + r"(?:=|~|==)" + _NUM, p)):
            v = float(m.group(2))
            if not v > 0:
                raise ConfigError(f"target {part!r}: the exposure target must be > 0")
            clauses.append(Clause("median", _metric(m.group(1), text), v))
        else:
            raise ConfigError(
                f"cannot read target {part!r}; examples: 'auc_ss in [4000, 8000]', 'P(cmax_c1 > 250) <= 0.1', "
                "'P(ctrough_ss < 5) <= 0.2', 'auc_ss = 6000', 'P(event) <= 0.2', joined by 'and'")
    if not clauses:
        raise ConfigError("empty target; e.g. 'auc_ss in [4000, 8000]'")
    if sum(c.kind in ("range", "median") for c in clauses) > 1:
        raise ConfigError(f"target {text!r}: give at most one range or median clause (the others as P(...) <= p)")
    return tuple(clauses)
