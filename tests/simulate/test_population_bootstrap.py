"""The Bayesian bootstrap of the population (population uncertainty): weights, weighted statistics, consumers.

No MCMC: draws at known values (``PosteriorDraws.from_values``), so all draws are identical and any
spread across draws comes from random effects or from the population bootstrap.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import xarray as xr

from _sim_helpers import one_cmt_spec
from poppk.errors import ConfigError
from poppk.simulate import (
    PerKg,
    PosteriorDraws,
    Schedule,
    per_draw_statistics,
    population_from_table,
    resample_population,
    sample_population,
    simulate_strategies,
    summarize_strategies,
)
from poppk.simulate.execution import _stats
from poppk.simulate.summaries import patient_weights
from poppk.simulate.weighting import expand_weights, source_weights, weighted_quantiles, weighted_variance

SCHED = Schedule.q3w(2, infusion="1 h")
STRATS = {"tbw": PerKg(5.0), "aibw": PerKg(5.0, "AIBW")}


def _draws(n: int = 40, omega: float = 0.25):
    spec = one_cmt_spec("TBW", on_v=True)
    return PosteriorDraws.from_values(spec, typical={"CL": 0.5, "V1": 4.0},
                                      betas={"beta_CL_TBW": 0.75, "beta_V1_TBW": 0.9}, omega={"CL": omega},
                                      n_draws=n)


@pytest.fixture(scope="module")
def trial():
    """A small 'trial' of 30 subjects with ids 101..130."""
    t = sample_population(30, seed=11, female_fraction=0.5).covariates.copy()
    t.index = np.arange(101, 131)
    return t


@pytest.fixture(scope="module")
def pop(trial):
    return resample_population(trial, 1500, seed=2)


def _sim(pop, *, n=40, omega=0.25, **kw):
    kw = {"metrics": ["auc_c1", "cmax_c1"], "keep_exposure": True, "seed": 4, **kw}
    return simulate_strategies(_draws(n, omega), STRATS, SCHED, pop, **kw)


@pytest.fixture(scope="module")
def boot(pop):
    return _sim(pop, exceed={"auc_c1": 8.0})


# --------------------------------------------------------------------------
# the weights
# --------------------------------------------------------------------------


def test_source_weights_depend_only_on_seed_and_draw():
    g = source_weights(7, np.arange(10), 25)
    assert g.shape == (10, 25) and np.all(g > 0)
    np.testing.assert_allclose(g.sum(axis=1), 1.0, rtol=1e-14)
    np.testing.assert_array_equal(source_weights(7, np.array([3, 8]), 25), g[[3, 8]])
    assert not np.allclose(source_weights(8, np.arange(10), 25), g)


def test_weights_are_dirichlet_one_and_average_to_uniform():
    n_src = 20
    g = source_weights(0, np.arange(20_000), n_src)
    # Dirichlet(1, ..., 1): mean 1/n, variance (n - 1) / (n^2 (n + 1))
    np.testing.assert_allclose(g.mean(axis=0), 1 / n_src, rtol=0.05)
    np.testing.assert_allclose(g.var(axis=0), (n_src - 1) / (n_src**2 * (n_src + 1)), rtol=0.08)
    src = np.array([0, 0, 0, 1, 2, 2] + list(range(3, n_src)))
    w = expand_weights(g, src)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-12)
    # a source's weight is shared equally by its patients
    np.testing.assert_allclose(w[:, 0], g[:, 0] / 3)
    np.testing.assert_allclose(w[:, 4], g[:, 2] / 2)


def test_simulation_weights_sum_to_one_and_average_to_uniform_over_draws(boot, pop):
    assert boot.attrs["population_uncertainty"] == "bootstrap"
    n_src = boot.attrs["n_sources"]
    assert n_src == len(np.unique(pop["SOURCE_ID"])) and boot.sizes["source"] == n_src
    assert boot["source_weight"].dims == ("draw", "source")
    assert set(boot["source"].values) <= set(range(101, 131))
    assert int(boot["source_count"].sum()) == pop.n
    w = patient_weights(boot)
    assert w.dims == ("draw", "patient") and w.shape == (boot.sizes["draw"], pop.n)
    np.testing.assert_allclose(w.sum("patient").values, 1.0, rtol=1e-12)
    # the source of each patient is the one it was drawn from
    ids = boot["source"].values[boot["source_index"].values]
    np.testing.assert_array_equal(ids, np.asarray(pop["SOURCE_ID"]))
    # over draws, the weights average to the resample's own (uniform over patients) up to Dirichlet noise:
    # a source's total weight has mean 1/n_src and sd ~ 1/n_src, so over 40 draws within ~ 4 sd / sqrt(40)
    per_source = boot["source_weight"].mean("draw").values
    assert np.all(np.abs(per_source * n_src - 1) < 4 / np.sqrt(40))
    np.testing.assert_allclose(boot["source_weight"].values.mean(), 1 / n_src, rtol=1e-12)


def test_patient_weights_are_none_without_the_bootstrap(pop, trial):
    off = _sim(pop, n=2, population_uncertainty=None)
    assert patient_weights(off) is None and off.attrs["population_uncertainty"] == "none"
    assert "source_weight" not in off and "source_index" not in off.coords
    assert patient_weights(_sim(pop, n=2, population_uncertainty="none")) is None
    sampled = _sim(sample_population(200, seed=1), n=2)  # "auto": no SOURCE_ID, no bootstrap
    assert patient_weights(sampled) is None and sampled.attrs["population_uncertainty"] == "none"
    table = population_from_table(trial.reset_index(drop=True))
    assert patient_weights(_sim(table, n=2)) is None


def test_bootstrap_needs_a_resampled_population_and_a_known_mode(pop):
    with pytest.raises(ConfigError, match="SOURCE_ID"):
        _sim(sample_population(100, seed=1), n=2, population_uncertainty="bootstrap")
    with pytest.raises(ConfigError, match="population_uncertainty must be"):
        _sim(pop, n=2, population_uncertainty="dirichlet")
    assert _sim(pop, n=2, population_uncertainty="bootstrap").attrs["population_uncertainty"] == "bootstrap"


def test_off_keeps_todays_numbers_bit_for_bit(pop):
    """Without the bootstrap, a resampled population gives exactly what the same table without SOURCE_ID gives."""
    off = _sim(pop, n=4, population_uncertainty=None)
    table = population_from_table(pop.covariates.drop(columns="SOURCE_ID"))
    plain = _sim(table, n=4)
    for v in ("log_var", "log_mean", "mean", "sd", "quantiles", "p_exceed"):
        np.testing.assert_array_equal(off[v].values, plain[v].values, err_msg=v)
    E = off["exposure"].transpose("draw", "patient", "strategy", "metric").values
    # log_var is the variance of log exposure (taken as log unit + log dose: equal to rounding, not bit for bit)
    np.testing.assert_allclose(np.log(E).var(axis=1, ddof=1), off["log_var"].values, rtol=1e-12, atol=0)


# --------------------------------------------------------------------------
# weighted statistics
# --------------------------------------------------------------------------


def test_uniform_weights_give_the_unweighted_statistics():
    rng = np.random.default_rng(0)
    E = np.exp(rng.normal(size=(3, 501, 2, 2)))
    exceed = np.array([1.5, np.nan])
    qs = np.array([0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0])
    plain = _stats(E, exceed, qs)
    uniform = _stats(E, exceed, qs, np.full((3, 501), 1 / 501))
    for k in plain:  # the variance correction 1 / (1 - Σw²) is ddof=1 for equal weights
        np.testing.assert_allclose(uniform[k], plain[k], rtol=1e-10, atol=1e-15, err_msg=k)  # round-off


def test_weighted_quantiles_and_variance_handle_edge_cases():
    x = np.array([[2.0, 1.0, np.nan], [1.0, 1.0, 1.0]])
    w = np.array([[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]])
    q = weighted_quantiles(x, w, np.array([0.0, 0.5, 1.0]))
    assert np.all(np.isnan(q[0])) and np.all(q[1] == 1.0)
    assert weighted_quantiles(np.array([[3.0]]), np.array([[1.0]]), np.array([0.1, 0.9])).tolist() == [[3.0, 3.0]]
    assert weighted_variance(np.array([[4.0]]), np.array([[1.0]]))[0] == 0.0
    # a weight concentrated on one value: every quantile goes to it as the weight goes to 1
    v = weighted_quantiles(np.array([1.0, 2.0, 3.0]), np.array([1e-9, 1 - 2e-9, 1e-9]), np.array([0.25, 0.5, 0.75]))
    np.testing.assert_allclose(v, 2.0, atol=1e-6)
    # quantiles are non-decreasing in the level for any weights
    rng = np.random.default_rng(1)
    xx, ww = rng.normal(size=(50, 40)), rng.dirichlet(np.ones(40) * 0.3, size=50)
    qq = weighted_quantiles(xx, ww, np.linspace(0, 1, 21))
    assert np.all(np.diff(qq, axis=-1) >= -1e-12)
    assert np.all(qq[:, 0] >= xx.min(axis=1)) and np.all(qq[:, -1] <= xx.max(axis=1))


def test_weighted_statistics_equal_those_of_an_explicit_resample(boot):
    """Draw d's statistics are those of a large resample of its patients with probabilities w_d."""
    w = patient_weights(boot).values
    E = boot["exposure"].sel(strategy="aibw", metric="auc_c1").transpose("draw", "patient").values
    rng = np.random.default_rng(0)
    for d in (0, 17):
        idx = rng.choice(E.shape[1], size=400_000, p=w[d])
        e = E[d, idx]
        stats = boot.isel(draw=d).sel(strategy="aibw", metric="auc_c1")
        np.testing.assert_allclose(np.log(e).var(), float(stats["log_var"]), rtol=0.02)
        np.testing.assert_allclose(np.log(e).mean(), float(stats["log_mean"]), atol=0.005)
        np.testing.assert_allclose(e.mean(), float(stats["mean"]), rtol=0.005)
        np.testing.assert_allclose(np.quantile(e, [0.05, 0.5, 0.95]), stats["quantiles"].sel(
            quantile=[0.05, 0.5, 0.95]).values, rtol=0.01)
        np.testing.assert_allclose(np.mean(e > 8.0), float(stats["p_exceed"]), atol=0.005)
    # and the recomputed exceedance (new threshold) is the weighted fraction too
    frac = per_draw_statistics(boot, exceed={"auc_c1": 8.0})["p_exceed"].sel(strategy="aibw", metric="auc_c1")
    np.testing.assert_allclose(frac.values, boot["p_exceed"].sel(strategy="aibw", metric="auc_c1").values,
                               rtol=1e-12)
    np.testing.assert_allclose(frac.values, np.sum(w * (E > 8.0), axis=1), rtol=1e-12)


def test_the_interval_now_carries_population_uncertainty(pop):
    """Identical parameter draws: off, the variance ratio varies only by Monte-Carlo noise of the random
    effects (and not at all without them); on, its spread is the Bayesian bootstrap's."""
    def width(sim):
        r = summarize_strategies(sim, reference="tbw").loc[("aibw", "auc_c1")]
        return r["var_ratio_hi"] - r["var_ratio_lo"]

    kw = dict(n=60, omega=0.15)
    off, on = _sim(pop, population_uncertainty=None, **kw), _sim(pop, **kw)
    assert width(on) > 3 * width(off) > 0
    fixed_off = _sim(pop, population_uncertainty=None, random_effects=False, **kw)
    fixed_on = _sim(pop, random_effects=False, **kw)
    assert width(fixed_off) == 0.0 and width(fixed_on) > 0.0
    # direct check without random effects: every patient of a source has the source's exposure, so the
    # statistic of draw d is the Dirichlet-weighted one over the sources (up to the variance correction)
    g = fixed_on["source_weight"].values
    src = fixed_on["source_index"].values
    w = patient_weights(fixed_on).values
    for s in ("tbw", "aibw"):
        le = np.log(fixed_on["exposure"].sel(strategy=s, metric="auc_c1").transpose("draw", "patient").values)
        per_source = np.zeros((g.shape[0], g.shape[1]))
        per_source[:, src] = le  # identical within a source
        m = np.sum(g * per_source, axis=1, keepdims=True)
        direct = np.sum(g * (per_source - m) ** 2, axis=1)
        got = fixed_on["log_var"].sel(strategy=s, metric="auc_c1").values * (1 - np.sum(w**2, axis=1))
        np.testing.assert_allclose(got, direct, rtol=1e-10)


def test_weights_survive_saving_and_subsetting(boot, tmp_path):
    from poppk.simulate import load_simulation, save_simulation

    back = load_simulation(save_simulation(boot, tmp_path / "sim.nc"))
    np.testing.assert_allclose(patient_weights(back).values, patient_weights(boot).values, rtol=0, atol=0)
    first = boot.isel(patient=slice(0, 200), draw=slice(0, 5))
    w = patient_weights(first)
    assert w.shape == (5, 200)
    np.testing.assert_allclose(w.sum("patient").values, 1.0, rtol=1e-12)


def test_kept_patients_get_the_restricted_weights(pop):
    with pytest.warns(UserWarning, match="keeping the first 100 patients"):
        sim = _sim(pop, n=3, keep_exposure="auto", max_exposure_mb=3 * 2 * 2 * 8 * 100 / 2**20)
    assert sim.sizes["patient"] == 100 and sim.attrs["n_patients"] == pop.n
    w = patient_weights(sim)
    np.testing.assert_allclose(w.sum("patient").values, 1.0, rtol=1e-12)
    assert int(sim["source_count"].sum()) == pop.n


# --------------------------------------------------------------------------
# consumers
# --------------------------------------------------------------------------


def test_predicted_incidence_is_weighted(boot):
    from poppk.simulate.toxicity import predict_incidence

    tox = SimpleNamespace(metric="auc_c1", unit="", log_reference=float(np.log(6.0)),
                          draws=lambda: (np.array([-1.0]), np.array([2.0])))
    inc = predict_incidence(tox, boot)
    E = boot["exposure"].sel(metric="auc_c1").transpose("draw", "patient", "strategy").values
    p = 1 / (1 + np.exp(-(-1.0 + 2.0 * (np.log(E) - np.log(6.0)))))
    want = np.einsum("dp,dps->ds", patient_weights(boot).values, p)
    np.testing.assert_allclose(inc["incidence_median"].to_numpy(), np.median(want, axis=0), rtol=1e-12)
    assert inc.attrs["weighted"]
    off = predict_incidence(tox, boot.drop_vars("source_weight"))
    np.testing.assert_allclose(off["incidence_median"].to_numpy(), np.median(p.mean(axis=1), axis=0), rtol=1e-12)
    assert not off.attrs["weighted"]


def test_matched_dose_uses_weighted_medians(pop):
    from poppk.simulate import match_dose

    kw = dict(metric="auc_c1", n_draws=None, seed=4)
    on = match_dose(_draws(20), PerKg(5.0), "AIBW", SCHED, pop, **kw)
    off = match_dose(_draws(20), PerKg(5.0), "AIBW", SCHED, pop, population_uncertainty=None, **kw)
    assert abs(on.relative_error) < 1e-3 and abs(off.relative_error) < 1e-3
    # the same random effects: the point rates are close; the bootstrap widens the interval
    assert on.rate == pytest.approx(off.rate, rel=0.05)
    assert (on.rate_hi - on.rate_lo) > (off.rate_hi - off.rate_lo)


def test_run_simulation_records_the_choice(pop, tmp_path):
    import json

    from poppk.simulate import run_simulation

    written = run_simulation(_draws(3), ["5 mg/kg", "5 mg/kg AIBW"], SCHED, pop, tmp_path / "out",
                             metrics=["auc_c1"], figures=False)
    assert json.loads(written["command"].read_text())["population_uncertainty"] == "bootstrap"
