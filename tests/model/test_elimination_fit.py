"""A small Michaelis–Menten fit through the ODE path, and the diagnostics on it (slow).

One seed, few draws: it proves the wiring (spec → design → Op in nutpie → Fit →
predictions, GOF, VPC), not calibration, which ``benchmarks/bench_ode_fit.py``
measures over seeds at the default settings.
"""

import numpy as np
import pytest
from _ode_studies import simulate_mm

from poppk.data import read_nonmem
from poppk.model import ModelSpec, fit

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mm_fit():
    df, truth = simulate_mm(3, n_per_dose=3)
    spec = ModelSpec(structure="1cmt", elimination="michaelis-menten", typical={"VMAX": 5.0, "KM": 1.0, "V1": 5.0},
                     iiv=("VMAX", "V1"), error="proportional", units={"time": "h"})
    f = fit(spec, read_nonmem(df), draws=150, tune=150, chains=2, seed=3, progress=False, warn=False)
    return f, truth


def test_fit_runs_on_the_uncached_path_and_finds_the_truth(mm_fit):
    f, truth = mm_fit
    assert f.settings["timings"]["compile_s"] > 0
    assert f.spec.elimination == "michaelis-menten"
    post = f.idata.posterior
    for name in ("VMAX", "KM", "V1"):
        lo, hi = np.quantile(post[name].values.ravel(), [0.01, 0.99])
        assert lo < truth[name] < hi, (name, lo, hi)
    pred = f.predictions(thin=10)
    assert np.isfinite(pred["ipred"].values).all() and np.isfinite(pred["pred"].values).all()


def test_diagnostics_run_on_an_ode_fit(mm_fit):
    from poppk.diagnostics.gof import gof_table
    from poppk.diagnostics.vpc import vpc_table

    f, _ = mm_fit
    g = gof_table(f, n_draws=50)
    assert len(g) == f.design.n_obs
    v = vpc_table(f, n_draws=20)
    assert len(v) > 0
