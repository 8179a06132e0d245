"""Convergence checks on synthetic InferenceData (no MCMC) and on the shared small fit."""

from __future__ import annotations

import arviz as az
import numpy as np
import pytest

from poppk.model.convergence import BFMI_MIN, check_convergence, e_bfmi

IIV = ["CL", "V1", "Q"]


def _idata(corr: np.ndarray | None = None, energy: np.ndarray | None = None, *, seed: int = 0):
    """4 chains x 500 well-mixed draws of CL and, optionally, omega_corr and energy."""
    rng = np.random.default_rng(seed)
    post = {"CL": rng.normal(size=(4, 500))}
    dims = {}
    if corr is not None:
        post["omega_corr"] = corr
        dims["omega_corr"] = ["iiv", "iiv_bis"]
    stats = {"diverging": np.zeros((4, 500), dtype=bool)}
    if energy is not None:
        stats["energy"] = energy
    return az.from_dict(posterior=post, sample_stats=stats, dims=dims, coords={"iiv": IIV, "iiv_bis": IIV})


def _corr(seed: int = 0, stuck: tuple[int, int] | None = None) -> np.ndarray:
    """Well-mixed correlations; the pair ``stuck`` takes a different level in each chain."""
    rng = np.random.default_rng(seed)
    c = np.broadcast_to(np.eye(3), (4, 500, 3, 3)).copy()
    for i in range(3):
        for j in range(i):
            v = np.clip(rng.normal(0.2, 0.1, size=(4, 500)), -0.9, 0.9)
            if stuck == (i, j):
                v = np.array([-0.6, -0.2, 0.2, 0.6])[:, None] + 0.01 * rng.normal(size=(4, 500))
            c[..., i, j] = c[..., j, i] = v
    return c


def _energy(seed: int = 0, sticky_chain: int | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    e = rng.normal(size=(4, 500))
    if sticky_chain is not None:  # a slow random walk: small changes between draws, large spread
        e[sticky_chain] = np.cumsum(rng.normal(scale=0.1, size=500))
    return e


def test_every_offdiagonal_correlation_is_judged_and_named():
    rep = check_convergence(_idata(_corr(), _energy()), ["CL"])
    assert list(rep.table.index) == ["CL", "omega_corr[CL,V1]", "omega_corr[CL,Q]", "omega_corr[V1,Q]"]
    assert rep.ok, rep.message()


def test_a_correlation_that_does_not_mix_is_flagged():
    rep = check_convergence(_idata(_corr(stuck=(2, 1)), _energy()), ["CL"])
    assert not rep.ok
    assert not rep.table.loc["omega_corr[V1,Q]", "ok"]
    assert rep.table.loc[["CL", "omega_corr[CL,V1]", "omega_corr[CL,Q]"], "ok"].all()
    assert "R-hat > 1.01 for omega_corr[V1,Q]" in rep.message()


def test_the_diagonal_is_ignored():
    # the diagonal is constant 1 (undefined R-hat, no ESS): it must neither appear nor fail the check
    rep = check_convergence(_idata(_corr(), _energy()), ["CL", "omega_corr"])
    assert not {f"omega_corr[{p},{p}]" for p in IIV} & set(rep.table.index)
    assert len(rep.table) == 1 + 3 and rep.ok


def test_correlations_can_be_left_out_on_request():
    rep = check_convergence(_idata(_corr(stuck=(1, 0)), _energy()), ["CL"], correlations=False)
    assert list(rep.table.index) == ["CL"] and rep.ok


def test_a_chain_with_low_e_bfmi_is_flagged_with_its_value():
    energy = _energy(sticky_chain=2)
    values = e_bfmi(energy)
    assert values[2] < BFMI_MIN <= values[[0, 1, 3]].min()
    np.testing.assert_allclose(values, az.bfmi(energy))
    rep = check_convergence(_idata(energy=energy), ["CL"])
    assert not rep.ok
    assert rep.e_bfmi == pytest.approx(tuple(values))
    assert f"E-BFMI < {BFMI_MIN} in chain 2 ({values[2]:.2f})" in rep.message()
    assert "chain 0" not in rep.message()


def test_missing_energy_is_said_not_failed():
    rep = check_convergence(_idata(), ["CL"])
    assert rep.ok and rep.e_bfmi == ()
    assert "E-BFMI not checked" in rep.message()


def test_the_report_reads_the_new_rows():
    from types import SimpleNamespace

    from poppk.report.export import _convergence

    rep = check_convergence(_idata(_corr(stuck=(1, 0)), _energy(sticky_chain=1)), ["CL"])
    out = _convergence(SimpleNamespace(convergence=lambda: rep))
    assert out["ok"] is False and out["max_r_hat"] > 1.01
    assert any("omega_corr[CL,V1]" in p for p in out["problems"])
    assert any("E-BFMI" in p for p in out["problems"])


def test_the_shared_small_fit_passes(small_fit):
    rep = small_fit.convergence()
    assert rep.ok, rep.message()
    assert len(rep.e_bfmi) == small_fit.idata.posterior.sizes["chain"]
    assert min(rep.e_bfmi) >= BFMI_MIN
