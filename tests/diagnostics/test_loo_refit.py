"""Monte-Carlo error of the integrated LOO, and exact leave-one-subject-out refits for high Pareto k."""

from __future__ import annotations

import functools
from typing import Any

import arviz as az
import numpy as np
import pandas as pd
import pytest
from scipy.special import logsumexp

from poppk.diagnostics import (DiagnosticsError, EtaProposal, compare, exact_subject_elpd, integrate_subjects, loo,
                               loo_refit)
from poppk.diagnostics.loo_refit import refit_settings
from poppk.model import Fit

from _diag_fixtures import TRUTH_2CMT, oracle_fit, read, simulate_study, spec_2cmt_wt


@functools.lru_cache(maxsize=None)
def noisy_oracle() -> Fit:
    """An oracle fit of 5 subjects whose population CL and η vary over 40 draws (no MCMC)."""
    df, logp = simulate_study(5, seed=7, lloq=None)
    fit = oracle_fit(spec_2cmt_wt(), read(df), TRUTH_2CMT, logp, n_draws=40)
    post = fit.idata.posterior
    rng = np.random.default_rng(0)
    fit.idata.posterior = post.assign(theta=post["theta"] + rng.normal(0, 0.05, post["theta"].shape),
                                      CL=post["CL"] * np.exp(rng.normal(0, 0.05, post["CL"].shape)))
    fit.settings = {"draws": 40, "chains": 1, "seed": 5, "sampler": "nutpie"}
    return fit


def _same_population(full: Fit) -> Any:
    """A fit function that 'refits' by keeping the full fit's population draws (records its calls)."""
    calls: list[tuple[list[str], dict[str, Any]]] = []

    def fit_fn(spec: Any, data: Any, **settings: Any) -> Fit:
        ids = [str(s) for s in data.subjects]
        calls.append((ids, settings))
        idata = az.InferenceData(posterior=full.idata.posterior.sel(id=ids))
        return Fit(idata=idata, spec=spec, data=data, settings={})

    fit_fn.calls = calls  # type: ignore[attr-defined]
    return fit_fn


def test_integrating_a_subject_outside_the_fit_matches_inside():
    """The held-out path (proposal from another fit, subject not in the population fit) == the in-fit path."""
    full = noisy_oracle()
    sid = full.data.subjects[3]
    rest = full.data.subset([s for s in full.data.subjects if s != sid])
    pop = _same_population(full)(full.spec, rest)
    inside = integrate_subjects(full, n_eta=400, seed=1)
    outside = integrate_subjects(pop, full.data.subset([sid]), proposal=EtaProposal.from_fit(full), n_eta=400, seed=2)
    assert outside.loglik.dims == ("chain", "draw", "id") and list(outside.loglik.id.values) == [str(sid)]
    a, b = inside.loglik.sel(id=str(sid)).values.ravel(), outside.loglik.values.ravel()
    flat = inside.loglik.values.reshape(40, -1)
    se = np.hypot(inside.mcse(flat)[3], outside.mcse(b[:, None])[0])
    assert abs(logsumexp(a) - logsumexp(b)) < 4 * se
    with pytest.raises(DiagnosticsError, match="no η proposal"):
        integrate_subjects(pop, full.data.subset([sid]), n_eta=10)


def test_loo_refit_replaces_the_worst_subjects_and_recomputes_the_totals():
    full = noisy_oracle()
    res = loo(full, n_eta=200)
    k = np.asarray(res.pareto_k)
    fit_fn = _same_population(full)
    out = loo_refit(full, res, k_threshold=0.7, max_refits=2, fit_fn=fit_fn)
    worst = [str(i) for i in res.pareto_k.id.values[np.argsort(-k)][:2]]
    assert [c[0] for c in fit_fn.calls] == [[s for s in res.pareto_k.id.values if s != w] for w in worst]
    assert fit_fn.calls[0][1] == {**refit_settings(full)} and fit_fn.calls[0][1]["progress"] is False
    assert list(out["refits"]["id"]) == worst
    assert out["n_k_high"] == int((k > 0.7).sum()) == 3
    assert (out["n_refit"], out["n_k_unhandled"]) == (2, 1)
    new_k = out.pareto_k.to_series()
    assert (new_k[worst] == 0).all() and (out["pareto_k_psis"].values == k).all()
    assert res.pareto_k.to_series()[worst].min() > 0.7  # the input is untouched
    # the exact value of a held-out subject, computed independently
    for w in worst:
        sid = next(s for s in full.data.subjects if str(s) == w)
        rest = full.data.subset([s for s in full.data.subjects if s != sid])
        exact = exact_subject_elpd(fit_fn(full.spec, rest), full.data.subset([sid]), EtaProposal.from_fit(full),
                                   n_eta=200, seed=0)
        assert float(out.loo_i.sel(id=w)) == pytest.approx(exact["elpd"])
    assert float(out["elpd_loo"]) == pytest.approx(float(out.loo_i.sum()))
    assert float(out["se"]) == pytest.approx(float(np.sqrt(5 * np.var(out.loo_i.values))))
    lppd = float(res["p_loo"]) + float(res["elpd_loo"])
    assert float(out["p_loo"]) == pytest.approx(lppd - float(out["elpd_loo"]))
    assert out["mcse_integration"] > 0 and out["warning"]  # one subject is still above ArviZ's threshold
    untouched = [s for s in out.loo_i.id.values if s not in worst]
    np.testing.assert_allclose(out.loo_i.sel(id=untouched), res.loo_i.sel(id=untouched))
    with pytest.raises(DiagnosticsError, match="max_refits"):
        loo_refit(full, res, max_refits=-1, fit_fn=fit_fn)
    with pytest.raises(DiagnosticsError, match="by='subject'"):
        compare({"a": full, "b": full}, "observation", refit_high_k=True)


def test_integration_mcse_shrinks_as_one_over_root_n_eta(small_fit):
    rough = loo(small_fit, n_eta=25, max_draws=300, seed=1)
    fine = loo(small_fit, n_eta=100, max_draws=300, seed=1)
    for r in (rough, fine):
        assert r["mcse_integration_i"].dims == ("id",) and r["mcse_integration_i"].sizes["id"] == 24
        assert r["mcse_integration"] == pytest.approx(float(np.sqrt((r["mcse_integration_i"] ** 2).sum())))
        assert r["integration"] == {"n_eta": int(r["integration"]["n_eta"]), "max_draws": 300, "seed": 1}
    assert float(fine["integration_k"].max()) < 0.7  # the SE itself is trustworthy here
    ratio = rough["mcse_integration"] / fine["mcse_integration"]
    assert 1.5 < ratio < 2.7  # sqrt(4) = 2
    assert fine["mcse_integration"] < 0.1 * float(fine["se"])  # small next to the sampling SE of the total
    assert "mcse_integration" not in loo(small_fit, method="psis").index  # ArviZ's own result otherwise


@pytest.mark.slow
def test_exact_refit_agrees_with_psis_on_an_easy_model(small_fit):
    """Lower the threshold so that only the worst subject is 'high': its exact refit matches PSIS."""
    from poppk.model import fit as poppk_fit

    res = loo(small_fit, n_eta=100)
    k = np.sort(np.asarray(res.pareto_k))
    threshold = float((k[-1] + k[-2]) / 2)
    refits: dict[tuple[str, ...], Fit] = {}

    def cached_fit(spec: Any, data: Any, **settings: Any) -> Fit:  # the same refit serves both names
        key = tuple(str(s) for s in data.subjects)
        if key not in refits:
            refits[key] = poppk_fit(spec, data, **settings)
        return refits[key]

    tab = compare({"a": small_fit, "b": small_fit}, refit_high_k=True, k_threshold=threshold, fit_fn=cached_fit)
    assert len(refits) == 1
    assert list(tab.columns[:4]) == ["rank", "elpd", "se", "mcse_integration"]
    assert (tab["n_refit"] == 1).all() and (tab["n_k_unhandled"] == 0).all()
    row = tab.attrs["refits"]["a"].iloc[0]
    assert row["id"] == str(res.pareto_k.id.values[np.argmax(np.asarray(res.pareto_k))])
    assert bool(row["converged"])
    psis_se = float(res["mcse_integration_i"].sel(id=row["id"]))
    assert abs(row["elpd_exact"] - row["elpd_psis"]) < 4 * np.hypot(row["mcse_exact"], psis_se) + 0.1
    assert tab["elpd"].iloc[0] == pytest.approx(float(res["elpd_loo"]) - row["elpd_psis"] + row["elpd_exact"])
    assert (tab["mcse_integration"] > 0).all()


def test_refit_tables_in_attrs_survive_pandas_operations():
    """A comparison table keeps its refit tables through astype/concat (a plain dict of
    DataFrames in attrs made pandas raise: make demo failed on it in the report)."""
    from poppk.diagnostics.loo import RefitTables

    tab = pd.DataFrame({"elpd": [-10.0, -12.0], "weight": [1.0, 0.0]}, index=["TBW", "AIBW"])
    tab.attrs["refits"] = RefitTables({"TBW": pd.DataFrame({"id": [1, 2], "elpd": [-1.0, -2.0]})})
    as_text = tab.astype(str)
    assert as_text.attrs["refits"] == tab.attrs["refits"]
    assert len(pd.concat([tab, tab])) == 4
    other = RefitTables({"TBW": pd.DataFrame({"id": [1, 2], "elpd": [-1.0, -2.5]})})
    assert other != tab.attrs["refits"]
