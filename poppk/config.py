"""An analysis in one TOML file: ``poppk run analysis.toml``.

Every section mirrors a CLI command; every key is the twin of an option::

    [data]                      # poppk data check
    path = "trial.csv"          # relative to this file
    columns = { SUBJ = "ID" }   # --map SUBJ=ID
    female_code = "1"           # --female-code (also for a [simulate] population table)
    time_unit = "day"           # --time-unit: the unit of TIME (or [model] units = { time = "day" })
    dvid = 1                    # --dvid: with several analytes in DVID, the one to fit
    ibw_method = "label"        # devine | robinson | miller | hamwi | label
    aibw_factor = 0.4

    [model]                     # poppk fit --model (a ModelSpec, see ModelSpec.to_dict)
    structure = "2cmt"
    typical = { CL = 0.5, V1 = 3.0, Q = 0.5, V2 = 2.0 }
    iiv = ["CL", "V1"]
    error = "combined"

    [fit]                       # poppk fit
    descriptors = ["TBW", "AIBW", "ADJ"]   # one fit per size descriptor (--size); "ADJ": IBW + f·(TBW − IBW), f estimated
    size_parameters = ["CL", "V1", "Q", "V2"]   # default: every clearance and volume of the model
    size_fraction = { family = "beta", alpha = 1.0, beta = 1.0 }   # prior of f in the ADJ model (default uniform)
    loo_max_refits = 5          # per model: subjects with Pareto k > 0.7 refitted exactly (0: flag them only)
    draws = 1000
    tune = 500
    chains = 4
    seed = 1
    backend = "numba"           # what compiles the model: "numba" (once per structure, reused by later fits)
                                # or "jax" (XLA: seconds to compile, slower sampling; needs poppk[jax])
    reuse = true                # a fit saved in <out>/fits/<name> with the same model, data and settings is
                                # loaded, not refitted (false: always refit)
    workers = 0                 # >0: the candidate fits run at once on a dask LocalCluster of that many
                                # single-core processes (scheduler_address = "tcp://host:8786": a cluster elsewhere)

    [checks]                    # poppk check
    enabled = true
    draws = 300
    formats = ["png"]

    [simulate]                  # poppk simulate
    fit = "averaged"            # every fit, combined by LOO stacking weights (default with several fits), or one fit's name
    optimal_target = "5 mg/kg TBW"  # f*: the dose level at f* that matches this strategy's median exposure
    model_weights = "stacking"  # how the fits are weighted: stacking | BB-pseudo-BMA | pseudo-BMA (LOO)
    strategies = ["5 mg/kg", "5 mg/kg AIBW", "6 mg/kg AIBW"]
    schedule = "q3w:6"
    infusion = "1 h"
    population = "resample:5000"
    draws = 200
    reference = "5 mg/kg TBW"
    metrics = ["cmax_c1", "auc_c1", "auc_ss"]
    exceed = { cmax_c1 = 150.0 }
    workers = 0                 # >0: run on that many threads (parallel = "processes": a dask LocalCluster)
    analyte = "DM4"             # several analytes: whose exposure is simulated (default: the parent, the dosed drug)

    [report]                    # poppk report
    title = "Covariate report"
    dosing = ["flat", "per_kg"] # --per-kg: exposure ratios under mg/kg dosing too
    formats = ["html", "csv", "json"]
    subject_level = true        # false: no figure of a subject's own covariate values (a report to share)

    [forecast]                  # poppk forecast --patients: one page per patient, <out>/forecast/<ID>/
    patients = "patients.csv"   # ID and covariates, one row per patient (relative to this file), or inline:
                                # [{ ID = "A", WT = 82, HT = 165, SEX = "F", ALB = 3.6 }, ...]
    doses = "doses.csv"         # ID, TIME, AMT (and DUR, ADDL, II...): given and planned, in the data's units
    observations = "obs.csv"    # ID, TIME, DV (and BLQ, LLOQ): her measured concentrations (optional)
    target = "auc_ss in [4000, 8000] and P(cmax_c1 > 250) <= 0.1"   # optional: recommend a dose
    label = "6 mg/kg AIBW"      # the label's rule, beside the recommendation
    schedule = "q3w"            # her current regimen (default: one dose per cycle of her doses)
    schedules = ["q4w", "d1,8 q3w"]   # other regimens considered (recommend_dose: current kept unless ...)
    model = "AIBW"              # the fit forecast from (default: the report's -- the largest weight)
    step = 10                   # vial size (mg)
    max_dose = 2000             # cap (mg)
    draws = 200                 # population draws per forecast
    seed = 0

    [output]
    dir = "out"

A wrong key or value raises :class:`~poppk.errors.ConfigError` naming the
key (``simulate.draws``) and what would be valid.
"""

from __future__ import annotations

import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from poppk import defaults
from poppk.errors import ConfigError, PopPKError

__all__ = ["AnalysisConfig", "load_config", "parse_config", "read_data", "run_analysis", "candidate_spec"]

_SCHEMA: dict[str, dict[str, type | tuple[type, ...]]] = {
    "data": {"path": str, "columns": dict, "female_code": (str, int, float), "ibw_method": str,
             "aibw_factor": (int, float), "drop": list, "time_unit": str, "dvid": (str, int, float, list)},
    "model": {},  # validated by ModelSpec.from_dict
    "fit": {"descriptors": list, "size_parameters": list, "draws": int, "tune": int, "chains": int,
            "seed": int, "sampler": str, "backend": str, "size_fraction": (dict, int, float), "loo_max_refits": int,
            "allow_unconverged": bool, "reuse": bool, "workers": int, "scheduler_address": str},
    "checks": {"enabled": bool, "draws": int, "formats": list, "stratify": str},
    "simulate": {"enabled": bool, "fit": str, "strategies": list, "schedule": str, "infusion": str,
                 "population": str, "draws": int, "seed": int, "reference": str, "metrics": list,
                 "exceed": dict, "threshold": (int, float), "workers": int,
                 "parallel": str, "scheduler_address": str, "optimal_target": str, "model_weights": str,
                 "analyte": str},
    "report": {"enabled": bool, "title": str, "formats": list, "dosing": list, "subject_level": bool},
    "forecast": {"enabled": bool, "model": str, "patients": (str, list), "doses": (str, list),
                 "observations": (str, list), "target": str, "label": str, "schedule": str, "schedules": list,
                 "step": (int, float), "max_dose": (int, float), "draws": int, "seed": int},
    "output": {"dir": str},
}
_REQUIRED = {"data": ("path",), "model": ("structure", "typical")}


@dataclass(frozen=True)
class AnalysisConfig:
    """A validated analysis configuration (see module docstring)."""

    sections: Mapping[str, Mapping[str, Any]]
    base_dir: Path = field(default=Path("."))

    def get(self, section: str, key: str, default: Any = None) -> Any:
        """Value of ``section.key`` or ``default``."""
        return self.sections.get(section, {}).get(key, default)

    def resolve(self, value: Any) -> Any:
        """A path given in the file, relative to the TOML file's folder (other values unchanged)."""
        if not isinstance(value, str):
            return value
        p = Path(value)
        return p if p.is_absolute() else (self.base_dir / p)

    @property
    def data_path(self) -> Path:
        """The dataset path, resolved relative to the TOML file."""
        p = Path(self.get("data", "path"))
        return p if p.is_absolute() else (self.base_dir / p)


def parse_config(doc: Mapping[str, Any], base_dir: str | Path = ".") -> AnalysisConfig:
    """Validate a parsed TOML document.

    Raises
    ------
    ConfigError
        Naming the key and what would be valid.
    """
    for section, body in doc.items():
        if section not in _SCHEMA:
            raise ConfigError(f"unknown section [{section}]; valid sections: {', '.join(_SCHEMA)}")
        if not isinstance(body, Mapping):
            raise ConfigError(f"[{section}] must be a table")
        if section == "model":
            continue
        for key, value in body.items():
            if key not in _SCHEMA[section]:
                raise ConfigError(
                    f"unknown key {section}.{key}; valid keys of [{section}]: {', '.join(_SCHEMA[section])}"
                )
            want = _SCHEMA[section][key]
            if isinstance(value, bool) and want is not bool and bool not in (want if isinstance(want, tuple) else (want,)):
                raise ConfigError(f"{section}.{key} = {value!r}: expected {_typename(want)}")
            if not isinstance(value, want):
                raise ConfigError(f"{section}.{key} = {value!r}: expected {_typename(want)}")
            if want is int and value < (0 if key in ("seed", "workers", "loo_max_refits") else 1):
                raise ConfigError(f"{section}.{key} = {value!r}: expected a "
                                  f"{'whole number >= 0' if key in ('seed', 'workers', 'loo_max_refits') else 'positive integer'}")
    backend = doc.get("fit", {}).get("backend", "numba")
    if backend not in ("numba", "jax"):
        raise ConfigError(f"fit.backend = {backend!r}: use 'numba' (compile a structure once, reuse it) or 'jax' "
                          "(XLA: a first compile of seconds, sampling slower)")
    if backend == "jax" and doc.get("fit", {}).get("sampler", "nutpie") != "nutpie":
        raise ConfigError("fit.backend = 'jax' compiles for nutpie: remove fit.sampler or set it to 'nutpie'")
    weights = doc.get("simulate", {}).get("model_weights", "stacking")
    if weights not in ("stacking", "BB-pseudo-BMA", "pseudo-BMA"):
        raise ConfigError(f"simulate.model_weights = {weights!r}: use 'stacking', 'BB-pseudo-BMA' or 'pseudo-BMA'")
    for section, keys in _REQUIRED.items():
        for key in keys:
            if key not in doc.get(section, {}):
                raise ConfigError(f"missing {section}.{key} (required)")
    from poppk.model import ModelSpec

    try:
        spec = ModelSpec.from_dict(doc["model"])
    except PopPKError as err:
        raise ConfigError(f"[model]: {err}") from None
    _check_time_unit(spec.time_unit, doc.get("data", {}).get("time_unit"))
    config = AnalysisConfig(sections={k: dict(v) for k, v in doc.items()}, base_dir=Path(base_dir))
    if "forecast" in doc:
        _check_forecast(config)
    return config


def _check_forecast(config: AnalysisConfig) -> None:
    """The ``[forecast]`` section: its tables readable with an ID column, its target, label and schedules
    readable, its model one of the fits -- each error naming the key."""
    from poppk.forecast.patient import read_table
    from poppk.forecast.recommend import parse_regimen
    from poppk.forecast.target import parse_target
    from poppk.simulate.strategies import parse_strategy

    f = config.sections["forecast"]
    if "patients" not in f:
        raise ConfigError("missing forecast.patients (required in [forecast]): a CSV file of ID and covariates, "
                          "or an array of tables [{ ID = \"A\", WT = 82, HT = 165, SEX = \"F\" }, ...]")
    for key in ("patients", "doses", "observations"):
        if key not in f:
            continue
        value = f[key]
        if isinstance(value, str):
            path = config.resolve(value)
            if not path.is_file():
                raise ConfigError(f"forecast.{key} = {value!r}: no such file {path} (a path is relative to the "
                                  "configuration file's folder)")
        else:
            if not value:
                raise ConfigError(f"forecast.{key}: an empty array")
            for i, row in enumerate(value):
                if not isinstance(row, dict):
                    raise ConfigError(f"forecast.{key}[{i}] = {row!r}: expected a table such as "
                                      "{ ID = \"A\", WT = 82, ... }")
        try:
            table = read_table(config.resolve(value), f"forecast.{key}")
        except ConfigError as err:
            raise ConfigError(str(err)) from None
        if "ID" not in table.columns:
            raise ConfigError(f"forecast.{key}: needs an ID column (the patient of each row); "
                              f"columns: {', '.join(map(str, table.columns))}")
        if key == "patients" and table["ID"].duplicated().any():
            dup = table.loc[table["ID"].duplicated(), "ID"].tolist()
            raise ConfigError(f"forecast.patients: one row per patient; ID repeated: {dup}")
    if "observations" in f and "doses" not in f:
        raise ConfigError("forecast.observations needs forecast.doses (the doses before her samples)")
    if "doses" not in f and "target" not in f:
        raise ConfigError("[forecast] needs doses (her doses) or target (a dose to recommend), or both")
    checks = [("target", parse_target), ("label", parse_strategy), ("schedule", parse_regimen)]
    for key, parse in checks:
        if key in f:
            try:
                parse(f[key])
            except PopPKError as err:
                raise ConfigError(f"forecast.{key} = {f[key]!r}: {err}") from None
    for i, text in enumerate(f.get("schedules", [])):
        try:
            parse_regimen(text)
        except PopPKError as err:
            raise ConfigError(f"forecast.schedules[{i}] = {text!r}: {err}") from None
    for key in ("step", "max_dose"):
        if key in f and not f[key] > 0:
            raise ConfigError(f"forecast.{key} = {f[key]!r}: expected a number > 0 (mg)")
    if f.get("max_dose", 2000.0) < f.get("step", 10.0):
        raise ConfigError(f"forecast.max_dose = {f.get('max_dose', 2000.0)!r}: must be at least forecast.step "
                          f"({f.get('step', 10.0)!r})")
    if "model" in f:
        names = [str(d) for d in (config.get("fit", "descriptors") or ["model"])]
        if f["model"] not in names:
            raise ConfigError(f"forecast.model = {f['model']!r}: not one of the fitted models {names} "
                              "(fit.descriptors; 'model' with none)")


def _check_time_unit(model_unit: str | None, data_unit: str | None) -> None:
    """The time unit must be given once (model or data), known, and the same if given twice."""
    from poppk.data.time_unit import VALID_TIME_UNITS, canonical_time_unit

    for key, unit in (("model.units.time", model_unit), ("data.time_unit", data_unit)):
        if unit is not None and canonical_time_unit(unit) is None:
            raise ConfigError(f"{key} = {unit!r}: not a time unit; valid: {VALID_TIME_UNITS}")
    if model_unit is None and data_unit is None:
        raise ConfigError(
            "the unit of TIME is not given: add time_unit = \"day\" (or \"h\") to [data], "
            "or units = { time = \"day\" } to [model]; poppk does not assume hours"
        )
    if model_unit is not None and data_unit is not None and \
            canonical_time_unit(model_unit) != canonical_time_unit(data_unit):
        raise ConfigError(f"model.units.time = {model_unit!r} and data.time_unit = {data_unit!r} differ; "
                          "give the unit once (or the same unit twice)")


def _typename(t: Any) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "an array",
             dict: "a table"}
    if isinstance(t, tuple):
        return " or ".join(names.get(x, x.__name__) for x in t)
    return names.get(t, t.__name__)


def load_config(path: str | Path) -> AnalysisConfig:
    """Read and validate an analysis TOML file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"configuration file {path} does not exist")
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    return parse_config(doc, base_dir=path.parent)


def read_data(config: AnalysisConfig) -> Any:
    """The dataset as the analysis reads it: ``[data]`` options, then the size descriptors.

    Parameters
    ----------
    config
        From :func:`load_config`.

    Returns
    -------
    PKData
        With TBW, IBW, AIBW, LBW, BSA and BMI when WT, HT and SEX are present.
    """
    from poppk.data import read_nonmem

    data = read_nonmem(config.data_path, columns=config.get("data", "columns"), drop=config.get("data", "drop", ()),
                       sex_female_code=config.get("data", "female_code"), dvid=config.get("data", "dvid"),
                       time_unit=config.get("data", "time_unit"))
    if {"WT", "HT", "SEX"} <= set(data.covariate_names):
        data = data.with_size_descriptors(ibw_method=config.get("data", "ibw_method", "devine"),
                                          aibw_factor=config.get("data", "aibw_factor", defaults.AIBW_FACTOR),
                                          female_code=config.get("data", "female_code"))
    return data


def fit_options(config: AnalysisConfig, *, quick: bool = False) -> dict[str, Any]:
    """The sampler settings of the ``[fit]`` section, with :mod:`poppk.defaults` where it is silent.

    ``quick`` caps them for a smoke test (2 chains x (150 + 150)).
    """
    draws, tune, chains = (config.get("fit", "draws", defaults.FIT_DRAWS), config.get("fit", "tune", defaults.FIT_TUNE),
                           config.get("fit", "chains", defaults.FIT_CHAINS))
    if quick:
        draws, tune, chains = min(draws, 150), min(tune, 150), min(chains, 2)
    return dict(draws=draws, tune=tune, chains=chains, seed=config.get("fit", "seed", 0),
                sampler=config.get("fit", "sampler", "nutpie"), backend=config.get("fit", "backend", "numba"),
                progress=False)


def run_analysis(config: AnalysisConfig, *, out: str | Path | None = None, quick: bool = False,
                 echo: Any = None) -> int:
    """Run every configured step; write results under the output directory.

    Parameters
    ----------
    config
        From :func:`load_config`.
    out
        Output directory (default ``[output].dir`` or ``out``).
    quick
        Few draws everywhere (a smoke test, not for inference).
    echo
        Where progress lines go (default :func:`poppk.progress.echo`: logging,
        which ``poppk run`` shows on stderr).
    """
    from poppk.data import format_summary, summarize
    from poppk.model import ModelSpec, fit
    from poppk.model.reuse import saved_fingerprint
    from poppk.progress import echo as log_echo
    from poppk.progress import error as log_error

    alarm = echo or log_error  # the lines that explain a non-zero exit
    echo = echo or log_echo

    out = Path(out or config.get("output", "dir", "out"))
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    echo(f"== 1. data: {config.data_path}")
    data = read_data(config)
    echo(format_summary(summarize(data)))

    base = ModelSpec.from_dict(config.sections["model"])
    descriptors = config.get("fit", "descriptors") or [None]
    size_params = size_parameters(config)
    reuse = config.get("fit", "reuse", True)
    workers, address = config.get("fit", "workers", 0), config.get("fit", "scheduler_address")
    options = fit_options(config, quick=quick)
    specs = {d or "model": candidate_spec(base, d, size_params, config.get("fit", "size_fraction")) for d in descriptors}
    fits: dict[str, Any] = {}
    if (workers or address) and len(specs) > 1:
        fits = _fit_on_cluster(specs, data, options, out, reuse=reuse, workers=workers, address=address, echo=echo)
    for name, spec in specs.items():
        if name in fits:
            continue
        echo(f"\n== 2. fit '{name}': {options['chains']} chains x ({options['tune']} warm-up + {options['draws']} draws)")
        t0 = time.perf_counter()
        where = out / "fits" / name
        before = saved_fingerprint(where) if reuse else None
        f = fit(spec, data, **options, file=where if reuse else None)
        reused = before is not None and f.settings.get("fingerprint") == before
        _echo_fit(echo, f, f"   {time.perf_counter() - t0:.0f} s"
                           f"{' (the fit saved in ' + str(where) + ' matches: reused)' if reused else ''}")
        if not reuse:
            f.save(where)
        fits[name] = f

    comparison = None
    if config.get("checks", "enabled", True):
        from poppk.diagnostics import write_checks

        n_check = 100 if quick else config.get("checks", "draws", defaults.CHECK_DRAWS)
        for name, f in fits.items():
            echo(f"\n== 3. checks of '{name}' -> {out / 'checks' / name}")
            write_checks(f, out / "checks" / name, formats=tuple(config.get("checks", "formats", ["png"])),
                         n_draws=n_check, stratify=config.get("checks", "stratify"))
    if len(fits) > 1:
        from poppk.diagnostics import compare

        echo("\n== 4. comparison by leave-one-subject-out PSIS-LOO (random effects integrated out)")
        refits = 0 if quick else config.get("fit", "loo_max_refits", defaults.LOO_MAX_REFITS)
        comparison = compare(fits, method=config.get("simulate", "model_weights", "stacking"),
                             refit_high_k=refits > 0, max_refits=refits or None)
        if refits and int(comparison["n_refit"].sum()):
            echo(f"   {int(comparison['n_refit'].sum())} subject(s) with Pareto k > 0.7 refitted exactly without them")
        echo(comparison.round(2).to_string())

    from poppk.workflow import report_step, simulation_step

    step = simulation_step(config, fits, comparison, out, quick=quick, echo=echo)
    forecast_failed, summary = 0, None
    if config.sections.get("forecast") and config.get("forecast", "enabled", True):
        from poppk.workflow import forecast_step

        summary = forecast_step(config, fits, step, out, quick=quick, echo=echo)
        forecast_failed = int(summary["error"].notna().sum()) if "error" in summary else 0
    if config.get("report", "enabled", True):
        report_step(config, fits, comparison, step, out, echo=echo, forecasts=summary)
    echo(f"\ndone in {time.perf_counter() - t_start:.0f} s; open {(out / 'report.html').resolve()}")
    unconverged = {name: f.convergence() for name, f in fits.items() if not f.convergence().ok}
    if unconverged and not (quick or config.get("fit", "allow_unconverged", False)):
        from poppk.cli import EXIT_UNCONVERGED

        for name, rep in unconverged.items():
            alarm(f"error: fit '{name}' did not converge ({'; '.join(rep.problems)})")
        alarm(f"every output was written all the same; exit code {EXIT_UNCONVERGED}. Run longer ([fit] tune, draws) "
             "or set [fit] allow_unconverged = true (--allow-unconverged) to exit 0")
        return EXIT_UNCONVERGED
    if forecast_failed:
        from poppk.cli import EXIT_ERROR

        alarm(f"error: {forecast_failed} patient(s) of [forecast] could not be forecast (see "
              f"{out / 'forecast' / 'patients.csv'}, column error); every other output was written; exit code {EXIT_ERROR}")
        return EXIT_ERROR
    return 0


def _echo_fit(echo: Any, f: Any, head: str) -> Any:
    """``head``, the fit's convergence and its parameter table; returns the convergence report."""
    report = f.convergence()
    echo(f"{head}; {report.message()}")
    echo(f.summary()[["median", "lower", "upper", "rse", "r_hat", "ess_bulk"]].round(3).to_string())
    return report


def _fit_on_cluster(specs: Mapping[str, Any], data: Any, options: Mapping[str, Any], out: Path, *, reuse: bool,
                    workers: int, address: str | None, echo: Any) -> dict[str, Any]:
    """The candidate fits at once on a dask cluster (:func:`poppk.model.iter_fits`, reported
    as they finish).

    A local cluster's workers keep and reuse ``<out>/fits/<name>`` as a serial run
    would.  With a remote scheduler every candidate is fitted there and saved here
    (the workers' disks are not this one's; saved fits are not reused).
    """
    import warnings

    from poppk.errors import ConvergenceWarning, FitError
    from poppk.model.runner import FitJob, iter_fits

    fits: dict[str, Any] = {}
    where = Path(out).resolve()  # workers need not share this process's working directory
    jobs = [FitJob(name, spec, data, {**options, "file": where / "fits" / name if (reuse and not address) else None})
            for name, spec in specs.items()]
    where_run = f"the cluster at {address}" if address else f"{workers} local worker processes"
    echo(f"\n== 2. fits {', '.join(repr(j.key) for j in jobs)} at once on {where_run}")
    t0 = time.perf_counter()
    failed = []
    for outcome in iter_fits(jobs, workers=None if address else workers, address=address):  # as they finish
        if not outcome.ok:
            failed.append(f"{outcome.key!r}: {outcome.error}")
            echo(f"\n   '{outcome.key}' failed: {outcome.error}")
            continue
        f = outcome.fit
        if address or not reuse:
            f.save(where / "fits" / str(outcome.key))
        report = _echo_fit(echo, f, f"\n   '{outcome.key}': {outcome.seconds:.0f} s on {outcome.worker}")
        if not report.ok:  # the worker's own warning stays on the worker: say it here
            warnings.warn(f"fit '{outcome.key}': {report.message()}", ConvergenceWarning, stacklevel=2)
        fits[str(outcome.key)] = f
    if failed:
        raise FitError(f"{len(failed)} of {len(jobs)} fits failed -- {'; '.join(failed)}")
    echo(f"   all {len(jobs)} in {time.perf_counter() - t0:.0f} s")
    return {name: fits[name] for name in specs if name in fits}


def size_parameters(config: "AnalysisConfig") -> tuple[str, ...] | None:
    """``[fit] size_parameters``, or ``None`` (the default): every clearance and volume of the model.

    The default scales all of them because body size acts on distribution as well as on
    elimination; the calibration study (``benchmarks/calibrate_ratio.py``) found that
    candidates sized on CL and V1 only under-cover the AUC variance ratio when the truth
    also scales Q and V2.
    """
    value = config.get("fit", "size_parameters")
    return None if value is None else tuple(value)


def candidate_spec(base: Any, descriptor: str | None, parameters: tuple[str, ...] | None, fraction: Any = None) -> Any:
    """The spec of one candidate fit: ``base`` with ``descriptor`` as its size covariate.

    ``"ADJ"`` (or ``"adjusted"``) is the adjusted size model IBW + f·(TBW − IBW)
    with ``f`` estimated (prior ``fraction``, default uniform); ``None`` keeps ``base``.
    ``parameters``: those the size covariate scales (``None``: every clearance and volume).
    """
    if not descriptor:
        return base
    if str(descriptor).upper() in ("ADJ", "ADJUSTED"):
        from poppk.model import Prior

        prior = Prior.from_dict(fraction) if isinstance(fraction, Mapping) else fraction
        try:
            return base.with_size_model(parameters=parameters, fraction=prior)
        except PopPKError as err:
            raise ConfigError(f"fit.size_fraction: {err}") from None
    if fraction is not None:
        raise ConfigError("fit.size_fraction is the prior of the 'ADJ' model's fraction; add \"ADJ\" to fit.descriptors")
    return base.with_size_covariate(descriptor, parameters=parameters)


def shrink_population(text: str) -> str:
    """A smaller population for quick runs (at most 1,000 patients)."""
    kind, _, rest = text.partition(":")
    if kind in ("resample", "sample"):
        parts = rest.split(":")
        parts[0] = str(min(int(parts[0] or 1000), 1000))
        return kind + ":" + ":".join(parts)
    return text
