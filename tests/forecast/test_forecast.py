"""forecast(): the individual posterior of a new patient, its predictions, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from _reference import grid_posterior, weighted_summary
from poppk.errors import ConfigError, DatasetError
from poppk.forecast import forecast, individual_posterior, make_patient

PATIENT = "WT=82 HT=165 SEX=F"
DOSE = [{"TIME": 0, "AMT": 100, "DUR": 1}]


def _cl_median(fc, prediction="individual"):
    return float(fc.summary["parameter_q"].sel(parameter="CL", prediction=prediction, quantile=0.5))


def test_no_observations_is_the_population_prediction(synthetic_fit):
    """Without concentrations her parameters are those of the covariate model with η ~ N(0, Ω), over the draws."""
    from poppk.bodysize import size_descriptors

    spec, post = synthetic_fit
    fc = forecast(synthetic_fit, PATIENT, DOSE, n_draws=None, n_samples=40, n_resample=4000, seed=1)
    aibw = size_descriptors(82.0, 165.0, "F")["AIBW"]
    rng = np.random.default_rng(5)
    flat = {k: post[k].values.ravel() for k in post.data_vars}
    z = rng.standard_normal((flat["CL"].size, 200))
    cl = flat["CL"][:, None] * (aibw / 60.0) ** flat["beta_CL_AIBW"][:, None] * np.exp(flat["omega_CL"][:, None] * z)
    ref = np.quantile(cl, [0.05, 0.5, 0.95])
    got = fc.summary["parameter_q"].sel(parameter="CL", prediction="individual", quantile=[0.05, 0.5, 0.95]).values
    np.testing.assert_allclose(got, ref, rtol=0.04)
    assert fc.record.n_obs == 0 and np.isnan(fc.posterior.pareto_k)


@pytest.mark.parametrize("dv, direction", [(0.08, 1), (2.0, -1)])
def test_one_observation_moves_clearance_the_right_way(synthetic_fit, dv, direction):
    """A low concentration at 24 h means fast clearance, a high one slow clearance."""
    fc = forecast(synthetic_fit, PATIENT, DOSE, [{"TIME": 24, "DV": dv}], n_draws=100, seed=2)
    shift = _cl_median(fc) / _cl_median(fc, "population") - 1.0
    assert direction * shift > 0.1
    assert fc.posterior.pareto_k < 0.7 and fc.posterior.ess > 500


def test_blq_observation_is_censored_not_dropped(synthetic_fit):
    """Below an LLOQ higher than the typical 24-h concentration: M3 says her clearance is high (and not as an
    observed value at the LLOQ would)."""
    blq = forecast(synthetic_fit, PATIENT, DOSE, [{"TIME": 24, "BLQ": 1, "LLOQ": 1.5}], n_draws=100, seed=3)
    at_lloq = forecast(synthetic_fit, PATIENT, DOSE, [{"TIME": 24, "DV": 1.5}], n_draws=100, seed=3)
    assert blq.record.observations["BLQ"].iloc[0]
    assert _cl_median(blq) > _cl_median(blq, "population")
    assert _cl_median(blq) > _cl_median(at_lloq) * 1.05
    # the 24-h concentration forecast lies below the LLOQ with high probability
    c24 = blq.predict([24.0], residual=False)["samples"].values[:, 0]
    assert np.mean(c24 < 1.5) > 0.85


def test_agrees_with_a_grid_reference(synthetic_fit):
    """Laplace + importance sampling vs brute-force quadrature of the same posterior (same population draws)."""
    obs = [{"TIME": 2, "DV": 3.4}, {"TIME": 12, "DV": 1.0}, {"TIME": 30, "BLQ": 1, "LLOQ": 0.5}]
    rec = make_patient(synthetic_fit[0], PATIENT, DOSE, obs)
    ip = individual_posterior(synthetic_fit, rec, n_draws=40, n_samples=400, seed=4)
    lp_ref, w_ref = grid_posterior(synthetic_fit, rec, n_draws=40, seed=4, n_grid=161)
    w = ip.weights.ravel()
    for i, p in enumerate(ip.spec.parameters):
        x = np.exp(ip.log_params[..., i].ravel())
        m, sd, q = weighted_summary(x, w)
        mr, sdr, qr = weighted_summary(np.exp(lp_ref[:, i]), w_ref)
        assert abs(m - mr) < 0.1 * sdr, p
        np.testing.assert_allclose(q, qr, rtol=0.05, err_msg=p)


def test_curve_and_exposure_are_consistent(synthetic_fit):
    fc = forecast(synthetic_fit, PATIENT, DOSE + [{"TIME": 24, "AMT": 100, "DUR": 1}], [{"TIME": 6, "DV": 2.0}],
                  n_draws=50, seed=5)
    s = fc.summary
    assert set(s["prediction"].values) == {"individual", "population"}
    q = s["conc"].sel(prediction="individual")
    assert np.all(np.diff(q.values, axis=1) >= -1e-12)  # quantiles ordered
    # Cmax of cycle 1 (a 1-h infusion, 1-cmt) is the concentration at the end of the infusion
    cmax = s["exposure"].sel(prediction="individual", metric="cmax_c1", quantile=0.5)
    ceoi = s["exposure"].sel(prediction="individual", metric="ceoi_c1", quantile=0.5)
    assert float(cmax) == pytest.approx(float(ceoi), rel=1e-6)
    # exposure for a unit dose scales: AUC over the cycle of 100 = 100 x unit AUC (linear PK)
    assert fc.cycle == pytest.approx(24.0)
    # the 90% PI is wider than the model-concentration interval
    pi = s["conc_pi"].sel(prediction="individual")
    width = lambda a: a.sel(quantile=0.95) - a.sel(quantile=0.05)  # noqa: E731
    assert float((width(pi) >= width(q) * 0.95).mean()) > 0.9


@pytest.mark.parametrize(
    "patient, doses, obs, error, words",
    [
        ("WT=82 SEX=F", DOSE, None, ConfigError, ["HT", "AIBW"]),
        ("WT=-3 HT=165 SEX=F", DOSE, None, ConfigError, ["WT", "-3"]),
        ("WT=82 HT=1.65 SEX=F", DOSE, None, ConfigError, ["HT", "metres"]),
        ("WT=82 HT=165 SEX=X", DOSE, None, ConfigError, ["SEX", "'X'"]),
        (PATIENT, DOSE, [{"TIME": -1, "DV": 2.0}], DatasetError, ["before any dose", "TIME"]),
        (PATIENT, DOSE, [{"TIME": 5, "DV": -2.0}], DatasetError, ["negative", "DV"]),
        (PATIENT, DOSE, [{"TIME": 5, "BLQ": 1}], DatasetError, ["LLOQ"]),
        (PATIENT, [{"TIME": 0, "AMT": 0}], None, DatasetError, ["AMT", "> 0"]),
        (PATIENT, None, [{"TIME": 5, "DV": 2.0}], ConfigError, ["without any dose"]),
        (PATIENT, [{"TIME": 0, "AMT": 100, "DOSE": 3}], None, ConfigError, ["DOSE"]),
    ],
)
def test_bad_input_is_named(synthetic_fit, patient, doses, obs, error, words):
    with pytest.raises(error) as info:
        forecast(synthetic_fit, patient, doses, obs, n_draws=10)
    for w in words:
        assert w in str(info.value)


def test_any_dosing_history_the_data_layer_reads(synthetic_fit):
    """ADDL/II and RATE give the same forecast as the doses written out one by one with DUR."""
    obs = [{"TIME": 30, "DV": 1.2}]
    explicit = [{"TIME": 24 * i, "AMT": 100, "DUR": 1} for i in range(3)]
    addl = [{"TIME": 0, "AMT": 100, "RATE": 100, "ADDL": 2, "II": 24}]
    a = forecast(synthetic_fit, PATIENT, explicit, obs, n_draws=30, seed=9)
    b = forecast(synthetic_fit, PATIENT, addl, obs, n_draws=30, seed=9)
    assert len(b.record.doses) == 3
    np.testing.assert_allclose(a.summary["conc"].values, b.summary["conc"].values, rtol=1e-9)
    np.testing.assert_allclose(a.summary["exposure"].values, b.summary["exposure"].values, rtol=1e-9)


def test_times_in_another_unit(synthetic_fit):
    """Times given in days are converted to the model's hours."""
    a = forecast(synthetic_fit, PATIENT, DOSE, [{"TIME": 12, "DV": 1.0}], n_draws=30, seed=9)
    b = forecast(synthetic_fit, PATIENT, [{"TIME": 0, "AMT": 100, "DUR": 1 / 24}], [{"TIME": 0.5, "DV": 1.0}],
                 n_draws=30, seed=9, time_unit="day")
    np.testing.assert_allclose(a.summary["parameter_q"].values, b.summary["parameter_q"].values, rtol=1e-9)


def test_samples_before_the_first_dose_are_judged_in_their_own_unit(synthetic_fit):
    """The first dose at 1 day (not 0): a sample at 12 h is before it, one at 30 h after it, whatever the units."""
    from poppk.errors import DatasetError

    day_dose = [{"TIME": 1, "AMT": 100, "DUR": 1 / 24}]
    with pytest.raises(DatasetError, match="first dose is at 24 h"):
        forecast(synthetic_fit, PATIENT, [{"TIME": 24, "AMT": 100, "DUR": 1}], [{"TIME": 12, "DV": 1.0}],
                 n_draws=10, seed=9, time_unit="h")
    with pytest.raises(DatasetError, match="first dose is at 1 day"):
        forecast(synthetic_fit, PATIENT, day_dose, [{"TIME": 0.5, "DV": 1.0}], n_draws=10, seed=9, time_unit="day")
    a = forecast(synthetic_fit, PATIENT, day_dose, [{"TIME": 1.25, "DV": 1.0}], n_draws=30, seed=9, time_unit="day")
    b = forecast(synthetic_fit, PATIENT, [{"TIME": 24, "AMT": 100, "DUR": 1}], [{"TIME": 30, "DV": 1.0}],
                 n_draws=30, seed=9)
    np.testing.assert_allclose(a.summary["parameter_q"].values, b.summary["parameter_q"].values, rtol=1e-9)


def test_body_size_options_follow_the_fit():
    """The IBW method and AIBW factor of the fitted data are found from its descriptors."""
    import pandas as pd

    from poppk.data import read_nonmem
    from poppk.forecast.patient import descriptor_options

    df = pd.DataFrame({"ID": [1, 1, 2, 2, 3, 3], "TIME": [0, 1] * 3, "AMT": [100, 0] * 3, "EVID": [1, 0] * 3,
                       "DV": [np.nan, 2.0] * 3, "WT": [60, 60, 90, 90, 120, 120], "HT": [160, 160, 170, 170, 180, 180],
                       "SEX": ["F", "F", "M", "M", "F", "F"]})
    data = read_nonmem(df, time_unit="h").with_size_descriptors(ibw_method="label", aibw_factor=0.3)
    opts = descriptor_options(data)
    assert opts["ibw_method"] == "label" and opts["aibw_factor"] == pytest.approx(0.3)


def test_poor_importance_weights_warn(synthetic_fit):
    with pytest.warns(UserWarning, match="Pareto k"):
        forecast(synthetic_fit, PATIENT, DOSE, [{"TIME": 12, "DV": 1.0}], n_draws=10, n_samples=2)


def test_poppk_forecast_is_callable_as_the_package_too(synthetic_fit):
    import importlib

    import poppk

    pkg = importlib.import_module("poppk.forecast")
    a = pkg(synthetic_fit, PATIENT, DOSE, n_draws=10, seed=1)
    b = poppk.forecast(synthetic_fit, PATIENT, DOSE, n_draws=10, seed=1)
    np.testing.assert_allclose(a.summary["conc"].values, b.summary["conc"].values)
    assert callable(poppk.recommend_dose)
