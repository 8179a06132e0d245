"""Convergence diagnostics checked after every fit.

Thresholds follow current practice (Vehtari et al. 2021, *Bayesian Analysis*):
rank-normalised split R-hat below 1.01 and bulk/tail ESS of at least 100 per
chain-set (400 for 4 chains), no divergent transitions, and trajectories not
hitting the maximum tree depth.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["ConvergenceReport", "check_convergence", "RHAT_MAX", "ESS_MIN_PER_CHAIN"]

RHAT_MAX = 1.01
ESS_MIN_PER_CHAIN = 100


@dataclass(frozen=True)
class ConvergenceReport:
    """Outcome of :func:`check_convergence`.

    Attributes
    ----------
    table
        Per parameter: ``r_hat``, ``ess_bulk``, ``ess_tail`` and flags.
    divergences
        Number of divergent transitions after warm-up.
    max_treedepth_hits
        Draws whose trajectory hit the maximum tree depth (if the sampler reports it).
    mean_steps
        Mean leapfrog steps per draw.
    problems
        Readable problem descriptions (empty when converged).
    """

    table: pd.DataFrame
    divergences: int
    max_treedepth_hits: int
    mean_steps: float
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def message(self) -> str:
        """One paragraph naming every problem and the parameters concerned."""
        if self.ok:
            return "converged: all R-hat < %.2f, ESS adequate, no divergences" % RHAT_MAX
        return "convergence problems: " + "; ".join(self.problems)

    def __str__(self) -> str:
        return self.message()


def check_convergence(idata: Any, var_names: list[str], settings: dict[str, Any] | None = None) -> ConvergenceReport:
    """Check R-hat, bulk/tail ESS, divergences and tree depth.

    Parameters
    ----------
    idata
        InferenceData with ``posterior`` and ``sample_stats``.
    var_names
        Variables to check (the population parameters).
    settings
        Fit settings (unused keys ignored).
    """
    import arviz as az

    post = idata.posterior
    names = [v for v in var_names if v in post]
    nchain = post.sizes["chain"]
    diag = az.summary(idata, var_names=names, kind="diagnostics", round_to="none") if names else pd.DataFrame()
    table = pd.DataFrame(
        {
            "r_hat": diag.get("r_hat", pd.Series(dtype=float)),
            "ess_bulk": diag.get("ess_bulk", pd.Series(dtype=float)),
            "ess_tail": diag.get("ess_tail", pd.Series(dtype=float)),
        }
    )
    ess_min = ESS_MIN_PER_CHAIN * nchain
    problems = []
    if nchain > 1 and len(table):
        bad = table.index[table["r_hat"] > RHAT_MAX].tolist()
        if bad:
            problems.append(f"R-hat > {RHAT_MAX} for {', '.join(bad)}")
    if len(table):
        low = table.index[(table["ess_bulk"] < ess_min) | (table["ess_tail"] < ess_min)].tolist()
        if low:
            problems.append(f"bulk or tail ESS < {ess_min} for {', '.join(low)}")
    stats = idata.sample_stats
    div = int(stats["diverging"].sum()) if "diverging" in stats else 0
    if div:
        problems.append(f"{div} divergent transitions after warm-up")
    depth_hits = 0
    if "reached_max_treedepth" in stats:
        depth_hits = int(stats["reached_max_treedepth"].sum())
    elif "maxdepth_reached" in stats:
        depth_hits = int(stats["maxdepth_reached"].sum())
    if depth_hits:
        problems.append(f"{depth_hits} draws hit the maximum tree depth")
    steps = float(stats["n_steps"].mean()) if "n_steps" in stats else (
        float(stats["tree_size"].mean()) if "tree_size" in stats else float("nan")
    )
    table["ok"] = (table["r_hat"] <= RHAT_MAX) & (table["ess_bulk"] >= ess_min) & (table["ess_tail"] >= ess_min)
    return ConvergenceReport(table=table, divergences=div, max_treedepth_hits=depth_hits,
                             mean_steps=steps, problems=tuple(problems))
