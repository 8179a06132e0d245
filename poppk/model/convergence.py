"""Convergence diagnostics checked after every fit.

Thresholds follow current practice (Vehtari et al. 2021, *Bayesian Analysis*):
rank-normalised split R-hat below 1.01 and bulk/tail ESS of at least 100 per
chain-set (400 for 4 chains), no divergent transitions, and trajectories not
hitting the maximum tree depth.

Every population parameter is judged, including the off-diagonal LKJ
correlations ``omega_corr`` of a full-Ω fit (lower triangle only, one row per
pair such as ``omega_corr[CL,V1]``; the diagonal is constant 1).  The energy
Bayesian fraction of missing information (E-BFMI, Betancourt 2016) is
computed per chain from ``sample_stats["energy"]`` and must be at least 0.3,
the threshold ArviZ and Stan use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["ConvergenceReport", "check_convergence", "correlation_draws", "e_bfmi",
           "RHAT_MAX", "ESS_MIN_PER_CHAIN", "BFMI_MIN"]

RHAT_MAX = 1.01
ESS_MIN_PER_CHAIN = 100
BFMI_MIN = 0.3
CORRELATION_VAR = "omega_corr"


@dataclass(frozen=True)
class ConvergenceReport:
    """Outcome of :func:`check_convergence`.

    Attributes
    ----------
    table
        Per parameter (off-diagonal correlations included, one row per pair):
        ``r_hat``, ``ess_bulk``, ``ess_tail`` and ``ok``.
    divergences
        Number of divergent transitions after warm-up.
    max_treedepth_hits
        Draws whose trajectory hit the maximum tree depth (if the sampler reports it).
    mean_steps
        Mean leapfrog steps per draw.
    problems
        Readable problem descriptions (empty when converged).
    e_bfmi
        E-BFMI of each chain, in chain order (empty when the sampler wrote no
        energy).
    notes
        Checks that could not be made and why (not failures).
    """

    table: pd.DataFrame
    divergences: int
    max_treedepth_hits: int
    mean_steps: float
    problems: tuple[str, ...] = field(default=())
    e_bfmi: tuple[float, ...] = field(default=())
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def message(self) -> str:
        """One paragraph naming every problem and the parameters concerned."""
        if self.ok:
            text = "converged: all R-hat < %.2f, ESS adequate, no divergences" % RHAT_MAX
            finite = [b for b in self.e_bfmi if np.isfinite(b)]
            if finite:
                text += f", E-BFMI >= {BFMI_MIN} (lowest {min(finite):.2f})"
        else:
            text = "convergence problems: " + "; ".join(self.problems)
        if self.notes:
            text += " (" + "; ".join(self.notes) + ")"
        return text

    def __str__(self) -> str:
        return self.message()


def correlation_draws(posterior: Any, name: str = CORRELATION_VAR) -> dict[str, Any]:
    """The off-diagonal correlations of a ``(chain, draw, a, b)`` matrix variable, one per pair.

    Parameters
    ----------
    posterior
        An xarray Dataset holding ``name`` with dims ``chain, draw`` and two
        more (``iiv, iiv_bis`` for ``omega_corr``).
    name
        The correlation matrix variable.

    Returns
    -------
    dict
        ``{"omega_corr[CL,V1]": DataArray(chain, draw), ...}`` for the strict
        lower triangle (row label after column label in the matrix order); the
        diagonal and the mirror-image upper triangle are left out.
    """
    var = posterior[name]
    row_dim, col_dim = [d for d in var.dims if d not in ("chain", "draw")]
    rows = [str(v) for v in var[row_dim].values]
    cols = [str(v) for v in var[col_dim].values]
    out = {}
    for i in range(len(rows)):
        for j in range(min(i, len(cols))):
            out[f"{name}[{cols[j]},{rows[i]}]"] = var.isel({row_dim: i, col_dim: j}, drop=True)
    return out


def e_bfmi(energy: np.ndarray) -> np.ndarray:
    """Energy Bayesian fraction of missing information of each chain.

    Parameters
    ----------
    energy
        Hamiltonian energy, shape ``(chain, draw)``.

    Returns
    -------
    numpy.ndarray
        ``mean(diff(E)^2) / var(E)`` per chain (sample variance, as :func:`arviz.bfmi`); NaN for
        a chain whose energy does not vary.
    """
    e = np.asarray(energy, dtype=float)
    num = np.square(np.diff(e, axis=1)).mean(axis=1)
    var = np.var(e, axis=1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(var > 0, num / np.where(var > 0, var, 1.0), np.nan)


def _diagnostics(data: Any, names: list[str] | None = None) -> pd.DataFrame:
    import arviz as az

    diag = az.summary(data, var_names=names, kind="diagnostics", round_to="none")
    return pd.DataFrame({k: diag.get(k, pd.Series(dtype=float)) for k in ("r_hat", "ess_bulk", "ess_tail")})


def check_convergence(idata: Any, var_names: list[str], settings: dict[str, Any] | None = None, *,
                      correlations: bool = True) -> ConvergenceReport:
    """Check R-hat, bulk/tail ESS, divergences, tree depth and E-BFMI.

    Parameters
    ----------
    idata
        InferenceData with ``posterior`` and ``sample_stats``.
    var_names
        Variables to check (the population parameters).
    settings
        Fit settings (unused keys ignored).
    correlations
        Also judge every off-diagonal ``omega_corr`` entry when the posterior
        has it, whether or not ``var_names`` names it (the default; R-hat is
        judged unrounded).

    Returns
    -------
    ConvergenceReport
        ``ok`` is False when any R-hat exceeds 1.01 (with more than one chain),
        any bulk or tail ESS is below 100 per chain, any transition diverged,
        any draw hit the maximum tree depth or any chain's E-BFMI is below 0.3.
        A sampler that wrote no energy gives a note, not a problem.
    """
    import xarray as xr

    post = idata.posterior
    names = [v for v in var_names if v in post and v != CORRELATION_VAR]
    nchain = post.sizes["chain"]
    parts = [_diagnostics(idata, names)] if names else []
    if CORRELATION_VAR in post and (correlations or CORRELATION_VAR in var_names):
        pairs = correlation_draws(post)
        if pairs:
            parts.append(_diagnostics(xr.Dataset(pairs)))
    table = pd.concat(parts) if parts else _diagnostics_empty()
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
    bfmi: tuple[float, ...] = ()
    notes: list[str] = []
    if "energy" in stats:
        energy = stats["energy"].transpose("chain", "draw")
        bfmi = tuple(float(b) for b in e_bfmi(energy.values))
        chains = [str(c) for c in energy["chain"].values]
        low_bfmi = [f"chain {c} ({b:.2f})" for c, b in zip(chains, bfmi) if b < BFMI_MIN]
        if low_bfmi:
            problems.append(
                f"E-BFMI < {BFMI_MIN} in {', '.join(low_bfmi)}: the sampler explores the energy distribution "
                "poorly; try a non-centred parameterisation, longer warm-up or tighter priors")
    else:
        notes.append("E-BFMI not checked: the sampler wrote no energy to sample_stats")
    table["ok"] = (table["r_hat"] <= RHAT_MAX) & (table["ess_bulk"] >= ess_min) & (table["ess_tail"] >= ess_min)
    return ConvergenceReport(table=table, divergences=div, max_treedepth_hits=depth_hits,
                             mean_steps=steps, problems=tuple(problems), e_bfmi=bfmi, notes=tuple(notes))


def _diagnostics_empty() -> pd.DataFrame:
    return pd.DataFrame({k: pd.Series(dtype=float) for k in ("r_hat", "ess_bulk", "ess_tail")})
