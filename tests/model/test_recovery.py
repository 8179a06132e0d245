"""Parameter recovery: data simulated from known truth over several seeds (slow).

Each seed's 90% credible intervals should cover the population truth about 90% of the
time; with 3 seeds x 6 parameters = 18 intervals we require at least 14 (expected 16.2)
and no parameter missed in every seed.  The posterior tracks the realised sample (e.g.
seed 101 draws subjects whose geometric-mean CL is 1.82 for a population value of 2.0),
which is why single misses are expected and asserted only in aggregate.
"""

import numpy as np
import pytest

from _studies import simulate_study
from poppk.data import read_nonmem
from poppk.model import CovariateEffect, ModelSpec, Prior, fit

pytestmark = pytest.mark.slow

TRUTH = {"CL": 2.0, "V1": 20.0, "beta_CL_WT": 0.75, "omega_CL": 0.3, "omega_V1": 0.2, "sigma_prop": 0.1}
SEEDS = (101, 202, 303)


def test_90pct_intervals_cover_the_truth_across_seeds():
    covered = {name: [] for name in TRUTH}
    for seed in SEEDS:
        df, _ = simulate_study(n_subjects=40, seed=seed, wt_exponent=0.75)
        data = read_nonmem(df)
        # the simulation scales V1 with WT^1: the model says so (fixed exponent), so it is well specified
        spec = ModelSpec(structure="1cmt", typical={"CL": 1.0, "V1": 10.0}, iiv=("CL", "V1"), error="proportional",
                         units={"time": "h"}, covariates=(CovariateEffect("CL", "WT", reference=70.0),
                                     CovariateEffect("V1", "WT", reference=70.0, prior=Prior.fixed(1.0))))
        f = fit(spec, data, draws=500, tune=500, chains=4, seed=seed, progress=False, log_likelihood=False,
                warn=False)
        assert f.convergence().table["r_hat"].max() < 1.02, f.convergence().message()
        post = f.idata.posterior
        for name, true in TRUTH.items():
            lo, hi = np.quantile(post[name].values.ravel(), [0.05, 0.95])
            covered[name].append(bool(lo < true < hi))
    total = sum(sum(v) for v in covered.values())
    assert total >= 14, covered
    assert all(any(v) for v in covered.values()), covered
