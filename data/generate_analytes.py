"""Generate a SIMULATED multi-analyte trial of an IMGN853-like ADC: conjugate, payload DM4, S-methyl-DM4.

The patients, cohorts, dosing and sampling schedule, the conjugate's (ADC's)
true model and its random effects are those of ``data/generate_trial.py``
(loaded by path; same seed, same streams, so with the default seed the ADC
part is the bundled ``imgn853_phase1.csv`` up to the solver).  Added to it:

* the payload DM4 (ng/mL), formed as the ADC is cleared::

      dA_DM4/dt = S_DM4 * CL_ADC(t) * C_ADC(t) - CL_DM4 / V_DM4 * A_DM4

  with S_DM4 = DAR 3.5 × 0.78 kDa / 150 kDa × 1000 = 18.2 µg of DM4 per mg
  of ADC (ADC in µg/mL = mg/L, doses in mg, DM4 amounts in µg, so DM4
  concentrations come out in µg/L = ng/mL);
* its metabolite S-methyl-DM4 (ng/mL), formed from DM4 with scale 1::

      dA_MeDM4/dt = CL_DM4 * C_DM4(t) - CL_MeDM4 / V_MeDM4 * A_MeDM4

  (CL_DM4, V_DM4, CL_MeDM4, V_MeDM4 are apparent values, as in the model).

Each formed analyte has log-normal IIV on its clearance, its own residual
error (DM4 combined, S-methyl-DM4 proportional) and its own LLOQ; values
below it are reported BLQ (``BLQ = 1``, ``DV = .``; fitted by M3).

The whole system (ADC central and peripheral, DM4, S-methyl-DM4) is solved
with :func:`scipy.integrate.solve_ivp` (DOP853, rtol 1e-10, atol 1e-13),
piecewise between infusion starts and ends, and NOT with poppk's kernel, so
the file is an independent reference for poppk's closed form.

``--time-dependent-cl`` makes the ADC clearance fall with time since the
first dose, CL(t) = CL_ss · (1 + A · exp(−k·t)) (:data:`TIME_DEPENDENT_CL`);
it is off by default because poppk's closed form cannot fit it yet.

Usage (from the repository root)::

    python data/generate_analytes.py                 # writes data/imgn853_analytes*.csv
    python data/generate_analytes.py --out /tmp/x --seed 3 --n-subjects 40 [--time-dependent-cl]

From Python (load by path, as ``generate_trial.py``)::

    import importlib.util
    spec = importlib.util.spec_from_file_location("generate_analytes", "data/generate_analytes.py")
    ga = importlib.util.module_from_spec(spec); spec.loader.exec_module(ga)
    records, truth = ga.generate_analytes(seed=3, n_subjects=40)

Every number is simulated; it is not patient data.  Data card: ``data/README.md``.
"""

# No "from __future__ import annotations" (loaded by path with importlib, see generate_trial.py).
import argparse
import importlib.util
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.integrate import solve_ivp

_HERE = Path(__file__).resolve().parent


def _load_trial_module():
    spec = importlib.util.spec_from_file_location("_poppk_generate_trial", _HERE / "generate_trial.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


gt = _load_trial_module()

__all__ = [
    "generate_analytes", "population_truth", "write_files", "scaled_cohorts",
    "ANALYTES", "FORMED_PARAMETERS", "TIME_DEPENDENT_CL", "DEFAULT_SEED", "RECORD_COLUMNS",
]

DEFAULT_SEED = gt.DEFAULT_SEED
DATA_FILE = "imgn853_analytes.csv"
TRUTH_FILE = "imgn853_analytes_truth.csv"

#: Analytes: name, DVID, unit, source, scale (source amount -> this analyte's amount).
ANALYTES: tuple[dict, ...] = (
    {"name": "ADC", "dvid": 1, "unit": "ug/mL", "source": None, "scale": 1.0},
    {"name": "DM4", "dvid": 2, "unit": "ng/mL", "source": "ADC", "scale": round(3.5 * 0.78 / 150.0 * 1000.0, 1)},
    {"name": "MeDM4", "dvid": 3, "unit": "ng/mL", "source": "DM4", "scale": 1.0},
)

#: True model of the formed analytes (apparent CL in L/day, V in L; residual SDs; LLOQ in ng/mL).
FORMED_PARAMETERS: dict[str, float] = {
    "CL_DM4": 300.0,        # half-life ln2 / (300/500) = 1.16 day
    "V_DM4": 500.0,
    "CL_MeDM4": 100.0,      # half-life ln2 / (100/400) = 2.8 day
    "V_MeDM4": 400.0,
    "OMEGA_CL_DM4": 0.35,
    "OMEGA_CL_MeDM4": 0.3,
    "PROP_DM4": 0.2,        # combined error on DM4
    "ADD_DM4": 0.02,        # ng/mL
    "PROP_MeDM4": 0.2,      # proportional error on S-methyl-DM4
    "LLOQ_DM4": 0.1,        # ng/mL
    "LLOQ_MeDM4": 0.1,      # ng/mL
}

#: CL(t) = CL_ss (1 + A exp(-k t)), t in days since the first dose (``--time-dependent-cl``).
TIME_DEPENDENT_CL: dict[str, float] = {"A": 0.4, "K": 0.05}

RECORD_COLUMNS: tuple[str, ...] = (
    "ID", "TIME", "NTIME", "AMT", "RATE", "EVID", "MDV", "CMT", "DVID", "DV", "BLQ", "LLOQ",
    "WT", "HT", "SEX", "AGE", "ALB", "COHORT", "MGKG", "BASIS",
)


def scaled_cohorts(n_subjects: int | None) -> tuple[dict | None, dict | None]:
    """Cohort sizes of the bundled trial scaled to about ``n_subjects`` (``None``: the bundled 80).

    Every dose level keeps at least one patient, so the range of doses (and of
    payload concentrations, hence of BLQ) stays that of the trial.
    """
    if n_subjects is None:
        return None, None
    total = sum(gt.ESCALATION.values()) + sum(gt.EXPANSION.values())
    f = n_subjects / total
    esc = {k: max(1, int(round(v * f))) for k, v in gt.ESCALATION.items()}
    exp = {k: max(1, int(round(v * f))) for k, v in gt.EXPANSION.items()}
    # put the rounding difference on the largest expansion cohort
    diff = n_subjects - sum(esc.values()) - sum(exp.values())
    big = max(exp, key=exp.get)
    exp[big] = max(1, exp[big] + diff)
    return esc, exp


def population_truth(time_dependent_cl: bool = False) -> dict[str, float]:
    """The true population parameters (ADC: :data:`generate_trial.TRUE_PARAMETERS`)."""
    out = {f"{k}": float(v) for k, v in gt.TRUE_PARAMETERS.items()}
    out.update({k: float(v) for k, v in FORMED_PARAMETERS.items()})
    out["SCALE_DM4"] = float(ANALYTES[1]["scale"])
    out["SCALE_MeDM4"] = float(ANALYTES[2]["scale"])
    out["TDCL_A"] = TIME_DEPENDENT_CL["A"] if time_dependent_cl else 0.0
    out["TDCL_K"] = TIME_DEPENDENT_CL["K"] if time_dependent_cl else 0.0
    return out


# --------------------------------------------------------------------------- ODE


def _solve_subject(par: Mapping[str, float], dose_time, dose_dur, dose_amt, obs_time, tdcl: tuple[float, float]):
    """Concentrations (ADC, DM4, MeDM4) at ``obs_time``; piecewise solve between infusion edges."""
    cl, v1, q, v2 = par["CL"], par["V1"], par["Q"], par["V2"]
    s_p, cl_p, v_p = ANALYTES[1]["scale"], par["CL_DM4"], par["V_DM4"]
    s_m, cl_m, v_m = ANALYTES[2]["scale"], par["CL_MeDM4"], par["V_MeDM4"]
    a_td, k_td = tdcl
    t_first = float(np.min(dose_time))
    starts, ends = np.asarray(dose_time, float), np.asarray(dose_time, float) + np.asarray(dose_dur, float)
    rates = np.asarray(dose_amt, float) / np.asarray(dose_dur, float)

    def rhs(t, y, rate_in):
        c1 = y[0] / v1
        clt = cl * (1.0 + a_td * np.exp(-k_td * max(t - t_first, 0.0))) if a_td else cl
        cp = y[2] / v_p
        return [
            rate_in - clt * c1 - q * c1 + q * y[1] / v2,
            q * c1 - q * y[1] / v2,
            s_p * clt * c1 - cl_p * cp,
            s_m * cl_p * cp - cl_m * y[3] / v_m,
        ]

    obs_time = np.asarray(obs_time, float)
    edges = np.unique(np.r_[0.0, starts, ends, obs_time.max() if len(obs_time) else 0.0])
    out = np.zeros((len(obs_time), 4))
    y = np.zeros(4)
    done = obs_time <= edges[0]
    for a, b in zip(edges[:-1], edges[1:]):
        mid = 0.5 * (a + b)
        rate_in = float(rates[(starts <= mid) & (mid < ends)].sum())
        sel = np.flatnonzero((obs_time > a) & (obs_time <= b))
        t_eval = np.unique(np.r_[obs_time[sel], b])
        sol = solve_ivp(rhs, (a, b), y, method="DOP853", rtol=1e-10, atol=1e-13, t_eval=t_eval, args=(rate_in,))
        if not sol.success:  # pragma: no cover
            raise RuntimeError(f"ODE solve failed on [{a}, {b}]: {sol.message}")
        if len(sel):
            out[sel] = sol.y[:, np.searchsorted(t_eval, obs_time[sel])].T
        y = sol.y[:, -1]
    out[done] = 0.0
    return out[:, 0] / v1, out[:, 2] / v_p, out[:, 3] / v_m


# --------------------------------------------------------------------------- trial


def generate_analytes(
    seed: int = DEFAULT_SEED,
    n_subjects: int | None = None,
    *,
    n_escalation: Mapping[float, int] | None = None,
    n_expansion: Mapping[float, int] | None = None,
    time_dependent_cl: bool = False,
    residual_error: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Simulate the trial; return ``(records, truth)``.

    ``records`` are NONMEM-style (columns :data:`RECORD_COLUMNS`; three
    observation records per sample time, DVID 1 ADC, 2 DM4, 3 S-methyl-DM4).
    ``truth`` is long: ``LEVEL`` (``population`` or ``subject``), ``ID`` (0 for
    population rows), ``PARAMETER``, ``VALUE``.
    ``n_subjects`` scales the bundled cohorts (:func:`scaled_cohorts`);
    ``n_escalation``/``n_expansion`` give them explicitly instead.
    """
    if n_escalation is None and n_expansion is None:
        n_escalation, n_expansion = scaled_cohorts(n_subjects)
    plan = gt.cohorts(n_escalation, n_expansion)
    n = sum(c.n for c in plan)
    rng = gt._streams(seed)
    # streams of the formed analytes: further children of the same SeedSequence
    # (children 0-4 are generate_trial's streams, unchanged)
    extra = np.random.SeedSequence(int(seed)).spawn(7)[5:]
    rng_iiv2, rng_res2 = (np.random.default_rng(c) for c in extra)
    fp = FORMED_PARAMETERS

    cohort_of = np.concatenate([np.full(c.n, i) for i, c in enumerate(plan)])
    demo = gt._demographics(rng["demographics"], n)
    eta_cl, eta_v1 = gt._etas(rng["iiv"], n)
    sched = gt._schedule(rng["schedule"], n)
    ibw = gt._ibw(demo["HT"], np.full(n, "F"), method="label")
    aibw = gt._aibw(demo["WT"], ibw, factor=0.4)
    mgkg = np.array([plan[i].mg_per_kg for i in cohort_of])
    basis = np.array([plan[i].basis for i in cohort_of], dtype=object)
    dose_mg = np.round(mgkg * np.where(basis == "AIBW", aibw, demo["WT"]), 1)
    p = gt.TRUE_PARAMETERS
    par = gt._individual(demo["WT"], demo["ALB"], eta_cl, eta_v1, p["CL_WT"], p["V_WT"], p["CL_ALB"])
    z = rng_iiv2.standard_normal((n, 2))
    eta_p, eta_m = fp["OMEGA_CL_DM4"] * z[:, 0], fp["OMEGA_CL_MeDM4"] * z[:, 1]
    par["CL_DM4"] = fp["CL_DM4"] * np.exp(eta_p)
    par["V_DM4"] = np.full(n, fp["V_DM4"])
    par["CL_MeDM4"] = fp["CL_MeDM4"] * np.exp(eta_m)
    par["V_MeDM4"] = np.full(n, fp["V_MeDM4"])
    tdcl = (TIME_DEPENDENT_CL["A"], TIME_DEPENDENT_CL["K"]) if time_dependent_cl else (0.0, 0.0)

    obs_rows, dose_rows, subj_truth = [], [], []
    eps_adc = rng["residual"].standard_normal((sum(len(s["obs_time"]) for s in sched), 2))
    k_adc = 0
    for i, s in enumerate(sched):
        pi = {k: float(v[i]) for k, v in par.items()}
        fitted = s["obs_kind"] == 1
        t_obs = s["obs_time"]
        c_adc, c_p, c_m = _solve_subject(pi, s["dose_time"], s["dose_dur"],
                                         np.full(s["n_cycles"], dose_mg[i]), t_obs, tdcl)
        e = eps_adc[k_adc:k_adc + len(t_obs)]
        k_adc += len(t_obs)
        e2 = rng_res2.standard_normal((len(t_obs), 3))
        if residual_error:
            y_adc = c_adc * (1 + p["PROP"] * e[:, 0]) + p["ADD"] * e[:, 1]
            y_p = c_p * (1 + fp["PROP_DM4"] * e2[:, 0]) + fp["ADD_DM4"] * e2[:, 1]
            y_m = c_m * (1 + fp["PROP_MeDM4"] * e2[:, 2])
        else:
            y_adc, y_p, y_m = c_adc.copy(), c_p.copy(), c_m.copy()
        for dvid, y, lloq, digits in ((1, y_adc, gt.LLOQ, 3), (2, y_p, fp["LLOQ_DM4"], 4),
                                      (3, y_m, fp["LLOQ_MeDM4"], 4)):
            y = np.round(y, digits)
            blq = (y < lloq) | ~fitted
            for j in range(len(t_obs)):
                obs_rows.append((i, t_obs[j], s["obs_ntime"][j], 0, dvid, np.nan if blq[j] else y[j],
                                 int(blq[j]), lloq, 0 if fitted[j] else 1))
        for k in range(s["n_cycles"]):
            dose_rows.append((i, s["dose_time"][k], s["dose_ntime"][k], 1, dose_mg[i],
                              round(dose_mg[i] / s["dose_dur"][k], 1)))
        subj_truth.append({"ID": i + 1, "DOSE_MG": dose_mg[i], "ETA_CL": eta_cl[i], "ETA_V1": eta_v1[i],
                           "ETA_CL_DM4": eta_p[i], "ETA_CL_MeDM4": eta_m[i], **pi})

    obs = pd.DataFrame(obs_rows, columns=["sub", "TIME", "NTIME", "EVID", "DVID", "DV", "BLQ", "LLOQ", "MDV"])
    obs["AMT"] = np.nan
    obs["RATE"] = np.nan
    doses = pd.DataFrame(dose_rows, columns=["sub", "TIME", "NTIME", "EVID", "AMT", "RATE"])
    doses["DVID"] = 1
    doses["MDV"] = 1
    doses["DV"] = np.nan
    doses["BLQ"] = pd.NA
    doses["LLOQ"] = np.nan
    rec = pd.concat([obs, doses], ignore_index=True)
    # by subject, time; at equal times observations (DVID order) before the dose
    rec = rec.sort_values(["sub", "TIME", "EVID", "DVID"], kind="stable").reset_index(drop=True)
    sub = rec["sub"].to_numpy()
    rec["ID"] = sub + 1
    rec["CMT"] = 1
    rec["BLQ"] = pd.array(rec["BLQ"], dtype="Int64")
    rec["NTIME"] = np.round(rec["NTIME"].astype(float), 6)
    rec["LLOQ"] = rec["LLOQ"].astype(float)
    for col in ("WT", "HT", "AGE", "ALB"):
        rec[col] = demo[col][sub]
    rec["SEX"] = "F"
    rec["COHORT"] = cohort_of[sub] + 1
    rec["MGKG"] = mgkg[sub]
    rec["BASIS"] = basis[sub].astype(str)
    records = rec[list(RECORD_COLUMNS)]

    pop = population_truth(time_dependent_cl)
    long = [("population", 0, k, v) for k, v in pop.items()]
    for row in subj_truth:
        for k, v in row.items():
            if k != "ID":
                long.append(("subject", row["ID"], k, float(v)))
    truth = pd.DataFrame(long, columns=["LEVEL", "ID", "PARAMETER", "VALUE"])
    truth["VALUE"] = truth["VALUE"].round(8)
    return records, truth


def write_files(records: pd.DataFrame, truth: pd.DataFrame, out, *, data_file: str = DATA_FILE,
                truth_file: str = TRUTH_FILE) -> tuple[Path, Path]:
    """Write the two CSV files (missing values as ``.``) into directory ``out``, as ``generate_trial`` does."""
    return gt.write_trial(records, truth, out, data_file=data_file, truth_file=truth_file)


def blq_summary(records: pd.DataFrame) -> pd.DataFrame:
    """Observations and BLQ share per DVID (pre-dose samples, MDV = 1, left out)."""
    obs = records[(records["EVID"] == 0) & (records["MDV"] == 0)]
    g = obs.groupby("DVID")["BLQ"]
    return pd.DataFrame({"n": g.size(), "blq": g.sum(), "share": g.mean().round(3)})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the simulated IMGN853-like multi-analyte trial.")
    parser.add_argument("--out", default=str(_HERE), help="output directory (default: data/)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--n-subjects", type=int, default=None,
                        help="scale the cohorts to about this many patients (default: the bundled 80)")
    parser.add_argument("--time-dependent-cl", action="store_true",
                        help="ADC clearance CL_ss (1 + A exp(-k t)) (poppk cannot fit it yet)")
    parser.add_argument("--no-residual-error", action="store_true")
    parser.add_argument("--force", action="store_true", help="let a variant overwrite the shipped files")
    args = parser.parse_args(argv)
    default_out = Path(args.out).resolve() == _HERE
    variant = (args.seed != DEFAULT_SEED or args.n_subjects is not None or args.time_dependent_cl
               or args.no_residual_error)
    if default_out and variant and not args.force:
        parser.error("a non-default variant would overwrite the shipped files; pass --out DIR (or --force)")
    records, truth = generate_analytes(args.seed, args.n_subjects, time_dependent_cl=args.time_dependent_cl,
                                       residual_error=not args.no_residual_error)
    paths = write_files(records, truth, args.out)
    print(f"wrote {paths[0]} ({len(records)} records, {records['ID'].nunique()} patients)")
    print(f"wrote {paths[1]}")
    print(blq_summary(records).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
