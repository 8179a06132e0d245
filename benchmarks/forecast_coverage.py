"""Benchmark: calibration of individual forecasts and of recommended doses against a known truth.

Run by hand (not a test):

    .venv/bin/python benchmarks/forecast_coverage.py [--n-train 40] [--n-test 60] [--bov 0,0.15]
        [--draws 300] [--seed 1]

For each between-occasion variability (BOV) of clearance in ``--bov``:

1. simulate a training trial with known truth -- a 1-compartment IV model (90-min infusions
   of 6 mg/kg AIBW every 3 weeks, days), CL on AIBW and V on TBW (power), IIV on CL and V,
   BOV on CL per cycle, proportional residual error, an LLOQ that makes late samples BLQ --
   and fit it with poppk (IIV, no BOV: the fitted model is *wrong* whenever BOV > 0);
2. simulate ``--n-test`` new patients of the same population: three cycles of doses, three
   samples in cycle 1 (end of infusion, day 3, day 14; BLQ kept as BLQ), three in cycle 3
   (day 42 + EOI, + 3, + 7);
3. forecast every new patient from her cycle-1 samples (``poppk.forecast``) and score the
   forecast of her cycle-3 concentrations: coverage of the 90% prediction interval (with
   residual error) of the measured values, and the median absolute log error of the forecast
   median against the true concentration, beside the same for the population prediction
   (her covariates only);
4. recommend her a dose for a target steady-state AUC range (``poppk.recommend_dose``, 10-mg
   steps) and report the share of patients whose *true* AUC_ss at that dose is in the range,
   beside the share for the label rule (6 mg/kg AIBW) and for the recommendation made from
   her covariates alone.  The range is [0.8, 1.25] x the median true AUC_ss under the label.

With ``--schedules 'q4w;d1,8 q3w'`` the dose is also recommended with the schedule search (her q3w kept
unless another schedule meets the target with a probability 0.10 higher) and scored on the chosen schedule;
``--cmax-bound F`` adds a peak ceiling to the target (F x the median true Cmax_ss under the label), the case
where splitting a dose can help.  Truth on any schedule: her true CL and V through the shared kernel, AUC_ss
per 21 days.

Prints one table row per BOV value.  Every number depends only on ``--seed``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np
import pandas as pd

TRUTH = {"CL": 0.8, "V1": 3.5, "beta_CL": 0.75, "beta_V": 1.0, "omega_CL": 0.3, "omega_V1": 0.2, "sigma": 0.12}
INFUSION = 0.0625  # days (90 min)
TAU = 21.0
LLOQ = 1.0
CYCLE1 = (INFUSION, 3.0, 14.0)
LATER = (2 * TAU + INFUSION, 2 * TAU + 3.0, 2 * TAU + 7.0)


def _population(rng: np.random.Generator, n: int) -> pd.DataFrame:
    from poppk.bodysize import size_descriptors

    sex = rng.choice(["F", "M"], n, p=[0.8, 0.2])
    ht = np.where(sex == "F", rng.normal(163, 7, n), rng.normal(176, 7, n))
    wt = np.exp(rng.normal(np.log(np.where(sex == "F", 72, 85)), 0.22, n))
    d = size_descriptors(wt, ht, sex)
    return pd.DataFrame({"WT": wt, "HT": ht, "SEX": sex, "AIBW": d["AIBW"], "TBW": wt})


def _conc(times: np.ndarray, doses: np.ndarray, amt: float, cl_occ: np.ndarray, v: float) -> np.ndarray:
    """Concentrations of one patient at ``times`` (the shared kernel): every dose given before a sample is
    eliminated with the clearance of the sample's cycle (with a half-life of days and 3-week cycles the
    carry-over from earlier cycles that this simplifies is a fraction of a percent)."""
    from poppk.pk import concentration

    dt = times[:, None] - doses[None, :]
    given = dt > 0
    occ = np.searchsorted(doses, times, side="right") - 1
    c = concentration(np.where(given, dt, 0.0), np.where(given, amt, 0.0),
                      {"CL": cl_occ[occ][:, None], "V1": np.full((len(times), 1), v)}, n_cmt=1,
                      dur=np.full(dt.shape, INFUSION))
    return np.asarray(c, dtype=float)


def _simulate(rng: np.random.Generator, n: int, bov: float, n_cycles: int, times: tuple[float, ...]):
    pop = _population(rng, n)
    dose = np.round(6.0 * pop["AIBW"].to_numpy(), 1)
    cl_i = TRUTH["CL"] * (pop["AIBW"].to_numpy() / 60.0) ** TRUTH["beta_CL"] * np.exp(TRUTH["omega_CL"] * rng.standard_normal(n))
    v = TRUTH["V1"] * (pop["TBW"].to_numpy() / 70.0) ** TRUTH["beta_V"] * np.exp(TRUTH["omega_V1"] * rng.standard_normal(n))
    cl_occ = cl_i[:, None] * np.exp(bov * rng.standard_normal((n, n_cycles)))
    doses = np.arange(n_cycles) * TAU
    t = np.asarray(times, dtype=float)
    true = np.stack([_conc(t, doses, d, cl_occ[i], v[i]) for i, d in enumerate(dose)])
    dv = true * (1.0 + TRUTH["sigma"] * rng.standard_normal(true.shape))
    return pop, dose, cl_i, cl_occ, v, t, true, dv


def _trial_table(pop, dose, t, dv, n_cycles) -> pd.DataFrame:
    rows = []
    for i in range(len(pop)):
        cov = {"WT": pop["WT"].iloc[i], "HT": pop["HT"].iloc[i], "SEX": pop["SEX"].iloc[i]}
        for c in range(n_cycles):
            rows.append({"ID": i + 1, "TIME": c * TAU, "AMT": dose[i], "RATE": dose[i] / INFUSION, "EVID": 1,
                         "MDV": 1, "DV": np.nan, "BLQ": 0, "LLOQ": LLOQ, **cov})
        for tt, y in zip(t, dv[i]):
            blq = y < LLOQ
            rows.append({"ID": i + 1, "TIME": tt, "AMT": 0.0, "RATE": 0.0, "EVID": 0, "MDV": 0,
                         "DV": LLOQ if blq else y, "BLQ": int(blq), "LLOQ": LLOQ, **cov})
    return pd.DataFrame(rows).sort_values(["ID", "TIME", "EVID"], kind="stable")


def _true_exposure(cl: np.ndarray, v: np.ndarray, schedule, dose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True steady-state AUC per 21 days and Cmax of each patient at ``dose`` (mg per administration) on
    ``schedule``, from her true typical-occasion CL and V (the shared kernel)."""
    from poppk.simulate.exposure import ExposurePlan, compute_exposures

    e = compute_exposures({"CL": np.asarray(cl, float), "V1": np.asarray(v, float)},
                          ExposurePlan.from_schedule(schedule, "day"), ["auc_ss", "cmax_ss"], n_cmt=1)
    return dose * e["auc_ss"] * TAU / schedule.in_unit("day").cycle, dose * e["cmax_ss"]


def run(bov: float, n_train: int, n_test: int, draws: int, seed: int, schedules: str | None = None,
        cmax_bound: float | None = None) -> dict[str, float]:
    import poppk
    from poppk.data import read_nonmem
    from poppk.model import CovariateEffect, ModelSpec
    from poppk.simulate import Schedule

    rng = np.random.default_rng([seed, int(round(bov * 1000))])
    train_times = (INFUSION, 1.0, 3.0, 7.0, 14.0, TAU + INFUSION, TAU + 3.0, TAU + 14.0)
    pop, dose, *_, t, true, dv = _simulate(rng, n_train, bov, 2, train_times)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = read_nonmem(_trial_table(pop, dose, t, dv, 2), time_unit="day").with_size_descriptors()
    spec = ModelSpec("1cmt", {"CL": 1.0, "V1": 4.0},
                     covariates=(CovariateEffect("CL", "AIBW"), CovariateEffect("V1", "TBW")),
                     iiv=("CL", "V1"), error="proportional")
    t0 = time.perf_counter()
    fit = poppk.fit(spec, data, draws=draws, tune=draws, chains=2, seed=seed, progress=False)
    fit_s = time.perf_counter() - t0

    tpop, tdose, tcl, tcl_occ, tv, _, ttrue, tdv = _simulate(rng, n_test, bov, 3, CYCLE1 + LATER)
    label_auc = tdose / tcl  # AUC_ss of the label dose with her typical-occasion clearance
    lo, hi = 0.8 * np.median(label_auc), 1.25 * np.median(label_auc)
    target = f"auc_ss in [{lo:.1f}, {hi:.1f}]"
    schedule = Schedule.q3w(2, infusion=INFUSION)
    bound = None
    if cmax_bound is not None:  # a peak ceiling: cmax_bound x the median true Cmax_ss under the label
        bound = cmax_bound * float(np.median(_true_exposure(tcl, tv, schedule, tdose)[1]))
        target += f" and P(cmax_ss > {bound:.1f}) <= 0.1"
    from poppk.forecast.cli import split_schedules
    from poppk.forecast.recommend import parse_regimen

    others = [parse_regimen(s, infusion=INFUSION) for s in split_schedules(schedules)]
    rec_search: list[tuple[float, object]] = []
    cover, n_cov, err_ind, err_pop, ks = 0, 0, [], [], []
    rec_ind, rec_pop, times = [], [], []
    for i in range(n_test):
        obs = [{"TIME": tt, "DV": y} if y >= LLOQ else {"TIME": tt, "BLQ": 1, "LLOQ": LLOQ}
               for tt, y in zip(CYCLE1, tdv[i, :3])]
        doses = [{"TIME": c * TAU, "AMT": tdose[i], "DUR": INFUSION} for c in range(3)]
        patient = {"WT": tpop["WT"].iloc[i], "HT": tpop["HT"].iloc[i], "SEX": tpop["SEX"].iloc[i]}
        t1 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fc = poppk.forecast(fit, patient, doses, obs, seed=i)
        times.append(time.perf_counter() - t1)
        ks.append(fc.posterior.pareto_k)
        later = fc.predict(LATER)
        q = later["quantiles"]
        y = tdv[i, 3:]
        ok = y >= LLOQ
        inside = (y >= q.sel(quantile=0.05).values) & (y <= q.sel(quantile=0.95).values)
        cover += int(inside[ok].sum())
        n_cov += int(ok.sum())
        med_i = fc.predict(LATER, residual=False)["quantiles"].sel(quantile=0.5).values
        med_p = fc.predict(LATER, residual=False, prediction="population")["quantiles"].sel(quantile=0.5).values
        err_ind += list(np.abs(np.log(med_i / ttrue[i, 3:])))
        err_pop += list(np.abs(np.log(med_p / ttrue[i, 3:])))
        r = poppk.recommend_dose(fc, target=target, schedule=schedule, step=10.0)
        rp = poppk.recommend_dose(fc, target=target, schedule=schedule, step=10.0, prediction="population")
        rec_ind.append(r.dose_mg)
        rec_pop.append(rp.dose_mg)
        if others:
            rs = poppk.recommend_dose(fc, target=target, schedule=schedule, schedules=others, step=10.0)
            rec_search.append((rs.dose_mg, next((s for s in [schedule, *others] if s.label == rs.schedule), schedule)))

    def met(dose: np.ndarray, on=None) -> np.ndarray:
        """Whether each true patient meets the target at ``dose`` on ``on`` (per patient; default q3w)."""
        dose = np.asarray(dose, dtype=float)
        ok = np.zeros(n_test, dtype=bool)
        for k in range(n_test):
            if not np.isfinite(dose[k]):
                continue
            auc, cmax = _true_exposure(tcl[k:k + 1], tv[k:k + 1], schedule if on is None else on[k], dose[k:k + 1])
            ok[k] = lo <= auc[0] <= hi and (bound is None or cmax[0] <= bound)
        return ok

    in_range = lambda d: float(np.mean(met(d)))  # noqa: E731
    searched = {}
    if others:
        d_s = np.array([d for d, _ in rec_search])
        on_s = [s for _, s in rec_search]
        searched = {"in_range_schedule_search": float(np.mean(met(d_s, on_s))),
                    "share_schedule_changed": float(np.mean([s is not schedule for s in on_s])),
                    "no_dose_q3w_only": float(np.mean(~np.isfinite(np.asarray(rec_ind, float)))),
                    "no_dose_search": float(np.mean(~np.isfinite(d_s)))}
    return {
        "bov": bov, "fit_s": fit_s, "n_scored": n_cov, "coverage90": cover / max(n_cov, 1),
        "mae_log_individual": float(np.median(err_ind)), "mae_log_population": float(np.median(err_pop)),
        "in_range_recommended": in_range(np.asarray(rec_ind)), "in_range_population_rec": in_range(np.asarray(rec_pop)),
        "in_range_label": in_range(tdose), "median_forecast_s": float(np.median(times)),
        "max_pareto_k": float(np.nanmax(ks)), **searched,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-train", type=int, default=40)
    p.add_argument("--n-test", type=int, default=60)
    p.add_argument("--bov", default="0,0.15", help="BOV SDs of log CL to simulate, comma-separated")
    p.add_argument("--draws", type=int, default=300, help="draws (and tuning steps) per chain of the fit")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--schedules", default=None, metavar="'q4w;d1,8 q3w'",
                   help="other schedules recommend_dose may choose (';'-separated): adds the share in range with "
                   "the schedule search (in_range_schedule_search) and the share whose schedule changed")
    p.add_argument("--cmax-bound", type=float, default=None, metavar="F",
                   help="add 'P(cmax_ss > F x the median true Cmax_ss under the label) <= 0.1' to the target; "
                   "'in range' then also needs her true Cmax_ss under that bound")
    a = p.parse_args(argv)
    rows = [run(float(b), a.n_train, a.n_test, a.draws, a.seed, a.schedules, a.cmax_bound) for b in a.bov.split(",")]
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(pd.DataFrame(rows).round(3).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
