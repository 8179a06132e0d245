"""Dosing answers averaged over candidate models by their predictive weights.

Which size descriptor the PK follow is itself uncertain, and a variance ratio
simulated from one model inherits that model's assumption: a model that puts
clearance on AIBW makes AIBW dosing look right by construction.  The answer a
sponsor acts on therefore comes from the set of plausible fits, each
simulated on its own and combined as a mixture whose weights are the models'
LOO stacking weights (:func:`poppk.diagnostics.compare`): for every model
``k`` a share ``w_k`` of the pooled posterior draws is taken from that
model's draws.  A per-draw statistic (a variance ratio, ``f*``) keeps the
model it was computed under, so ratios are never formed across models.

The per-model answers stay beside the averaged one
(:func:`averaged_strategy_summary`), and :func:`model_dependence` says in
words whether the candidate models agree.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from poppk.errors import ConfigError
from poppk.simulate.summaries import per_draw_statistics, summarize_strategies

__all__ = ["mix_draws", "averaged_strategy_summary", "model_dependence", "draw_counts", "model_answers_table"]

#: Label of the model-averaged rows.
AVERAGED = "averaged"


def _normalised(weights: Mapping[str, float], names: Sequence[str]) -> dict[str, float]:
    missing = [n for n in names if n not in weights]
    if missing:
        raise ConfigError(f"no weight for models {missing}; weights given for {list(weights)}")
    w = np.array([float(weights[n]) for n in names])
    if np.any(~np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ConfigError(f"model weights must be finite, >= 0 and not all 0; got {dict(weights)}")
    w = w / w.sum()
    return dict(zip(names, w.tolist()))


def draw_counts(weights: Mapping[str, float], n: int) -> dict[str, int]:
    """Draws taken from each model: ``n · w`` rounded by largest remainder (sums to ``n``).

    Examples
    --------
    >>> draw_counts({"TBW": 0.62, "AIBW": 0.38}, 200)
    {'TBW': 124, 'AIBW': 76}
    """
    names = list(weights)
    w = np.array([weights[k] for k in names], dtype=float)
    w = w / w.sum()
    raw = w * n
    base = np.floor(raw).astype(int)
    order = np.argsort(-(raw - base), kind="stable")
    for j in order[: n - int(base.sum())]:
        base[j] += 1
    return dict(zip(names, base.tolist()))


def mix_draws(
    per_model: Mapping[str, xr.Dataset],
    weights: Mapping[str, float],
    *,
    n_draws: int | None = None,
    seed: int = 0,
) -> xr.Dataset:
    """Pool per-draw results of several models as a mixture with ``weights``.

    Parameters
    ----------
    per_model
        ``{model: Dataset}`` each with a ``draw`` dimension (per-draw
        statistics, f* draws, ...) and otherwise the same dimensions.
    weights
        ``{model: weight}`` (normalised here), e.g. LOO stacking weights.
    n_draws
        Size of the pooled sample (default: the smallest number of draws
        among the models with positive weight, so no draw is used twice).
    seed
        Seed of the choice of draws within each model.

    Returns
    -------
    xarray.Dataset
        Dimension ``draw`` (0..n-1) with a ``model`` coordinate saying which
        model each pooled draw came from; ``attrs["weights"]`` and
        ``attrs["draws_per_model"]``.
    """
    names = list(per_model)
    if not names:
        raise ConfigError("mix_draws needs at least one model")
    w = _normalised(weights, names)
    positive = [k for k in names if w[k] > 0]
    sizes = {k: per_model[k].sizes["draw"] for k in names}
    n = min(sizes[k] for k in positive) if n_draws is None else int(n_draws)
    if n < 1:
        raise ConfigError(f"n_draws must be >= 1, got {n}")
    counts = draw_counts({k: w[k] for k in names}, n)
    rng = np.random.default_rng([int(seed), 7])
    parts = []
    for k in names:
        c = counts[k]
        if c == 0:
            continue
        avail = sizes[k]
        idx = np.sort(rng.choice(avail, size=c, replace=c > avail))
        part = per_model[k].isel(draw=idx)
        part = part.drop_vars("draw", errors="ignore").assign_coords(model=("draw", [k] * c))
        parts.append(part)
    out = xr.concat(parts, dim="draw", coords="minimal", compat="override", join="override")
    out = out.assign_coords(draw=np.arange(out.sizes["draw"]))
    out.attrs = {"weights": w, "draws_per_model": counts}
    return out


def averaged_strategy_summary(
    sims: Mapping[str, xr.Dataset],
    weights: Mapping[str, float],
    *,
    reference: str | None = None,
    ci: float = 0.9,
    n_draws: int | None = None,
    seed: int = 0,
    method: str = "stacking",
) -> pd.DataFrame:
    """Strategy summaries of each model and of their stacking mixture, side by side.

    Parameters
    ----------
    sims
        ``{model: simulation}`` from :func:`~poppk.simulate.simulate_strategies`,
        the same strategies, metrics and schedule simulated from each fit.
    weights
        ``{model: weight}``, e.g. ``compare(fits)["weight"]``.
    reference, ci
        As :func:`~poppk.simulate.summarize_strategies`.
    n_draws, seed
        As :func:`mix_draws`.
    method
        How the weights were made (recorded for the text, e.g. ``"stacking"``).

    Returns
    -------
    pandas.DataFrame
        Index (``model``, ``strategy``, ``metric``) with ``model`` =
        ``"averaged"`` first, then each model; the columns of
        :func:`~poppk.simulate.summarize_strategies` and ``weight``.
        ``attrs``: ``reference``, ``ci``, ``weights``, ``draws_per_model``.
    """
    names = list(sims)
    w = _normalised(weights, names)
    first = sims[names[0]]
    for k in names[1:]:
        s = sims[k]
        if list(s.strategy.values) != list(first.strategy.values) or list(s.metric.values) != list(first.metric.values):
            raise ConfigError(
                f"model {k!r} was simulated with other strategies or metrics than {names[0]!r}; "
                "simulate the same strategies and metrics from every fit"
            )
    stats = {k: per_draw_statistics(sims[k]) for k in names}
    pooled = mix_draws(stats, w, n_draws=n_draws, seed=seed)
    tables = {AVERAGED: summarize_strategies(first, reference=reference, ci=ci, stats=pooled)}
    tables[AVERAGED].attrs["n_draws"] = int(pooled.sizes["draw"])
    for k in names:
        tables[k] = summarize_strategies(sims[k], reference=reference, ci=ci, stats=stats[k])
    frames = []
    for k, t in tables.items():
        t = t.copy()
        t.insert(0, "weight", 1.0 if k == AVERAGED else w[k])
        frames.append(pd.concat({k: t}, names=["model"]))
    out = pd.concat(frames)
    out.attrs.update({"reference": tables[AVERAGED].attrs["reference"], "ci": ci, "weights": w,
                      "draws_per_model": pooled.attrs["draws_per_model"], "method": method})
    return out


def _direction(lo: float, hi: float) -> str:
    if hi < 1:
        return "below"
    if lo > 1:
        return "above"
    return "unclear"


def model_dependence(
    table: pd.DataFrame,
    strategy: str,
    metric: str,
    *,
    min_weight: float = 0.05,
    quantity: str = "var_ratio",
) -> dict[str, Any]:
    """Whether the candidate models agree on one answer, with a sentence that says so.

    The answer *depends on the model* when two models that carry weight
    (≥ ``min_weight``) put their credible intervals on opposite sides of 1,
    when their intervals do not overlap, or when one interval excludes 1 and
    another does not while its median lies outside the first interval (one
    model says "clearly less variance", another "unclear, and less
    likely so").  When a single model carries the weight, the sentence says
    so and lists what the others would answer.

    Parameters
    ----------
    table
        Output of :func:`averaged_strategy_summary`.
    strategy, metric
        The answer to judge (strategy name or label, metric name).
    min_weight
        Models below this weight are listed but do not decide.
    quantity
        Column stem (``var_ratio``: ``_median``, ``_lo``, ``_hi``).

    Returns
    -------
    dict
        ``depends`` (bool), ``verdict`` (one sentence), ``text`` (a paragraph
        with the averaged answer), ``per_model`` (``{model: (weight,
        median, lo, hi)}``) and ``averaged`` (``(median, lo, hi)``).
    """
    models = [m for m in table.index.get_level_values("model").unique() if m != AVERAGED]
    sel = _select_strategy(table, strategy)
    metrics = list(table.index.get_level_values("metric").unique())
    if metric not in metrics:
        raise ConfigError(f"metric {metric!r} is not one of the simulated metrics {metrics}")
    ci = table.attrs.get("ci", 0.9)
    method = table.attrs.get("method", "stacking")

    def row(model: str) -> pd.Series:
        return table.loc[(model, sel, metric)]

    per = {}
    for m in models:
        r = row(m)
        per[m] = (float(r["weight"]), float(r[f"{quantity}_median"]), float(r[f"{quantity}_lo"]),
                  float(r[f"{quantity}_hi"]))
    a = row(AVERAGED)
    avg = (float(a[f"{quantity}_median"]), float(a[f"{quantity}_lo"]), float(a[f"{quantity}_hi"]))
    heavy = [m for m in models if per[m][0] >= min_weight]
    dirs = {m: _direction(per[m][2], per[m][3]) for m in models}
    opposite = {"below", "above"} <= {dirs[m] for m in heavy}
    disjoint = any(per[x][3] < per[y][2] or per[y][3] < per[x][2] for x in heavy for y in heavy if x < y)
    depends = _disagree(per, dirs, heavy)
    label = str(a.get("label", sel))
    pct = f"{round(100 * ci)}%"
    each = "; ".join(f"{m} (weight {per[m][0]:.2f}): {per[m][1]:.2f} [{per[m][2]:.2f}, {per[m][3]:.2f}]"
                     for m in models)
    head = (f"{label}, {metric}: variance ratio {avg[0]:.2f} [{avg[1]:.2f}, {avg[2]:.2f}] "
            f"(median [{pct} CrI]) averaged over {len(models)} models by {method} weights.")
    if depends:
        why = ("point in opposite directions" if opposite else "do not overlap" if disjoint
               else "disagree on whether it changes")
        verdict = (f"The answer depends on the size model: the models' intervals {why} ({each}); the averaged "
                   "interval carries that model uncertainty, and more data on heavy and light patients, not a "
                   "choice of model, would narrow it.")
    elif len(heavy) == 1 and len(models) > 1:
        if _disagree(per, dirs, models):
            verdict = (f"One model carries the weight ({heavy[0]}, {per[heavy[0]][0]:.2f}), so the averaged answer "
                       f"is its answer; the others, with little weight, would answer differently: {each}.")
        else:
            lo_m, hi_m = min(p[1] for p in per.values()), max(p[1] for p in per.values())
            verdict = (f"The answer does not depend on the model: every fit gives {lo_m:.2f}–{hi_m:.2f} ({each}); "
                       f"the weight on {heavy[0]} changes little.")
    else:
        verdict = f"The candidate models agree ({each})."
    return {"depends": depends, "verdict": verdict, "text": f"{head} {verdict}", "per_model": per,
            "averaged": avg}


def _disagree(per: Mapping[str, tuple[float, float, float, float]], dirs: Mapping[str, str],
              models: Sequence[str]) -> bool:
    """Opposite sides of 1, disjoint intervals, or one excluding 1 while another straddles it away from it."""
    opposite = {"below", "above"} <= {dirs[m] for m in models}
    disjoint = any(per[x][3] < per[y][2] or per[y][3] < per[x][2] for x in models for y in models if x < y)
    shifted = any(dirs[x] != "unclear" and dirs[y] == "unclear" and not per[x][2] <= per[y][1] <= per[x][3]
                  for x in models for y in models if x != y)
    return bool(opposite or disjoint or shifted)


def _select_strategy(table: pd.DataFrame, strategy: str) -> str:
    names = list(table.index.get_level_values("strategy").unique())
    if strategy in names:
        return strategy
    labels = table.reset_index().drop_duplicates("strategy").set_index("strategy")["label"]
    for name, lab in labels.items():
        if lab == strategy:
            return str(name)
    raise ConfigError(f"strategy {strategy!r} is not one of {names}")


def model_answers_table(table: pd.DataFrame, strategy: str, metric: str, *, quantity: str = "var_ratio") -> pd.DataFrame:
    """One answer per model and the averaged one: the numbers of :func:`~poppk.simulate.plot_model_answers`.

    Parameters
    ----------
    table
        Output of :func:`averaged_strategy_summary`.
    strategy, metric
        The answer (strategy name or label, metric).
    quantity
        Column stem (default ``var_ratio``).

    Returns
    -------
    pandas.DataFrame
        Index ``model`` (``averaged`` first); columns ``weight``, ``median``,
        ``lo``, ``hi`` and ``p_below_1`` (posterior probability of a ratio
        below 1, for ``var_ratio``).  ``attrs``: strategy, metric, label,
        reference, ci.
    """
    sel = _select_strategy(table, strategy)
    sub = table.xs((sel, metric), level=("strategy", "metric"))
    out = pd.DataFrame({
        "weight": sub["weight"].astype(float),
        "median": sub[f"{quantity}_median"].astype(float),
        "lo": sub[f"{quantity}_lo"].astype(float),
        "hi": sub[f"{quantity}_hi"].astype(float),
    })
    if quantity == "var_ratio" and "prob_var_ratio_below_1" in sub:
        out["p_below_1"] = sub["prob_var_ratio_below_1"].astype(float)
    out.index.name = "model"
    label = str(sub["label"].iloc[0]) if "label" in sub else sel
    out.attrs.update({"strategy": sel, "metric": metric, "label": label,
                      "reference": table.attrs.get("reference"), "ci": table.attrs.get("ci", 0.9)})
    return out
