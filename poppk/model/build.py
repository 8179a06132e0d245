"""``build_model``: the only place that assembles a ``pm.Model``.

Variables (names a pharmacometrician reads directly):

* ``log_CL`` … free; ``CL``, ``V1`` … typical values (deterministic, natural scale);
* ``beta_<PARAM>_<COV>`` covariate coefficients;
* ``omega_<PARAM>`` IIV standard deviations, ``omega_corr`` (full Ω only);
* ``sigma_prop`` / ``sigma_add`` / ``sigma_exp`` residual error;
* ``theta`` (``id × iiv``): individual log parameters of the IIV parameters.

Parametrisations of the random effects:

* ``"centered"``: ``theta_i = m_i + C_i z_i`` with the Laplace mean
  and Cholesky factor of subject i from :func:`poppk.model.init.laplace_init`
  (constants), ``z`` free with a flat base measure, and the population density
  ``theta_i ~ MVN(log TV_i, Ω)`` added explicitly.  An affine change of
  variables with a constant Jacobian: the posterior is exactly the centred
  model's, preconditioned per subject.
* ``"laplace"`` (default): ``theta_i = M_i + L_i^{-T} z_i`` where ``P_i = I_i + Ω⁻¹ = L_i L_iᵀ``
  and ``M_i = P_i⁻¹ (h_i + Ω⁻¹ log TV_i)`` use the Gaussian approximation
  ``(I_i, h_i)`` of subject i's likelihood from the Laplace-EM pass and the
  *current* TV and Ω (:mod:`poppk.model.reparam`): centred where the subject's
  data are informative, non-centred where they are not, per subject and
  direction, and it moves with TV and Ω (no TV–θ coupling, no ω funnel).  ``z``
  is flat; the population density of theta and the log-Jacobian
  ``-Σ log det L_i`` are added explicitly, so the posterior is exactly the
  model's.
* ``"noncentered"``: ``theta_i = log TV_i + L_Ω z_i``, ``z ~ N(0, I)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from poppk.errors import ModelSpecError
from poppk.model.analytes import error_terms, sigma_analyte, sigma_base
from poppk.model.design import ModelDesign, build_design
from poppk.model.init import LaplaceInit
from poppk.model.inputs import GraphInputs
from poppk.model.likelihood import observation_loglik
from poppk.model.parameters import log_individual_parameters
from poppk.model.predict import predict_design, prediction_arrays
from poppk.model.priors import Prior
from poppk.model.spec import ModelSpec
from poppk.model.time_varying import IOV_EFFECT, IOV_LATENT, OFFSETS, segment_offsets

__all__ = ["build_model"]


def _prior_rv(pm: Any, name: str, prior: Prior, inputs: GraphInputs, key: str, **kw: Any) -> Any:
    """The PyMC variable of ``prior``; its hyper-parameters are graph inputs named ``key/...``."""
    f = prior.family
    p = {k: inputs.scalar(f"{key}/{k}", v) for k, v in prior.params}
    if f == "normal":
        return pm.Normal(name, mu=p["mu"], sigma=p["sigma"], **kw)
    if f == "halfnormal":
        return pm.HalfNormal(name, sigma=p["sigma"], **kw)
    if f == "halfcauchy":
        return pm.HalfCauchy(name, beta=p["beta"], **kw)
    if f == "exponential":
        return pm.Exponential(name, scale=p["scale"], **kw)
    if f == "lognormal":
        import pytensor.tensor as pt

        return pm.LogNormal(name, mu=pt.log(p["median"]), sigma=p["sigma"], **kw)
    if f == "beta":
        return pm.Beta(name, alpha=p["alpha"], beta=p["beta"], **kw)
    raise ModelSpecError(f"{name}: prior family {f!r} cannot be used here")


def _sigma_prior(spec: ModelSpec, name: str, design: ModelDesign) -> Prior:
    given = dict(spec.sigma)
    if name in given:
        return given[name]
    if sigma_base(name) == "add":
        use = ~design.blq
        if design.obs_analyte is not None:  # the analyte's own observations set its scale
            use &= design.obs_analyte == sigma_analyte(spec, name)
        obs = design.dv[use]
        scale = float(np.median(np.abs(obs))) if obs.size else 1.0
        return Prior.halfnormal(max(scale, 1e-12))
    return Prior.halfnormal(0.5)


def build_model(
    spec: ModelSpec,
    data: Any = None,
    *,
    design: ModelDesign | None = None,
    init: LaplaceInit | None = None,
    inputs: GraphInputs | None = None,
) -> Any:
    """Assemble the PyMC model of ``spec`` on ``data``.

    Parameters
    ----------
    spec
        Model spec; covariate references are resolved against ``data``.
    data
        A :class:`~poppk.data.PKData` (or pass ``design``).
    design
        A prebuilt :class:`~poppk.model.design.ModelDesign`.
    init
        Laplace-EM result; required by the ``"centered"`` and ``"laplace"`` parametrisations (it
        is computed here when missing).
    inputs
        Where the numbers go (data arrays, covariate values and references, the
        Laplace terms, prior hyper-parameters, fixed values): default, a fresh
        constant-mode :class:`~poppk.model.inputs.GraphInputs`; a shared-mode one
        makes them shared variables, the form :mod:`poppk.model.compile_cache`
        compiles once per structure (the model then has no coordinates, as its
        sizes are not fixed).

    Returns
    -------
    pymc.Model
        With coordinates ``id``, ``obs``, ``iiv`` (and ``iiv_bis``); the inputs
        are ``model.poppk_inputs``.
    """
    import pymc as pm
    import pytensor.tensor as pt

    if design is None:
        if data is None:
            raise ModelSpecError("build_model needs data or a design")
        spec = spec.resolved(data.covariates)
        design = build_design(spec, data)
    if any(c.reference is None and c.form != "categorical" for c in spec.covariates):
        raise ModelSpecError("covariate references are unresolved: pass the spec through spec.resolved(data.covariates)")
    k = len(spec.iiv)
    if spec.parametrization in ("centered", "laplace") and k and init is None:
        from poppk.model.init import laplace_init

        init = laplace_init(spec, design)

    if inputs is None:
        inputs = GraphInputs(shared=False)
    shared = inputs.shared
    coords = {} if shared else {
        "id": [str(s) for s in design.subject_ids],
        "obs": np.arange(design.n_obs),
        "iiv": list(spec.iiv),
        "iiv_bis": list(spec.iiv),
        **(_iov_coords(spec, design) if spec.iov else {}),
    }

    def dims(*names: str) -> dict[str, Any]:
        return {} if shared else {"dims": names}

    with pm.Model(coords=coords) as model:
        n_subjects = inputs.array("subject_index", np.arange(design.n_subjects), np.int64).shape[0]
        log_tv: dict[str, Any] = {}
        for p, prior in spec.typical:
            if prior.is_fixed:
                log_tv[p] = inputs.scalar(f"typical{p}/log_value", np.log(prior["value"]))
            else:
                mu = inputs.scalar(f"typical{p}/log_median", np.log(prior["median"]))
                log_tv[p] = pm.Normal(f"log_{p}", mu=mu, sigma=inputs.scalar(f"typical{p}/sigma", prior["sigma"]))
            pm.Deterministic(p, pt.exp(log_tv[p]))
        # covariate effects are named by position: a model on another size descriptor is the same graph
        betas: dict[str, Any] = {}
        for i, (name, prior) in enumerate(spec.coefficients):
            if prior.is_fixed:
                betas[name] = inputs.scalar(f"coef{i}/value", prior["value"])
            else:
                betas[name] = _prior_rv(pm, name, prior, inputs, f"coef{i}")
        covs = {name: inputs.array(f"cov{i}", v) for i, (name, v) in enumerate(design.covariates.items())}
        refs = {
            c.name: (
                inputs.scalar(f"effect{i}/reference", c.reference) if c.reference is not None else None,
                inputs.scalar(f"effect{i}/base_reference", c.base_reference) if c.base_reference is not None else None,
            )
            for i, c in enumerate(spec.covariates)
        }
        # typical log parameters of every subject (covariates, no eta)
        typical = log_individual_parameters(spec, log_tv, betas, covs, None, references=refs)

        eta_map: dict[str, Any] = {}
        if k:
            if spec.iiv_correlation == "full":
                families = {pr.family for _, pr in spec.omega}
                if len(families) != 1 or "fixed" in families:
                    raise ModelSpecError(
                        "iiv_correlation='full' needs the same (non-fixed) prior family for every omega; "
                        f"got {sorted(families)}"
                    )
                sd_dist = _prior_dist(pm, spec.omega, k, inputs)
                chol, corr, stds = pm.LKJCholeskyCov(
                    "omega_chol", n=k, eta=spec.lkj_eta, sd_dist=sd_dist, compute_corr=True
                )
                omega_vec = stds
                for j, p in enumerate(spec.iiv):
                    pm.Deterministic(f"omega_{p}", stds[j])
                pm.Deterministic("omega_corr", corr, **dims("iiv", "iiv_bis"))
            else:
                chol = None
                omegas = []
                for p, prior in spec.omega:
                    if prior.is_fixed:
                        omegas.append(inputs.scalar(f"omega{p}/value", prior["value"]))
                    else:
                        omegas.append(_prior_rv(pm, f"omega_{p}", prior, inputs, f"omega{p}"))
                omega_vec = pt.stack(omegas)
            mu = pt.stack(
                [pt.broadcast_to(typical[p], (n_subjects,)) for p in spec.iiv], axis=1
            )
            if spec.parametrization in ("centered", "laplace"):
                z = pm.Flat("z", **dims("id", "iiv")) if not shared else pm.Flat("z", shape=(n_subjects, k))
                if spec.parametrization == "centered":
                    m_i = inputs.array("init_mode", init.mode)  # type: ignore[union-attr]
                    c_i = inputs.array("init_chol", init.chol)  # type: ignore[union-attr]
                    theta = m_i + (c_i * z[:, None, :]).sum(axis=-1)
                else:
                    theta = _laplace_theta(pt, pm, init, mu, z, omega_vec, chol, k, inputs)
                eta = theta - mu
                if chol is None:
                    pm.Potential(
                        "iiv_density",
                        pm.logp(pm.Normal.dist(0.0, omega_vec[None, :]), eta).sum(),
                    )
                else:
                    pm.Potential("iiv_density", _mvn_chol_logp(pt, eta, chol, k))
            else:
                z = pm.Normal("z", 0.0, 1.0, **dims("id", "iiv")) if not shared else pm.Normal(
                    "z", 0.0, 1.0, shape=(n_subjects, k))
                eta = z * omega_vec[None, :] if chol is None else z @ chol.T
                theta = mu + eta
            pm.Deterministic("theta", theta, **dims("id", "iiv"))
            eta_map = {p: eta[:, j] for j, p in enumerate(spec.iiv)}

        logp = log_individual_parameters(spec, log_tv, betas, covs, eta_map, references=refs)
        params = {p: pt.exp(v) for p, v in logp.items()}
        if design.segments is not None:
            params[OFFSETS] = _segment_offsets(pm, pt, spec, design, betas, refs, inputs, shared, init)
        sigma = {}
        for name in spec.sigma_names:
            prior = _sigma_prior(spec, name, design)
            sigma[name] = (inputs.scalar(f"sigma{name}/value", prior["value"]) if prior.is_fixed
                           else _prior_rv(pm, f"sigma_{name}", prior, inputs, f"sigma{name}"))
        arrays = {k: inputs.array(k, v, v.dtype) for k, v in prediction_arrays(design).items()}
        ipred = predict_design(spec, design, params, arrays=arrays)
        sigma_obs, error = error_terms(spec, sigma, arrays.get("obs_analyte"))
        ll = observation_loglik(
            inputs.array("dv", design.dv),
            ipred,
            sigma_obs,
            error,
            blq=inputs.array("blq", design.blq, bool) if design.has_blq else None,
            lloq=inputs.array("lloq", design.lloq) if design.has_blq else None,
            truncate_at_zero=spec.truncate_at_zero,
        )
        pm.Potential("loglik", ll.sum())
    model.poppk_design = design  # type: ignore[attr-defined]
    model.poppk_spec = spec  # type: ignore[attr-defined]
    model.poppk_init = init  # type: ignore[attr-defined]
    model.poppk_inputs = inputs  # type: ignore[attr-defined]
    return model


def _iov_coords(spec: ModelSpec, design: ModelDesign) -> dict[str, list[str]]:
    """Coordinates of the occasion effects: ``occasion`` (subject:occasion pairs) and ``iov``."""
    seg = design.segments
    ids = [str(s) for s in design.subject_ids]
    return {"occasion": [f"{ids[i]}:{o}" for i, o in zip(seg.pair_subject.tolist(), seg.pair_occasion.tolist())],
            "iov": [p for p, _ in spec.iov]}


def _segment_offsets(pm: Any, pt: Any, spec: ModelSpec, design: ModelDesign, betas: dict[str, Any],
                     refs: dict[str, Any], inputs: GraphInputs, shared: bool, init: LaplaceInit | None) -> Any:
    """Per-segment log offsets of the time-varying parameters; adds ω_IOV and the occasion effects κ.

    κ = s·z with s the conditional SD of each κ at the Laplace-EM estimates
    (:attr:`LaplaceInit.iov_scale`), its N(0, ω_IOV²) density a potential: centred where
    an occasion's data determine κ, non-centred where they do not.  Without an init
    (``parametrization="noncentered"``) κ = ω_IOV·z.
    """
    seg = design.segments
    kappa = None
    if spec.iov:
        omegas = [inputs.scalar(f"omegaiov{p}/value", prior["value"]) if prior.is_fixed
                  else _prior_rv(pm, f"omega_iov_{p}", prior, inputs, f"omegaiov{p}") for p, prior in spec.iov]
        omega = pt.stack(omegas)[None, :]
        dims = {"shape": (seg.n_pairs, len(spec.iov))} if shared else {"dims": ("occasion", "iov")}
        scale = None if init is None else init.iov_scale
        if scale is None:
            z = pm.Normal(IOV_LATENT, 0.0, 1.0, **dims)
            kappa = z * omega
        else:
            z = pm.Flat(IOV_LATENT, **dims)
            kappa = inputs.array("iov_scale", scale) * z
            pm.Potential("iov_density", pm.logp(pm.Normal.dist(0.0, omega), kappa).sum())
        pm.Deterministic(IOV_EFFECT, kappa, **({} if shared else {"dims": ("occasion", "iov")}))
    arrays = {"iov/pair": inputs.array("iov_pair", seg.pair, np.int64)}
    for i, name in enumerate(spec.time_varying):
        arrays[f"{name}/values"] = inputs.array(f"tv{i}/values", seg.values[name])
        arrays[f"{name}/baseline"] = inputs.array(f"tv{i}/baseline", seg.baseline[name])
    return segment_offsets(spec, seg, betas, kappa, references=refs, inputs=arrays)


def _mvn_chol_logp(pt: Any, x: Any, chol: Any, k: int) -> Any:
    """Sum over rows of log MVN(x_i | 0, L Lᵀ), by forward substitution unrolled over k.

    Written out element by element because k is small (≤ 9): PyMC's MvNormal
    logp calls a LAPACK triangular solve, and with a multi-threaded OpenBLAS
    inside two sampling chains on two cores that call cost 22 ms per gradient
    on the bundled trial (80 × 2), against 0.17 ms for the whole model in
    this form (single-threaded, the solve itself is cheap: 0.71 vs 0.55 ms).
    """
    n = x.shape[0]
    zs = []
    for j in range(k):
        acc = x[:, j]
        for l_ in range(j):
            acc = acc - chol[j, l_] * zs[l_]
        zs.append(acc / chol[j, j])
    quad = sum((z * z).sum() for z in zs)
    logdet = sum(pt.log(chol[j, j]) for j in range(k))
    return -0.5 * quad - n * logdet - 0.5 * n * k * np.log(2.0 * np.pi)


def _laplace_theta(
    pt: Any, pm: Any, init: LaplaceInit | None, mu: Any, z: Any, omega_vec: Any, chol: Any, k: int, inputs: GraphInputs
) -> Any:
    """θ of the ``"laplace"`` parametrisation; adds its log-Jacobian to the model."""
    from poppk.model.reparam import laplace_reparam, likelihood_linear_term

    if init is None or init.info is None or init.prior_precision is None:
        raise ModelSpecError(
            "parametrization='laplace' needs the likelihood information of laplace_init(); "
            "pass init=laplace_init(spec, design) or no init"
        )
    h = likelihood_linear_term(init.info, init.mode, init.eta, init.prior_precision)
    if chol is None:
        omega_inv = pt.diag(1.0 / omega_vec**2)
    else:
        chol_inv = _tril_inverse(pt, chol, k)
        omega_inv = chol_inv.T @ chol_inv
    theta, log_det_l = laplace_reparam(inputs.array("laplace_info", init.info), inputs.array("laplace_h", h), mu, omega_inv, z)
    # |d theta / d z| = prod_i det L_i^-1
    pm.Potential("reparam_jacobian", -log_det_l)
    return theta


def _tril_inverse(pt: Any, chol: Any, k: int) -> Any:
    """Inverse of a small lower-triangular matrix, unrolled (no LAPACK call in the graph)."""
    inv = [[None] * k for _ in range(k)]
    for c in range(k):
        for i in range(k):
            if i < c:
                inv[i][c] = pt.zeros(())
                continue
            acc = 1.0 if i == c else 0.0
            for p in range(c, i):
                acc = acc - chol[i, p] * inv[p][c]
            inv[i][c] = acc / chol[i, i]
    return pt.stack([pt.stack(row) for row in inv])


def _prior_dist(pm: Any, priors: Any, k: int, inputs: GraphInputs) -> Any:
    """A vector-valued unregistered distribution for the IIV SDs (full Ω)."""
    family = priors[0][1].family
    key = {"halfnormal": "sigma", "halfcauchy": "beta", "exponential": "scale"}[family]
    values = inputs.vector(f"omega/{key}", [pr[key] for _, pr in priors])
    if family == "halfnormal":
        return pm.HalfNormal.dist(sigma=values, shape=k)
    if family == "halfcauchy":
        return pm.HalfCauchy.dist(beta=values, shape=k)
    return pm.Exponential.dist(scale=values, shape=k)
