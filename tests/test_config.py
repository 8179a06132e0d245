import tomllib

import pytest

from poppk.config import load_config, parse_config
from poppk.errors import ConfigError

BUNDLED = "data/imgn853_analysis.toml"


def doc():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    return tomllib.loads((root / BUNDLED).read_text()), root / "data"


def test_bundled_config_is_valid():
    d, base = doc()
    cfg = parse_config(d, base)
    assert cfg.data_path.is_file()
    assert cfg.get("fit", "descriptors") == ["TBW", "AIBW", "ADJ"]


@pytest.mark.parametrize(
    "mutate, fragment",
    [
        (lambda d: d.update(colour={}), "unknown section [colour]"),
        (lambda d: d["fit"].update(draw=10), "unknown key fit.draw"),
        (lambda d: d["fit"].update(draws="many"), "fit.draws = 'many': expected an integer"),
        (lambda d: d["fit"].update(chains=0), "fit.chains = 0: expected a positive integer"),
        (lambda d: d["simulate"].update(workers=-1), "simulate.workers = -1: expected a whole number >= 0"),
        (lambda d: d["checks"].update(enabled="yes"), "checks.enabled"),
        (lambda d: d["data"].pop("path"), "missing data.path"),
        (lambda d: d["model"].update(structure="5cmt"), "[model]: structure '5cmt'"),
        (lambda d: d["model"].update(error="poisson"), "[model]: error model 'poisson'"),
    ],
)
def test_bad_config_names_the_key(mutate, fragment):
    d, base = doc()
    mutate(d)
    with pytest.raises(ConfigError) as err:
        parse_config(d, base)
    assert fragment in str(err.value)


def test_zero_workers_and_seed_are_valid():
    """0 worker processes means 'in this process' (the documented default)."""
    d, base = doc()
    d["simulate"].update(workers=0, seed=0)
    assert parse_config(d, base).get("simulate", "workers") == 0


def test_missing_or_broken_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[data\npath = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_cli_run_reports_config_errors(tmp_path, capsys):
    from poppk.cli import main

    bad = tmp_path / "a.toml"
    bad.write_text('[data]\npath = "x.csv"\n[model]\nstructure = "2cmt"\ntypical = {CL = 1}\n[fit]\ndraws = -5\n')
    assert main(["run", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "error: fit.draws" in err and "Traceback" not in err


def test_time_unit_is_required_once_and_consistent():
    """No silent hours: the unit of TIME comes from [data] time_unit or [model] units (issue 15)."""
    d, base = doc()
    assert parse_config(d, base).get("data", "time_unit") == "day"
    d["data"].pop("time_unit")
    assert parse_config(d, base).sections["model"]["units"]["time"] == "day"  # the model's alone is enough
    d["model"]["units"].pop("time")
    with pytest.raises(ConfigError, match="the unit of TIME is not given") as err:
        parse_config(d, base)
    assert 'time_unit = "day"' in str(err.value)
    d["data"]["time_unit"] = "day"
    parse_config(d, base)  # the data's alone is enough too
    d["model"]["units"]["time"] = "h"
    with pytest.raises(ConfigError, match="differ"):
        parse_config(d, base)
    d["model"]["units"].pop("time")
    d["data"]["time_unit"] = "fortnight"
    with pytest.raises(ConfigError, match="data.time_unit = 'fortnight': not a time unit"):
        parse_config(d, base)


def test_candidate_specs_and_model_weights():
    """'ADJ' in fit.descriptors is the adjusted size model; its prior and the weighting method are checked."""
    import pytest

    from poppk.config import candidate_spec, parse_config
    from poppk.errors import ConfigError
    from poppk.model import ModelSpec, Prior

    base = ModelSpec(structure="1cmt", typical={"CL": 1.0, "V1": 10.0}, units={"time": "h"})
    adj = candidate_spec(base, "ADJ", ("CL", "V1"), {"family": "beta", "alpha": 2.0, "beta": 2.0})
    assert adj.size_fraction == Prior.beta(2.0, 2.0) and {c.form for c in adj.covariates} == {"adjusted"}
    assert candidate_spec(base, "AIBW", ("CL",)).covariates[0].name == "beta_CL_AIBW"
    with pytest.raises(ConfigError, match="ADJ"):
        candidate_spec(base, "AIBW", ("CL",), 0.4)
    # without [fit] size_parameters every clearance and volume is scaled
    from poppk.config import size_parameters

    two = ModelSpec(structure="2cmt", typical={"CL": 1.0, "V1": 10.0, "Q": 1.0, "V2": 20.0}, units={"time": "h"})
    doc = {"data": {"path": "x.csv", "time_unit": "h"}, "model": {"structure": "1cmt", "typical": {"CL": 1, "V1": 10}}}
    assert size_parameters(parse_config(doc)) is None
    assert [c.parameter for c in candidate_spec(two, "TBW", None).covariates] == ["CL", "V1", "Q", "V2"]
    assert [c.parameter for c in candidate_spec(two, "ADJ", None).covariates] == ["CL", "V1", "Q", "V2"]
    doc = {"data": {"path": "x.csv", "time_unit": "h"}, "model": {"structure": "1cmt", "typical": {"CL": 1, "V1": 10}},
           "simulate": {"model_weights": "best"}}
    with pytest.raises(ConfigError, match="model_weights"):
        parse_config(doc)


def _forecast_doc(tmp_path, **forecast):
    """The bundled document with a [forecast] section (files in tmp_path, the config's folder)."""
    (tmp_path / "patients.csv").write_text("ID,WT,HT,SEX,ALB\nA,82,165,F,3.6\nB,60,160,F,4.1\n")
    (tmp_path / "doses.csv").write_text("ID,TIME,AMT,DUR\nA,0,400,0.0417\nB,0,330,0.0417\n")
    d, _ = doc()
    d["data"]["path"] = str(doc()[1] / d["data"]["path"])
    d["forecast"] = {"patients": "patients.csv", "doses": "doses.csv", "target": "auc_ss in [600, 900]",
                     "schedules": ["q4w", "d1,8 q3w"], "label": "6 mg/kg AIBW", "model": "AIBW", **forecast}
    return d


def test_forecast_section_is_accepted(tmp_path):
    cfg = parse_config(_forecast_doc(tmp_path), tmp_path)
    assert cfg.resolve(cfg.get("forecast", "patients")) == tmp_path / "patients.csv"
    # patients inline, as an array of tables
    inline = _forecast_doc(tmp_path, patients=[{"ID": "A", "WT": 82, "HT": 165, "SEX": "F", "ALB": 3.6}],
                           doses=[{"ID": "A", "TIME": 0, "AMT": 400}])
    assert parse_config(inline, tmp_path).get("forecast", "patients")[0]["ID"] == "A"


@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"patient": "p.csv"}, "unknown key forecast.patient"),
        ({"patients": "nope.csv"}, "forecast.patients = 'nope.csv': no such file"),
        ({"patients": 3}, "forecast.patients = 3: expected a string or an array"),
        ({"patients": [{"WT": 80}]}, "forecast.patients: needs an ID column"),
        ({"patients": ["A"]}, "forecast.patients[0] = 'A': expected a table"),
        ({"target": "auc_ss between 1 and 2"}, "forecast.target = 'auc_ss between 1 and 2': cannot read target"),
        ({"label": "lots"}, "forecast.label = 'lots'"),
        ({"schedules": ["q4w", "fortnightly"]}, "forecast.schedules[1] = 'fortnightly'"),
        ({"schedules": "q4w"}, "forecast.schedules = 'q4w': expected an array"),
        ({"model": "LBW"}, "forecast.model = 'LBW': not one of the fitted models"),
        ({"step": 0}, "forecast.step = 0"),
        ({"max_dose": 5, "step": 10}, "forecast.max_dose = 5"),
        ({"draws": 0}, "forecast.draws = 0: expected a positive integer"),
    ],
)
def test_bad_forecast_section_names_the_key(tmp_path, change, fragment):
    d = _forecast_doc(tmp_path, **change)
    with pytest.raises(ConfigError) as err:
        parse_config(d, tmp_path)
    assert fragment in str(err.value)


def test_forecast_section_needs_patients(tmp_path):
    d = _forecast_doc(tmp_path)
    d["forecast"].pop("patients")
    with pytest.raises(ConfigError, match="missing forecast.patients"):
        parse_config(d, tmp_path)


def test_the_bundled_multi_analyte_analysis_reads_and_builds():
    """data/imgn853_analytes_analysis.toml (``poppk demo --analytes``): three analytes kept, mapped by DVID."""
    import numpy as np

    from poppk.config import candidate_spec, load_config, read_data, size_parameters
    from poppk.model import ModelSpec, build_design
    from poppk.workflow import bundled_analytes_analysis_path

    config = load_config(bundled_analytes_analysis_path())
    data = read_data(config)
    spec = candidate_spec(ModelSpec.from_dict(config.sections["model"]), "TBW", size_parameters(config))
    assert [a.name for a in spec.analytes] == ["ADC", "DM4", "MeDM4"]
    assert [c.parameter for c in spec.covariates if c.covariate == "TBW"] == ["CL", "V1", "Q", "V2"]
    design = build_design(spec.resolved(data.covariates), data)
    counts = np.bincount(design.obs_analyte, minlength=3)
    assert counts.min() > 0 and counts.sum() == design.n_obs
