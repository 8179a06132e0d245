"""Time-varying covariates and inter-occasion variability (poppk.model.time_varying).

- the spec's options are checked, with errors that say what is valid, and round-trip;
- segments: last value carried forward, missing values filled, the last record at a
  time wins, one segment per subject when nothing changes, occasion pairs;
- predictions from the design, segments and offsets equal an independent generator
  (scipy ``solve_ivp`` with the parameters switched per cycle, ``tests/_ode_studies.py``);
- the model graph's gradient with respect to the covariate coefficient and the
  occasion effects equals finite differences (the offsets flow through the Op);
- post-processing (predictions, GOF curves' grid design) carries the offsets; the
  parts that do not cover time variation refuse it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _ode_studies import simulate_subject, simulate_tv

from poppk.data import read_nonmem
from poppk.errors import ModelSpecError
from poppk.model import ModelSpec, build_design
from poppk.model.effects import CovariateEffect
from poppk.model.predict import predict_design
from poppk.model.time_varying import OFFSETS, segment_offsets, varying_parameters

TYPICAL = {"CL": 0.5, "V1": 2.0, "Q": 0.3, "V2": 1.5}


def tv_spec(**kw) -> ModelSpec:
    base = dict(structure="2cmt", typical=TYPICAL, iiv=("CL", "V1"),
                covariates=(CovariateEffect("CL", "WT", reference=70.0),), time_varying=("WT",), iov=("CL",),
                error="proportional", units={"time": "day"})
    return ModelSpec(**{**base, **kw})


def test_spec_options_are_checked_and_round_trip() -> None:
    spec = tv_spec()
    assert spec.time_varying == ("beta_CL_WT",) and spec.iov[0][0] == "CL" and spec.occasion == "OCC"
    assert varying_parameters(spec) == ("CL",)
    assert ModelSpec.from_toml(spec.to_toml()) == spec
    assert ModelSpec.from_json(spec.to_json()) == spec
    with pytest.raises(ModelSpecError, match="names no covariate effect.*beta_CL_WT"):
        tv_spec(time_varying=("ALB",))
    with pytest.raises(ModelSpecError, match="iov on 'KA'"):
        tv_spec(iov=("KA",))
    with pytest.raises(ModelSpecError, match="adjusted size effect"):
        ModelSpec(structure="1cmt", typical={"CL": 1.0, "V1": 5.0},
                  covariates=(CovariateEffect("CL", "TBW", form="adjusted"),), time_varying=("TBW",))
    with pytest.raises(ModelSpecError, match="time-varying parameters.*structure '1cmt' or '2cmt'"):
        ModelSpec(structure="3cmt", typical={"CL": 1, "V1": 2, "Q": 1, "V2": 3, "Q3": 1, "V3": 1}, iov=("CL",))
    with pytest.raises(ModelSpecError, match="positive prior"):
        tv_spec(iov={"CL": {"family": "normal", "mu": 0.0, "sigma": 1.0}})


def _records(rows: list[tuple]) -> pd.DataFrame:
    cols = ["ID", "TIME", "AMT", "EVID", "MDV", "DV", "WT", "OCC"]
    return pd.DataFrame(rows, columns=cols)


def test_segments_carry_values_forward() -> None:
    nan = np.nan
    df = _records([
        (1, 0.0, 100, 1, 1, nan, nan, 1),   # WT missing on the first record: the baseline (70) fills it
        (1, 1.0, 0, 0, 0, 5.0, 70.0, 1),
        (1, 2.0, 0, 0, 0, 4.0, nan, 1),     # missing: carried forward, no change
        (1, 21.0, 100, 1, 1, nan, 66.0, 2),  # weight and occasion change at the dose
        (1, 21.0, 0, 0, 0, 6.0, 65.0, 2),   # same time: the last record at a time holds
        (1, 30.0, 0, 0, 0, 3.0, 65.0, 2),
        (2, 0.0, 100, 1, 1, nan, 80.0, 1),  # nothing changes: one segment
        (2, 5.0, 0, 0, 0, 4.0, 80.0, 1),
    ])
    data = read_nonmem(df, time_unit="day")
    spec = tv_spec().resolved(data.covariates)
    d = build_design(spec, data)
    seg = d.segments
    assert seg.subject.tolist() == [0, 0, 1]
    assert seg.time[0] == -np.inf and seg.time[1] == 21.0 and seg.time[2] == -np.inf
    assert seg.values["beta_CL_WT"].tolist() == [70.0, 65.0, 80.0]
    assert seg.baseline["beta_CL_WT"].tolist() == [70.0, 70.0, 80.0]
    assert seg.pair.tolist() == [0, 1, 2] and seg.pair_occasion.tolist() == [1, 2, 1]
    # the offsets of the covariate part: 0.75·log(65/70) on the second segment
    off = segment_offsets(spec, seg, {"beta_CL_WT": 0.75})
    np.testing.assert_allclose(off[:, 0], [0.0, 0.75 * np.log(65 / 70), 0.0])
    kappa = np.array([[0.1], [-0.2], [0.3]])
    np.testing.assert_allclose(segment_offsets(spec, seg, {"beta_CL_WT": 0.0}, kappa)[:, 0], [0.1, -0.2, 0.3])
    # only the covariate: no occasion needed, no pairs
    d2 = build_design(tv_spec(iov=()).resolved(data.covariates), data)
    assert d2.segments.pair.tolist() == [-1, -1, -1] and d2.segments.n_pairs == 0


def test_missing_occasion_column_is_refused() -> None:
    df, _ = simulate_tv(1, n_subjects=2, cycles=2)
    data = read_nonmem(df.drop(columns="OCC"), time_unit="day")
    with pytest.raises(ModelSpecError, match="occasion column 'OCC'"):
        build_design(tv_spec().resolved(data.covariates), data)
    data = read_nonmem(df.rename(columns={"OCC": "CYCLE"}), time_unit="day")
    assert build_design(tv_spec(occasion="CYCLE").resolved(data.covariates), data).segments.n_pairs == 4


def test_predictions_match_the_independent_generator() -> None:
    """Design -> segments -> offsets -> solver against solve_ivp with the per-cycle parameters."""
    df, truth = simulate_tv(3, n_subjects=5, cycles=3)
    data = read_nonmem(df, time_unit="day")
    spec = tv_spec().resolved(data.covariates)
    d = build_design(spec, data)
    rng = np.random.default_rng(0)
    n = d.n_subjects
    wt0 = data.covariates["WT"].to_numpy(dtype=float)
    eta = rng.normal(0.0, 0.3, n)
    cl = truth["CL"] * (wt0 / 70.0) ** truth["beta_CL_WT"] * np.exp(eta)
    v1 = np.full(n, truth["V1"])
    kappa = rng.normal(0.0, 0.2, (d.segments.n_pairs, 1))
    params = {"CL": cl, "V1": v1, "Q": np.full(n, truth["Q"]), "V2": np.full(n, truth["V2"]),
              OFFSETS: segment_offsets(spec, d.segments, {"beta_CL_WT": truth["beta_CL_WT"]}, kappa)}
    got = predict_design(spec, d, params)
    for i, sid in enumerate(d.subject_ids):
        rec = df[df["ID"] == sid]
        wts = rec.groupby("OCC")["WT"].last().to_numpy()
        k = kappa[d.segments.pair[d.segments.subject == i], 0]

        def p_at(t: float, i=i, wts=wts, k=k) -> dict:
            c = min(int(np.floor(t / 21.0 + 1e-9)), len(wts) - 1)
            return {"CL": truth["CL"] * (wts[c] / 70.0) ** truth["beta_CL_WT"] * np.exp(eta[i] + k[c]),
                    "V1": v1[i], "Q": truth["Q"], "V2": truth["V2"]}

        obs = rec[rec["EVID"] == 0]
        doses = [(float(t), float(a), float(a / r)) for t, a, r in rec.loc[rec["EVID"] == 1, ["TIME", "AMT", "RATE"]]
                 .itertuples(index=False)]
        want = simulate_subject("linear", p_at, doses, obs["TIME"].to_numpy(), 2, changes=(21.0, 42.0))
        np.testing.assert_allclose(got[d.obs_subject == i], want, rtol=1e-5)
    with pytest.raises(ModelSpecError, match="per-segment log offsets"):
        predict_design(spec, d, {k: v for k, v in params.items() if k != OFFSETS})


def test_model_gradient_flows_through_the_offsets() -> None:
    """d logp / d(beta, z_iov) of the model graph against central differences (Python-mode Op)."""
    import pytensor

    from poppk.model import build_model, laplace_init

    df, _ = simulate_tv(2, n_subjects=3, cycles=2)
    data = read_nonmem(df, time_unit="day")
    spec = tv_spec().resolved(data.covariates)
    d = build_design(spec, data)
    init = laplace_init(spec, d)
    # each κ's scale is its conditional SD: below the prior's central ω where its occasion has data
    omega0 = spec.iov[0][1].point()
    assert init.iov_scale.shape == (d.segments.n_pairs, 1) and np.all(init.iov_scale < 0.9 * omega0)
    model = build_model(spec, design=d, init=init)
    assert {"z_iov", "omega_iov_CL", "beta_CL_WT"} <= {v.name for v in model.free_RVs}
    logp = model.logp()
    wrt = [model.rvs_to_values[model["beta_CL_WT"]], model.rvs_to_values[model["z_iov"]]]
    grads = pytensor.grad(logp, wrt)
    f = pytensor.function(model.value_vars, [logp, *grads], mode="FAST_COMPILE", on_unused_input="ignore")
    point = model.initial_point()
    rng = np.random.default_rng(1)
    point["z_iov"] = rng.normal(0.0, 1.0, point["z_iov"].shape)
    args = [point[v.name] for v in model.value_vars]
    _, g_beta, g_z = f(*args)
    pos = {v.name: i for i, v in enumerate(model.value_vars)}
    h = 1e-5

    def at(name: str, delta: np.ndarray) -> float:
        a = list(args)
        a[pos[name]] = np.asarray(a[pos[name]]) + delta
        return float(f(*a)[0])

    fd_beta = (at("beta_CL_WT", h) - at("beta_CL_WT", -h)) / (2 * h)
    assert g_beta == pytest.approx(fd_beta, rel=1e-4, abs=1e-6)
    for k in range(point["z_iov"].shape[0]):
        e = np.zeros_like(point["z_iov"])
        e[k, 0] = h
        assert g_z[k, 0] == pytest.approx((at("z_iov", e) - at("z_iov", -e)) / (2 * h), rel=1e-4, abs=1e-6)


def test_simulation_forecast_and_exposure_toxicity_refuse_what_they_do_not_cover() -> None:
    from poppk.errors import ConfigError
    from poppk.forecast.patient import make_patient
    from poppk.simulate.draws import _check_resolved

    spec = tv_spec()
    with pytest.raises(ModelSpecError, match="inter-occasion variability on \\['CL'\\]"):
        _check_resolved(spec)
    _check_resolved(tv_spec(iov=()))  # time-varying covariates alone: virtual patients keep their values
    with pytest.raises(ConfigError, match="time-varying covariates or inter-occasion variability"):
        make_patient(spec, {"WT": 70.0})
    from types import SimpleNamespace

    from poppk.simulate.toxicity import trial_exposures

    with pytest.raises(ConfigError, match="closed form from one parameter set per subject"):
        trial_exposures(SimpleNamespace(spec=tv_spec(iov=())), "cmax_c1")


def test_occasion_effects_alone_keep_a_draw_axis_and_new_subjects_draw_new_kappa() -> None:
    """IOV without time-varying covariates: the typical (PRED) offsets are 0 on every segment and
    still carry a draw axis, so chunked predictions and new-subject simulations line up."""
    import arviz as az
    import xarray as xr

    from poppk.diagnostics.simulate import sample_parameters
    from poppk.model.fit import Fit
    from poppk.model.predict import predict_draws

    df, _ = simulate_tv(4, n_subjects=5, cycles=3)
    data = read_nonmem(df, time_unit="day")
    spec = tv_spec(covariates=(), time_varying=()).resolved(data.covariates)
    d = build_design(spec, data)
    n_chain, n_draw, n_pair = 1, 2, d.segments.n_pairs  # fewer draws than segments
    rng = np.random.default_rng(0)
    post = xr.Dataset({
        **{f"log_{p}": (("chain", "draw"), np.full((n_chain, n_draw), np.log(v))) for p, v in TYPICAL.items()},
        **{p: (("chain", "draw"), np.full((n_chain, n_draw), v)) for p, v in TYPICAL.items()},
        "omega_CL": (("chain", "draw"), np.full((n_chain, n_draw), 0.3)),
        "omega_V1": (("chain", "draw"), np.full((n_chain, n_draw), 0.2)),
        "omega_iov_CL": (("chain", "draw"), np.full((n_chain, n_draw), 0.2)),
        "sigma_prop": (("chain", "draw"), np.full((n_chain, n_draw), 0.1)),
        "theta": (("chain", "draw", "id", "iiv"), np.log(np.tile([0.5, 2.0], (n_chain, n_draw, d.n_subjects, 1)))),
        "kappa": (("chain", "draw", "occasion", "iov"), rng.normal(0.0, 0.2, (n_chain, n_draw, n_pair, 1))),
    }, coords={"chain": [0], "draw": np.arange(n_draw), "id": [str(s) for s in d.subject_ids],
               "iiv": ["CL", "V1"]})
    fit = Fit(idata=az.InferenceData(posterior=post), spec=spec, data=data, _design=d)
    typ = fit.parameter_draws(typical=True)
    assert typ[OFFSETS].shape == (n_draw, d.segments.n_segments, 1) and np.all(typ[OFFSETS] == 0.0)
    pred = predict_draws(spec, d, typ, chunk_elements=1)  # one draw per chunk
    assert pred.shape == (n_draw, d.n_obs) and np.all(np.isfinite(pred))
    ind = fit.parameter_draws()
    np.testing.assert_allclose(ind[OFFSETS][:, :, 0], post["kappa"].values[0][:, d.segments.pair, 0])
    new = sample_parameters(fit, np.arange(n_draw), new_subjects=True, rng=np.random.default_rng(1))
    assert new[OFFSETS].shape == typ[OFFSETS].shape and np.all(new[OFFSETS] != 0.0)


def test_the_compile_key_tells_which_effects_vary() -> None:
    from poppk.model.compile_cache import structure_key

    df, _ = simulate_tv(5, n_subjects=3, cycles=2)
    data = read_nonmem(df, time_unit="day")
    effects = (CovariateEffect("CL", "WT", reference=70.0), CovariateEffect("V1", "WT", reference=70.0))
    keys = set()
    for tv in (("beta_CL_WT",), ("beta_V1_WT",), ("beta_CL_WT", "beta_V1_WT"), ("beta_V1_WT", "beta_CL_WT")):
        spec = tv_spec(covariates=effects, time_varying=tv).resolved(data.covariates)
        keys.add(structure_key(spec, build_design(spec, data)))
    assert len(keys) == 4
