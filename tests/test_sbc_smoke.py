"""benchmarks/sbc.py: the rank and uniformity machinery on inputs whose answer is known, and a
three-replicate run end to end (tiny fits, serially in this process)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sbc():
    spec = importlib.util.spec_from_file_location("poppk_bench_sbc", ROOT / "benchmarks" / "sbc.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses resolve their module through sys.modules
    spec.loader.exec_module(mod)
    yield mod
    sys.modules.pop(spec.name, None)


def _normal_study(n_rep: int, n_draws: int, *, scale: float = 1.0, shift: float = 0.0, seed: int = 0):
    """θ ~ N(0, 1), y ~ N(θ, 1): the posterior is N(y/2, 1/2).  ``scale``/``shift`` distort it."""
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal(n_rep)
    y = theta + rng.standard_normal(n_rep)
    draws = y[:, None] / 2 + shift + scale * np.sqrt(0.5) * rng.standard_normal((n_rep, n_draws))
    return theta, draws


def test_rank_counts_the_draws_below_the_truth(sbc):
    assert sbc.sbc_rank([0.1, 0.5, 0.9], 0.6) == 2
    assert sbc.sbc_rank([0.1, 0.5, 0.9], -1.0) == 0
    assert sbc.sbc_rank([0.1, 0.5, 0.9], 5.0) == 3
    # a value drawn from the same distribution as the draws has a uniform rank
    rng = np.random.default_rng(1)
    ranks = [sbc.sbc_rank(rng.standard_normal(9), rng.standard_normal()) for _ in range(4000)]
    counts = np.bincount(ranks, minlength=10)
    assert counts.min() > 330 and counts.max() < 480  # 400 expected in each of the 10 ranks


def test_chi2_and_ecdf_accept_uniform_ranks(sbc):
    rng = np.random.default_rng(2)
    r = rng.integers(0, 100, 300)
    stat, df, p = sbc.chi2_uniformity(r, 100, 10)
    assert df == 9 and p > 0.01
    e = sbc.ecdf_uniformity(r, 100, seed=3)
    assert e["p_value"] > 0.01
    assert np.all(e["lower"] <= e["cdf"]) and np.all(e["cdf"] <= e["upper"])
    # the band holds 95% of uniform ECDFs at once: the pointwise level is well below 0.05
    assert 0.0005 < e["gamma"] < 0.05
    with pytest.raises(ValueError, match=r"ranks must be in 0\.\.99"):
        sbc.chi2_uniformity([0, 100], 100, 10)
    with pytest.raises(ValueError, match="bins must be in 2..100"):
        sbc.chi2_uniformity([0, 5], 100, 1)


def test_the_exact_posterior_passes_and_distorted_ones_are_flagged(sbc):
    n_rep, L = 300, 99
    cases = {"exact": {}, "too narrow": {"scale": 0.6}, "too wide": {"scale": 1.6}, "biased": {"shift": 0.4}}
    ranks = {}
    for name, kw in cases.items():
        theta, draws = _normal_study(n_rep, L, seed=4, **kw)
        ranks[name] = [sbc.sbc_rank(d, t) for d, t in zip(draws, theta)]
    table = sbc.uniformity_table(pd.DataFrame(ranks), L + 1, alpha=0.05)
    assert list(table.index) == list(cases)
    assert not table.loc["exact", "flagged"], table
    assert table.loc["exact", ["p_chi2", "p_ecdf"]].min() > 0.05
    for bad in ("too narrow", "too wide", "biased"):
        assert table.loc[bad, "flagged"], table
    # a too-narrow posterior piles ranks at both ends (U shape)
    r = np.asarray(ranks["too narrow"])
    assert np.mean((r < 10) | (r >= 90)) > 0.3


def test_prior_draws_have_the_prior_distribution(sbc):
    from scipy import stats

    from poppk.model import Prior

    rng = np.random.default_rng(5)
    x = np.array([sbc.draw_prior(Prior.lognormal(2.0, 0.5), rng) for _ in range(3000)])
    assert stats.kstest(np.log(x), stats.norm(np.log(2.0), 0.5).cdf).pvalue > 0.01
    h = np.array([sbc.draw_prior(Prior.halfnormal(0.5), rng) for _ in range(3000)])
    assert stats.kstest(h, stats.halfnorm(scale=0.5).cdf).pvalue > 0.01
    with pytest.raises(ValueError, match="'lkj'"):
        sbc.draw_prior(Prior.lkj(2.0), rng)


def test_a_simulated_replicate_follows_the_spec(sbc):
    settings = sbc.Settings(subjects=5)
    truth, records = sbc.simulate_replicate(sbc.sbc_spec(), settings, 7)
    assert set(truth) == {"CL", "V1", "omega_CL", "omega_V1", "sigma_prop"}
    obs = records[records.EVID == 0]
    assert len(obs) == 5 * len(settings.times) and (obs.DV > 0).all()
    again, records2 = sbc.simulate_replicate(sbc.sbc_spec(), settings, 7)
    assert again == truth and records.equals(records2)  # a replicate is reproducible from its index
    # below the LLOQ a sample is BLQ (M3), reported at the LLOQ; without an LLOQ there is no BLQ column
    assert (obs.DV[obs.BLQ == 1] == settings.lloq).all() and (obs.DV[obs.BLQ == 0] >= settings.lloq).all()
    no_lloq = sbc.Settings(subjects=5, lloq=None)
    truth3, records3 = sbc.simulate_replicate(sbc.sbc_spec(), no_lloq, 7)
    assert truth3 == truth and "BLQ" not in records3 and no_lloq.tag != settings.tag
    with pytest.raises(ValueError, match="lloq must be > 0"):
        sbc.Settings(lloq=0.0)


@pytest.mark.slow
def test_three_replicates_end_to_end(sbc, tmp_path):
    settings = sbc.Settings(subjects=6, chains=2, tune=100, draws=100, thin_to=19)
    lines: list[str] = []
    n = sbc.run(range(3), settings, tmp_path, workers=0, log=lambda *a, **k: lines.append(" ".join(map(str, a))))
    assert n == 3 and len(lines) == 4
    files = sorted((tmp_path / settings.tag).glob("rep_*.json"))
    assert [f.name for f in files] == ["rep_0000.json", "rep_0001.json", "rep_0002.json"]
    docs = [json.loads(f.read_text()) for f in files]
    for d in docs:
        assert set(d["ranks"]) == set(d["truth"]) and all(0 <= v <= 19 for v in d["ranks"].values())
        assert isinstance(d["converged"], bool)
    # resumable: nothing left to run
    assert sbc.run(range(3), settings, tmp_path, workers=0, log=lambda *a, **k: None) == 0
    assert {d["spec_digest"] for d in docs} == {sbc.spec_digest(sbc.sbc_spec())}
    # a replicate of another spec (other priors) is another study: left out, with a message
    stale = dict(docs[2], spec_digest="0" * 16)
    (tmp_path / settings.tag / "rep_0002.json").write_text(json.dumps(stale))
    said: list[str] = []
    assert len(sbc.load(tmp_path, settings, log=said.append)) == 2 and "another spec" in said[0]
    (tmp_path / settings.tag / "rep_0002.json").write_text(json.dumps(docs[2]))
    rep = sbc.report(sbc.load(tmp_path, settings), settings)
    assert rep["n"] == 3 and rep["n_failed"] == 0
    assert list(rep["all"].index) == ["CL", "V1", "omega_CL", "omega_V1", "sigma_prop"]
    out = sbc.plot_ranks(rep["ranks"], settings.thin_to + 1, tmp_path / "sbc.png")
    assert out.stat().st_size > 1000
