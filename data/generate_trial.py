"""Generate the bundled SIMULATED phase-1 trial of an IMGN853-like antibody-drug conjugate.

The trial is modelled on the first-in-human study of mirvetuximab soravtansine
(IMGN853): dose escalation on total body weight (TBW), then expansion cohorts
dosed on adjusted ideal body weight (AIBW).  Every number in it is simulated;
it is not patient data.  The data card is ``data/README.md``.

Usage (from the repository root)::

    python data/generate_trial.py                     # writes data/imgn853_phase1*.csv
    python data/generate_trial.py --out /tmp/variant --seed 7 \\
        --size-exponent-cl 0.9 --size-exponent-v 1.0

From Python (the file is not part of a package; load it by path)::

    import importlib.util
    spec = importlib.util.spec_from_file_location("generate_trial", "data/generate_trial.py")
    gt = importlib.util.module_from_spec(spec); spec.loader.exec_module(gt)
    records, truth = gt.generate_trial(v_size_exponent=1.0)

Concentrations are computed with poppk's own closed-form kernel
(:func:`poppk.pk.padded_dose_matrix` + :func:`poppk.pk.concentration`), the
same code the model uses when fitting.  Units: time in days, amounts in mg,
concentrations in ug/mL (= mg/L), volumes in L, clearances in L/day.

Random numbers come from five independent streams spawned from one
:class:`numpy.random.SeedSequence` (demographics, random effects, schedule,
residual error, adverse events).  The draws do not depend on the parameter
values, so variants made with other exponents, or without residual error,
have the same patients, schedules and random effects (common random numbers).
"""

# No "from __future__ import annotations": the file is loaded by path with
# importlib (not registered in sys.modules), where dataclasses cannot resolve
# string annotations.
import argparse
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from poppk.bodysize import aibw as _aibw
from poppk.bodysize import ibw as _ibw
from poppk.bodysize import lbw as _lbw
from poppk.pk import concentration, half_lives, padded_dose_matrix

__all__ = [
    "generate_trial",
    "expected_ae_incidence",
    "cohorts",
    "write_trial",
    "Cohort",
    "DEFAULT_SEED",
    "ESCALATION",
    "EXPANSION",
    "TRUE_PARAMETERS",
    "AE_MODEL",
    "LLOQ",
    "RECORD_COLUMNS",
    "TRUTH_COLUMNS",
    "SIZE_DESCRIPTORS",
    "size_descriptor_values",
    "demographics",
]

DEFAULT_SEED = 20260101
DATA_FILE = "imgn853_phase1.csv"
TRUTH_FILE = "imgn853_phase1_truth.csv"

#: Dose-escalation levels (mg/kg of TBW) and the number of patients at each.
ESCALATION: dict[float, int] = {0.15: 3, 0.5: 3, 1.0: 3, 2.0: 6, 3.3: 6, 5.0: 10, 7.0: 6}
#: Expansion cohorts (mg/kg of AIBW) and their sizes.
EXPANSION: dict[float, int] = {5.0: 18, 6.0: 25}

#: The true population model (see data/README.md).
TRUE_PARAMETERS: dict[str, float] = {
    "CL": 0.45,           # L/day, 70 kg, ALB 4 g/dL
    "V1": 2.8,            # L, 70 kg
    "Q": 0.6,             # L/day, 70 kg
    "V2": 2.0,            # L, 70 kg
    "WT_REF": 70.0,       # kg
    "ALB_REF": 4.0,       # g/dL
    "CL_WT": 0.45,        # exponent of WT/70 on CL
    "V_WT": 0.5,          # exponent of WT/70 on V1, Q and V2
    "CL_ALB": -0.5,       # exponent of ALB/4 on CL
    "OMEGA_CL": 0.3,      # SD of eta_CL
    "OMEGA_V1": 0.2,      # SD of eta_V1
    "CORR_CL_V1": 0.3,    # correlation of eta_CL and eta_V1
    "PROP": 0.15,         # proportional residual error (SD, fraction)
    "ADD": 0.05,          # additive residual error (SD, ug/mL)
}

#: Descriptors the true PK can scale on (``size_descriptor=``); "none": no size effect.
SIZE_DESCRIPTORS: tuple[str, ...] = ("TBW", "AIBW", "IBW", "LBW", "none")
#: Height (cm) of the reference patient: with WT_REF, the reference of every descriptor.
HT_REF = 162.0

#: Ocular AE model: P = logistic(A + B * log(CMAX1 / CREF)), CMAX1 in ug/mL.
AE_MODEL: dict[str, float] = {"A": -1.0, "B": 8.0, "CREF": 120.0}

#: Lower limit of quantification (ug/mL).
LLOQ = 0.1

#: Infusion durations (days): 2 h for the first infusion, 1 h afterwards.
FIRST_INFUSION = 2.0 / 24.0
LATER_INFUSION = 1.0 / 24.0
CYCLE = 21.0  # days (Q3W)
EOT_VISIT = 28.0        # days after the last dose (end-of-treatment visit)
FOLLOW_UP_VISIT = 63.0  # days after the last dose (follow-up visit)

#: Columns of the NONMEM-style file, in order.
RECORD_COLUMNS: tuple[str, ...] = (
    "ID", "TIME", "NTIME", "TAD", "NTAD", "AMT", "RATE", "EVID", "MDV", "CMT", "DV", "BLQ",
    "LLOQ", "WT", "HT", "SEX", "AGE", "ALB", "COHORT", "MGKG", "BASIS", "AE_OCULAR",
)
#: Columns of the truth file, in order.
TRUTH_COLUMNS: tuple[str, ...] = (
    "ID", "COHORT", "PHASE", "MGKG", "BASIS", "DOSE_MG", "N_CYCLES", "WT", "HT", "SEX", "AGE",
    "ALB", "IBW", "AIBW", "ETA_CL", "ETA_V1", "CL", "V1", "Q", "V2", "THALF_ALPHA",
    "THALF_BETA", "CMAX1", "AUC1", "P_AE_OCULAR", "AE_OCULAR",
)

_MINUTE = 1.0 / 1440.0
_HOUR = 1.0 / 24.0


@dataclass(frozen=True)
class Cohort:
    """One dose cohort: number (1, 2, ...), phase, dose level and dose basis."""

    number: int
    phase: str          # "escalation" or "expansion"
    mg_per_kg: float
    basis: str          # "TBW" or "AIBW"
    n: int

    @property
    def label(self) -> str:
        return f"{self.mg_per_kg:g} mg/kg {self.basis}"


def cohorts(
    n_escalation: Mapping[float, int] | None = None,
    n_expansion: Mapping[float, int] | None = None,
) -> list[Cohort]:
    """The cohorts of the trial, in enrolment order (escalation, then expansion).

    ``n_escalation`` maps a TBW dose level (mg/kg) to its size, ``n_expansion``
    an AIBW dose level to its size; ``None`` gives :data:`ESCALATION` and
    :data:`EXPANSION`.  Levels with n = 0 are left out.
    """
    esc = ESCALATION if n_escalation is None else dict(n_escalation)
    exp = EXPANSION if n_expansion is None else dict(n_expansion)
    out: list[Cohort] = []
    for phase, basis, levels in (("escalation", "TBW", esc), ("expansion", "AIBW", exp)):
        for mgkg, n in sorted(levels.items()):
            if int(n) < 0 or int(n) != n:
                raise ValueError(f"cohort size for {mgkg} mg/kg {basis} must be a whole number >= 0, got {n}")
            if float(mgkg) <= 0:
                raise ValueError(f"dose level must be > 0 mg/kg, got {mgkg}")
            if n:
                out.append(Cohort(len(out) + 1, phase, float(mgkg), basis, int(n)))
    if not out:
        raise ValueError("the trial needs at least one patient")
    return out


# --------------------------------------------------------------------------- patients


def _streams(seed: int) -> dict[str, np.random.Generator]:
    names = ("demographics", "iiv", "schedule", "residual", "ae")
    children = np.random.SeedSequence(int(seed)).spawn(len(names))
    return {name: np.random.default_rng(child) for name, child in zip(names, children)}


def _demographics(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Women with advanced ovarian cancer: HT, WT (right-skewed), AGE, ALB."""
    z = rng.standard_normal((n, 4))
    ht = np.clip(162.0 + 7.0 * z[:, 0], 145.0, 185.0)
    # shifted log-normal weight, correlated 0.4 with height: median 70 kg,
    # 2.5th-97.5th percentiles ~50-115 kg, long right tail (obesity)
    zw = 0.4 * z[:, 0] + np.sqrt(1.0 - 0.4**2) * z[:, 1]
    wt = np.clip(35.0 + 35.0 * np.exp(0.42 * zw), 40.0, 160.0)
    age = np.clip(np.round(60.0 + 10.0 * z[:, 2]), 28, 85)
    alb = np.clip(3.9 + 0.4 * z[:, 3], 2.5, 5.0)
    return {
        "WT": np.round(wt, 1),
        "HT": np.round(ht, 1),
        "AGE": age.astype(np.int64),
        "ALB": np.round(alb, 1),
    }


def _etas(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    w_cl, w_v, r = (TRUE_PARAMETERS[k] for k in ("OMEGA_CL", "OMEGA_V1", "CORR_CL_V1"))
    z = rng.standard_normal((n, 2))
    eta_cl = w_cl * z[:, 0]
    eta_v1 = w_v * (r * z[:, 0] + np.sqrt(1.0 - r * r) * z[:, 1])
    return eta_cl, eta_v1


def size_descriptor_values(descriptor: str, wt: np.ndarray, ht: np.ndarray) -> tuple[np.ndarray, float]:
    """The true size of women of weight ``wt`` (kg) and height ``ht`` (cm), and its reference value.

    ``descriptor`` is one of :data:`SIZE_DESCRIPTORS` (IBW by the mirvetuximab
    label's formula, AIBW with factor 0.4, LBW by Janmahasatian); the reference
    is the descriptor of a 70-kg, 162-cm woman, so the typical values keep
    their meaning.  ``"none"`` gives ones (no size effect).
    """
    wt, ht = np.asarray(wt, float), np.asarray(ht, float)
    ref_wt, ref_ht = np.array([TRUE_PARAMETERS["WT_REF"]]), np.array([HT_REF])

    def value(w: np.ndarray, h: np.ndarray) -> np.ndarray:
        sex = np.full(len(w), "F")
        if descriptor == "TBW":
            return w
        if descriptor == "IBW":
            return _ibw(h, sex, method="label")
        if descriptor == "AIBW":
            return _aibw(w, _ibw(h, sex, method="label"), factor=0.4)
        if descriptor == "LBW":
            return _lbw(w, h, sex)
        if descriptor == "none":
            return np.ones(len(w))
        raise ValueError(f"size_descriptor must be one of {SIZE_DESCRIPTORS}, got {descriptor!r}")

    return value(wt, ht), float(value(ref_wt, ref_ht)[0])


def demographics(n: int, seed: int = 1) -> dict[str, np.ndarray]:
    """``n`` women drawn from the trial's demographic distribution (WT, HT, AGE, ALB).

    The population that a trial's patients are a sample of: the truth a
    simulated dosing answer is judged against is computed in it.
    """
    return _demographics(_streams(seed)["demographics"], int(n))


def _individual(
    wt: np.ndarray, alb: np.ndarray, eta_cl: np.ndarray, eta_v1: np.ndarray,
    cl_exp: float, v_exp: float, alb_exp: float, *, ht: np.ndarray | None = None, descriptor: str = "TBW",
) -> dict[str, np.ndarray]:
    p = TRUE_PARAMETERS
    if descriptor == "TBW":
        size, ref = np.asarray(wt, float), p["WT_REF"]
    else:
        size, ref = size_descriptor_values(descriptor, wt, ht)  # type: ignore[arg-type]
    size_v = (size / ref) ** v_exp
    return {
        "CL": p["CL"] * (size / ref) ** cl_exp * (alb / p["ALB_REF"]) ** alb_exp
        * np.exp(eta_cl),
        "V1": p["V1"] * size_v * np.exp(eta_v1),
        "Q": p["Q"] * size_v,
        "V2": p["V2"] * size_v,
    }


def _ae_probability(cmax: np.ndarray) -> np.ndarray:
    a, b, cref = AE_MODEL["A"], AE_MODEL["B"], AE_MODEL["CREF"]
    return 1.0 / (1.0 + np.exp(-(a + b * np.log(cmax / cref))))


def _cmax_first_infusion(dose: np.ndarray, params: Mapping[str, np.ndarray]) -> np.ndarray:
    """Concentration at the end of the first infusion (= the cycle-1 maximum).

    For a zero-order infusion into a linear mammillary model the central
    concentration rises during the infusion and falls after it, so the maximum
    over cycle 1 is at the end of the infusion.  Computed with the kernel.
    """
    col = {k: np.asarray(v, float)[:, None] for k, v in params.items()}
    dt = np.full((len(dose), 1), FIRST_INFUSION)
    return concentration(dt, np.asarray(dose, float)[:, None], col, n_cmt=2,
                         dur=np.full_like(dt, FIRST_INFUSION))


def _round_time(t: np.ndarray) -> np.ndarray:
    """Clock times are recorded to the minute (written with 6 decimals)."""
    return np.round(np.round(np.asarray(t) / _MINUTE) * _MINUTE, 6)


# --------------------------------------------------------------------------- schedule


def _schedule(rng: np.random.Generator, n: int) -> list[dict[str, np.ndarray]]:
    """Dose and sampling times of every patient (one fixed sequence of draws each)."""
    out = []
    for _ in range(n):
        n_cyc = int(rng.integers(4, 7))                                 # 4-6 cycles
        delay = rng.choice([0.0, 1.0, 2.0, 3.0, 7.0], size=n_cyc, p=[0.7, 0.12, 0.08, 0.05, 0.05])
        clock = np.clip(rng.normal(0.0, 1.0, n_cyc), -3.0, 3.0) * _HOUR
        u = rng.uniform(size=(n_cyc, 8))
        g = rng.standard_normal((n_cyc, 8))
        window = rng.choice([-1.0, 0.0, 0.0, 0.0, 1.0], size=(2,))      # day 7 and 14 visits
        follow = rng.integers(0, 4, size=2)                             # EOT / follow-up delay
        missing = rng.uniform(size=(n_cyc, 2 + 8))

        dose_t = np.zeros(n_cyc)
        for k in range(1, n_cyc):
            dose_t[k] = dose_t[k - 1] + CYCLE + delay[k] + clock[k] - clock[k - 1]
        dose_t = _round_time(dose_t)
        dur = np.where(np.arange(n_cyc) == 0, FIRST_INFUSION, LATER_INFUSION)

        times, ntime, ntad, kind = [], [], [], []   # kind 0: pre-dose of cycle 1 (MDV=1)

        def add(t, nom, nomtad, k=1, drop=0.0):
            if drop < 0.04:                          # ~4% of later samples are missed
                return
            times.append(t)
            ntime.append(nom)
            ntad.append(nomtad)
            kind.append(k)

        # cycle 1, rich sampling
        add(0.0, 0.0, np.nan, k=0, drop=1.0)
        add(FIRST_INFUSION + (2 + 13 * u[0, 0]) * _MINUTE, FIRST_INFUSION, FIRST_INFUSION, drop=1.0)
        add(4 * _HOUR + 10 * g[0, 0] * _MINUTE, 4 * _HOUR, 4 * _HOUR, drop=missing[0, 2])
        add(1.0 + np.clip(g[0, 1], -2, 2) * _HOUR, 1.0, 1.0, drop=missing[0, 3])
        add(2.0 + np.clip(g[0, 2], -2, 2) * 1.5 * _HOUR, 2.0, 2.0, drop=missing[0, 4])
        add(3.0 + np.clip(g[0, 3], -2, 2) * 2 * _HOUR, 3.0, 3.0, drop=missing[0, 5])
        add(7.0 + window[0] + np.clip(g[0, 4], -2, 2) * 2 * _HOUR, 7.0, 7.0, drop=missing[0, 6])
        add(14.0 + window[1] + np.clip(g[0, 5], -2, 2) * 2 * _HOUR, 14.0, 14.0, drop=missing[0, 7])
        # later cycles: trough (5-60 min before the infusion) and end of infusion
        for k in range(1, n_cyc):
            nom = CYCLE * k
            add(dose_t[k] - (5 + 55 * u[k, 0]) * _MINUTE, nom, CYCLE, drop=missing[k, 0])
            add(dose_t[k] + dur[k] + (2 + 13 * u[k, 1]) * _MINUTE, nom + dur[k], dur[k],
                drop=missing[k, 1])
        # end-of-treatment visit (4 weeks after the last dose, +0-3 days) and
        # follow-up visit (9 weeks after the last dose, +0-6 days)
        last, nom_last = dose_t[-1], CYCLE * (n_cyc - 1)
        add(last + EOT_VISIT + follow[0] + np.clip(g[-1, 6], -2, 2) * 2 * _HOUR,
            nom_last + EOT_VISIT, EOT_VISIT, drop=missing[-1, 8])
        add(last + FOLLOW_UP_VISIT + 2 * follow[1] + np.clip(g[-1, 7], -2, 2) * 2 * _HOUR,
            nom_last + FOLLOW_UP_VISIT, FOLLOW_UP_VISIT, drop=missing[-1, 9])

        out.append({
            "n_cycles": n_cyc,
            "dose_time": dose_t,
            "dose_dur": dur,
            "dose_ntime": CYCLE * np.arange(n_cyc),
            "obs_time": _round_time(np.asarray(times)),
            "obs_ntime": np.round(np.asarray(ntime), 6),
            "obs_ntad": np.round(np.asarray(ntad), 6),
            "obs_kind": np.asarray(kind, dtype=np.int64),
        })
    return out


# --------------------------------------------------------------------------- trial


def generate_trial(
    seed: int = DEFAULT_SEED,
    n_escalation: Mapping[float, int] | None = None,
    n_expansion: Mapping[float, int] | None = None,
    cl_size_exponent: float = 0.45,
    v_size_exponent: float = 0.5,
    *,
    alb_exponent: float = -0.5,
    residual_error: bool = True,
    size_descriptor: str = "TBW",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Simulate the trial and return ``(records, truth)``.

    Parameters
    ----------
    seed
        Seed of the :class:`numpy.random.SeedSequence` (default 20260101, the
        shipped files).
    n_escalation, n_expansion
        Cohort sizes by dose level (mg/kg of TBW, resp. AIBW); default
        :data:`ESCALATION` and :data:`EXPANSION`.
    cl_size_exponent, v_size_exponent
        True exponents of the size (WT/70 by default) on CL, and on V1, Q and V2.
    size_descriptor
        The size the true PK follow: ``"TBW"`` (default), ``"AIBW"``, ``"IBW"``,
        ``"LBW"`` or ``"none"`` (:func:`size_descriptor_values`).  Patients,
        schedules and random effects are the same for every choice (common
        random numbers).
    alb_exponent
        True exponent of ALB/4 on CL.
    residual_error
        ``False`` gives error-free concentrations (DV = the true individual
        prediction, still rounded to 3 decimals and censored below LLOQ).
        All other draws are unchanged.

    Returns
    -------
    records : pandas.DataFrame
        The NONMEM-style records, columns :data:`RECORD_COLUMNS`, exactly as
        written to ``imgn853_phase1.csv`` (missing values NaN / <NA>).
    truth : pandas.DataFrame
        One row per patient, columns :data:`TRUTH_COLUMNS`.
    """
    plan = cohorts(n_escalation, n_expansion)
    n = sum(c.n for c in plan)
    rng = _streams(seed)

    # patients
    cohort_of = np.concatenate([np.full(c.n, i) for i, c in enumerate(plan)])
    demo = _demographics(rng["demographics"], n)
    eta_cl, eta_v1 = _etas(rng["iiv"], n)
    sched = _schedule(rng["schedule"], n)
    ibw = _ibw(demo["HT"], np.full(n, "F"), method="label")
    aibw = _aibw(demo["WT"], ibw, factor=0.4)
    mgkg = np.array([plan[i].mg_per_kg for i in cohort_of])
    basis = np.array([plan[i].basis for i in cohort_of], dtype=object)
    dose_wt = np.where(basis == "AIBW", aibw, demo["WT"])
    dose_mg = np.round(mgkg * dose_wt, 1)
    par = _individual(demo["WT"], demo["ALB"], eta_cl, eta_v1,
                      cl_size_exponent, v_size_exponent, alb_exponent, ht=demo["HT"], descriptor=size_descriptor)

    # event tables
    d_sub = np.concatenate([np.full(s["n_cycles"], i) for i, s in enumerate(sched)])
    d_time = np.concatenate([s["dose_time"] for s in sched])
    d_dur = np.concatenate([s["dose_dur"] for s in sched])
    d_nt = np.concatenate([s["dose_ntime"] for s in sched])
    o_sub = np.concatenate([np.full(len(s["obs_time"]), i) for i, s in enumerate(sched)])
    o_time = np.concatenate([s["obs_time"] for s in sched])
    o_nt = np.concatenate([s["obs_ntime"] for s in sched])
    o_ntad = np.concatenate([s["obs_ntad"] for s in sched])
    o_kind = np.concatenate([s["obs_kind"] for s in sched])

    # file order: by subject, time; at equal times the observation comes first
    # (only the pre-dose sample of cycle 1 shares its time with a dose)
    sub = np.concatenate([o_sub, d_sub])
    tim = np.concatenate([o_time, d_time])
    is_dose = np.r_[np.zeros(len(o_sub), bool), np.ones(len(d_sub), bool)]
    order = np.lexsort((is_dose, tim, sub))
    row_of = np.empty(len(order), np.int64)
    row_of[order] = np.arange(len(order))
    o_row, d_row = row_of[: len(o_sub)], row_of[len(o_sub):]

    # true concentrations with poppk's kernel
    m = padded_dose_matrix(o_sub, o_time, None, o_row, d_sub, d_time, None, d_row,
                           dose_mg[d_sub], d_dur, None, None, None)
    ipred = concentration(m["dt"], m["amt"], {k: v[o_sub][:, None] for k, v in par.items()},
                          n_cmt=2, dur=m["dur"])
    has_dose = m["mask"].any(axis=1)
    last_dt = np.where(has_dose, m["dt"][np.arange(len(o_sub)), m["mask"].sum(1) - 1], np.nan)

    eps = rng["residual"].standard_normal((len(o_sub), 2))
    if residual_error:
        dv = ipred * (1.0 + TRUE_PARAMETERS["PROP"] * eps[:, 0]) + TRUE_PARAMETERS["ADD"] * eps[:, 1]
    else:
        dv = ipred.copy()
    dv = np.round(dv, 3)
    excluded = o_kind == 0                       # pre-first-dose sample: MDV = 1
    blq = (dv < LLOQ) | excluded
    dv = np.where(blq, np.nan, dv)

    # ocular AE, driven by the true cycle-1 Cmax
    cmax1 = _cmax_first_infusion(dose_mg, par)
    p_ae = _ae_probability(cmax1)
    ae = (rng["ae"].uniform(size=n) < p_ae).astype(np.int64)

    records = _records(order, o_sub, o_time, o_nt, o_ntad, last_dt, dv, blq, excluded,
                       d_sub, d_time, d_dur, d_nt, dose_mg, demo, plan, cohort_of, mgkg, basis, ae)
    lam = half_lives(par, 2)
    truth = pd.DataFrame({
        "ID": np.arange(1, n + 1, dtype=np.int64),
        "COHORT": cohort_of + 1,
        "PHASE": [plan[i].phase for i in cohort_of],
        "MGKG": mgkg,
        "BASIS": basis.astype(str),
        "DOSE_MG": dose_mg,
        "N_CYCLES": np.array([s["n_cycles"] for s in sched], dtype=np.int64),
        "WT": demo["WT"],
        "HT": demo["HT"],
        "SEX": "F",
        "AGE": demo["AGE"],
        "ALB": demo["ALB"],
        "IBW": ibw,
        "AIBW": aibw,
        "ETA_CL": eta_cl,
        "ETA_V1": eta_v1,
        **par,
        "THALF_ALPHA": lam[0],
        "THALF_BETA": lam[1],
        "CMAX1": cmax1,
        "AUC1": dose_mg / par["CL"],
        "P_AE_OCULAR": p_ae,
        "AE_OCULAR": ae,
    })
    float_cols = [c for c in truth.columns if truth[c].dtype.kind == "f"]
    truth[float_cols] = truth[float_cols].round(8)
    return records, truth[list(TRUTH_COLUMNS)]


def _records(order, o_sub, o_time, o_nt, o_ntad, last_dt, dv, blq, excluded,
             d_sub, d_time, d_dur, d_nt, dose_mg, demo, plan, cohort_of, mgkg, basis, ae):
    n_o, n_d = len(o_sub), len(d_sub)
    sub = np.concatenate([o_sub, d_sub])[order]
    amt = np.concatenate([np.full(n_o, np.nan), dose_mg[d_sub]])[order]
    rate = np.concatenate([np.full(n_o, np.nan), np.round(dose_mg[d_sub] / d_dur, 1)])[order]
    obs = np.r_[np.ones(n_o, bool), np.zeros(n_d, bool)][order]
    mdv = np.r_[excluded.astype(np.int64), np.ones(n_d, np.int64)][order]
    frame = pd.DataFrame({
        "ID": sub + 1,
        "TIME": np.concatenate([o_time, d_time])[order],
        "NTIME": np.round(np.concatenate([o_nt, d_nt]), 6)[order],
        "TAD": np.round(np.concatenate([last_dt, np.zeros(n_d)]), 6)[order],
        "NTAD": np.concatenate([o_ntad, np.zeros(n_d)])[order],
        "AMT": amt,
        "RATE": rate,
        "EVID": np.where(obs, 0, 1),
        "MDV": mdv,
        "CMT": np.ones(len(sub), np.int64),
        "DV": np.concatenate([dv, np.full(n_d, np.nan)])[order],
        "BLQ": pd.array(np.where(obs, np.r_[blq.astype(np.int64), np.zeros(n_d, np.int64)][order], 0),
                        dtype="Int64"),
        "LLOQ": np.where(obs, LLOQ, np.nan),
        "WT": demo["WT"][sub],
        "HT": demo["HT"][sub],
        "SEX": "F",
        "AGE": demo["AGE"][sub],
        "ALB": demo["ALB"][sub],
        "COHORT": cohort_of[sub] + 1,
        "MGKG": mgkg[sub],
        "BASIS": basis[sub].astype(str),
        "AE_OCULAR": ae[sub],
    })
    frame.loc[~obs, "BLQ"] = pd.NA
    return frame[list(RECORD_COLUMNS)].reset_index(drop=True)


# --------------------------------------------------------------------------- expectations


def expected_ae_incidence(
    mg_per_kg: float,
    basis: str,
    *,
    n: int = 200_000,
    seed: int = 1,
    cl_size_exponent: float = 0.45,
    v_size_exponent: float = 0.5,
) -> float:
    """Expected ocular-AE incidence of a cohort, over the trial's population.

    Monte Carlo mean of P(AE) = logistic(A + B log(CMAX1/CREF)) over ``n``
    virtual patients drawn from the same demographic and random-effect
    distributions as the trial (CMAX1 from the kernel, 2-h first infusion).
    """
    if basis not in ("TBW", "AIBW"):
        raise ValueError(f"basis must be 'TBW' or 'AIBW', got {basis!r}")
    rng = _streams(seed)
    demo = _demographics(rng["demographics"], n)
    eta_cl, eta_v1 = _etas(rng["iiv"], n)
    par = _individual(demo["WT"], demo["ALB"], eta_cl, eta_v1,
                      cl_size_exponent, v_size_exponent, TRUE_PARAMETERS["CL_ALB"])
    weight = demo["WT"]
    if basis == "AIBW":
        weight = _aibw(demo["WT"], _ibw(demo["HT"], np.full(n, "F"), method="label"))
    dose = np.round(mg_per_kg * weight, 1)
    return float(np.mean(_ae_probability(_cmax_first_infusion(dose, par))))


# --------------------------------------------------------------------------- files


def write_trial(records: pd.DataFrame, truth: pd.DataFrame, out: str | Path, *, data_file: str = DATA_FILE,
                truth_file: str = TRUTH_FILE) -> tuple[Path, Path]:
    """Write the two CSV files (missing values as ``.``) into directory ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = out / data_file, out / truth_file
    records.to_csv(paths[0], index=False, na_rep=".", lineterminator="\n")
    truth.to_csv(paths[1], index=False, na_rep=".", lineterminator="\n")
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write the simulated IMGN853-like phase-1 trial (NONMEM-style CSV + truth).")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent),
                        help="output directory (default: the data/ directory of this script)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--size-exponent-cl", type=float, default=TRUE_PARAMETERS["CL_WT"])
    parser.add_argument("--size-exponent-v", type=float, default=TRUE_PARAMETERS["V_WT"])
    parser.add_argument("--no-residual-error", action="store_true",
                        help="write error-free concentrations (for checks, not analysis)")
    parser.add_argument("--force", action="store_true",
                        help="allow a non-default variant to overwrite the shipped files")
    args = parser.parse_args(argv)
    default_out = Path(args.out).resolve() == Path(__file__).resolve().parent
    variant = (args.seed != DEFAULT_SEED or args.no_residual_error
               or args.size_exponent_cl != TRUE_PARAMETERS["CL_WT"]
               or args.size_exponent_v != TRUE_PARAMETERS["V_WT"])
    if default_out and variant and not args.force:
        parser.error("a non-default variant would overwrite the shipped files in "
                     f"{args.out}; pass --out DIR (or --force)")
    records, truth = generate_trial(args.seed, cl_size_exponent=args.size_exponent_cl,
                                    v_size_exponent=args.size_exponent_v,
                                    residual_error=not args.no_residual_error)
    data_path, truth_path = write_trial(records, truth, args.out)
    obs = records[records["EVID"] == 0]
    print(f"wrote {data_path} ({len(records)} records, {records['ID'].nunique()} patients, "
          f"{int((obs['MDV'] == 0).sum())} observations, "
          f"{int(((obs['MDV'] == 0) & (obs['BLQ'] == 1)).sum())} BLQ)")
    print(f"wrote {truth_path}")
    summary = truth.groupby("COHORT").agg(
        dose=("MGKG", "first"), basis=("BASIS", "first"), n=("ID", "size"),
        ae=("AE_OCULAR", "sum"), expected=("P_AE_OCULAR", "sum"))
    print(summary.to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
