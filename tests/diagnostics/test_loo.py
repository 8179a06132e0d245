"""PSIS-LOO per subject / observation, integrated LOO, and model comparison."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure
from scipy.special import logsumexp

from poppk.diagnostics import DiagnosticsError, compare, loo, loo_pointwise, pareto_k_summary
from poppk.diagnostics.loo import integrated_loglik
from poppk.model.likelihood import observation_loglik
from poppk.model.predict import predict_draws
from poppk.plots import plot_compare, plot_pareto_k

from _diag_fixtures import TRUTH_2CMT, bad_fit, good_fit, oracle_fit, read, simulate_study, spec_2cmt_wt


def test_integrated_loglik_matches_brute_force():
    """log ∫ p(y_i | η) N(η; 0, Ω) dη by importance sampling == plain Monte Carlo over the prior."""
    df, logp = simulate_study(3, seed=7, lloq=None)
    data = read(df)
    fit = oracle_fit(spec_2cmt_wt(), data, TRUTH_2CMT, logp, n_draws=20)
    # give the "posterior" of η some spread so that the proposal is not degenerate
    post = fit.idata.posterior
    rng = np.random.default_rng(0)
    fit.idata.posterior = post.assign(theta=post["theta"] + rng.normal(0, 0.05, post["theta"].shape))
    ll = integrated_loglik(fit, n_eta=2000, seed=1)
    assert ll.dims == ("chain", "draw", "id") and ll.shape == (1, 20, 3)
    np.testing.assert_allclose(ll.values[0], ll.values[0, :1].repeat(20, 0))  # same population parameters
    # brute force with the true population parameters
    fit.idata.posterior = post
    n = 100_000
    typ = fit.individual_parameters(typical=True)
    eta = rng.standard_normal((n, 3, 2)) * np.array([TRUTH_2CMT["omega_CL"], TRUTH_2CMT["omega_V1"]])
    params = {p: np.broadcast_to(typ[p].values[0, 0], (n, 3)).copy() for p in fit.spec.parameters}
    params["CL"] = params["CL"] * np.exp(eta[..., 0])
    params["V1"] = params["V1"] * np.exp(eta[..., 1])
    d = fit.design
    onehot = np.eye(3)[d.obs_subject]
    per = predict_draws(fit.spec, d, params, transform=lambda pr, sl: observation_loglik(
        d.dv[None], pr, {"prop": TRUTH_2CMT["sigma_prop"]}, "proportional") @ onehot)
    brute = logsumexp(per, axis=0) - np.log(n)
    np.testing.assert_allclose(ll.values[0, 0], brute, atol=0.1)


@pytest.mark.slow
def test_loo_by_subject_and_observation():
    fit = good_fit()
    r = loo(fit, "subject")
    assert int(r["n_data_points"]) == 24
    pw = loo_pointwise(r)
    assert list(pw.columns) == ["id", "elpd_loo_i", "pareto_k", "k_category"]
    assert pw["elpd_loo_i"].sum() == pytest.approx(float(r["elpd_loo"]))
    ro = loo(fit, "observation")
    assert int(ro["n_data_points"]) == 360
    s = pareto_k_summary(ro)
    assert s["count"].sum() == 360
    with pytest.raises(DiagnosticsError):
        loo(fit, "occasion")
    with pytest.raises(DiagnosticsError, match="subject"):
        loo(fit, "observation", method="integrated")


@pytest.mark.slow
def test_integrated_loo_has_reliable_pareto_k():
    fit = good_fit()
    plain = loo_pointwise(loo(fit, "subject", method="psis"))
    integ = loo_pointwise(loo(fit, "subject", method="integrated", n_eta=100))
    assert (integ["pareto_k"] > 0.7).sum() <= 2
    assert (integ["pareto_k"] > 0.7).sum() < (plain["pareto_k"] > 0.7).sum()


@pytest.mark.slow
def test_compare_ranks_true_model_first(tmp_path):
    good, bad = good_fit(), bad_fit()
    for kw in ({}, {"loo_method": "integrated", "n_eta": 50}):
        tab = compare({"1-cmt, no WT": bad, "2-cmt, WT on CL": good}, **kw)
        assert list(tab.index) == ["2-cmt, WT on CL", "1-cmt, no WT"]
        assert list(tab.columns) == ["rank", "elpd", "se", "mcse_integration", "d_elpd", "dse", "weight", "p_loo",
                                     "warning", "n_k_gt_0.7", "n_refit", "n_k_unhandled", "n_units"]
        assert (tab["n_refit"] == 0).all()
        assert (tab["mcse_integration"] > 0).all() and (tab["mcse_integration"] < tab["se"]).all()
        assert tab["d_elpd"].iloc[0] == 0
        # decisively worse: the misspecified fit is so poor for a few subjects that their PSIS terms are unstable
        # (Pareto k > 0.7, huge dse), so judge by the difference against its SE or by the stacking weight
        assert tab["d_elpd"].iloc[1] > 4 * tab["dse"].iloc[1] or tab["n_k_gt_0.7"].iloc[1] > 0
        assert tab["weight"].iloc[0] > 0.95
        assert (tab["n_units"] == 24).all()
    fig = plot_compare(tab)
    assert isinstance(fig, Figure)
    fig.savefig(tmp_path / "compare.png")
    fig = plot_pareto_k(loo_pointwise(loo(good, "subject")))
    fig.savefig(tmp_path / "k.png")
    assert (compare({"a": bad, "b": good}, loo_method="psis")["mcse_integration"] == 0).all()
    with pytest.raises(DiagnosticsError, match="at least two"):
        compare({"a": good})


def test_compare_refuses_different_data():
    a = oracle_fit(spec_2cmt_wt(), read(simulate_study(4, seed=1)[0]), TRUTH_2CMT,
                   simulate_study(4, seed=1)[1], n_draws=10)
    b = oracle_fit(spec_2cmt_wt(), read(simulate_study(4, seed=2)[0]), TRUTH_2CMT,
                   simulate_study(4, seed=2)[1], n_draws=10)
    with pytest.raises(DiagnosticsError, match="same observations"):
        compare({"a": a, "b": b})
