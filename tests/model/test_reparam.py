"""The Laplace-conditional map of the random effects (poppk.model.reparam)."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from poppk.model.build import _tril_inverse
from poppk.model.reparam import laplace_reparam, likelihood_linear_term


def _problem(k=4, n=6, seed=1):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, k, k + 2))
    info = a @ a.transpose(0, 2, 1) * 3.0
    info[0] = 0.0  # a subject without information: the map is non-centred there
    h = rng.normal(size=(n, k))
    lo = np.tril(rng.normal(size=(k, k)) * 0.1) + np.diag(rng.uniform(0.2, 0.5, k))
    return rng, info, h, lo


@pytest.mark.parametrize("mode", ["FAST_RUN", "NUMBA"])
def test_values_and_gradients(mode):
    rng, info, h, lo = _problem()
    n, k = h.shape
    mu_v, lo_v, z_v = pt.dmatrix("mu"), pt.dmatrix("lo"), pt.dmatrix("z")
    li = _tril_inverse(pt, pt.tril(lo_v), k)
    th, ld = laplace_reparam(info, h, mu_v, li.T @ li, z_v)
    w = pt.as_tensor(rng.normal(size=(n, k)))
    cost = (th * w).sum() + 0.3 * (th**2).sum() + 0.7 * ld
    f = pytensor.function([mu_v, lo_v, z_v], [cost, *pytensor.grad(cost, [mu_v, lo_v, z_v]), th, ld], mode=mode)
    vals = [rng.normal(size=(n, k)), lo, rng.normal(size=(n, k))]
    out = f(*vals)
    # theta and log det against the dense formulas
    mu, L, z = vals
    oi = np.linalg.inv(L @ L.T)
    ld_ref = 0.0
    for i in range(n):
        P = info[i] + oi
        Lc = np.linalg.cholesky(P)
        ref = np.linalg.solve(P, h[i] + oi @ mu[i]) + np.linalg.solve(Lc.T, z[i])
        np.testing.assert_allclose(out[4][i], ref, rtol=1e-10, atol=1e-12)
        ld_ref += np.log(np.diag(Lc)).sum()
    np.testing.assert_allclose(out[5], ld_ref, rtol=1e-12)
    # gradients against central differences
    eps = 1e-6
    for vi in range(3):
        num = np.zeros_like(vals[vi])
        for idx in np.ndindex(vals[vi].shape):
            if vi == 1 and idx[1] > idx[0]:
                continue
            vp = [v.copy() for v in vals]
            vm = [v.copy() for v in vals]
            vp[vi][idx] += eps
            vm[vi][idx] -= eps
            num[idx] = (f(*vp)[0] - f(*vm)[0]) / (2 * eps)
        an = np.tril(out[1 + vi]) if vi == 1 else out[1 + vi]
        np.testing.assert_allclose(an, num, rtol=1e-6, atol=1e-6 * np.abs(num).max())


def test_identity_at_the_laplace_fit():
    """At the EM estimates (mu0, diagonal Omega0) z = 0 gives the conditional modes."""
    rng, info, _, _ = _problem()
    n, k = info.shape[:2]
    omega0 = rng.uniform(0.2, 0.5, k)
    prec0 = np.diag(1 / omega0**2)
    mu0 = rng.normal(size=(n, k))
    mode = mu0 + rng.normal(size=(n, k)) * 0.1
    h = likelihood_linear_term(info, mode, mode - mu0, prec0)
    th, _ = laplace_reparam(info, h, mu0, prec0, np.zeros((n, k)))
    np.testing.assert_allclose(th.eval(), mode, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------------------------
# The "laplace" model has the same posterior as the "centered" and "noncentered" ones: at any
# population values and individual log parameters theta, each model's log density (in its own
# free variables z) equals the same function of (population, theta) up to that parametrisation's
# log-Jacobian, and each model's `theta` deterministic is theta.  Checked on model variants
# covering diagonal/full Omega, 1/2/3 compartments, IV/oral, the four error models, M3 BLQ,
# covariates and a fixed omega (no sampling; a few seconds each).

VARIANTS = {
    "1cmt-diag-proportional": (
        dict(n_subjects=10, seed=4),
        dict(structure="1cmt", typical={"CL": 1.0, "V1": 10.0}, iiv=("CL", "V1"), error="proportional"),
    ),
    "2cmt-full-combined-m3-covariate": (
        dict(n_subjects=10, structure="2cmt", sigma_add=0.05, lloq=0.5, wt_exponent=0.75, seed=5),
        dict(structure="2cmt", typical={"CL": 1.0, "V1": 10.0, "Q": 2.0, "V2": 30.0}, iiv=("CL", "V1", "Q"),
             iiv_correlation="full", error="combined", blq="m3",
             covariates=[{"parameter": "CL", "covariate": "WT", "form": "power", "reference": 70.0}]),
    ),
    "3cmt-oral-additive-fixed-omega": (
        dict(n_subjects=10, structure="3cmt", oral=True, sigma_prop=0.0, sigma_add=0.05, seed=6,
             truth={"CL": 2.0, "V1": 20.0, "Q": 3.0, "V2": 40.0, "Q3": 1.0, "V3": 60.0, "KA": 1.0},
             omega={"CL": 0.3, "V1": 0.2, "KA": 0.4}),
        dict(structure="3cmt", absorption="first-order",
             typical={"CL": 1.5, "V1": 15.0, "Q": 3.0, "V2": 40.0, "Q3": 1.0, "V3": 60.0, "KA": 0.8},
             iiv=("CL", "V1", "KA"), omega={"V1": {"family": "fixed", "value": 0.25}}, error="additive"),
    ),
    "2cmt-one-iiv-m1": (
        dict(n_subjects=8, structure="2cmt", lloq=0.5, seed=8),
        dict(structure="2cmt", typical={"CL": 1.0, "V1": 10.0, "Q": 2.0, "V2": 30.0}, iiv=("CL",),
             error="proportional", blq="m1"),
    ),
    "1cmt-oral-full-exponential-categorical": (
        dict(n_subjects=10, oral=True, seed=7, truth={"CL": 2.0, "V1": 20.0, "KA": 1.5},
             omega={"CL": 0.3, "V1": 0.2, "KA": 0.3}),
        dict(structure="1cmt", absorption="first-order", typical={"CL": 2.0, "V1": 20.0, "KA": 1.0},
             iiv=("CL", "V1", "KA"), iiv_correlation="full", error="exponential",
             covariates=[{"parameter": "V1", "covariate": "SEX", "form": "categorical", "level": "F"}]),
    ),
}


def _models(variant):
    from _studies import simulate_study
    from poppk.data import read_nonmem
    from poppk.model import ModelSpec, build_design, build_model, laplace_init

    sim, kw = VARIANTS[variant]
    df, _ = simulate_study(**sim)
    data = read_nonmem(df)
    kw = dict(kw)
    kw["covariates"] = tuple(_covariate(c) for c in kw.get("covariates", ()))
    if "omega" in kw:
        kw["omega"] = {p: _prior(v) for p, v in kw["omega"].items()}
    spec = ModelSpec(**{"units": {"time": "h"}, **kw}).resolved(data.covariates)
    design = build_design(spec, data)
    init = laplace_init(spec, design)
    models = {
        par: build_model(spec.__class__(**{**_fields(spec), "parametrization": par}), design=design, init=init)
        for par in ("centered", "laplace", "noncentered")
    }
    return spec, design, init, models


def _covariate(d):
    from poppk.model import CovariateEffect

    return CovariateEffect.from_dict(d)


def _prior(d):
    from poppk.model import Prior

    return Prior.from_dict(d)


def _fields(spec):
    import dataclasses

    return {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}


def _population_at(model, spec, point):
    """Omega (k x k) and the typical log parameters mu (n x k) of a model at a point, in NumPy."""
    from poppk.model.parameters import log_individual_parameters

    k = len(spec.iiv)
    names = [f"omega_{p}" for p in spec.iiv] + list(spec.parameters) + [c.name for c in spec.covariates]
    names += ["omega_corr"] if spec.iiv_correlation == "full" else []
    present = [n for n in names if n in model.named_vars]
    vals = dict(zip(present, model.compile_fn(model.replace_rvs_by_values([model[n] for n in present]), inputs=model.value_vars, mode="FAST_COMPILE", on_unused_input="ignore")(point)))
    sd = np.array([vals[f"omega_{p}"] if f"omega_{p}" in vals else spec.omega_priors[p]["value"] for p in spec.iiv])
    corr = vals["omega_corr"] if spec.iiv_correlation == "full" else np.eye(k)
    omega = sd[:, None] * corr * sd[None, :]
    log_tv = {p: float(np.log(vals[p])) for p in spec.parameters}
    betas = {c.name: float(vals[c.name]) for c in spec.covariates}
    design = model.poppk_design
    logp = log_individual_parameters(spec, log_tv, betas, design.covariates, None)
    mu = np.column_stack([np.broadcast_to(np.asarray(logp[p], float), (design.n_subjects,)) for p in spec.iiv])
    return omega, mu


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_same_density_as_centered_and_noncentered(variant):
    spec, design, init, models = _models(variant)
    n, k = design.n_subjects, len(spec.iiv)
    rng = np.random.default_rng(11)
    point = models["laplace"].initial_point()
    for name in point:
        if name != "z":
            point[name] = point[name] + 0.3 * rng.normal(size=np.shape(point[name]))
    omega, mu = _population_at(models["laplace"], spec, point)
    theta = init.mode + 0.3 * rng.normal(size=(n, k))  # anywhere, not at the modes

    # each parametrisation's z for this theta, and its log |d theta / d z|
    oinv = np.linalg.inv(omega)
    h = np.einsum("nab,nb->na", init.info, init.mode) + init.eta @ init.prior_precision
    z, log_jac = {}, {}
    z["laplace"] = np.empty((n, k))
    log_jac["laplace"] = 0.0
    for i in range(n):
        P = init.info[i] + oinv
        L = np.linalg.cholesky(P)
        M = np.linalg.solve(P, h[i] + oinv @ mu[i])
        z["laplace"][i] = L.T @ (theta[i] - M)
        log_jac["laplace"] -= np.log(np.diag(L)).sum()
    z["centered"] = np.stack([np.linalg.solve(init.chol[i], theta[i] - init.mode[i]) for i in range(n)])
    log_jac["centered"] = 0.0  # constant Jacobian: not part of the model's density
    l_omega = np.linalg.cholesky(omega)
    z["noncentered"] = np.linalg.solve(l_omega, (theta - mu).T).T
    log_jac["noncentered"] = n * np.log(np.diag(l_omega)).sum()

    lp = {}
    for par, model in models.items():
        pt_ = dict(point, z=z[par])
        lp_fn = model.compile_fn([model.logp(), *model.replace_rvs_by_values([model["theta"]])], inputs=model.value_vars, mode="FAST_COMPILE", on_unused_input="ignore")
        value, theta_model = lp_fn(pt_)
        np.testing.assert_allclose(theta_model, theta, rtol=1e-9, atol=1e-9, err_msg=par)
        lp[par] = float(value) - log_jac[par]  # the density of (population, theta)
    assert np.isfinite(lp["centered"])
    assert lp["laplace"] == pytest.approx(lp["centered"], rel=1e-9, abs=1e-7)
    assert lp["noncentered"] == pytest.approx(lp["centered"], rel=1e-9, abs=1e-7)


def test_numba_log_density_and_gradient_of_the_laplace_model():
    """The compiled (numba, as nutpie runs it) log density and gradient, against finite differences."""
    spec, design, init, models = _models("2cmt-full-combined-m3-covariate")
    model = models["laplace"]
    fn = model.logp_dlogp_function(ravel_inputs=True, mode="NUMBA")
    fn.set_extra_values({})
    rng = np.random.default_rng(3)
    point = model.initial_point()
    x = np.concatenate([np.ravel(point[v.name]) for v in fn._grad_vars])
    x = x + 0.2 * rng.normal(size=x.size)
    value, grad = fn(x)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    eps = 1e-6
    idx = np.r_[np.arange(x.size - design.n_subjects * len(spec.iiv)), x.size - 1 - rng.choice(30, 6, replace=False)]
    for j in idx:
        e = np.zeros_like(x)
        e[j] = eps
        num = (fn(x + e)[0] - fn(x - e)[0]) / (2 * eps)
        assert grad[j] == pytest.approx(num, rel=1e-5, abs=1e-5), (j, fn._grad_vars)


# --------------------------------------------------------------------------------------------
# Sampling: the same posterior as the "centered" parametrisation, and every Fit method works on it.


@pytest.fixture(scope="module")
def laplace_fit(small_fit):
    """The session's small fit, which uses the default parametrisation ("laplace")."""
    return small_fit


@pytest.fixture(scope="module")
def centered_fit(small_study, small_fit):
    import dataclasses

    from poppk.model import fit

    data, _ = small_study
    spec = dataclasses.replace(small_fit.spec, parametrization="centered")
    return fit(spec, data, draws=300, tune=300, chains=2, seed=3, progress=False)


def _mean_mcse_sd(f, name):
    import arviz as az

    x = f.posterior[name]
    return x.mean(("chain", "draw")).values, az.mcse(f.idata, var_names=[name])[name].values, x.std(("chain", "draw")).values


def test_same_posterior_as_the_centered_parametrisation(centered_fit, laplace_fit):
    assert centered_fit.spec.parametrization == "centered" and laplace_fit.spec.parametrization == "laplace"
    assert laplace_fit.convergence().ok, laplace_fit.convergence().message()
    # the comparison fit: "centered" is known to mix more slowly (2 x 300 draws give R-hat up to ~1.012 on some
    # machines); the test is about the two posteriors agreeing within their Monte-Carlo errors
    conv = centered_fit.convergence()
    assert conv.table["r_hat"].max() < 1.02 and conv.divergences == 0, conv.message()
    for name in [*centered_fit.population_variables, "theta"]:
        m1, e1, s1 = _mean_mcse_sd(centered_fit, name)
        m2, e2, s2 = _mean_mcse_sd(laplace_fit, name)
        z = np.abs(m1 - m2) / np.sqrt(e1**2 + e2**2)
        assert np.max(z) < 4.5, (name, np.max(z))
        np.testing.assert_allclose(s2, s1, rtol=0.2, err_msg=name)


def test_fit_methods_and_save_load_with_laplace(laplace_fit, tmp_path):
    from poppk.model import load_fit

    post = laplace_fit.posterior
    assert post["theta"].dims == ("chain", "draw", "id", "iiv")
    assert "z" not in post  # only readable variables are kept
    ind = laplace_fit.individual_parameters()
    np.testing.assert_allclose(np.log(ind["CL"].values), post["theta"].sel(iiv="CL").values, rtol=1e-12)
    # no covariates: eta = theta - log typical value, draw by draw
    eta = laplace_fit.eta().sel(iiv="V1").transpose("chain", "draw", "id").values
    ref = post["theta"].sel(iiv="V1").values - np.log(post["V1"].values)[:, :, None]
    np.testing.assert_allclose(eta, ref, rtol=0, atol=1e-10)
    again = load_fit(laplace_fit.save(tmp_path / "fit"))
    assert again.spec == laplace_fit.spec and again.spec.parametrization == "laplace"
    np.testing.assert_allclose(again.individual_parameters()["CL"].values, ind["CL"].values)
    np.testing.assert_allclose(again.idata.log_likelihood["y"].values, laplace_fit.idata.log_likelihood["y"].values)


def test_default_low_rank():
    """Low-rank adaptation by default for a full Omega, except with 'laplace' when every typical value has IIV."""
    from poppk.model import ModelSpec, Prior
    from poppk.model.fit import _default_low_rank

    def spec(iiv, corr, par, **kw):
        return ModelSpec(structure="2cmt", typical={"CL": 1.0, "V1": 10.0, "Q": 2.0, "V2": 30.0, **kw}, iiv=iiv,
                         iiv_correlation=corr, parametrization=par)

    every, two = ("CL", "V1", "Q", "V2"), ("CL", "V1")
    assert _default_low_rank(spec(two, "full", "centered"))
    assert _default_low_rank(spec(two, "full", "laplace"))
    assert not _default_low_rank(spec(every, "full", "laplace"))
    assert _default_low_rank(spec(every, "full", "centered"))
    assert not _default_low_rank(spec(two, "diagonal", "centered"))
    assert not _default_low_rank(spec(two, "diagonal", "laplace"))
    # a fixed typical value is not sampled: it does not count
    assert not _default_low_rank(spec(("CL", "V1", "Q"), "full", "laplace", V2=Prior.fixed(30.0)))


def test_laplace_needs_the_likelihood_information():
    import dataclasses

    from poppk.errors import ModelSpecError
    from poppk.model import build_model

    spec, design, init, _ = _models("1cmt-diag-proportional")
    spec = dataclasses.replace(spec, parametrization="laplace")
    with pytest.raises(ModelSpecError, match="laplace_init"):
        build_model(spec, design=design, init=dataclasses.replace(init, info=None))
