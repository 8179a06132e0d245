"""ArviZ-native predictive groups: posterior_predictive, prior, prior_predictive; randomised LOO-PIT with BLQ."""

from __future__ import annotations

import dataclasses
import functools

import arviz as az
import matplotlib
import numpy as np
import pytest
from scipy import stats

from poppk.diagnostics import DiagnosticsError
from poppk.diagnostics.predictive import (
    add_predictive_groups,
    loo_pit,
    predictive_idata,
    prior_fit,
    thinned_draw_index,
)
from poppk.model.fit import population_variables

from _diag_fixtures import oracle_study

matplotlib.use("Agg")


def _copy(fit):
    return dataclasses.replace(fit, idata=fit.idata.copy())


@functools.lru_cache(maxsize=None)
def _with_groups():
    """The oracle fit (true model, BLQ records) with the predictive groups, on a copy."""
    fit, _ = oracle_study()
    return add_predictive_groups(_copy(fit), n_draws=60, prior_draws=80, seed=2)


def test_thinned_draws_are_even_per_chain():
    pos, flat = thinned_draw_index(4, 1000, 200)
    assert len(pos) == 50 and pos[0] == 0 and pos[-1] == 999
    assert flat.tolist()[:2] == [0, pos[1]] and flat[50] == 1000
    with pytest.raises(DiagnosticsError):
        thinned_draw_index(2, 10, 0)


def test_standard_groups_with_matching_obs_coords():
    fit = _with_groups()
    idata = fit.idata
    for g in ("posterior", "posterior_predictive", "log_likelihood", "observed_data", "prior", "prior_predictive"):
        assert g in idata.groups(), g
    pp, ll, obs = idata.posterior_predictive["y"], idata.log_likelihood["y"], idata.observed_data["y"]
    assert pp.dims == ("chain", "draw", "obs")
    assert pp.sizes["draw"] == 60 and pp.sizes["chain"] == 1
    np.testing.assert_array_equal(pp.obs.values, obs.obs.values)
    np.testing.assert_array_equal(pp.obs.values, ll.obs.values)
    assert set(pp.draw.values) <= set(idata.posterior.draw.values)
    # replicated BLQ values are censored at the LLOQ like the data's BLQ records
    lloq = fit.design.lloq
    assert pp.dtype == obs.dtype  # a censored replicate ties exactly with the LLOQ of a BLQ record
    assert (pp.values >= lloq[None, None, :]).all()
    assert (pp.values == lloq[None, None, :]).any()
    np.testing.assert_allclose(obs.values[fit.design.blq], lloq[fit.design.blq])
    # prior groups: same parameter names as the posterior, replicated data on the observed design
    prior = idata.prior
    assert set(population_variables(fit.spec)) <= set(prior.data_vars)
    assert prior["theta"].dims == ("chain", "draw", "id", "iiv")
    assert idata.prior_predictive["y"].dims == ("chain", "draw", "obs")
    assert idata.prior_predictive["y"].sizes["draw"] == 80
    # the spec travels in the attributes
    assert "poppk_spec" in idata.attrs and '"structure"' in idata.attrs["poppk_spec"]


def test_prior_draws_follow_the_spec_priors():
    fit, _ = oracle_study()
    pf = prior_fit(fit, n_draws=400, seed=1)
    cl = np.log(pf.idata.posterior["CL"].values.ravel())
    prior = dict(fit.spec.typical)["CL"]
    assert abs(np.median(cl) - np.log(prior["median"])) < 0.2
    assert abs(cl.std() - prior["sigma"]) < 0.15
    # the subjects' prior parameters scatter around their typical values by omega
    eta = pf.eta().sel(iiv="CL").values
    om = pf.idata.posterior["omega_CL"].values[..., None]
    z = (eta / om).ravel()
    assert abs(z.std() - 1.0) < 0.1


def test_arviz_plot_ppc_and_loo_pit_work():
    fit = _with_groups()
    ax = az.plot_ppc(fit.idata, num_pp_samples=20, random_seed=0)
    assert ax is not None
    ax = az.plot_ppc(fit.idata, group="prior", num_pp_samples=20, random_seed=0)
    assert ax is not None
    pit = az.loo_pit(idata=predictive_idata(fit), y="y")
    assert pit.shape == (fit.design.n_obs,)


def test_randomised_pit_of_censored_records():
    fit = _with_groups()
    blq = fit.design.blq
    assert blq.sum() >= 10
    plain = np.asarray(az.loo_pit(idata=predictive_idata(fit), y="y"))
    pit = loo_pit(fit, seed=0).values
    # uncensored records: ArviZ's PIT; censored: u * F(LLOQ), below ArviZ's F(LLOQ) and spread out
    np.testing.assert_allclose(pit[~blq], plain[~blq])
    assert (pit[blq] <= plain[blq] + 1e-12).all()
    assert (pit[blq] < plain[blq]).mean() > 0.9
    assert len(np.unique(np.round(pit[blq], 6))) > 0.8 * blq.sum()
    # under the true model the PIT is uniform
    assert stats.kstest(pit, "uniform").pvalue > 0.01
    assert loo_pit(fit, seed=1).values[blq].tolist() != pit[blq].tolist()


def test_add_keeps_existing_groups_unless_replace():
    fit = _with_groups()
    before = fit.idata.posterior_predictive["y"].values.copy()
    add_predictive_groups(fit, n_draws=10, prior_draws=0)
    np.testing.assert_array_equal(fit.idata.posterior_predictive["y"].values, before)
    other = add_predictive_groups(_copy(fit), n_draws=10, prior_draws=0, replace=True)
    assert other.idata.posterior_predictive.sizes["draw"] == 10


def test_pit_table_flags_non_uniform_pit_and_plots():
    from poppk.diagnostics.predictive import pit_table
    from poppk.plots import plot_loo_pit

    rng = np.random.default_rng(0)
    hist, ecdf = pit_table(rng.uniform(size=2000))
    assert hist["count"].sum() == 2000 and not ecdf.attrs["outside"]
    assert (hist["band_lower"] < hist["expected"]).all() and (hist["expected"] < hist["band_upper"]).all()
    # an over-dispersed model (predictive too wide) piles the PIT up in the middle
    hist, ecdf = pit_table(rng.beta(3, 3, size=2000))
    assert ecdf.attrs["outside"]
    fig = plot_loo_pit(hist, ecdf)
    assert "leaves" in fig._suptitle.get_text()
    assert fig.axes[0].get_xlabel().startswith("LOO-PIT")
