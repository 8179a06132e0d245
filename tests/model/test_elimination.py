"""Nonlinear elimination in ModelSpec, the design and predictions (no sampling)."""

import numpy as np
import pytest
from _ode_studies import simulate_mm, simulate_subject, simulate_td

from poppk.data import read_nonmem
from poppk.errors import ModelSpecError
from poppk.model import ModelSpec
from poppk.model.build import build_model
from poppk.model.design import build_design
from poppk.model.predict import predict_design, predict_draws, prediction_arrays, prediction_structure

MM = dict(structure="1cmt", elimination="michaelis-menten", typical={"VMAX": 5.0, "KM": 1.0, "V1": 5.0},
          iiv=("VMAX", "V1"), error="proportional", units={"time": "h"})


def test_parameters_units_and_round_trip():
    spec = ModelSpec(**MM)
    assert spec.parameters == ("VMAX", "KM", "V1")
    assert spec.unit["VMAX"] == "mg/h" and spec.unit["KM"] == "mg/L" and spec.unit["V1"] == "L"
    assert ModelSpec.from_toml(spec.to_toml()) == spec
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    assert 'elimination = "michaelis-menten"' in spec.to_toml()
    td = ModelSpec(structure="2cmt", elimination="time-dependent", absorption="first-order",
                   typical={"CL": 1, "TDA": 0.4, "KDES": 0.05, "V1": 3, "Q": 0.5, "V2": 2, "KA": 1})
    assert td.parameters == ("CL", "TDA", "KDES", "V1", "Q", "V2", "KA")
    assert td.unit["KDES"].startswith("1/")
    both = ModelSpec(structure="1cmt", elimination="linear+michaelis-menten",
                     typical={"CL": 1, "VMAX": 2, "KM": 1, "V1": 3}, iiv=("CL",))
    assert both.parameters == ("CL", "VMAX", "KM", "V1")
    # the linear default is unchanged, also in its serialised form
    lin = ModelSpec(structure="1cmt", typical={"CL": 1, "V1": 3})
    assert lin.elimination == "linear" and "elimination" not in lin.to_dict()


@pytest.mark.parametrize("kw, words", [
    (dict(elimination="zero-order"), "not one of"),
    (dict(structure="3cmt", typical={"VMAX": 1, "KM": 1, "V1": 1, "Q2": 1, "V2": 1, "Q3": 1, "V3": 1},
          iiv=("V1",)), "'1cmt' or '2cmt'"),
    (dict(absorption="first-order", lag=True, typical={"VMAX": 1, "KM": 1, "V1": 1, "KA": 1, "ALAG1": 1}),
     "ALAG1"),
    (dict(typical={"CL": 1.0, "V1": 5.0}, iiv=("V1",)), "VMAX"),
])
def test_refusals_name_the_value_and_what_is_valid(kw, words):
    with pytest.raises(ModelSpecError, match=words):
        ModelSpec(**{**MM, **kw})


def test_formed_analytes_are_refused():
    with pytest.raises(ModelSpecError, match="formed analytes"):
        ModelSpec(**{**MM, "analytes": [{"name": "P", "dvid": 1}, {"name": "M", "dvid": 2, "source": "P"}],
                     "typical": {"VMAX": 1, "KM": 1, "V1": 1, "CL_M": 1, "V_M": 1}})


def test_steady_state_records_are_refused():
    df, _ = simulate_mm(1, n_per_dose=1)
    df["SS"] = 0
    df["II"] = 0.0
    first = df.index[df.EVID == 1][0]
    df.loc[first, ["SS", "II"]] = [1, 24.0]
    with pytest.raises(ModelSpecError, match="steady-state"):
        build_design(ModelSpec(**MM), read_nonmem(df))


def _truth_predictions(df, design, p, kind, n_cmt, dur):
    ref = []
    for i in range(design.n_subjects):
        times = design.obs_time[design.obs_subject == i]
        d = df[(df.ID == i + 1) & (df.EVID == 1)]
        ref.append(simulate_subject(kind, p, [(t, a, dur) for t, a in zip(d.TIME, d.AMT)], times, n_cmt))
    return np.concatenate(ref)


def test_predictions_equal_solve_ivp():
    df, _ = simulate_mm(1, n_per_dose=2)
    spec = ModelSpec(**MM)
    design = build_design(spec, read_nonmem(df))
    assert design.ode is not None and design.plan is None
    p = {"VMAX": 10.0, "KM": 2.0, "V1": 10.0}
    got = predict_design(spec, design, {k: np.full(design.n_subjects, v) for k, v in p.items()})
    ref = _truth_predictions(df, design, p, "mm", 1, 1.0)
    np.testing.assert_allclose(got, ref, rtol=1e-4)
    # draws with leading dims, and the tensor path (the Op) gives the same numbers
    draws = {k: np.full((2, 3, design.n_subjects), v) for k, v in p.items()}
    np.testing.assert_allclose(predict_design(spec, design, draws)[1, 2], got, rtol=1e-12)
    np.testing.assert_allclose(predict_draws(spec, design, {k: v[0] for k, v in draws.items()})[2], got)
    import pytensor
    import pytensor.tensor as pt

    x = {k: pt.dvector(k) for k in p}
    f = pytensor.function(list(x.values()), predict_design(spec, design, x))
    # (the Op integrates the sensitivities too, whose error control moves the result within rtol)
    np.testing.assert_allclose(f(*[np.full(design.n_subjects, v) for v in p.values()]), got, rtol=1e-5)


def test_time_dependent_predictions_equal_solve_ivp():
    df, truth = simulate_td(1, n_subjects=2, cycles=2)
    spec = ModelSpec(structure="2cmt", elimination="time-dependent",
                     typical={"CL": 0.5, "TDA": 0.3, "KDES": 0.1, "V1": 2.0, "Q": 0.3, "V2": 1.5},
                     iiv=("CL",), error="proportional", units={"time": "day"})
    design = build_design(spec, read_nonmem(df))
    p = {k: truth[k] for k in ("CL", "TDA", "KDES", "V1", "Q", "V2")}
    got = predict_design(spec, design, p)
    np.testing.assert_allclose(got, _truth_predictions(df, design, p, "td", 2, 1.0 / 48.0), rtol=1e-4)


def test_structure_keys_never_collide_with_linear():
    df, _ = simulate_mm(1, n_per_dose=1)
    data = read_nonmem(df)
    mm = ModelSpec(**MM)
    lin = ModelSpec(**{**MM, "elimination": "linear", "typical": {"CL": 1.0, "V1": 5.0}, "iiv": ("CL", "V1")})
    d_mm, d_lin = build_design(mm, data), build_design(lin, data)
    assert prediction_structure(mm, d_mm) != prediction_structure(lin, d_lin)
    assert prediction_structure(mm, d_mm)[0] == "ode"
    assert set(prediction_arrays(d_mm)) != set(prediction_arrays(d_lin))


def test_mm_with_large_km_reproduces_the_linear_likelihood():
    """VMAX/KM = CL with KM far above every concentration: the closed form's predictions and log-likelihood."""
    from scipy.stats import norm

    df, _ = simulate_mm(2, n_per_dose=2, dose_levels=(10.0, 100.0))
    data = read_nonmem(df)
    km = 1e6
    mm = ModelSpec(**{**MM, "typical": {"VMAX": 5.0 * km, "KM": km, "V1": 10.0}, "iiv": ("V1",)})
    lin = ModelSpec(**{**MM, "elimination": "linear", "typical": {"CL": 5.0, "V1": 10.0}, "iiv": ("V1",)})
    d_mm, d_lin = build_design(mm, data), build_design(lin, data)
    v1 = np.exp(np.linspace(-0.5, 0.5, d_mm.n_subjects)) * 10.0
    c_mm = predict_design(mm, d_mm, {"VMAX": 5.0 * km, "KM": km, "V1": v1})
    c_lin = predict_design(lin, d_lin, {"CL": 5.0, "V1": v1})
    np.testing.assert_allclose(c_mm, c_lin, rtol=1e-4, atol=1e-6 * c_lin.max())
    # below ~1e-15 of a dose per volume the solver's absolute tolerance (ODE_ATOL) governs, far below any LLOQ
    keep = c_lin > 1e-6 * c_lin.max()
    c_mm, c_lin = c_mm[keep], c_lin[keep]
    dv = c_lin * (1.0 + 0.1 * np.random.default_rng(0).standard_normal(c_lin.shape))
    ll = [norm.logpdf(dv, c, 0.1 * c).sum() for c in (c_mm, c_lin)]
    assert abs(ll[0] - ll[1]) < 1e-2 * abs(ll[1]) and abs(ll[0] - ll[1]) < 0.05


def test_simulation_and_forecast_refuse_nonlinear_elimination():
    """Dose-linear closed forms would silently misread a Michaelis-Menten model: both say so instead."""
    from poppk.errors import ConfigError, ModelSpecError
    from poppk.forecast.patient import make_patient
    from poppk.simulate import PosteriorDraws

    spec = ModelSpec(structure="1cmt", elimination="michaelis-menten", typical={"VMAX": 5.0, "KM": 1.0, "V1": 5.0},
                     iiv=("VMAX",), units={"time": "h"})
    with pytest.raises(ModelSpecError, match="elimination is 'michaelis-menten'.*linear"):
        PosteriorDraws.from_values(spec, typical={"VMAX": 5.0, "KM": 1.0, "V1": 5.0}, omega={"VMAX": 0.3})
    with pytest.raises(ConfigError, match="elimination 'michaelis-menten' is not supported"):
        make_patient(spec, {"WT": 70.0}, [{"TIME": 0.0, "AMT": 100.0}])


def test_ode_fits_default_to_the_low_rank_mass_matrix():
    """Nonlinear elimination turns nutpie's low-rank adaptation on whatever Ω and
    parametrisation; the default for linear elimination is unchanged (no sampling here)."""
    from poppk.model.fit import _default_low_rank

    td = dict(structure="2cmt", elimination="time-dependent", iiv=("CL", "V1"), error="proportional",
              typical={"CL": 0.5, "TDA": 0.3, "KDES": 0.1, "V1": 2.0, "Q": 0.3, "V2": 1.5})
    lin = dict(structure="2cmt", typical={"CL": 0.5, "V1": 2.0, "Q": 0.3, "V2": 1.5}, iiv=("CL", "V1"),
               error="proportional")
    for par in ("laplace", "noncentered", "centered"):
        for corr in ("diagonal", "full"):
            for kw in (MM, td, {**MM, "elimination": "linear+michaelis-menten",
                                "typical": {"CL": 1.0, "VMAX": 5.0, "KM": 1.0, "V1": 5.0}}):
                assert _default_low_rank(ModelSpec(**kw, parametrization=par, iiv_correlation=corr))
    # linear elimination: off for a diagonal Ω; for a full Ω, on unless "laplace" with IIV on every typical value
    assert not _default_low_rank(ModelSpec(**lin))
    assert not _default_low_rank(ModelSpec(**lin, parametrization="centered"))
    assert _default_low_rank(ModelSpec(**lin, iiv_correlation="full"))  # Q, V2 without IIV
    assert _default_low_rank(ModelSpec(**lin, iiv_correlation="full", parametrization="centered"))
    every = ModelSpec(structure="1cmt", typical={"CL": 2.0, "V1": 5.0}, iiv=("CL", "V1"), iiv_correlation="full")
    assert not _default_low_rank(every)
