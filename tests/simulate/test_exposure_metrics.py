"""Exposure metrics against closed-form answers and against the kernel on dense grids."""

from __future__ import annotations

import numpy as np
import pytest

from poppk.errors import ConfigError
from poppk.pk import concentration
from poppk.pk.exposure import concentrations_at as _eval, iv_auc, quadrature_auc
from poppk.simulate import METRICS, Schedule, concentration_profile, exposure_metrics
from poppk.simulate.exposure import ExposurePlan, compute_exposures

RNG = np.random.default_rng(11)


def random_params(n_cmt: int, n: int = 6) -> dict[str, np.ndarray]:
    p = {"CL": np.exp(RNG.normal(np.log(0.5), 0.5, n)), "V1": np.exp(RNG.normal(np.log(4.0), 0.4, n))}
    if n_cmt >= 2:
        p["Q"] = np.exp(RNG.normal(np.log(2.0), 1.0, n))
        p["V2"] = np.exp(RNG.normal(np.log(8.0), 0.5, n))
    if n_cmt == 3:
        p["Q3"] = np.exp(RNG.normal(np.log(0.3), 0.5, n))
        p["V3"] = np.exp(RNG.normal(np.log(20.0), 0.5, n))
    return p


def dense_profile(p, plan, start, end, *, n_cmt, ss=False, n=200_001, oral=False, which="c1"):
    dt, da, dd = (plan.ss_time, plan.ss_amt, plan.ss_dur) if ss else (plan.c1_time, plan.c1_amt, plan.c1_dur)
    events = np.concatenate([dt[0], dt[0] + dd[0]])  # the kinks (end of infusion peaks) exactly on the grid
    t = np.unique(np.concatenate([np.linspace(start, end, n), events[(events >= start) & (events <= end)]]))[None, :]
    dt, da, dd = (plan.ss_time, plan.ss_amt, plan.ss_dur) if ss else (
        (plan.c1_time, plan.c1_amt, plan.c1_dur) if which == "c1" else (plan.all_time, plan.all_amt, plan.all_dur))
    return t[0], _eval(p, t, dt, da, dd, n_cmt=n_cmt, oral=oral, ss_tau=plan.cycle if ss else None)


@pytest.mark.parametrize("n_cmt", [1, 2, 3])
@pytest.mark.parametrize("infusion", [0.0, 1.5, 30.0])
def test_auc_ss_is_dose_over_cl(n_cmt, infusion):
    p = random_params(n_cmt)
    for sched, per_cycle in ((Schedule.q3w(4, infusion=infusion, unit="h"), 1),
                             (Schedule.weekly_x3_q4w(3, infusion=infusion, unit="h"), 3)):
        df = exposure_metrics(p, sched, 100.0, n_cmt=n_cmt, time_unit="h", metrics=["auc_ss"])
        np.testing.assert_allclose(df["auc_ss"], per_cycle * 100.0 / p["CL"], rtol=1e-12)
        # the quadrature of the kernel's SS concentration agrees (< 0.5% required; far better)
        q = exposure_metrics(p, sched, 100.0, n_cmt=n_cmt, time_unit="h", metrics=["auc_ss"], auc_method="quadrature")
        np.testing.assert_allclose(q["auc_ss"], per_cycle * 100.0 / p["CL"], rtol=1e-6)


@pytest.mark.parametrize("n_cmt", [1, 2, 3])
def test_auc_c1_analytic_equals_kernel_integral(n_cmt):
    p = random_params(n_cmt)
    plan = ExposurePlan.from_schedule(Schedule.weekly_x3_q4w(2, infusion="2 h", unit="h"), "h")
    a = iv_auc(p, plan.c1_time, plan.c1_amt, plan.c1_dur, 0.0, plan.cycle, n_cmt=n_cmt)
    q = quadrature_auc(p, plan.c1_time, plan.c1_amt, plan.c1_dur, 0.0, plan.cycle, n_cmt=n_cmt)
    np.testing.assert_allclose(a, q, rtol=1e-9)
    t, c = dense_profile(p, plan, 0.0, plan.cycle, n_cmt=n_cmt)
    np.testing.assert_allclose(a, np.trapezoid(c, t, axis=1), rtol=1e-5)
    # partial windows too
    a2 = iv_auc(p, plan.c1_time, plan.c1_amt, plan.c1_dur, 100.0, 400.0, n_cmt=n_cmt)
    q2 = quadrature_auc(p, plan.c1_time, plan.c1_amt, plan.c1_dur, 100.0, 400.0, n_cmt=n_cmt)
    np.testing.assert_allclose(a2, q2, rtol=1e-9)


def test_one_compartment_closed_forms():
    CL, V, D, T, tau = np.array([0.5, 2.0]), np.array([4.0, 30.0]), 100.0, 1.5, 504.0
    k = CL / V
    s = Schedule.q3w(6, infusion=T, unit="h")
    df = exposure_metrics({"CL": CL, "V1": V}, s, D, n_cmt=1, time_unit="h", metrics=list(METRICS)[:-1])
    ceoi = D / (T * CL) * (1 - np.exp(-k * T))
    np.testing.assert_allclose(df["ceoi_c1"], ceoi, rtol=1e-12)
    np.testing.assert_allclose(df["cmax_c1"], ceoi, rtol=1e-12)
    np.testing.assert_allclose(df["ctrough_c1"], ceoi * np.exp(-k * (tau - T)), rtol=1e-10)
    auc1 = D / CL - ceoi * np.exp(-k * (tau - T)) / k
    np.testing.assert_allclose(df["auc_c1"], auc1, rtol=1e-12)
    acc = 1 / (1 - np.exp(-k * tau))
    np.testing.assert_allclose(df["cmax_ss"], ceoi * acc, rtol=1e-12)
    np.testing.assert_allclose(df["ctrough_ss"], ceoi * acc * np.exp(-k * (tau - T)), rtol=1e-10)
    np.testing.assert_allclose(df["auc_ss"], D / CL, rtol=1e-12)


def test_bolus_closed_forms_and_time_above():
    CL, V, D = np.array([0.2, 0.5]), np.array([4.0, 5.0]), 100.0
    k = CL / V
    s = Schedule.every(48.0, 5, unit="h")
    df = exposure_metrics({"CL": CL, "V1": V}, s, D, n_cmt=1, time_unit="h",
                          metrics=["ceoi_c1", "cmax_c1", "cmax_ss", "time_above"], threshold=5.0)
    np.testing.assert_allclose(df["ceoi_c1"], D / V, rtol=1e-12)
    np.testing.assert_allclose(df["cmax_c1"], D / V, rtol=1e-12)
    np.testing.assert_allclose(df["cmax_ss"], D / V / (1 - np.exp(-k * 48)), rtol=1e-12)
    # time above 5 mg/L over the 5-dose course (superposition), from a dense profile of the kernel
    t = np.linspace(0, s.end, 400_001)
    c = concentration_profile({"CL": CL, "V1": V}, s, t, n_cmt=1, time_unit="h", doses=D)
    exact = ((c[:, 1:] > 5.0) * np.diff(t)).sum(axis=1)
    np.testing.assert_allclose(df["time_above"], exact, rtol=2e-3)


@pytest.mark.parametrize("n_cmt", [2, 3])
@pytest.mark.parametrize("schedule", [
    Schedule.q3w(3, infusion="1 h", unit="h"),
    Schedule.weekly_x3_q4w(2, infusion="4 h", unit="h"),
    Schedule.every(24.0, 4, infusion=20.0, unit="h"),  # long infusions: maxima inside infusions
])
def test_cmax_is_the_true_maximum(n_cmt, schedule):
    p = random_params(n_cmt, 8)
    p["Q"] = p["Q"] * 20  # fast distribution: concentration can fall during an infusion
    plan = ExposurePlan.from_schedule(schedule, "h")
    out = compute_exposures(p, plan, ["cmax_c1", "cmax_ss"], n_cmt=n_cmt)
    for ss, key in ((False, "cmax_c1"), (True, "cmax_ss")):
        t, c = dense_profile(p, plan, 0.0, plan.cycle, n_cmt=n_cmt, ss=ss, n=100_001)
        brute = c.max(axis=1)
        assert np.all(out[key] >= brute * (1 - 1e-6)), key
        assert np.all(out[key] <= brute * (1 + 1e-6) + 1e-300), key


def test_cmax_interior_maximum_is_found():
    # a large short dose 10 h before the window, then a long infusion from t = 0: the infusion's fast
    # component first raises the concentration, then the decline of the earlier dose wins -- the
    # maximum lies inside the infusion, not at its end
    p = {"CL": np.array([0.5]), "V1": np.array([2.0]), "Q": np.array([5.0]), "V2": np.array([20.0])}
    t, a, d = np.array([[-10.0, 0.0]]), np.array([[100.0, 5.0]]), np.array([[0.1, 20.0]])
    plan = ExposurePlan(cycle=48.0, c1_time=t, c1_amt=a, c1_dur=d, ss_time=None, ss_amt=None, ss_dur=None,
                        all_time=t, all_amt=a, all_dur=d, end=48.0)
    out = compute_exposures(p, plan, ["cmax_c1"], n_cmt=2)
    grid = np.linspace(0.0, 48.0, 480_001)[None, :]
    c = _eval(p, grid, t, a, d, n_cmt=2, oral=False)[0]
    j = int(np.argmax(c))
    assert 0.0 < grid[0, j] < 20.0 and c[j] > c[0] and c[j] > c[np.searchsorted(grid[0], 20.0)]
    assert out["cmax_c1"][0] == pytest.approx(c[j], rel=1e-7)
    # the same with a slow third compartment added (3-cmt: nodes inside the infusion)
    p3 = {**p, "Q3": np.array([0.01]), "V3": np.array([5.0])}
    out3 = compute_exposures(p3, plan, ["cmax_c1"], n_cmt=3)
    c3 = _eval(p3, grid, t, a, d, n_cmt=3, oral=False)[0]
    assert out3["cmax_c1"][0] == pytest.approx(c3.max(), rel=1e-7)


def test_oral_metrics():
    p = {"CL": np.array([2.0, 5.0]), "V1": np.array([20.0, 50.0]), "KA": np.array([1.0, 0.3]),
         "F1": np.array([0.8, 0.5]), "ALAG1": np.array([0.5, 0.0])}
    s = Schedule.every(24.0, 7, unit="h")
    df = exposure_metrics(p, s, 100.0, n_cmt=1, time_unit="h", oral=True, metrics=["auc_ss", "auc_c1", "cmax_c1"])
    np.testing.assert_allclose(df["auc_ss"], p["F1"] * 100 / p["CL"], rtol=1e-6)
    plan = ExposurePlan.from_schedule(s, "h", oral=True)
    t, c = dense_profile(p, plan, 0.0, 24.0, n_cmt=1, oral=True)
    np.testing.assert_allclose(df["auc_c1"], np.trapezoid(c * 100, t, axis=1), rtol=1e-5)
    np.testing.assert_allclose(df["cmax_c1"], 100 * c.max(axis=1), rtol=1e-5)
    with pytest.raises(ConfigError, match="infused"):
        ExposurePlan.from_schedule(Schedule.every(24.0, 2, infusion=1.0, unit="h"), "h", oral=True)
    with pytest.raises(ConfigError, match="intravenous"):
        compute_exposures(p, plan, ["auc_c1"], n_cmt=1, auc_method="analytic")


def test_metrics_scale_with_dose_and_units():
    p = random_params(2, 3)
    s = Schedule.q3w(3, infusion="1 h")  # days
    lin = [m for m in METRICS if m != "time_above"]
    a = exposure_metrics(p, s, 100.0, n_cmt=2, time_unit="day", metrics=lin)
    b = exposure_metrics(p, s, 250.0, n_cmt=2, time_unit="day", metrics=lin)
    np.testing.assert_allclose(b.to_numpy(), 2.5 * a.to_numpy(), rtol=1e-12)
    # the same patients in hours: CL and Q per hour = per day / 24; AUC in mg*h/L = 24 x mg*day/L
    ph = {k: (v / 24 if k in ("CL", "Q") else v) for k, v in p.items()}
    h = exposure_metrics(ph, s, 100.0, n_cmt=2, time_unit="h", metrics=lin)
    for m in lin:
        np.testing.assert_allclose(h[m], a[m] * (24.0 if m.startswith("auc") else 1.0), rtol=1e-9)


def test_profile_is_the_kernel():
    p = random_params(2, 2)
    s = Schedule.every(24.0, 3, infusion=2.0, unit="h")
    t = np.array([0.5, 3.0, 30.0, 71.0])
    c = concentration_profile(p, s, t, n_cmt=2, time_unit="h", doses=100.0)
    dt = t[None, :, None] - np.array([0.0, 24.0, 48.0])[None, None, :]
    direct = concentration(dt, np.full((1, 1, 3), 100.0), {k: v[:, None, None] for k, v in p.items()},
                           n_cmt=2, dur=np.full((1, 1, 3), 2.0))
    np.testing.assert_allclose(c, direct, rtol=1e-14)  # unit dose x 100 vs 100 in the kernel


def test_errors():
    p = random_params(1, 2)
    with pytest.raises(ConfigError, match="periodic"):
        exposure_metrics(p, Schedule.from_times([0, 7, 21], cycle=21), 1.0, n_cmt=1, metrics=["auc_ss"])
    with pytest.raises(ConfigError, match="threshold"):
        exposure_metrics(p, Schedule.q3w(2), 1.0, n_cmt=1, metrics=["time_above"])
    with pytest.raises(ConfigError, match="unknown exposure metric"):
        exposure_metrics(p, Schedule.q3w(2), 1.0, n_cmt=1, metrics=["cmin"])
