"""A misspecified model is flagged: the misfit statistics move, not only the plots.

The study (24 subjects, two IV doses) is simulated from a 2-compartment model
with CL ∝ (WT/70)^0.75.  ``good_fit`` is that model; ``bad_fit`` is a
1-compartment model without the weight effect.  Both are NUTS fits.
"""

from __future__ import annotations

import pytest

from poppk.diagnostics import eta_covariate_table, npde_table, npde_tests, simulate_observations, vpc_table

from _diag_fixtures import bad_fit, good_fit

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stats():
    out = {}
    for name, fit in (("good", good_fit()), ("bad", bad_fit())):
        sims = simulate_observations(fit, n_draws=500, new_subjects=True, seed=0)
        out[name] = {
            "npde": npde_tests(npde_table(fit, simulations=sims, seed=0)),
            "vpc": vpc_table(fit, simulations=sims, bins="time"),
            "pcvpc": vpc_table(fit, simulations=sims, bins="time", pred_corrected=True),
            "eta": eta_covariate_table(fit),
        }
    return out


def test_npde_flags_the_misspecified_model(stats):
    good, bad = stats["good"]["npde"], stats["bad"]["npde"]
    assert good.loc["global test", "p_value"] > 0.05
    assert bad.loc["global test", "p_value"] < 1e-3
    assert abs(bad.loc["mean", "value"]) > abs(good.loc["mean", "value"]) + 0.05


@pytest.mark.parametrize("kind", ["vpc", "pcvpc"])
def test_vpc_coverage_drops(kind, stats):
    good = stats["good"][kind]["outside"].mean()
    bad = stats["bad"][kind]["outside"].mean()
    assert good < 0.2  # about 10% expected for a 90% interval
    assert bad > good + 0.2
    # the structural misfit shows in the median: observed medians outside their interval
    med = stats["bad"][kind]
    assert med.loc[med["percentile"] == 50, "outside"].mean() > 0.3


def test_eta_vs_weight_reveals_missing_covariate(stats):
    def row(tab):
        return tab[(tab["parameter"] == "CL") & (tab["covariate"] == "WT")].iloc[0]

    good, bad = row(stats["good"]["eta"]), row(stats["bad"]["eta"])
    assert bad["r"] > 0.4 and bad["p_value"] < 0.05
    assert abs(good["r"]) < 0.3 and good["p_value"] > 0.05
    assert bad["slope"] > 0
