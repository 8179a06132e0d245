"""``poppk forecast FIT_DIR --patient "WT=82 HT=165 SEX=F ALB=3.6" ... --out DIR``.

A thin layer over :func:`~poppk.forecast.predict.forecast`,
:func:`~poppk.forecast.recommend.recommend_dose` and
:func:`~poppk.forecast.page.write_forecast`; registered in :mod:`poppk.cli`
by :func:`add_parser`.  Importing this module is light (no PyMC).
"""

from __future__ import annotations

import argparse
from typing import Any

from poppk import defaults

__all__ = ["add_parser", "run", "forecast_one", "forecast_patients", "split_schedules"]

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

Schedules (--schedule, --schedules): 'q3w', 'q4w', 'q2w', 'qw', 'q14d', 'd1,8 q3w', 'd1,8,15 q4w'
(':n' cycles, ';loading=2'), or 'every:14:8', 'times:0,7/21'.  With --schedules the dose is searched
on each; her current schedule is kept when a dose on it meets the target (unless another meets it with a
probability at least 0.10 higher), else the best other is proposed.  auc_ss is compared per current
cycle (the same average concentration); auc_c1 cannot be compared across cycle lengths (refused).
"""


def split_schedules(values: Any) -> list[str]:
    """Schedules from ``--schedules`` values (repeatable, each may hold several joined by ``;``).

    A piece ``loading=...`` after a ``;`` belongs to the schedule before it (``"q3w;loading=2;q4w"`` is two
    schedules, the first with a loading dose), as in :func:`~poppk.simulate.schedule.parse_schedule`.

    >>> split_schedules(["q3w; q4w", "d1,8 q3w;loading=1.5"])
    ['q3w', 'q4w', 'd1,8 q3w;loading=1.5']
    """
    if values is None:
        return []
    out: list[str] = []
    for v in [values] if isinstance(values, str) else values:
        for piece in (x.strip() for x in str(v).split(";")):
            if not piece:
                continue
            if piece.replace(" ", "").lower().startswith("load") and out:
                out[-1] = f"{out[-1]};{piece}"
            else:
                out.append(piece)
    return out


def forecast_one(fit: Any, patient: Any, doses: Any, observations: Any, out: Any, *, target: str | None = None,
                 label: str = "6 mg/kg AIBW", schedule: Any = None, schedules: Any = None, step: float = 10.0,
                 max_dose: float = 2000.0, draws: int = 200, seed: int = 0,
                 time_unit: str | None = None) -> tuple[Any, Any, list[Any]]:
    """Forecast (and with ``target`` recommend for) one patient and write her page to ``out``;
    return (forecast, recommendation or None, paths written)."""
    from poppk.errors import ConfigError
    from poppk.forecast.page import write_forecast
    from poppk.forecast.predict import forecast
    from poppk.forecast.recommend import recommend_dose

    if doses is None:
        if observations is not None:
            raise ConfigError("observations need the doses she had (--doses)")
        if target is None:
            raise ConfigError("give her doses (--doses) or a target (--target: a dose to recommend)")
        doses = [{"TIME": 0.0, "AMT": 1.0}]
    fc = forecast(fit, patient, doses, observations, n_draws=draws, seed=seed, time_unit=time_unit)
    rec = None
    if target is not None:
        rec = recommend_dose(fc, target=target, schedule=schedule, schedules=split_schedules(schedules) or None,
                             label=label, step=step, max_dose=max_dose)
    return fc, rec, write_forecast(fc, out, rec)


def _rows(table: Any, sid: Any) -> Any:
    if table is None:
        return None
    if "ID" not in table.columns:
        from poppk.errors import ConfigError

        raise ConfigError("with a table of patients, the doses and observations tables need an ID column")
    rows = table.loc[table["ID"].astype(str) == str(sid)].drop(columns="ID")
    return rows if len(rows) else None


def forecast_patients(fit: Any, patients: Any, out: Any, *, doses: Any = None, observations: Any = None,
                      echo: Any = print, **options: Any) -> Any:
    """A table of patients: one page per patient (``out/<ID>/``) and the summary ``out/patients.csv``.

    The one implementation of ``poppk forecast --patients`` and of ``poppk run``'s ``[forecast]`` section.

    Parameters
    ----------
    fit
        A fit (or a ``(spec, posterior)`` pair).
    patients
        CSV path, DataFrame or list of mappings: ``ID`` and the covariates, one row per patient.
    out
        Output directory.
    doses, observations
        The same forms, with an ``ID`` column (rows of a patient not listed are ignored).
    echo
        Where a failed patient's line goes.
    **options
        Of :func:`forecast_one` (``target``, ``label``, ``schedule``, ``schedules``, ``step``,
        ``max_dose``, ``draws``, ``seed``, ``time_unit``).

    Returns
    -------
    pandas.DataFrame
        The summary (as written): per patient the number of observations, Pareto k̂, ESS and, with a
        target, the dose, its schedule and probability beside the label's; ``error`` for a patient whose
        input was bad (her page is not written; the others are).
    """
    from pathlib import Path

    import pandas as pd

    from poppk.errors import ConfigError, PopPKError
    from poppk.forecast.patient import read_table
    from poppk.io import atomic_write_text

    name = patients if isinstance(patients, (str, Path)) else "patients"
    table = read_table(patients, "patients")
    if "ID" not in table.columns or table["ID"].duplicated().any() or not len(table):
        raise ConfigError(f"{name}: the patients table needs an ID column with one row per patient")
    doses = read_table(doses, "doses") if doses is not None else None
    obs = read_table(observations, "observations") if observations is not None else None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for _, row in table.iterrows():
        sid = row["ID"]
        cov = {k: v for k, v in row.drop(labels="ID").items() if not (isinstance(v, float) and pd.isna(v))}
        entry: dict[str, Any] = {"ID": sid}
        try:
            fc, rec, _ = forecast_one(fit, cov, _rows(doses, sid), _rows(obs, sid), out / str(sid), **options)
            entry.update({"n_observations": fc.record.n_obs, "pareto_k": fc.posterior.pareto_k,
                          "ess": fc.posterior.ess})
            if rec is not None:
                entry.update({"dose_mg": rec.dose_mg, "schedule": rec.schedule,
                              "schedule_changed": rec.schedule_changed, "probability": rec.probability,
                              "label_dose_mg": rec.label_dose_mg, "label_probability": rec.label_probability})
        except PopPKError as err:
            entry["error"] = str(err)
            echo(f"patient {sid}: error: {err}")
        rows.append(entry)
    summary = pd.DataFrame(rows)
    atomic_write_text(out / "patients.csv", summary.to_csv(index=False))
    return summary


def _options(args: argparse.Namespace) -> dict[str, Any]:
    return dict(target=args.target, label=args.label, schedule=args.schedule,
                schedules=getattr(args, "schedules", None), step=args.step, max_dose=args.max_dose,
                draws=args.draws, seed=args.seed, time_unit=args.time_unit)


def _batch(fit: Any, args: argparse.Namespace) -> int:
    """``--patients FILE``: one page per patient (DIR/<ID>/) and DIR/patients.csv."""
    from pathlib import Path

    summary = forecast_patients(fit, args.patients, args.out, doses=args.doses, observations=args.observations,
                                **_options(args))
    failed = int(summary["error"].notna().sum()) if "error" in summary else 0
    print(f"{len(summary) - failed} of {len(summary)} patients forecast; summary in {Path(args.out) / 'patients.csv'}")
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
    fc, rec, paths = forecast_one(fit, args.patient, args.doses, args.observations, args.out, **_options(args))
    k = fc.posterior.pareto_k
    print(f"forecast: {fc.record.n_obs} observation(s), {len(fc.record.doses)} dose(s); "
          f"Pareto k {k:.2f}, ESS {fc.posterior.ess:.0f}; {fc.elapsed_s:.2f} s" if fc.record.n_obs else
          f"forecast: no observations (population prediction for her covariates); {fc.elapsed_s:.2f} s")
    if rec is not None:
        print(f"recommended dose: {rec.dose_mg:g} mg on {rec.schedule} (P(target met) = {rec.probability:.2f}); "
              f"label {rec.label}: {rec.label_dose_mg:.0f} mg (P = {rec.label_probability:.2f})")
        if rec.schedules is not None and len(rec.schedules) > 2:
            print(rec.schedules[["rule", "schedule", "dose_mg", "mg_per_week", "probability", "chosen"]]
                  .round(3).to_string(index=False))
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
                   help="her current regimen, e.g. q3w or 'd1,8 q3w' (default: one dose per cycle of her doses)")
    p.add_argument("--schedules", metavar="'q4w;d1,8 q3w'", action="append", default=None,
                   help="other regimens to consider, separated by ';' (repeatable): her current one is kept "
                   "when a dose on it meets the target, unless another meets it with a probability >= 0.10 higher")
    p.add_argument("--step", type=float, default=10.0, metavar="MG", help="dose step or vial size (mg)")
    p.add_argument("--max-dose", type=float, default=2000.0, metavar="MG", help="largest dose considered (mg)")
    p.add_argument("--time-unit", default=None, metavar="UNIT", help="unit of the times given (default: the model's)")
    p.add_argument("--draws", type=int, default=defaults.FORECAST_DRAWS, metavar="N", help="population draws used")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, metavar="DIR", help="directory to write forecast.html and forecast.json")
    p.set_defaults(func=run)
