"""A real (small) fit: convergence, tables, predictions, log-likelihood and save/load."""

import numpy as np
import pytest

from poppk.model import load_fit

pytestmark = pytest.mark.slow


def test_small_fit_converges_and_covers_truth(small_fit):
    rep = small_fit.convergence()
    assert rep.ok, rep.message()
    s = small_fit.summary()
    assert list(s.index) == ["CL", "V1", "omega_CL", "omega_V1", "sigma_prop"]
    for name, true in {"CL": 2.0, "V1": 20.0}.items():
        assert s.loc[name, "lower"] < true < s.loc[name, "upper"], (name, s.loc[name].to_dict())
    assert (s["rse"] > 0).all()


def test_named_dimensions(small_fit):
    post = small_fit.idata.posterior
    assert post["theta"].dims == ("chain", "draw", "id", "iiv")
    assert list(post.iiv.values) == ["CL", "V1"]
    ll = small_fit.idata.log_likelihood
    assert ll["y"].dims == ("chain", "draw", "obs") and ll["y_subject"].dims == ("chain", "draw", "id")
    np.testing.assert_allclose(ll["y_subject"].sum("id"), ll["y"].sum("obs"))
    assert set(small_fit.idata.constant_data) >= {"time", "obs_id", "blq", "lloq"}


def test_post_hoc_loglik_equals_the_model_potential(small_fit):
    """The NumPy pointwise log-likelihood is the same function the sampler used."""
    post = small_fit.idata.posterior
    ind = small_fit.individual_parameters()
    ll = small_fit.idata.log_likelihood["y"].isel(chain=0, draw=5).values
    from poppk.model.likelihood import observation_loglik
    from poppk.model.predict import predict_design

    params = {p: ind[p].isel(chain=0, draw=5).values for p in small_fit.spec.parameters}
    pred = predict_design(small_fit.spec, small_fit.design, params)
    ref = observation_loglik(small_fit.design.dv, pred, {"prop": float(post["sigma_prop"].isel(chain=0, draw=5))},
                             "proportional")
    np.testing.assert_allclose(ll, ref, rtol=1e-10)


def test_predictions_shapes_and_pred_below_ipred_spread(small_fit):
    pr = small_fit.predictions(thin=10)
    assert pr["ipred"].dims == ("chain", "draw", "obs")
    ipred = pr["ipred"].median(("chain", "draw")).values
    dv = small_fit.design.dv
    # individual predictions fit better than population predictions
    pred = pr["pred"].median(("chain", "draw")).values
    assert np.mean(np.log(dv / ipred) ** 2) < np.mean(np.log(dv / pred) ** 2)


def test_save_and_load_roundtrip(small_fit, tmp_path):
    path = small_fit.save(tmp_path / "fit")
    again = load_fit(path)
    assert again.spec == small_fit.spec
    assert again.settings["seed"] == small_fit.settings["seed"]
    np.testing.assert_allclose(again.summary().values, small_fit.summary().values)
    np.testing.assert_allclose(again.idata.log_likelihood["y"].values, small_fit.idata.log_likelihood["y"].values)
    assert again.data.observations.equals(small_fit.data.observations)
    # saving again over an existing fit replaces it whole, leaving no temporary files
    small_fit.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit"]
