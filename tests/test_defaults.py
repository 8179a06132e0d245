"""The API, the command line and the analysis file share one set of defaults (poppk.defaults)."""

from __future__ import annotations

import inspect

from poppk import defaults
from poppk.cli import build_parser


def _args(argv):
    return build_parser().parse_args(argv)


def test_command_line_defaults_are_the_shared_ones():
    fit = _args(["fit", "data.csv", "--model", "spec.toml", "--out", "x"])
    assert (fit.draws, fit.tune, fit.chains) == (defaults.FIT_DRAWS, defaults.FIT_TUNE, defaults.FIT_CHAINS)
    assert _args(["check", "fitdir", "--out", "x"]).draws == defaults.CHECK_DRAWS
    assert _args(["simulate", "fitdir", "--strategy", "5 mg/kg", "--out", "x"]).draws == defaults.SIMULATION_DRAWS
    assert _args(["forecast", "fitdir", "--patient", "WT=70", "--out", "x"]).draws == defaults.FORECAST_DRAWS


def test_api_defaults_are_the_shared_ones():
    from poppk.diagnostics import write_checks
    from poppk.forecast.predict import forecast
    from poppk.model import fit
    from poppk.simulate import run_simulation, simulate_strategies

    sig = inspect.signature(fit).parameters
    assert (sig["draws"].default, sig["tune"].default, sig["chains"].default) == (
        defaults.FIT_DRAWS, defaults.FIT_TUNE, defaults.FIT_CHAINS)
    assert inspect.signature(write_checks).parameters["n_draws"].default == defaults.CHECK_DRAWS
    for f in (simulate_strategies, run_simulation):
        assert inspect.signature(f).parameters["n_draws"].default == defaults.SIMULATION_DRAWS
    assert inspect.signature(forecast).parameters["n_draws"].default == defaults.FORECAST_DRAWS


def test_analysis_file_without_settings_uses_the_shared_defaults(tmp_path, repo_root):
    """A [fit] section without draws runs what poppk.fit would; a given value wins; --quick caps them."""
    from poppk.config import fit_options, load_config

    text = (repo_root / "data" / "imgn853_analysis.toml").read_text()
    text = text.replace('path = "imgn853_phase1.csv"', f'path = "{(repo_root / "data" / "imgn853_phase1.csv").as_posix()}"')
    bare = "\n".join(ln for ln in text.splitlines()
                     if not ln.split("#")[0].strip().startswith(("draws", "tune", "chains")))
    (tmp_path / "bare.toml").write_text(bare)
    (tmp_path / "given.toml").write_text(bare.replace("[fit]", "[fit]\ndraws = 77", 1))
    opts = fit_options(load_config(tmp_path / "bare.toml"))
    assert (opts["draws"], opts["tune"], opts["chains"]) == (defaults.FIT_DRAWS, defaults.FIT_TUNE, defaults.FIT_CHAINS)
    assert fit_options(load_config(tmp_path / "given.toml"))["draws"] == 77
    quick = fit_options(load_config(tmp_path / "bare.toml"), quick=True)
    assert (quick["draws"], quick["tune"], quick["chains"]) == (150, 150, 2)
