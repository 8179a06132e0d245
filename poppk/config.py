"""An analysis in one TOML file: ``poppk run analysis.toml``.

Every section mirrors a CLI command; every key is the twin of an option::

    [data]                      # poppk data check
    path = "trial.csv"          # relative to this file
    columns = { SUBJ = "ID" }   # --map SUBJ=ID
    female_code = "1"           # --female-code
    ibw_method = "label"        # devine | robinson | miller | hamwi | label
    aibw_factor = 0.4

    [model]                     # poppk fit --model (a ModelSpec, see ModelSpec.to_dict)
    structure = "2cmt"
    typical = { CL = 0.5, V1 = 3.0, Q = 0.5, V2 = 2.0 }
    iiv = ["CL", "V1"]
    error = "combined"

    [fit]                       # poppk fit
    descriptors = ["TBW", "AIBW"]   # one fit per size descriptor (--size)
    size_parameters = ["CL", "V1"]
    draws = 1000
    tune = 500
    chains = 4
    seed = 1

    [checks]                    # poppk check
    enabled = true
    draws = 300
    formats = ["png"]

    [simulate]                  # poppk simulate
    fit = "TBW"                 # which fit to simulate from
    strategies = ["5 mg/kg", "5 mg/kg AIBW", "6 mg/kg AIBW"]
    schedule = "q3w:6"
    infusion = "1 h"
    population = "resample:5000"
    draws = 200
    reference = "5 mg/kg TBW"
    metrics = ["cmax_c1", "auc_c1", "auc_ss"]
    exceed = { cmax_c1 = 150.0 }
    workers = 0                 # >0: run on that many threads (parallel = "processes": a dask LocalCluster)

    [report]                    # poppk report
    title = "Covariate report"
    dosing = ["flat", "per_kg"] # --per-kg: exposure ratios under mg/kg dosing too
    formats = ["html", "csv", "json"]

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

from poppk.errors import ConfigError, PopPKError

__all__ = ["AnalysisConfig", "load_config", "parse_config", "run_analysis"]

_SCHEMA: dict[str, dict[str, type | tuple[type, ...]]] = {
    "data": {"path": str, "columns": dict, "female_code": (str, int, float), "ibw_method": str,
             "aibw_factor": (int, float), "drop": list},
    "model": {},  # validated by ModelSpec.from_dict
    "fit": {"descriptors": list, "size_parameters": list, "draws": int, "tune": int, "chains": int,
            "seed": int, "sampler": str},
    "checks": {"enabled": bool, "draws": int, "formats": list, "stratify": str},
    "simulate": {"enabled": bool, "fit": str, "strategies": list, "schedule": str, "infusion": str,
                 "population": str, "draws": int, "seed": int, "reference": str, "metrics": list,
                 "exceed": dict, "threshold": (int, float), "workers": int,
                 "parallel": str, "scheduler_address": str},
    "report": {"enabled": bool, "title": str, "formats": list, "dosing": list},
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
            if want is int and value < (0 if key in ("seed", "workers") else 1):
                raise ConfigError(f"{section}.{key} = {value!r}: expected a "
                                  f"{'whole number >= 0' if key in ('seed', 'workers') else 'positive integer'}")
    for section, keys in _REQUIRED.items():
        for key in keys:
            if key not in doc.get(section, {}):
                raise ConfigError(f"missing {section}.{key} (required)")
    from poppk.model import ModelSpec

    try:
        ModelSpec.from_dict(doc["model"])
    except PopPKError as err:
        raise ConfigError(f"[model]: {err}") from None
    return AnalysisConfig(sections={k: dict(v) for k, v in doc.items()}, base_dir=Path(base_dir))


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


def run_analysis(config: AnalysisConfig, *, out: str | Path | None = None, quick: bool = False,
                 echo: Any = print) -> int:
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
        Where progress lines go.
    """
    from poppk.data import format_summary, read_nonmem, summarize
    from poppk.model import ModelSpec, fit

    out = Path(out or config.get("output", "dir", "out"))
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    echo(f"== 1. data: {config.data_path}")
    data = read_nonmem(config.data_path, columns=config.get("data", "columns"), drop=config.get("data", "drop", ()),
                       sex_female_code=config.get("data", "female_code"))
    if {"WT", "HT", "SEX"} <= set(data.covariate_names):
        data = data.with_size_descriptors(ibw_method=config.get("data", "ibw_method", "devine"),
                                          aibw_factor=config.get("data", "aibw_factor", 0.4),
                                          female_code=config.get("data", "female_code"))
    echo(format_summary(summarize(data)))

    base = ModelSpec.from_dict(config.sections["model"])
    descriptors = config.get("fit", "descriptors") or [None]
    size_params = tuple(config.get("fit", "size_parameters", ("CL", "V1")))
    draws, tune, chains = config.get("fit", "draws", 1000), config.get("fit", "tune", 500), config.get("fit", "chains", 4)
    if quick:
        draws, tune, chains = min(draws, 150), min(tune, 150), min(chains, 2)
    fits: dict[str, Any] = {}
    for d in descriptors:
        name = d or "model"
        spec = base.with_size_covariate(d, parameters=size_params) if d else base
        echo(f"\n== 2. fit '{name}': {chains} chains x ({tune} warm-up + {draws} draws)")
        t0 = time.perf_counter()
        f = fit(spec, data, draws=draws, tune=tune, chains=chains, seed=config.get("fit", "seed", 0),
                sampler=config.get("fit", "sampler", "nutpie"), progress=False)
        echo(f"   {time.perf_counter() - t0:.0f} s; {f.convergence().message()}")
        echo(f.summary()[["median", "lower", "upper", "rse", "r_hat", "ess_bulk"]].round(3).to_string())
        f.save(out / "fits" / name)
        fits[name] = f

    comparison = None
    if config.get("checks", "enabled", True):
        from poppk.diagnostics import compare, write_checks

        n_check = 100 if quick else config.get("checks", "draws", 300)
        for name, f in fits.items():
            echo(f"\n== 3. checks of '{name}' -> {out / 'checks' / name}")
            write_checks(f, out / "checks" / name, formats=tuple(config.get("checks", "formats", ["png"])),
                         n_draws=n_check, stratify=config.get("checks", "stratify"))
        if len(fits) > 1:
            echo("\n== 4. comparison by leave-one-subject-out PSIS-LOO")
            comparison = compare(fits)
            echo(comparison.round(2).to_string())

    strategy_table = None
    figures: dict[str, Any] = {}
    if config.sections.get("simulate") and config.get("simulate", "enabled", True):
        from poppk.simulate import run_simulation

        which = config.get("simulate", "fit", next(iter(fits)))
        if which not in fits:
            raise ConfigError(f"simulate.fit = {which!r}: not one of the fitted models {list(fits)}")
        pop = config.get("simulate", "population", "resample:5000")
        n_sim = config.get("simulate", "draws", 200)
        if quick:
            pop = _shrink_population(pop)
            n_sim = min(n_sim, 40)
        echo(f"\n== 5. dosing strategies simulated from the '{which}' fit -> {out / 'simulation'}")
        paths = run_simulation(
            fits[which], config.get("simulate", "strategies", ["5 mg/kg", "5 mg/kg AIBW"]),
            config.get("simulate", "schedule", "q3w:6"), pop, out / "simulation",
            infusion=config.get("simulate", "infusion", "1 h"), n_draws=n_sim, seed=config.get("simulate", "seed", 0),
            metrics=config.get("simulate", "metrics"), threshold=config.get("simulate", "threshold"),
            exceed=config.get("simulate", "exceed"), reference=config.get("simulate", "reference"),
            ibw_method=config.get("data", "ibw_method"), workers=config.get("simulate", "workers", 0),
            parallel=config.get("simulate", "parallel", "threads"),
            scheduler_address=config.get("simulate", "scheduler_address"),
        )
        import pandas as pd

        summary_csv = next((p for k, p in paths.items() if str(p).endswith("summary.csv")), None)
        if summary_csv is not None:
            strategy_table = pd.read_csv(summary_csv)
            cols = [c for c in ("strategy", "metric", "median_exposure_median", "bpv_cv_median", "var_ratio_median",
                                "var_ratio_lo", "var_ratio_hi") if c in strategy_table.columns]
            echo(strategy_table[cols].round(3).to_string(index=False))
        figures = {k: p for k, p in paths.items() if str(p).endswith(".png")}

    if config.get("report", "enabled", True):
        from poppk.report import export_covariate_report

        which = config.get("simulate", "fit", next(iter(fits)))
        target = fits.get(which, next(iter(fits.values())))
        echo(f"\n== 6. covariate report of '{which}' -> {out}")
        written = export_covariate_report(
            target, out, formats=tuple(config.get("report", "formats", ["html", "csv", "json"])),
            strategy_table=strategy_table, comparison_table=comparison, figures=figures or None,
            title=config.get("report", "title"),
            dosing=tuple(config.get("report", "dosing", ["flat"])),
        )
        for name, p in written.items():
            echo(f"   {name}: {p}")
    echo(f"\ndone in {time.perf_counter() - t_start:.0f} s; open {(out / 'report.html').resolve()}")
    return 0


def _shrink_population(text: str) -> str:
    kind, _, rest = text.partition(":")
    if kind in ("resample", "sample"):
        parts = rest.split(":")
        parts[0] = str(min(int(parts[0] or 1000), 1000))
        return kind + ":" + ":".join(parts)
    return text
