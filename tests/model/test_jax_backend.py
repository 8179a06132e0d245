"""The JAX/XLA compile path (``fit(..., backend="jax")``): the Laplace map against numba's
kernels, a fit against the numba fit of the same model, reproducibility, refusals."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("jax")

from poppk.errors import ModelSpecError  # noqa: E402
from poppk.model import ModelSpec  # noqa: E402


def _laplace_case(seed: int, n: int = 7, k: int = 4):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, k, k))
    info = np.einsum("nij,nkj->nik", a, a) * rng.uniform(0.0, 3.0, size=(n, 1, 1))  # PSD, some near 0
    b = rng.normal(size=(k, k))
    oinv = b @ b.T + k * np.eye(k)
    return info, rng.normal(size=(n, k)), rng.normal(size=(n, k)), oinv, rng.normal(size=(n, k))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_laplace_map_matches_numba_kernels(seed):
    """Values and the vector–Jacobian product in (μ, Ω⁻¹, z) equal the numba kernels'."""
    import jax

    from poppk.model.jax_backend import laplace_reparam_jax
    from poppk.model.reparam import _py_kernels

    info, h, mu, oinv, z = _laplace_case(seed)
    fwd, bwd = _py_kernels()
    theta_ref, ld_ref = fwd(info, h, mu, oinv, z)
    theta, ld = laplace_reparam_jax(info, h, mu, oinv, z)
    np.testing.assert_allclose(np.asarray(theta), theta_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(float(ld), float(ld_ref), rtol=1e-12)

    rng = np.random.default_rng(seed + 10)
    tb, lb = rng.normal(size=theta_ref.shape), rng.normal()
    _, vjp = jax.vjp(lambda m, o, zz: laplace_reparam_jax(info, h, m, o, zz), mu, oinv, z)
    g_mu, g_oinv, g_z = vjp((tb, np.float64(lb)))
    r_mu, r_oinv, r_z = bwd(info, h, mu, oinv, z, tb, np.asarray(lb))
    np.testing.assert_allclose(np.asarray(g_mu), r_mu, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.asarray(g_z), r_z, rtol=1e-10, atol=1e-12)
    # numba returns the symmetrised gradient in Ω⁻¹ (the map sees only its symmetric part)
    g_oinv = np.asarray(g_oinv)
    np.testing.assert_allclose(0.5 * (g_oinv + g_oinv.T), r_oinv, rtol=1e-10, atol=1e-12)


@pytest.mark.slow
def test_jax_fit_matches_numba_fit(small_study, small_fit):
    """The same model and sampler settings compiled by XLA: the same posterior within Monte Carlo
    error as the numba fit, the backend recorded, and the same draws again for the same seed."""
    from poppk.model import fit

    data, _ = small_study
    opts = dict(draws=300, tune=300, chains=2, seed=3, progress=False)
    jf = fit(small_fit.spec, data, backend="jax", warn=False, **opts)
    assert jf.settings["backend"] == "jax" and "jax" in jf.settings["versions"]
    assert small_fit.settings["backend"] == "numba"
    rep = jf.convergence()
    # 2 chains x 300 draws: R-hat's noise alone reaches 1.01-1.02, a mixing failure far more
    assert rep.table["r_hat"].max() < 1.05 and int(jf.idata.sample_stats["diverging"].sum()) == 0, rep.message()
    a, b = small_fit.summary(), jf.summary()
    for p in ("CL", "V1", "omega_CL", "omega_V1", "sigma_prop"):
        # two independent runs of ~600 draws: their means differ by far less than a posterior SD
        sd = float(a.loc[p, "sd"]) if "sd" in a.columns else float(a.loc[p, "upper"] - a.loc[p, "lower"]) / 3.92
        assert abs(float(a.loc[p, "median"]) - float(b.loc[p, "median"])) < 0.35 * sd, (p, a.loc[p], b.loc[p])
    again = fit(small_fit.spec, data, backend="jax", log_likelihood=False, warn=False, **opts)
    np.testing.assert_array_equal(again.idata.posterior["CL"].values, jf.idata.posterior["CL"].values)
    # what follows the fit does not care how the density was compiled
    assert np.isfinite(jf.idata.log_likelihood["obs"].values).all()


def test_jax_backend_refusals(small_study):
    from poppk.model import fit

    data, _ = small_study
    spec = ModelSpec(structure="1cmt", typical={"CL": 1.0, "V1": 10.0}, iiv=("CL",), units={"time": "h"})
    with pytest.raises(ModelSpecError, match="not 'numba' or 'jax'"):
        fit(spec, data, backend="xla")
    with pytest.raises(ModelSpecError, match="sampler='nutpie'"):
        fit(spec, data, backend="jax", sampler="pymc")
    mm = ModelSpec(structure="1cmt", elimination="michaelis-menten", typical={"VMAX": 5.0, "KM": 1.0, "V1": 5.0},
                   iiv=("VMAX",), units={"time": "h"})
    with pytest.raises(ModelSpecError, match="ODE path"):
        fit(mm, data, backend="jax")


def test_config_backend_reaches_fit(tmp_path, repo_root):
    """``[fit] backend`` is checked when the file is read and reaches ``fit``'s options."""
    from poppk.config import fit_options, load_config
    from poppk.errors import ConfigError

    text = (repo_root / "data" / "imgn853_analysis.toml").read_text()
    text = text.replace('path = "imgn853_phase1.csv"', f'path = "{(repo_root / "data" / "imgn853_phase1.csv").as_posix()}"')
    (tmp_path / "bare.toml").write_text(text)
    (tmp_path / "jax.toml").write_text(text.replace("[fit]", '[fit]\nbackend = "jax"', 1))
    (tmp_path / "bad.toml").write_text(text.replace("[fit]", '[fit]\nbackend = "xla"', 1))
    (tmp_path / "pymc.toml").write_text(text.replace("[fit]", '[fit]\nbackend = "jax"\nsampler = "pymc"', 1))
    assert fit_options(load_config(tmp_path / "bare.toml"))["backend"] == "numba"
    assert fit_options(load_config(tmp_path / "jax.toml"))["backend"] == "jax"
    with pytest.raises(ConfigError, match="fit.backend = 'xla'"):
        load_config(tmp_path / "bad.toml")
    with pytest.raises(ConfigError, match="compiles for nutpie"):
        load_config(tmp_path / "pymc.toml")


@pytest.mark.slow
def test_saved_jax_fit_is_reused_until_jax_changes(small_study, tmp_path, monkeypatch):
    """``fit(..., file=)`` with the JAX backend: the same call loads the saved fit; another JAX
    version (which would round differently) refits."""
    import sys
    import warnings

    from poppk.model import fit

    fit_module = sys.modules["poppk.model.fit"]  # the module (poppk.model.fit is also the function)

    data, _ = small_study
    spec = ModelSpec(structure="1cmt", typical={"CL": 1.0, "V1": 10.0}, iiv=("CL",), error="proportional",
                     units={"time": "h"})
    opts = dict(draws=100, tune=100, chains=1, seed=2, progress=False, warn=False, log_likelihood=False,
                backend="jax", file=tmp_path / "f")
    first = fit(spec, data, **opts)
    assert first.settings["timings"]["compile_s"] > 0
    again = fit(spec, data, **opts)
    assert again.settings["fingerprint"] == first.settings["fingerprint"]
    assert again.settings["created"] == first.settings["created"]  # loaded, not sampled
    real = fit_module._versions
    monkeypatch.setattr(fit_module, "_versions", lambda backend="numba": {**real(backend), "jaxlib": "0.0.1"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        third = fit(spec, data, **opts)
    assert third.settings["fingerprint"] != first.settings["fingerprint"]
