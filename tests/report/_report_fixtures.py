"""Synthetic fits for the report tests: a known posterior, no MCMC.

:func:`synthetic_fit` builds a :class:`~poppk.model.Fit` directly from
arrays of draws (``arviz.from_dict``) on a small simulated dataset read from
a CSV file whose name, one covariate column and one subject ID are hostile
HTML, so every table can be checked against numbers computed from the
arrays and every export against escaping.
"""

from __future__ import annotations

import functools
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from poppk.data import read_nonmem
from poppk.model import CovariateEffect, Fit, ModelSpec, Prior
from poppk.model.parameters import covariate_columns, log_individual_parameters

#: A hostile string used as title, strategy label, model name, figure caption.
EVIL = "<script>alert(1)</script>"
#: A hostile covariate column (no '/': NetCDF variable names cannot hold one).
EVIL_COLUMN = "<img src=x onerror=alert(1)>"
#: The covariate column as the reader canonicalises it (upper case).
EVIL_COV = EVIL_COLUMN.upper()
N_SUBJECTS = 16
CHAINS, DRAWS = 2, 200
TIMES = (0.5, 1.0, 2.0, 4.0, 8.0, 12.0, 24.0)


def simulated_frame(n: int = N_SUBJECTS, seed: int = 5) -> pd.DataFrame:
    """A 1-cmt IV-bolus NONMEM-style dataset with WT, ALB, SEX and a hostile covariate."""
    rng = np.random.default_rng(seed)
    wt = np.round(70 * np.exp(rng.normal(0, 0.25, n)), 1)
    alb = np.round(rng.normal(4.0, 0.4, n), 2)
    sex = np.where(np.arange(n) % 2 == 0, "F", "M")
    evil = np.round(rng.uniform(0, 10, n), 2)
    rows = []
    for i in range(n):
        sid = "<b>1</b>" if i == 0 else str(i + 1)
        cl = 2.0 * (wt[i] / 70) ** 0.75 * np.exp(rng.normal(0, 0.3))
        v = 20.0 * (wt[i] / 70) * np.exp(rng.normal(0, 0.2))
        cov = {"WT": wt[i], "ALB": alb[i], "SEX": sex[i], EVIL_COLUMN: evil[i]}
        rows.append({"ID": sid, "TIME": 0.0, "AMT": 100.0, "DV": np.nan, "EVID": 1, "MDV": 1, "CMT": 1, **cov})
        for t in TIMES:
            c = 100.0 / v * np.exp(-cl / v * t)
            rows.append({"ID": sid, "TIME": t, "AMT": 0.0, "DV": c * (1 + 0.1 * rng.normal()) + 0.02 * rng.normal(),
                         "EVID": 0, "MDV": 0, "CMT": 1, **cov})
    return pd.DataFrame(rows)


def spec_with_covariates() -> ModelSpec:
    """1-cmt model: power WT on CL (estimated) and V1 (fixed 1), exponential ALB, categorical SEX,
    linear effect of the hostile covariate; full IIV on CL and V1; combined error."""
    return ModelSpec(
        structure="1cmt",
        typical={"CL": 2.0, "V1": 20.0},
        covariates=(
            CovariateEffect("CL", "WT", "power", reference=70.0),
            CovariateEffect("V1", "WT", "power", reference=70.0, prior=Prior.fixed(1.0)),
            CovariateEffect("CL", "ALB", "exponential", reference=4.0),
            CovariateEffect("V1", "SEX", "categorical", level="F"),
            CovariateEffect("CL", EVIL_COV, "linear"),
        ),
        iiv=("CL", "V1"),
        iiv_correlation="full",
        error="combined",
        units={"time": "h", "amount": "mg", "volume": "L"},
    )


def spec_plain() -> ModelSpec:
    """1-cmt model without covariates, IIV on CL only, proportional error."""
    return ModelSpec(structure="1cmt", typical={"CL": 2.0, "V1": 20.0}, iiv=("CL",), error="proportional",
                     units={"time": "h"})


@functools.lru_cache(maxsize=None)
def data_file() -> Path:
    """The simulated dataset written to a CSV whose name needs escaping."""
    d = Path(tempfile.mkdtemp(prefix="poppk-report-tests-"))
    path = d / "trial <b>&'1'.csv"
    simulated_frame().to_csv(path, index=False)
    return path


def read_data() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_nonmem(data_file())


def _draws(rng: np.random.Generator, center: float, sd: float, positive: bool = False) -> np.ndarray:
    x = rng.normal(center, sd, (CHAINS, DRAWS))
    return np.abs(x) if positive else x


def make_fit(spec: ModelSpec, data: Any, seed: int = 11) -> Fit:
    """A Fit with a synthetic posterior (population parameters, θ, ω correlation, divergences)."""
    import arviz as az

    spec = spec.resolved(data.covariates)
    rng = np.random.default_rng(seed)
    post: dict[str, np.ndarray] = {
        "CL": np.exp(_draws(rng, np.log(2.0), 0.05)),
        "V1": np.exp(_draws(rng, np.log(20.0), 0.04)),
    }
    centers = {"beta_CL_WT": (0.75, 0.1), "beta_CL_ALB": (-0.1, 0.05), "beta_V1_SEX": (0.2, 0.06),
               f"beta_CL_{EVIL_COV}": (0.01, 0.004)}
    for c in spec.covariates:
        if not c.prior.is_fixed:
            post[c.name] = _draws(rng, *centers[c.name])
    for p, s in zip(spec.iiv, (0.3, 0.2)):
        post[f"omega_{p}"] = _draws(rng, s, 0.03, positive=True)
    for k, s in (("prop", 0.1), ("add", 0.05)):
        if k in spec.sigma_names:
            post[f"sigma_{k}"] = _draws(rng, s, 0.01, positive=True)
    ids = [str(s) for s in data.subjects]
    n, k = len(ids), len(spec.iiv)
    dims: dict[str, list[str]] = {}
    if spec.iiv:
        covs = covariate_columns(spec, data.covariates)
        betas = {c.name: (post[c.name][..., None] if c.name in post else float(c.prior["value"]))
                 for c in spec.covariates}
        log_tv = {p: np.log(post[p])[..., None] for p in spec.parameters}
        base = log_individual_parameters(spec, log_tv, betas, {kk: v[None, None, :] for kk, v in covs.items()})
        eta = rng.normal(0, 0.25, (n, k))
        theta = np.stack([np.broadcast_to(base[p], (CHAINS, DRAWS, n)) for p in spec.iiv], axis=-1)
        post["theta"] = theta + eta[None, None] + rng.normal(0, 0.05, (CHAINS, DRAWS, n, k))
        dims["theta"] = ["id", "iiv"]
    if spec.iiv_correlation == "full":
        r = rng.uniform(0.1, 0.5, (CHAINS, DRAWS))
        corr = np.broadcast_to(np.eye(k), (CHAINS, DRAWS, k, k)).copy()
        corr[..., 0, 1] = corr[..., 1, 0] = r
        post["omega_corr"] = corr
        dims["omega_corr"] = ["iiv", "iiv_bis"]
    idata = az.from_dict(
        posterior=post,
        sample_stats={"diverging": np.zeros((CHAINS, DRAWS), dtype=bool),
                      "n_steps": np.full((CHAINS, DRAWS), 7.0)},
        coords={"id": ids, "iiv": list(spec.iiv), "iiv_bis": list(spec.iiv)},
        dims=dims,
    )
    settings = {
        "sampler": "nutpie", "draws": DRAWS, "tune": 100, "chains": CHAINS, "cores": 1, "seed": 1234,
        "low_rank": False, "target_accept": None, "timings": {"init_s": 0.1, "compile_s": 1.0, "sample_s": 2.0},
        "versions": {"poppk": "0.1.0", "pymc": "5.0", "nutpie": "0.16", "arviz": az.__version__},
        "created": "2026-01-02T03:04:05+0000",
    }
    return Fit(idata=idata, spec=spec, data=data, settings=settings)


@functools.lru_cache(maxsize=None)
def covariate_fit() -> Fit:
    """The synthetic fit of :func:`spec_with_covariates` (cached)."""
    return make_fit(spec_with_covariates(), read_data())


@functools.lru_cache(maxsize=None)
def plain_fit() -> Fit:
    """The synthetic fit of :func:`spec_plain` (cached)."""
    return make_fit(spec_plain(), read_data(), seed=12)


def flat_draws(fit: Fit, name: str) -> np.ndarray:
    return fit.idata.posterior[name].transpose("chain", "draw").values.ravel()


def strategy_table() -> pd.DataFrame:
    """A dosing-strategy summary in the shape of ``summarize_strategies`` with hostile strings."""
    rows = []
    for s, label in (("tbw", "5 mg/kg TBW"), ("evil", EVIL)):
        for m in ("auc", "cmax"):
            rows.append({"strategy": s, "metric": m, "label": label, "unit": "mg·h/L" if m == "auc" else "mg/L",
                         "median_exposure_median": 50.0, "median_exposure_lo": 45.0, "median_exposure_hi": 55.0,
                         "var_ratio_median": 0.9, "var_ratio_lo": 0.8, "var_ratio_hi": 1.0,
                         "prob_var_ratio_below_1": 0.97, EVIL: 1.0})
    df = pd.DataFrame(rows).set_index(["strategy", "metric"])
    df.attrs["reference"] = "tbw"
    return df


def comparison_table() -> pd.DataFrame:
    """A model comparison in the shape of ``poppk.diagnostics.compare``."""
    return pd.DataFrame({"rank": [0, 1], "elpd": [-100.0, -104.5], "se": [5.0, 5.1], "d_elpd": [0.0, 4.5],
                         "dse": [0.0, 1.2], "weight": [0.9, 0.1], "warning": [False, True]},
                        index=pd.Index(["TBW", EVIL], name="model"))
