"""Predictions for new subjects: ArviZ's ``predictions`` and ``predictions_constant_data`` groups.

The ``posterior_predictive`` group replicates the *fitted* subjects (their
posterior individual parameters).  For subjects the model has not seen -- an
external validation cohort, a later study, a planned design without data --
the posterior predictive distribution integrates over their unknown random
effects: for each posterior draw, η ~ N(0, Ω) of that draw (with its
correlations), their own covariates and doses, and residual error.
:func:`new_subject_predictions` computes it on the records of a
:class:`~poppk.data.PKData` (sampling times, doses, covariates; DV values are
kept for comparison but never used), and :func:`add_predictions` stores it in
``fit.idata`` as the standard groups:

``predictions``
    ``y`` (dims ``chain, draw, obs``): a replicate of every observation record
    of the new data, censored at the record's LLOQ as observed BLQ records are
    (:mod:`poppk.diagnostics.predictive`); ``ipred`` the concentration the
    replicate was drawn around.
``predictions_constant_data``
    per record (``obs``): ``id``, ``time``, ``dv`` (observed, NaN where the new
    data have none), ``blq``, ``lloq``; per subject (``subject``): the
    covariates the model uses.

The new data must be in the fit's time unit and carry every covariate the
model uses; size descriptors (IBW, AIBW, LBW, BSA, BMI) missing from them are
derived from weight, height and sex with the options the fit's own
descriptors were derived with.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from poppk.diagnostics._common import DiagnosticsError
from poppk.diagnostics.predictive import _obs_dataset, thinned_draw_index
from poppk.diagnostics.simulate import simulate_observations
from poppk.errors import DatasetError

__all__ = ["new_subject_predictions", "add_predictions"]

_SIZE = ("TBW", "IBW", "AIBW", "LBW", "BSA", "BMI")


def _with_descriptors(fit: Any, data: Any) -> Any:
    """``data`` with the size descriptors the spec uses, derived as the fit's were, when missing."""
    from poppk.data.size_values import descriptor_options

    used = {c.covariate.upper() for c in fit.spec.covariates}
    cols = {str(c).upper() for c in data.covariates.columns}
    missing = [c for c in _SIZE if c in used and c not in cols]
    if not missing:
        return data
    opts = descriptor_options(fit.data)
    if opts.get("female_code") is None and getattr(data, "sex_female_code", None) is not None:
        opts["female_code"] = data.sex_female_code
    return data.with_size_descriptors(**opts)


def _view(fit: Any, data: Any, pos: np.ndarray) -> Any:
    """A fit with the population posterior (draws ``pos`` of every chain) and the new subjects' design."""
    import arviz as az

    from poppk.model.design import build_design
    from poppk.model.fit import Fit
    from poppk.model.time_unit import resolve_time_unit

    resolve_time_unit(fit.spec, data)  # refuses data in another time unit
    data = _with_descriptors(fit, data)
    have = {str(c) for c in data.covariates.columns}
    for c in fit.spec.covariates:
        for name in (c.covariate, getattr(c, "base", None) if c.form == "adjusted" else None):
            if name and name not in have:
                raise DatasetError(f"the new data have no covariate {name}, which the model's effect "
                                   f"{c.name} uses", column=name,
                                   valid=f"a {name} column (covariates present: {', '.join(sorted(have)) or 'none'})")
    design = build_design(fit.spec, data)
    if design.n_obs == 0:
        raise DiagnosticsError("the new data have no observation records (EVID 0) to predict: add a record "
                               "with MDV 1 or DV '.' at each time a prediction is wanted")
    post = fit.idata.posterior.isel(draw=pos)
    # variables of the fitted subjects (dims id) do not describe the new ones; θ is a placeholder
    # (typical parameters use none; new_subjects=True draws η afresh)
    post = post[[v for v in post.data_vars if "id" not in post[v].dims]]
    if fit.spec.iiv:
        ids = [str(s) for s in design.subject_ids]
        post = post.assign(theta=(("chain", "draw", "id", "iiv"),
                                  np.zeros((post.sizes["chain"], post.sizes["draw"], len(ids), len(fit.spec.iiv)))))
        post = post.assign_coords(id=ids, iiv=list(fit.spec.iiv))
    return Fit(idata=az.InferenceData(posterior=post), spec=fit.spec, data=data,
               settings={"new_subjects": True}, _design=design)


def new_subject_predictions(fit: Any, data: Any, *, n_draws: int = 200,
                            seed: int = 0) -> tuple[xr.Dataset, xr.Dataset]:
    """Posterior predictive replicates for subjects the model has not seen.

    Parameters
    ----------
    fit
        A :class:`~poppk.model.Fit`.
    data
        A :class:`~poppk.data.PKData` of the new subjects: doses, observation
        records (their DV is not used) and covariates, in the fit's time unit.
    n_draws
        Replicates in all, one per posterior draw thinned evenly in every chain.
    seed
        Seed of the random effects and residual-error draws.

    Returns
    -------
    predictions, constant_data : xarray.Dataset
        The ``predictions`` and ``predictions_constant_data`` groups (module notes).

    Raises
    ------
    ModelSpecError
        When the data's time unit differs from the fit's.
    DatasetError, DiagnosticsError
        When a covariate the model uses is missing, or there is no observation record.
    """
    post = fit.idata.posterior
    nc, nd = post.sizes["chain"], post.sizes["draw"]
    pos, _ = thinned_draw_index(nc, nd, n_draws)
    view = _view(fit, data, pos)
    sims = simulate_observations(view, draw_index=np.arange(nc * len(pos)), new_subjects=True, seed=seed)
    d = view.design
    pred = _obs_dataset(sims["y_rep"].values.reshape(nc, len(pos), -1), post.chain.values, post.draw.values[pos],
                        d.n_obs, fit.spec.unit.get("concentration", ""),
                        "replicate of each observation record of new subjects (fresh random effects)")
    pred["ipred"] = (("chain", "draw", "obs"), sims["ipred"].values.reshape(nc, len(pos), -1))
    ids = np.asarray([str(s) for s in d.subject_ids])
    blq = np.asarray(d.blq, dtype=bool)
    dv = np.asarray(d.dv, dtype=float)
    const = xr.Dataset(
        {"id": ("obs", ids[d.obs_subject]), "time": ("obs", np.asarray(d.obs_time, dtype=float)),
         "dv": ("obs", np.where(blq, np.nan, dv)), "blq": ("obs", blq),
         "lloq": ("obs", np.asarray(d.lloq, dtype=float))},
        coords={"obs": np.arange(d.n_obs), "subject": ids},
    )
    for name, values in d.covariates.items():
        const[f"cov_{name}"] = ("subject", np.asarray(values, dtype=float))
    const["time"].attrs["units"] = fit.spec.unit.get("time", "")
    const.attrs["note"] = ("covariates as the model uses them (cov_<effect>: the effect's transformed, "
                           "centred value); dv is the observed value, NaN for BLQ or missing")
    return pred, const


def add_predictions(fit: Any, data: Any, *, n_draws: int = 200, seed: int = 0) -> Any:
    """Attach ``predictions`` and ``predictions_constant_data`` for new subjects to ``fit.idata``.

    Replaces groups of an earlier call.  Saved with the fit
    (:func:`poppk.model.persist.save_fit`).  Arguments as in
    :func:`new_subject_predictions`; returns ``fit``.

    Examples
    --------
    >>> from poppk.data import read_nonmem                       # doctest: +SKIP
    >>> add_predictions(fit, read_nonmem("validation.csv", time_unit="day"))  # doctest: +SKIP
    >>> fit.idata.predictions.y.quantile([0.05, 0.5, 0.95], dim=("chain", "draw"))  # doctest: +SKIP
    """
    pred, const = new_subject_predictions(fit, data, n_draws=n_draws, seed=seed)
    for g in ("predictions", "predictions_constant_data"):
        if g in fit.idata.groups():
            delattr(fit.idata, g)
    fit.idata.add_groups(predictions=pred, predictions_constant_data=const)
    return fit
