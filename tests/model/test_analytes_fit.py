"""Smoke test of a real joint fit: a 1-cmt parent and its payload, simulated by an independent ODE.

The data come from scipy's ``solve_ivp`` (not poppk's kernel): 18 subjects,
two 1-h infusions three weeks apart, 13 samples per subject of each analyte,
payload BLQ below 1 ng/mL (fitted by M3).  The joint fit (2 chains × 200
draws, 200 tuning) must converge, its 90% intervals must cover the true CL,
V1, CL_PAY and V_PAY, and a fit of the parent alone (``dvid=1``) must agree
with it on the parent's parameters.  About a minute on a quiet 2-core machine.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.integrate import solve_ivp

import poppk
from poppk.data import read_nonmem
from poppk.model import ModelSpec

TRUTH = {"CL": 0.5, "V1": 3.0, "CL_PAY": 40.0, "V_PAY": 80.0, "omega_CL": 0.3, "omega_V1": 0.2,
         "omega_CL_PAY": 0.3, "sigma_prop": 0.1, "sigma_prop_PAY": 0.15}
SCALE = 18.0
LLOQ = 1.0
SEED = 11
TIMES = np.array([0.05, 0.25, 1, 2, 4, 7, 14, 20.9, 21.1, 24, 28, 35, 42])
DOSES = (0.0, 21.0)
DUR = 1.0 / 24.0


def simulate(n: int = 18, seed: int = SEED) -> pd.DataFrame:
    """NONMEM-style records of the parent (DVID 1, ug/mL) and payload (DVID 2, ng/mL)."""
    rng = np.random.default_rng(seed)
    t = TRUTH
    rows = []
    for i in range(1, n + 1):
        wt = round(float(rng.uniform(50, 100)), 1)
        cl = t["CL"] * np.exp(rng.normal(0, t["omega_CL"]))
        v1 = t["V1"] * np.exp(rng.normal(0, t["omega_V1"]))
        clp = t["CL_PAY"] * np.exp(rng.normal(0, t["omega_CL_PAY"]))
        vp = t["V_PAY"]
        dose = round(6.0 * wt, 1)

        def rhs(_t, y, rate):
            c = y[0] / v1
            return [rate - cl * c, SCALE * cl * c - clp / vp * y[1]]

        y = np.zeros(2)
        conc = np.zeros((len(TIMES), 2))
        edges = sorted({0.0, *DOSES, *(d + DUR for d in DOSES), float(TIMES[-1])})
        for a, b in zip(edges[:-1], edges[1:]):
            rate = sum(dose / DUR for d in DOSES if d <= a < d + DUR)
            sel = np.flatnonzero((TIMES > a) & (TIMES <= b))
            t_eval = np.unique(np.r_[TIMES[sel], b])
            sol = solve_ivp(rhs, (a, b), y, method="DOP853", rtol=1e-10, atol=1e-12, t_eval=t_eval, args=(rate,))
            conc[sel] = sol.y[:, np.searchsorted(t_eval, TIMES[sel])].T
            y = sol.y[:, -1]
        conc[:, 0] /= v1
        conc[:, 1] /= vp
        for d in DOSES:
            rows.append(dict(ID=i, TIME=d, AMT=dose, RATE=round(dose / DUR, 3), EVID=1, MDV=1, CMT=1, DVID=1,
                             DV=np.nan, BLQ=0, LLOQ=np.nan, WT=wt))
        for k, tk in enumerate(TIMES):
            y_adc = conc[k, 0] * np.exp(rng.normal(0, t["sigma_prop"]))
            y_pay = conc[k, 1] * np.exp(rng.normal(0, t["sigma_prop_PAY"]))
            rows.append(dict(ID=i, TIME=tk, AMT=0, RATE=0, EVID=0, MDV=0, CMT=1, DVID=1, DV=round(y_adc, 4),
                             BLQ=0, LLOQ=np.nan, WT=wt))
            blq = y_pay < LLOQ
            rows.append(dict(ID=i, TIME=tk, AMT=0, RATE=0, EVID=0, MDV=0, CMT=1, DVID=2,
                             DV=LLOQ if blq else round(y_pay, 4), BLQ=int(blq), LLOQ=LLOQ, WT=wt))
    df = pd.DataFrame(rows)
    return df.sort_values(["ID", "TIME", "EVID", "DVID"], kind="stable").reset_index(drop=True)


def joint_spec() -> ModelSpec:
    return ModelSpec(
        structure="1cmt", typical={"CL": 0.4, "V1": 3.5, "CL_PAY": 30.0, "V_PAY": 60.0},
        analytes=[{"name": "ADC", "dvid": 1},
                  {"name": "PAY", "dvid": 2, "source": "ADC", "scale": SCALE, "error": "proportional"}],
        iiv=("CL", "V1", "CL_PAY"), error="proportional", units={"time": "day"})


@pytest.fixture(scope="module")
def trial(tmp_path_factory):
    path = tmp_path_factory.mktemp("analytes") / "trial.csv"
    simulate().to_csv(path, index=False, na_rep=".")
    return path


@pytest.fixture(scope="module")
def fits(trial):
    warnings.filterwarnings("ignore")
    data = read_nonmem(trial, time_unit="day", dvid=[1, 2])
    parent_data = read_nonmem(trial, time_unit="day", dvid=1)
    kw = dict(draws=200, tune=200, chains=2, seed=SEED)
    joint = poppk.fit(joint_spec(), data, **kw)
    parent = poppk.fit(ModelSpec(structure="1cmt", typical={"CL": 0.4, "V1": 3.5}, iiv=("CL", "V1"),
                                 error="proportional", units={"time": "day"}), parent_data, **kw)
    return data, joint, parent


def test_design_has_both_analytes_and_some_payload_blq(fits):
    data, _, _ = fits
    obs = data.observations
    assert obs["DVID"].value_counts().to_dict() == {1: 18 * len(TIMES), 2: 18 * len(TIMES)}
    blq = obs.loc[obs["DVID"] == 2, "BLQ"].mean()
    assert 0.0 < blq < 0.3


def test_joint_fit_converges_and_covers_the_truth(fits):
    _, joint, _ = fits
    s = joint.summary(hdi_prob=0.90)
    assert set(TRUTH) <= set(s.index)
    assert s["r_hat"].max() < 1.05, s[["median", "r_hat"]]
    assert joint.convergence().divergences <= 2
    for name in ("CL", "V1", "CL_PAY", "V_PAY"):
        lo, hi = s.loc[name, "lower"], s.loc[name, "upper"]
        assert lo <= TRUTH[name] <= hi, f"{name}: truth {TRUTH[name]} outside 90% interval [{lo:.4g}, {hi:.4g}]"


def test_parent_alone_agrees_with_the_joint_fit(fits):
    _, joint, parent = fits
    sj, sp = joint.summary(hdi_prob=0.90), parent.summary(hdi_prob=0.90)
    assert sp["r_hat"].max() < 1.05
    for name in ("CL", "V1", "omega_CL", "sigma_prop"):
        # each median inside the other fit's 90% interval, and within 15% of each other
        assert sj.loc[name, "lower"] <= sp.loc[name, "median"] <= sj.loc[name, "upper"], name
        assert sp.loc[name, "lower"] <= sj.loc[name, "median"] <= sp.loc[name, "upper"], name
        assert abs(sj.loc[name, "median"] / sp.loc[name, "median"] - 1) < 0.15, name
    for name in ("CL", "V1"):
        lo, hi = sp.loc[name, "lower"], sp.loc[name, "upper"]
        assert lo <= TRUTH[name] <= hi, f"parent-only {name}: truth outside [{lo:.4g}, {hi:.4g}]"


def test_payload_exposure_is_simulated_from_the_joint_fit(fits, tmp_path):
    """The payload's AUC over a steady-state cycle is S·dose/CL_PAY, draw by draw (mass balance of the chain)."""
    from poppk.simulate import Schedule, run_simulation, sample_population, simulate_strategies

    _, joint, _ = fits
    sim = simulate_strategies(joint, {"flat": "flat 400 mg"}, Schedule.q3w(2, unit="day", infusion=DUR),
                              sample_population(40, seed=2), analyte="PAY", metrics=["cmax_c1", "auc_ss"],
                              random_effects=False, n_draws=25, keep_exposure=True)
    auc = sim["exposure"].sel(metric="auc_ss", strategy="flat")  # (draw, patient)
    expected = SCALE * 400.0 / sim["typical_CL_PAY"]
    np.testing.assert_allclose(auc.values, np.broadcast_to(expected.values[:, None], auc.shape), rtol=1e-9)
    assert sim.attrs["analyte"] == "PAY"
    paths = run_simulation(joint, ["400 mg flat"], "q3w:2", "sample:60", tmp_path / "sim", n_draws=10,
                           metrics=["auc_ss"], analyte="PAY", figures=False)
    summary = pd.read_csv(next(p for p in paths.values() if str(p).endswith("summary.csv")))
    assert np.isfinite(summary["median_exposure_median"]).all()


def test_vpc_of_the_joint_fit_has_one_panel_per_analyte_in_its_own_unit(fits):
    from poppk.diagnostics.vpc import vpc_table
    from poppk.plots import plot_vpc

    _, joint, _ = fits
    tab = vpc_table(joint, n_draws=40, seed=1)
    assert set(tab["strata"]) == {"ADC", "PAY"}
    assert tab.attrs["y_labels"] == {"ADC": "Concentration, ADC (mg/L)", "PAY": "Concentration, PAY (mg/L)"}
    fig = plot_vpc(tab)
    labels = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel().startswith("Concentration")]
    assert labels == ["Concentration, ADC (mg/L)", "Concentration, PAY (mg/L)"]
