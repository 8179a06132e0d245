"""``poppk forecast FIT_DIR --patient "WT=82 HT=165 SEX=F ALB=3.6" ... --out DIR``.

A thin layer over :func:`~poppk.forecast.predict.forecast`,
:func:`~poppk.forecast.recommend.recommend_dose` and
:func:`~poppk.forecast.page.write_forecast`; registered in :mod:`poppk.cli`
by :func:`add_parser`.  Importing this module is light (no PyMC).
"""

from __future__ import annotations

import argparse

__all__ = ["add_parser", "run"]

DESCRIPTION = """\
Forecast one new patient from a saved fit: her individual posterior (from her covariates, the doses
she had and any measured concentrations, BLQ samples included), her concentration curve and exposure
beside the population's, and -- with --target -- the dose that meets an exposure target beside the
label's rule.  Writes DIR/forecast.html (one self-contained page) and DIR/forecast.json.

Doses file (CSV): TIME, AMT and optionally RATE or DUR, ADDL, II, SS, CMT.
Observations file (CSV): TIME, DV, and BLQ=1 with LLOQ for a sample below the limit of quantification.
Times in the model's time unit (or --time-unit), amounts and concentrations in the model's units.

Targets: 'auc_ss in [4000, 8000]', 'P(cmax_c1 > 250) <= 0.1', 'P(ctrough_ss < 5) <= 0.2',
'auc_ss = 6000', several joined by 'and'.
"""


def run(args: argparse.Namespace) -> int:
    """Run ``poppk forecast``; return the exit code."""
    from poppk.forecast.page import write_forecast
    from poppk.forecast.predict import forecast
    from poppk.forecast.recommend import recommend_dose
    from poppk.model import load_fit

    fit = load_fit(args.fit_dir)
    doses = args.doses
    if doses is None:
        from poppk.errors import ConfigError

        if args.observations is not None:
            raise ConfigError("--observations needs --doses (the doses she had)")
        if args.target is None:
            raise ConfigError("give --doses (her doses) or --target (a dose to recommend)")
        doses = [{"TIME": 0.0, "AMT": 1.0}]
    fc = forecast(fit, args.patient, doses, args.observations, n_draws=args.draws, seed=args.seed,
                  time_unit=args.time_unit)
    rec = None
    if args.target is not None:
        rec = recommend_dose(fc, target=args.target, schedule=args.schedule, label=args.label, step=args.step,
                             max_dose=args.max_dose)
    paths = write_forecast(fc, args.out, rec)
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
    p.add_argument("--patient", required=True, metavar="'WT=82 HT=165 SEX=F ALB=3.6'",
                   help="her covariates (every covariate the model uses; WT kg, HT cm, SEX F/M)")
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
