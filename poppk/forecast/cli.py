"""``poppk forecast FIT_DIR --patient "WT=82 HT=165 SEX=F ALB=3.6" ... --out DIR``.

A thin layer over :func:`~poppk.forecast.predict.forecast`,
:func:`~poppk.forecast.recommend.recommend_dose` and
:func:`~poppk.forecast.page.write_forecast`; registered in :mod:`poppk.cli`
by :func:`add_parser`.  Importing this module is light (no PyMC).
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_parser", "run"]

DESCRIPTION = """\
Forecast one new patient from a saved fit: her individual posterior (from her covariates, the doses
she had and any measured concentrations, BLQ samples included), her concentration curve and exposure
beside the population's, and -- with --target -- the dose that meets an exposure target beside the
label's rule.  Writes DIR/forecast.html (one self-contained page) and DIR/forecast.json.

Doses file (CSV): TIME, AMT and optionally RATE or DUR, ADDL, II, SS, CMT.
Observations file (CSV): TIME, DV, and BLQ=1 with LLOQ for a sample below the limit of quantification.
Times in the model's time unit (or --time-unit), amounts and concentrations in the model's units.

A table of patients (--patients FILE, one row per patient with ID and covariates) writes one page per
patient under DIR/<ID>/ and a summary DIR/patients.csv; a patient whose input is bad is listed with
the error (exit code 2), the others are still written.

Targets: 'auc_ss in [4000, 8000]', 'P(cmax_c1 > 250) <= 0.1', 'P(ctrough_ss < 5) <= 0.2',
'auc_ss = 6000', several joined by 'and'.
"""


def _one(fit: Any, args: argparse.Namespace, patient: Any, doses: Any, observations: Any,
         out: Any) -> tuple[Any, Any, list[Any]]:
    """Forecast (and recommend for) one patient and write her page; return (forecast, recommendation)."""
    from poppk.errors import ConfigError
    from poppk.forecast.page import write_forecast
    from poppk.forecast.predict import forecast
    from poppk.forecast.recommend import recommend_dose

    if doses is None:
        if observations is not None:
            raise ConfigError("--observations needs --doses (the doses she had)")
        if args.target is None:
            raise ConfigError("give --doses (her doses) or --target (a dose to recommend)")
        doses = [{"TIME": 0.0, "AMT": 1.0}]
    fc = forecast(fit, patient, doses, observations, n_draws=args.draws, seed=args.seed, time_unit=args.time_unit)
    rec = None
    if args.target is not None:
        rec = recommend_dose(fc, target=args.target, schedule=args.schedule, label=args.label, step=args.step,
                             max_dose=args.max_dose)
    return fc, rec, write_forecast(fc, out, rec)


def _rows(table: Any, sid: Any) -> Any:
    if table is None:
        return None
    if "ID" not in table.columns:
        from poppk.errors import ConfigError

        raise ConfigError("with --patients, the doses and observations files need an ID column")
    rows = table.loc[table["ID"].astype(str) == str(sid)].drop(columns="ID")
    return rows if len(rows) else None


def _batch(fit: Any, args: argparse.Namespace) -> int:
    """``--patients FILE``: one page per patient (DIR/<ID>/) and DIR/patients.csv."""
    from pathlib import Path

    import pandas as pd

    from poppk.errors import ConfigError, PopPKError
    from poppk.forecast.patient import read_table
    from poppk.io import atomic_write_text

    table = read_table(args.patients, "patients")
    if "ID" not in table.columns or table["ID"].duplicated().any():
        raise ConfigError(f"{args.patients}: the patients table needs an ID column with one row per patient")
    doses = read_table(args.doses, "doses") if args.doses else None
    obs = read_table(args.observations, "observations") if args.observations else None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, failed = [], 0
    for _, row in table.iterrows():
        sid = row["ID"]
        cov = {k: v for k, v in row.drop(labels="ID").items() if not (isinstance(v, float) and pd.isna(v))}
        entry = {"ID": sid}
        try:
            fc, rec, _ = _one(fit, args, cov, _rows(doses, sid), _rows(obs, sid), out / str(sid))
            entry.update({"n_observations": fc.record.n_obs, "pareto_k": fc.posterior.pareto_k,
                          "ess": fc.posterior.ess})
            if rec is not None:
                entry.update({"dose_mg": rec.dose_mg, "probability": rec.probability,
                              "label_dose_mg": rec.label_dose_mg, "label_probability": rec.label_probability})
        except PopPKError as err:
            failed += 1
            entry["error"] = str(err)
            print(f"patient {sid}: error: {err}")
        rows.append(entry)
    atomic_write_text(out / "patients.csv", pd.DataFrame(rows).to_csv(index=False))
    print(f"{len(rows) - failed} of {len(rows)} patients forecast; summary in {out / 'patients.csv'}")
    return 2 if failed else 0


def run(args: argparse.Namespace) -> int:
    """Run ``poppk forecast``; return the exit code."""
    from poppk.errors import ConfigError
    from poppk.model import load_fit

    if (args.patient is None) == (args.patients is None):
        raise ConfigError("give one of --patient 'WT=.. HT=.. SEX=..' or --patients FILE")
    fit = load_fit(args.fit_dir)
    if args.patients is not None:
        return _batch(fit, args)
    fc, rec, paths = _one(fit, args, args.patient, args.doses, args.observations, args.out)
    k = fc.posterior.pareto_k
    print(f"forecast: {fc.record.n_obs} observation(s), {len(fc.record.doses)} dose(s); "
          f"Pareto k {k:.2f}, ESS {fc.posterior.ess:.0f}; {fc.elapsed_s:.2f} s" if fc.record.n_obs else
          f"forecast: no observations (population prediction for her covariates); {fc.elapsed_s:.2f} s")
    if rec is not None:
        print(f"recommended dose: {rec.dose_mg:g} mg (P(target met) = {rec.probability:.2f}); "
              f"label {rec.label}: {rec.label_dose_mg:.0f} mg (P = {rec.label_probability:.2f})")
    for p in paths:
        print(p)
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``poppk forecast``."""
    p = subparsers.add_parser("forecast", help="forecast one patient and recommend her dose (precision dosing)",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("fit_dir", metavar="FIT_DIR", help="a saved fit (poppk fit --out)")
    p.add_argument("--patient", default=None, metavar="'WT=82 HT=165 SEX=F ALB=3.6'",
                   help="her covariates (every covariate the model uses; WT kg, HT cm, SEX F/M)")
    p.add_argument("--patients", default=None, metavar="FILE",
                   help="a table of patients (CSV: ID and covariates); the doses and observations files then "
                   "have an ID column; writes DIR/<ID>/ per patient and DIR/patients.csv")
    p.add_argument("--doses", metavar="FILE", default=None, help="her doses, given and planned (CSV)")
    p.add_argument("--observations", metavar="FILE", default=None, help="her measured concentrations (CSV)")
    p.add_argument("--target", metavar="TEXT", default=None, help="exposure target of the recommended dose")
    p.add_argument("--label", metavar="RULE", default="6 mg/kg AIBW", help="the label's dosing rule, for comparison")
    p.add_argument("--schedule", metavar="TEXT", default=None,
                   help="regimen of the recommended dose, e.g. q3w (default: one dose per cycle of her doses)")
    p.add_argument("--step", type=float, default=10.0, metavar="MG", help="dose step or vial size (mg)")
    p.add_argument("--max-dose", type=float, default=2000.0, metavar="MG", help="largest dose considered (mg)")
    p.add_argument("--time-unit", default=None, metavar="UNIT", help="unit of the times given (default: the model's)")
    p.add_argument("--draws", type=int, default=200, metavar="N", help="population draws used")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, metavar="DIR", help="directory to write forecast.html and forecast.json")
    p.set_defaults(func=run)
