"""VPC tables against independent NumPy computations on the same bins."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from poppk.diagnostics import (
    DiagnosticsError,
    bin_edges,
    censored_quantile,
    observation_frame,
    simulate_observations,
    vpc_observations,
    vpc_table,
)
from poppk.diagnostics._common import median_predictions
from poppk.plots import plot_vpc

from _diag_fixtures import oracle_study


# ------------------------------------------------------------------ helpers
def test_censored_quantile_equals_numpy_without_censoring():
    rng = np.random.default_rng(0)
    a = rng.lognormal(size=(7, 53))
    q = [0.05, 0.5, 0.95, 0.0, 1.0]
    np.testing.assert_allclose(censored_quantile(a, q, axis=1), np.quantile(a, q, axis=1))
    np.testing.assert_allclose(censored_quantile(a, q, axis=0), np.quantile(a, q, axis=0))


def test_censored_quantile_rule():
    x = np.array([-np.inf, -np.inf, 1.0, 2.0, 3.0])  # two of five censored
    out = censored_quantile(x, [0.1, 0.25, 0.4, 0.5, 0.9])
    # position q*(n-1): 0.4 and 1.0 touch censored values -> -inf; 1.6 too; 2.0 is the first quantified
    assert np.isneginf(out[:3]).all()
    assert out[3] == 1.0 and out[4] == pytest.approx(2.6)


def test_bin_edges_variants():
    x = np.repeat([0.5, 1, 2, 4, 8, 12, 24], [10, 10, 10, 10, 10, 10, 10]).astype(float)
    e = bin_edges(x, "quantile", 3)
    assert e[0] == 0.5 and e[-1] == 24
    assert not np.isin(e[1:-1], x).any()  # edges never sit on an observed time: ties are not split
    counts = np.histogram(x, e)[0]
    assert counts.sum() == x.size and counts.max() - counts.min() <= 10
    np.testing.assert_allclose(bin_edges(x, "equal", 4), np.linspace(0.5, 24, 5))
    assert len(bin_edges(x, "time")) == 8  # one bin per distinct time
    assert len(bin_edges(x, "auto")) == 8
    np.testing.assert_allclose(bin_edges(x, 2), bin_edges(x, "quantile", 2))
    np.testing.assert_allclose(bin_edges(x, np.array([10.0, 0, 30])), [0, 10, 30])
    # a forced cut at a dose time (12) becomes an edge
    e = bin_edges(x, "quantile", 3, cuts=[12.0])
    assert 12.0 in e
    with pytest.raises(DiagnosticsError):
        bin_edges(x, "kmeans")


def test_jenks_breaks_find_sampling_clusters():
    rng = np.random.default_rng(0)
    centres = np.array([1.0, 5.0, 9.0, 20.0])
    x = np.concatenate([rng.normal(c, 0.2, 25) for c in centres])
    e = bin_edges(x, "jenks", 4)
    counts = np.histogram(x, e)[0]
    assert (counts == 25).all()  # one bin per cluster
    # the exact optimum: no other split into 4 contiguous bins has a smaller within-bin sum of squares
    def wss(edges):
        b = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)
        return sum(((x[b == k] - x[b == k].mean()) ** 2).sum() for k in np.unique(b))

    assert wss(e) <= wss(bin_edges(x, "quantile", 4)) + 1e-9
    # geometric sampling after a dose: log-time breaks separate 0.1/0.25/0.5 h as well as 8/12/24 h
    t = np.repeat([0.1, 0.25, 0.5, 1, 2, 4, 8, 12, 24], 20) * np.exp(rng.normal(0, 0.03, 180))
    e = bin_edges(t, "log-jenks", 9)
    assert (np.histogram(t, e)[0] == 20).all()
    assert (np.histogram(t, bin_edges(t, "jenks", 9))[0] != 20).any()  # linear breaks lump the early times


# ------------------------------------------------------------ vpc_table
def _numpy_vpc(frame: pd.DataFrame, xcol: str, edges: np.ndarray, pcts, values=None):
    """Observed percentiles per bin computed directly with numpy."""
    v = frame["DV"].to_numpy() if values is None else values
    x = frame[xcol].to_numpy()
    out = []
    for b in range(len(edges) - 1):
        m = (x >= edges[b]) & ((x < edges[b + 1]) | ((b == len(edges) - 2) & (x == edges[b + 1])))
        out.append(np.percentile(v[m], pcts))
    return np.array(out)


@pytest.mark.parametrize("time", ["tafd", "tad"])
def test_observed_percentiles_match_numpy(time):
    fit, _ = oracle_study(lloq=None)
    pcts = (5, 25, 50, 75, 95)
    tab = vpc_table(fit, time=time, percentiles=pcts, n_draws=50, bins="quantile", n_bins=6)
    frame = observation_frame(fit)
    xcol = "TAFD" if time == "tafd" else "TAD"
    edges = np.unique(np.concatenate([tab["bin_lower"], tab["bin_upper"]]))
    expected = _numpy_vpc(frame, xcol, edges, pcts)
    got = tab.pivot(index="bin", columns="percentile", values="observed").to_numpy()
    np.testing.assert_allclose(got, expected)
    n = tab.drop_duplicates("bin")["n_obs"].sum()
    assert n == len(frame)
    if time == "tafd":  # the second dose (24 h) is a bin edge: no bin mixes troughs and peaks
        assert 24.0 in edges


def test_simulated_percentile_summary_matches_numpy():
    fit, _ = oracle_study(lloq=None)
    sims = simulate_observations(fit, n_draws=80, new_subjects=True, seed=4)
    tab = vpc_table(fit, simulations=sims, bins="time", ci=0.8)
    frame = observation_frame(fit)
    y = sims["y_rep"].values
    for _, row in tab.sample(8, random_state=0).iterrows():
        m = (frame["TAFD"] >= row["bin_lower"]) & (frame["TAFD"] <= row["bin_upper"])
        per_rep = np.percentile(y[:, m.to_numpy()], row["percentile"], axis=1)
        assert row["sim_median"] == pytest.approx(np.quantile(per_rep, 0.5))
        assert row["sim_lower"] == pytest.approx(np.quantile(per_rep, 0.1))
        assert row["sim_upper"] == pytest.approx(np.quantile(per_rep, 0.9))
        assert row["outside"] == (row["observed"] < row["sim_lower"] or row["observed"] > row["sim_upper"])


def test_censored_vpc_with_blq():
    fit, df = oracle_study()
    sims = simulate_observations(fit, n_draws=100, new_subjects=True, seed=0)
    tab = vpc_table(fit, simulations=sims, bins="time", percentiles=(5, 50, 95))
    frame = observation_frame(fit)
    lloq = float(df["LLOQ"].iloc[0])
    assert tab.attrs["has_lloq"]
    assert (tab["lloq"] == lloq).all()
    for b, g in tab.groupby("bin"):
        m = ((frame["TAFD"] >= g["bin_lower"].iloc[0]) & (frame["TAFD"] <= g["bin_upper"].iloc[0])).to_numpy()
        blq = frame["BLQ"].to_numpy()[m]
        assert g["blq_observed"].iloc[0] == pytest.approx(blq.mean())
        assert g["blq_sim_median"].iloc[0] == pytest.approx(np.median(sims["blq_rep"].values[:, m].mean(axis=1)))
        dv = frame["DV"].to_numpy()[m]  # LLOQ on BLQ records
        for _, r in g.iterrows():
            ref = np.percentile(dv, r["percentile"])
            # a percentile interpolated from BLQ values is censored; otherwise it is the plain percentile
            pos = r["percentile"] / 100 * (m.sum() - 1)
            censored = np.sort(np.where(blq, -np.inf, dv))[int(np.floor(pos))] == -np.inf
            if censored:
                assert np.isnan(r["observed"]) and r["observed_below_lloq"]
            else:
                assert r["observed"] == pytest.approx(ref)
    assert tab["observed_below_lloq"].any()


def test_pred_corrected_matches_numpy():
    fit, _ = oracle_study(lloq=None)
    tab = vpc_table(fit, pred_corrected=True, bins="time", n_draws=30)
    frame = observation_frame(fit)
    pred = median_predictions(fit)["PRED"].to_numpy()
    edges = np.unique(np.concatenate([tab["bin_lower"], tab["bin_upper"]]))
    b = np.clip(np.searchsorted(edges, frame["TAFD"].to_numpy(), side="right") - 1, 0, len(edges) - 2)
    corrected = frame["DV"].to_numpy().copy()
    for k in np.unique(b):
        m = b == k
        corrected[m] = corrected[m] * np.median(pred[m]) / pred[m]
    expected = _numpy_vpc(frame, "TAFD", edges, (5, 50, 95), values=corrected)
    got = tab.pivot(index="bin", columns="percentile", values="observed").to_numpy()
    np.testing.assert_allclose(got, expected)
    assert tab.attrs["kind"] == "pcVPC"
    assert "Prediction-corrected" in tab.attrs["y_label"] and "(mg/L)" in tab.attrs["y_label"]


def test_true_model_is_covered():
    """Simulating from the data-generating model: observed percentiles rarely leave the 90% CI."""
    fit, _ = oracle_study()
    tab = vpc_table(fit, n_draws=300, bins="time", seed=1)
    assert tab["outside"].mean() < 0.2


def test_stratification():
    fit, _ = oracle_study()
    sims = simulate_observations(fit, n_draws=40, new_subjects=True)
    tab = vpc_table(fit, simulations=sims, stratify="SEX")
    assert set(tab["strata"]) == {"SEX = 0", "SEX = 1"}
    assert tab.drop_duplicates(["strata", "bin"])["n_obs"].sum() == fit.design.n_obs
    tab = vpc_table(fit, simulations=sims, stratify="WT")  # continuous: split at the median
    assert len(set(tab["strata"])) == 2 and all("WT" in s for s in tab["strata"])
    tab = vpc_table(fit, simulations=sims, stratify=lambda d: np.where(d["AGE"] > 50, "old", "young"))
    assert set(tab["strata"]) == {"old", "young"}
    with pytest.raises(DiagnosticsError, match="not a covariate"):
        vpc_table(fit, simulations=sims, stratify="NOPE")


def test_plot_vpc_draws_table(tmp_path):
    fit, _ = oracle_study()
    sims = simulate_observations(fit, n_draws=40, new_subjects=True)
    tab = vpc_table(fit, simulations=sims, stratify="SEX")
    obs = vpc_observations(fit, stratify="SEX")
    assert set(obs.columns) >= {"X", "DV", "BLQ", "STRATUM"}
    fig = plot_vpc(tab, obs, log_y=True)
    assert isinstance(fig, Figure)
    axes = [a for a in fig.axes if a.get_visible()]
    assert len(axes) == 4  # 2 strata x (concentration + fraction BLQ)
    assert axes[0].get_yscale() == "log"
    assert "Time after first dose (h)" in axes[-1].get_xlabel()
    fig.savefig(tmp_path / "vpc.png")
