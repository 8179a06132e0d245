"""The compiled simulation path against the reference code and the PK kernel.

The simulation computes unit-dose exposures (poppk.simulate.fast_exposure)
and per-draw statistics (poppk.simulate.fast_stats) in compiled loops where
they apply; these tests hold them to the reference: compute_exposures (the
kernel's NumPy evaluation), direct poppk.pk.concentration calls, NumPy's
statistics, and the whole engine with the compiled path switched off.
"""

from __future__ import annotations

import numpy as np
import pytest

from poppk.pk import concentration
from poppk.simulate import Schedule
from poppk.simulate.exposure import DEFAULT_METRICS, ExposurePlan, compute_exposures
from poppk.simulate.fast_exposure import _unit_loop, plan_for, unit_exposures
from poppk.simulate.fast_stats import _SAMPLE, _order_stats, draw_statistics, quantile_positions

RNG = np.random.default_rng(20261128)
NAMES = ("CL", "V1", "Q", "V2", "Q3", "V3")


def random_params(n_cmt: int, n: int, spread: float = 1.0) -> dict[str, np.ndarray]:
    """Individual parameters over a wide range (fast and slow modes, tiny and large volumes)."""
    centre = {"CL": 0.5, "V1": 4.0, "Q": 2.0, "V2": 8.0, "Q3": 0.3, "V3": 20.0}
    return {k: np.exp(RNG.normal(np.log(centre[k]), spread, n)) for k in NAMES[: 2 * n_cmt]}


def random_plan(kind: int, unit: str) -> ExposurePlan:
    """A random schedule of one of several shapes (bolus, short/long infusions, several doses per cycle)."""
    if kind == 0:
        sched = Schedule.q3w(int(RNG.integers(1, 7)), infusion=float(RNG.choice([0.0, 0.5, 1.0, 4.0])), unit="h")
    elif kind == 1:
        sched = Schedule.weekly_x3_q4w(2, infusion=float(RNG.choice([0.0, 2.0, 30.0])), unit="h")
    else:
        sched = Schedule.q3w(3, infusion=float(RNG.uniform(1.0, 48.0)), unit="h")
    return ExposurePlan.from_schedule(sched, unit)


def overlapping_plan() -> ExposurePlan:
    """A short then a long infusion in one cycle: Cmax often lies inside the long one (bisection)."""
    t, a, d = np.array([[0.0, 0.5]]), np.array([[1.0, 1.0]]), np.array([[0.05, 6.0]])
    return ExposurePlan(cycle=24.0, c1_time=t, c1_amt=a, c1_dur=d, ss_time=t, ss_amt=a, ss_dur=d,
                        all_time=t, all_amt=a, all_dur=d, end=24.0)


def _direct(p, dose_t, amt, dur, t, n_cmt, ss_tau=None):
    """Concentrations at times t (1-D) by a direct call of the kernel, one patient per row."""
    dt = t[None, :, None] - dose_t[None, None, :]
    kw = {}
    if ss_tau is not None:
        dt = np.where(dt < 0, dt + ss_tau, dt)
        kw = {"ss": np.ones((1, 1, 1), bool), "ii": np.full((1, 1, 1), ss_tau)}
    pr = {k: v[:, None, None] for k, v in p.items()}
    return concentration(dt, amt[None, None, :], pr, n_cmt=n_cmt, dur=dur[None, None, :], **kw)


@pytest.mark.parametrize("n_cmt", [1, 2, 3])
@pytest.mark.parametrize("unit", ["h", "day"])
def test_unit_exposures_equal_the_reference_on_random_designs(n_cmt, unit):
    for kind in range(3):
        plan = random_plan(kind, unit)
        p = random_params(n_cmt, 400)
        up = plan_for(plan, DEFAULT_METRICS, n_cmt=n_cmt)
        assert up is not None
        fast = unit_exposures(p, up)
        ref = compute_exposures(p, plan, DEFAULT_METRICS, n_cmt=n_cmt)
        for j, m in enumerate(DEFAULT_METRICS):
            np.testing.assert_allclose(fast[j], ref[m], rtol=1e-12, atol=0, err_msg=f"{m}, plan kind {kind}")
        # and against the kernel called directly: trough, end of the first infusion, Cmax on a dense grid
        tau = plan.cycle
        c1 = (plan.c1_time[0], plan.c1_amt[0], plan.c1_dur[0])
        trough = _direct(p, *c1, np.array([tau]), n_cmt)[:, 0]
        np.testing.assert_allclose(fast[DEFAULT_METRICS.index("ctrough_c1")], trough, rtol=1e-12)
        t_eoi = np.array([c1[0][0] + c1[2][0]])
        ceoi = _direct(p, c1[0][:1], c1[1][:1], c1[2][:1], t_eoi, n_cmt)[:, 0]
        np.testing.assert_allclose(fast[DEFAULT_METRICS.index("ceoi_c1")], ceoi, rtol=1e-12)
        ss = (plan.ss_time[0], plan.ss_amt[0], plan.ss_dur[0])
        trough_ss = _direct(p, *ss, np.array([tau]), n_cmt, ss_tau=tau)[:, 0]
        np.testing.assert_allclose(fast[DEFAULT_METRICS.index("ctrough_ss")], trough_ss, rtol=1e-12)
        grid = np.unique(np.concatenate([np.linspace(0.0, tau, 4001), np.clip(c1[0] + c1[2], 0, tau)]))
        dense = _direct(p, *c1, grid, n_cmt).max(axis=1)
        cmax = fast[DEFAULT_METRICS.index("cmax_c1")]
        assert np.all(cmax >= dense * (1 - 1e-12))
        np.testing.assert_allclose(cmax, dense, rtol=2e-3)


@pytest.mark.parametrize("n_cmt", [2, 3])
def test_cmax_inside_an_infusion_is_handed_to_the_reference(n_cmt):
    plan = overlapping_plan()
    p = random_params(n_cmt, 3000)
    metrics = ("cmax_c1", "cmax_ss", "auc_c1", "ctrough_ss")
    up = plan_for(plan, metrics, n_cmt=n_cmt)
    P = np.zeros((6, 3000))
    for r, k in enumerate(NAMES[: 2 * n_cmt]):
        P[r] = p[k]
    out, flag = np.empty((len(metrics), 3000)), np.zeros((len(metrics), 3000), dtype=bool)
    _unit_loop(P, up.n_cmt, up.tau, up.job_dose_ptr, up.dose_t, up.dose_amt, up.dose_dur, up.job_ss, up.job_time_ptr,
               up.times, up.kind, up.arg, up.bracket_ptr, up.brackets, up.max_ptr, up.max_idx, out, flag)
    assert flag[0].sum() > 10 and flag[1].sum() > 10  # the design exercises the bisection
    fast = unit_exposures(p, up)
    ref = compute_exposures(p, plan, metrics, n_cmt=n_cmt)
    for j, m in enumerate(metrics):
        np.testing.assert_allclose(fast[j], ref[m], rtol=1e-12, atol=0, err_msg=m)


def test_plans_outside_the_compiled_path_are_declined():
    plan = ExposurePlan.from_schedule(Schedule.q3w(4, infusion=1.0, unit="h"), "h")
    assert plan_for(plan, ("cmax_c1", "time_above"), n_cmt=2) is None
    assert plan_for(plan, ("auc_c1",), n_cmt=2, auc_method="quadrature") is None
    assert plan_for(plan, ("auc_c1",), n_cmt=2, auc_method="nonsense") is None
    oral = ExposurePlan.from_schedule(Schedule.q3w(4, infusion=0.0, unit="h"), "h", oral=True)
    assert plan_for(oral, ("auc_c1",), n_cmt=1) is None


def _numpy_stats(E, exceed, quantiles):
    from poppk.simulate.execution import _stats

    return _stats(E, exceed, quantiles)


@pytest.mark.parametrize("npat", [1, 2, 7, 1000, 8 * _SAMPLE + 123])
@pytest.mark.parametrize("data", ["lognormal", "ties", "nonpositive"])
def test_draw_statistics_equal_numpy(npat, data):
    nb, S, L = 3, 3, 4
    unit = RNG.lognormal(0.0, 0.6, (L, nb * npat))
    if data == "ties":
        unit = np.round(unit, 1) + 0.1  # few distinct values: long runs of equal order statistics
    elif data == "nonpositive":
        unit[1, :: max(npat // 3, 1)] = 0.0
    doses = RNG.uniform(50.0, 150.0, (npat, S))
    doses[:, 2] = 100.0  # a flat dose
    lin_of = [2, 0, 1, 3, 0]  # metrics may share a unit row, in any order
    exceed = np.array([np.nan, 80.0, 120.0, np.nan, 1e9])
    quantiles = np.array([0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0])
    E = np.stack([unit[lin_of[j]].reshape(nb, npat)[:, :, None] * doses[None] for j in range(len(lin_of))], axis=-1)
    ref = _numpy_stats(E, exceed, quantiles)
    got = draw_statistics(unit, lin_of, doses, nb, exceed, quantiles)
    assert np.array_equal(got["quantiles"], ref["quantiles"])  # the same order statistics, the same formula
    for k in ("log_mean", "log_var", "mean", "sd", "p_exceed"):
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-12, atol=1e-300, equal_nan=True, err_msg=k)
        assert np.array_equal(np.isnan(got[k]), np.isnan(ref[k])), k


@pytest.mark.parametrize("case", ["constant", "sorted", "reversed", "two values", "random", "heavy ties"])
def test_order_statistics_on_awkward_columns(case):
    n = 8 * _SAMPLE + 1001
    x = {"constant": np.full(n, 3.0), "sorted": np.arange(n, dtype=float), "reversed": np.arange(n, 0, -1.0),
         "two values": RNG.integers(0, 2, n).astype(float), "random": RNG.normal(size=n),
         "heavy ties": np.floor(RNG.exponential(2.0, n))}[case]
    prev, nxt, _ = quantile_positions(n, np.array([0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99]))
    ks = np.unique(np.concatenate([prev, nxt])).astype(np.int64)
    vals, before = np.empty(len(ks)), x.copy()
    _order_stats(x, ks, vals, np.empty(n + 2 * len(ks) + 2), np.empty(_SAMPLE))
    assert np.array_equal(vals, np.sort(x)[ks])
    assert np.array_equal(x, before)


@pytest.mark.parametrize("keep", [False, True])
def test_engine_results_do_not_depend_on_the_compiled_path(monkeypatch, keep):
    from concurrent.futures import ThreadPoolExecutor

    from _sim_helpers import two_cmt_spec
    from poppk.simulate import PerKg, PosteriorDraws, sample_population, simulate_strategies
    from poppk.simulate import execution

    spec = two_cmt_spec()
    draws = PosteriorDraws.from_values(spec, typical={"CL": 0.45, "V1": 2.8, "Q": 0.6, "V2": 2.0},
                                       betas={f"beta_{p}_TBW": 0.5 for p in ("CL", "V1", "Q", "V2")},
                                       omega={"CL": 0.3, "V1": 0.2}, n_draws=7)
    pop = sample_population(900, 3, female_fraction=0.5)
    kw = dict(n_draws=7, metrics=list(DEFAULT_METRICS), keep_exposure=keep, exceed={"cmax_c1": 40.0},
              chunk_patients=250)
    strategies = {"5/kg": PerKg(5), "flat": "400 mg"}
    sched = Schedule.weekly_x3_q4w(3, infusion="2 h")
    with ThreadPoolExecutor(2) as ex:
        fast = simulate_strategies(draws, strategies, sched, pop, executor=ex, **kw)
    monkeypatch.setattr(execution, "_fast_plan", lambda ctx: None)
    ref = simulate_strategies(draws, strategies, sched, pop, **kw)
    for v in ("log_mean", "log_var", "mean", "sd", "quantiles", "p_exceed") + (("exposure",) if keep else ()):
        np.testing.assert_allclose(fast[v].values, ref[v].values, rtol=1e-12, atol=0, equal_nan=True, err_msg=v)
