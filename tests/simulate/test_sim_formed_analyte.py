"""Exposure of a formed analyte (payload, metabolite) after doses of the parent.

References independent of poppk's kernel: scipy's ``solve_ivp`` on the
model's differential equations, and the mass balance of a linear chain (at
steady state a cycle's AUC of an analyte formed from the parent is
S · dose / CL_m, whatever the parent's disposition).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from poppk.errors import ConfigError
from poppk.model import ModelSpec
from poppk.model.analytes import target_analyte
from poppk.simulate import PosteriorDraws, Schedule, sample_population, simulate_strategies
from poppk.simulate.exposure import ExposurePlan, compute_exposures

# conjugate (2 cmt, mg and L, days), payload formed from it, metabolite formed from the payload
P = {"CL": 0.45, "V1": 3.0, "Q": 0.6, "V2": 2.5, "CL_DM4": 150.0, "V_DM4": 400.0, "CL_MeDM4": 40.0,
     "V_MeDM4": 300.0}
S_DM4, S_ME = 18.2, 1.05
ANALYTES = [{"name": "ADC", "dvid": 1},
            {"name": "DM4", "dvid": 2, "source": "ADC", "scale": S_DM4, "unit": "ng/mL"},
            {"name": "MeDM4", "dvid": 3, "source": "DM4", "scale": S_ME, "unit": "ng/mL"}]
TAU, DUR, DOSE = 21.0, 1.0 / 24.0, 100.0


def _rhs(oral: bool):
    def f(t, y, rate):
        k10, k12, k21 = P["CL"] / P["V1"], P["Q"] / P["V1"], P["Q"] / P["V2"]
        depot, a1, a2, m1, m2 = y[:5]
        ka = 1.3
        inp = ka * depot if oral else rate(t)
        da1 = inp - (k10 + k12) * a1 + k21 * a2
        da2 = k12 * a1 - k21 * a2
        dm1 = S_DM4 * P["CL"] * a1 / P["V1"] - P["CL_DM4"] / P["V_DM4"] * m1
        dm2 = S_ME * P["CL_DM4"] * m1 / P["V_DM4"] - P["CL_MeDM4"] / P["V_MeDM4"] * m2
        # the last three states integrate each analyte's concentration (its AUC, to the solver's tolerance)
        return [-ka * depot if oral else 0.0, da1, da2, dm1, dm2, a1 / P["V1"], m1 / P["V_DM4"], m2 / P["V_MeDM4"]]
    return f


def _ode_cycles(n_cycles: int, oral: bool = False, n_t: int = 20001):
    """Concentrations of the three analytes over the last of ``n_cycles`` Q3W cycles (dense grid)."""
    y = np.zeros(8)
    f = _rhs(oral)
    out = None
    for c in range(n_cycles):
        if oral:
            y[0] += DOSE
        rate = (lambda t: DOSE / DUR if t < DUR else 0.0) if not oral else (lambda t: 0.0)
        pieces = [(0.0, DUR), (DUR, TAU)] if not oral else [(0.0, TAU)]
        ts, ys = [], []
        for a, b in pieces:
            if a == 0.0:
                y[5:] = 0.0  # AUC of this cycle
            grid = np.linspace(a, b, n_t if b - a > 1 else 401)
            sol = solve_ivp(f, (a, b), y, args=(rate,), method="LSODA", rtol=1e-11, atol=1e-13, t_eval=grid)
            ts.append(sol.t)
            ys.append(sol.y)
            y = sol.y[:, -1].copy()
        out = (np.concatenate(ts), np.concatenate(ys, axis=1))
    t, yy = out
    conc = {0: yy[1] / P["V1"], 1: yy[3] / P["V_DM4"], 2: yy[4] / P["V_MeDM4"]}
    return t, conc, {k: yy[5 + k, -1] for k in range(3)}


def _metrics(analyte: int, oral: bool = False, **kw):
    spec = ModelSpec("2cmt", dict(P), analytes=ANALYTES)
    _, formation = target_analyte(spec, None)
    sched = Schedule.q3w(2, unit="day") if oral else Schedule.q3w(2, unit="day", infusion=DUR)
    plan = ExposurePlan.from_schedule(sched, "day", oral=oral)
    params = {k: np.array([v]) for k, v in P.items()}
    if oral:
        params["KA"] = np.array([1.3])
    return compute_exposures(params, plan, ["ceoi_c1", "cmax_c1", "ctrough_c1", "auc_c1", "cmax_ss", "ctrough_ss",
                                            "auc_ss"], n_cmt=2, formation=formation, analyte=analyte, **kw)


@pytest.fixture(scope="module")
def ode_c1():
    return _ode_cycles(1)


@pytest.fixture(scope="module")
def ode_ss():
    return _ode_cycles(20)


@pytest.mark.parametrize("analyte", [1, 2])
def test_cycle1_metrics_of_formed_analytes_match_the_ode(analyte, ode_c1):
    t, c, auc = ode_c1
    m = _metrics(analyte)
    ref = c[analyte]
    np.testing.assert_allclose(m["auc_c1"][0] * DOSE, auc[analyte], rtol=1e-7)
    np.testing.assert_allclose(m["cmax_c1"][0] * DOSE, ref.max(), rtol=1e-5)
    np.testing.assert_allclose(m["ctrough_c1"][0] * DOSE, ref[-1], rtol=1e-6)
    np.testing.assert_allclose(m["ceoi_c1"][0] * DOSE, np.interp(DUR, t, ref), rtol=1e-5)
    # the payload peaks after the infusion ends: the parent's monotonicity shortcut would be wrong here
    assert t[np.argmax(ref)] > DUR


@pytest.mark.parametrize("analyte", [1, 2])
def test_steady_state_metrics_of_formed_analytes_match_the_ode_and_mass_balance(analyte, ode_ss):
    t, c, auc = ode_ss
    m = _metrics(analyte)
    ref = c[analyte]
    np.testing.assert_allclose(m["auc_ss"][0] * DOSE, auc[analyte], rtol=1e-6)
    np.testing.assert_allclose(m["cmax_ss"][0] * DOSE, ref.max(), rtol=1e-5)
    np.testing.assert_allclose(m["ctrough_ss"][0] * DOSE, ref[-1], rtol=1e-5)
    # mass balance: all the conjugate is cleared into payload, all payload into metabolite
    expected = S_DM4 / P["CL_DM4"] if analyte == 1 else S_DM4 * S_ME / P["CL_MeDM4"]
    np.testing.assert_allclose(m["auc_ss"][0], expected, rtol=1e-10)


def test_quadrature_auc_of_a_formed_analyte_equals_the_exact_one():
    exact, quad = _metrics(1), _metrics(1, auc_method="quadrature")
    for k in ("auc_c1", "auc_ss"):
        np.testing.assert_allclose(quad[k], exact[k], rtol=1e-8)


def test_formed_analyte_after_oral_doses_matches_the_ode():
    t, c, auc = _ode_cycles(1, oral=True)
    m = _metrics(1, oral=True)
    np.testing.assert_allclose(m["auc_c1"][0] * DOSE, auc[1], rtol=1e-7)
    np.testing.assert_allclose(m["cmax_c1"][0] * DOSE, c[1].max(), rtol=1e-5)


def test_parent_metrics_are_unchanged_by_a_formation_chain():
    spec = ModelSpec("2cmt", dict(P), analytes=ANALYTES)
    _, formation = target_analyte(spec, None)
    plan = ExposurePlan.from_schedule(Schedule.q3w(2, unit="day", infusion=DUR), "day")
    params = {k: np.array([v]) for k, v in P.items()}
    with_chain = compute_exposures(params, plan, ["cmax_c1", "auc_ss"], n_cmt=2, formation=formation, analyte=0)
    alone = compute_exposures({k: params[k] for k in ("CL", "V1", "Q", "V2")}, plan, ["cmax_c1", "auc_ss"], n_cmt=2)
    for k in alone:
        assert with_chain[k][0] == alone[k][0]


def _draws():
    spec = ModelSpec("2cmt", dict(P), analytes=ANALYTES, iiv=("CL", "CL_DM4"), units={"time": "day"})
    return PosteriorDraws.from_values(spec, typical=dict(P), omega={"CL": 0.3, "CL_DM4": 0.4}, n_draws=3)


def test_simulate_strategies_targets_a_formed_analyte():
    draws = _draws()
    pop = sample_population(300, seed=3)
    sched = Schedule.q3w(2, unit="day", infusion=DUR)
    kw = dict(metrics=["cmax_c1", "auc_ss"], seed=5, keep_exposure=True)
    adc = simulate_strategies(draws, {"flat": "flat 100 mg"}, sched, pop, **kw)
    dm4 = simulate_strategies(draws, {"flat": "flat 100 mg"}, sched, pop, analyte="DM4", **kw)
    assert dm4.attrs["analyte"] == "DM4" and adc.attrs["analyte"] == "ADC"
    assert list(dm4["metric_unit"].values) == ["ng/mL", "ng/mL*day"]
    # AUC_ss of the payload is S·dose/CL_DM4 patient by patient: the conjugate's clearance drops out
    auc = dm4["exposure"].sel(metric="auc_ss", strategy="flat").values
    cl_dm4_spread = float(np.std(np.log(auc)))
    assert 0.3 < cl_dm4_spread < 0.5  # ω_CL_DM4 = 0.4, ω_CL (0.3) does not enter
    assert float(dm4["exposure"].sel(metric="cmax_c1").min()) > 0
    assert not np.allclose(adc["exposure"].values, dm4["exposure"].values)


def test_formed_analyte_simulation_equals_compute_exposures_patient_by_patient():
    draws = _draws()
    pop = sample_population(50, seed=4)
    sched = Schedule.q3w(2, unit="day", infusion=DUR)
    sim = simulate_strategies(draws, {"flat": "flat 100 mg"}, sched, pop, analyte="MeDM4", metrics=["cmax_c1", "auc_c1"],
                              random_effects=False, keep_exposure=True)
    spec = draws.spec
    _, formation = target_analyte(spec, None)
    plan = ExposurePlan.from_schedule(sched, "day")
    ref = compute_exposures({k: np.array([v]) for k, v in P.items()}, plan, ["cmax_c1", "auc_c1"], n_cmt=2,
                            formation=formation, analyte=2)
    for k in ("cmax_c1", "auc_c1"):
        np.testing.assert_allclose(sim["exposure"].sel(metric=k).values, ref[k][0] * 100.0, rtol=1e-12)


def test_unknown_analyte_is_refused_with_the_valid_names():
    with pytest.raises(ConfigError, match="valid: ADC, DM4, MeDM4"):
        simulate_strategies(_draws(), {"flat": "flat 100 mg"}, Schedule.q3w(2, unit="day"), sample_population(10, seed=1),
                            analyte="DM1")


def test_mass_balance_holds_for_a_two_compartment_payload():
    """AUC_ss of a cycle is S·dose/CL_m whatever the payload's distribution; its Cmax is lower than a 1-cmt one's."""
    spec = ModelSpec("2cmt", {**P, "Q_DM4": 200.0, "V2_DM4": 1500.0},
                     analytes=[ANALYTES[0], {**ANALYTES[1], "structure": "2cmt"}, ANALYTES[2]])
    _, formation = target_analyte(spec, None)
    plan = ExposurePlan.from_schedule(Schedule.q3w(2, unit="day", infusion=DUR), "day")
    two = compute_exposures({k: np.array([v]) for k, v in {**P, "Q_DM4": 200.0, "V2_DM4": 1500.0}.items()}, plan,
                            ["cmax_c1", "auc_ss"], n_cmt=2, formation=formation, analyte=1)
    np.testing.assert_allclose(two["auc_ss"][0], S_DM4 / P["CL_DM4"], rtol=1e-10)
    assert two["cmax_c1"][0] < _metrics(1)["cmax_c1"][0]
