"""Helpers of the simulation tests: known specs, a Fit-like object, the bundled trial (no MCMC)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

REPO = Path(__file__).resolve().parents[2]
TRIAL_CSV = REPO / "data" / "imgn853_phase1.csv"
TRUTH_CSV = REPO / "data" / "imgn853_phase1_truth.csv"


def one_cmt_spec(covariate: str = "TBW", *, on_v: bool = False, reference: float = 70.0, iiv=("CL",), time="day"):
    from poppk.model import CovariateEffect, ModelSpec

    covs = [CovariateEffect("CL", covariate, "power", reference=reference)]
    if on_v:
        covs.append(CovariateEffect("V1", covariate, "power", reference=reference))
    return ModelSpec("1cmt", {"CL": 0.5, "V1": 4.0}, covariates=tuple(covs), iiv=iiv, error="proportional",
                     units={"time": time})


def two_cmt_spec(covariate: str = "TBW", reference: float = 70.0, corr: bool = False):
    from poppk.model import CovariateEffect, ModelSpec

    covs = tuple(CovariateEffect(p, covariate, "power", reference=reference) for p in ("CL", "V1", "Q", "V2"))
    return ModelSpec("2cmt", {"CL": 0.45, "V1": 2.8, "Q": 0.6, "V2": 2.0}, covariates=covs, iiv=("CL", "V1"),
                     iiv_correlation="full" if corr else "diagonal", error="combined", units={"time": "d"})


class FakeFit:
    """A Fit-like object: spec, data, posterior (idata) and fixed individual parameters."""

    def __init__(self, spec, data, individual: xr.Dataset, posterior: xr.Dataset | None = None):
        self.spec, self.data, self._ind = spec, data, individual
        if posterior is not None:
            import arviz as az

            self.idata = az.InferenceData(posterior=posterior)

    def individual_parameters(self):
        return self._ind


def load_trial_data():
    if not TRIAL_CSV.is_file():
        pytest.skip("the bundled trial data/imgn853_phase1.csv is not available")
    from poppk.data import read_nonmem

    return read_nonmem(TRIAL_CSV).with_size_descriptors(ibw_method="label")


def load_trial_truth():
    if not TRUTH_CSV.is_file():
        pytest.skip("the bundled trial truth file is not available")
    return pd.read_csv(TRUTH_CSV)


def truth_fit(trial_data, trial_truth, *, n_draws: int = 4, noise: float = 0.0, seed: int = 0) -> FakeFit:
    """A fake fit whose individual parameters are the trial's true ones (times optional noise)."""
    from poppk.model import ModelSpec

    spec = ModelSpec("2cmt", {"CL": 0.45, "V1": 2.8, "Q": 0.6, "V2": 2.0}, units={"time": "d"})
    ids = [str(i) for i in trial_data.subjects]
    truth = trial_truth.set_index("ID").loc[list(trial_data.subjects)]
    rng = np.random.default_rng(seed)
    ind = xr.Dataset(
        {p: (("chain", "draw", "id"),
             truth[p].to_numpy()[None, None, :] * np.exp(noise * rng.standard_normal((1, n_draws, len(ids)))))
         for p in ("CL", "V1", "Q", "V2")},
        coords={"chain": [0], "draw": np.arange(n_draws), "id": ids},
    )
    return FakeFit(spec, trial_data, ind)
