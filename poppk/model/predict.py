"""Model predictions on a design, on either backend.

:func:`predict_design` evaluates the PK kernel at every observation of a
:class:`~poppk.model.design.ModelDesign` given per-subject parameters. The
PyMC likelihood calls it with tensors; post-sampling code calls it with NumPy
arrays carrying leading (chain, draw) dimensions, in chunks so memory stays
bounded.  A spec with nonlinear elimination (:mod:`poppk.model.elimination`)
goes through the ODE solver instead: the PyTensor Op of
:mod:`poppk.model.ode_op` with tensors, the compiled solver draw by draw with
NumPy arrays (a subject it cannot integrate within the step cap gets NaN).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from poppk.errors import ModelSpecError
from poppk.model.design import ModelDesign
from poppk.model.elimination import ODE_ATOL, ODE_MAX_STEPS, ODE_RTOL, uses_ode
from poppk.model.spec import ModelSpec
from poppk.model.time_varying import OFFSETS, varying_parameters
from poppk.pk import concentration
from poppk.pk.recursion import concentration_recursive, plan_arrays

__all__ = ["predict_design", "predict_draws", "prediction_arrays", "prediction_structure"]


#: Dose-matrix arrays the dense kernel reads (and ``obs_subject``).
_DENSE_ARRAYS = ("dt", "amt", "dur", "oral", "ss", "ii")


def prediction_arrays(design: ModelDesign) -> dict[str, np.ndarray]:
    """The arrays of ``design`` that :func:`predict_design` reads, by name: the graph
    inputs of a compiled model (pass them back as ``arrays=``)."""
    extra = {} if design.obs_analyte is None else {"obs_analyte": design.obs_analyte}
    if design.ode is not None:
        return {f"ode_{k}": getattr(design.ode, k) for k in _ODE_ARRAYS}
    if design.plan is not None:
        return {**{f"plan_{k}": v for k, v in plan_arrays(design.plan).items()}, **extra}
    out = {f"dose_{k}": design.doses[k] for k in _DENSE_ARRAYS}
    out["obs_subject"] = design.obs_subject
    return {**out, **extra}


def prediction_structure(spec: ModelSpec, design: ModelDesign) -> tuple[Any, ...]:
    """What in ``design`` shapes the prediction graph beyond array sizes (recursion width,
    steady-state, infusion and oral terms): part of a compiled model's key."""
    if design.ode is not None or uses_ode(spec):
        return ("ode", spec.elimination, spec.n_cmt, design.ode is not None and design.ode.has_oral,
                varying_parameters(spec))
    formed = tuple((f.source, f.scale) for f in spec.formation)
    if design.plan is not None:
        plan = design.plan
        return ("recursion", formed, plan.width, bool(plan.ss.any()), bool(plan.active_rows.size),
                bool(plan.active_rows.size and plan.active["ss"].any()))
    d = design.doses
    return ("dense", formed, spec.absorption is not None and bool(d["oral"].any()), bool(d["ss"].any()),
            bool((d["dur"] > 0).any()))


def predict_design(
    spec: ModelSpec, design: ModelDesign, params: Mapping[str, Any], *, arrays: Mapping[str, Any] | None = None
) -> Any:
    """Concentration at every observation of ``design``.

    Parameters
    ----------
    spec
        The model spec (structure, absorption).
    design
        The design.
    params
        ``{name: per-subject values}`` with the subject axis last (NumPy arrays
        may have leading dimensions, e.g. draws), natural scale.  A spec with
        time-varying parameters also needs the per-segment log offsets under
        :data:`~poppk.model.time_varying.OFFSETS`, ``(..., n_segments,
        n_varying)``.
    arrays
        PyTensor variables standing for :func:`prediction_arrays` (graph inputs);
        ``design`` then only decides the structure (:func:`prediction_structure`).

    Returns
    -------
    Array of shape ``(..., n_obs)``.
    """
    if uses_ode(spec) or design.ode is not None:
        return _predict_ode(spec, design, params, arrays)
    formation = spec.formation
    analyte = None
    if formation:
        if design.obs_analyte is None:
            raise ModelSpecError("the model has analytes but the design has no analyte per observation; "
                                 "build it with build_design(spec, data)")
        analyte = design.obs_analyte if arrays is None else arrays["obs_analyte"]
    if design.plan is not None:
        sub = None if arrays is None else {k[len("plan_"):]: v for k, v in arrays.items() if k.startswith("plan_")}
        return concentration_recursive(design.plan, params, n_cmt=spec.n_cmt, arrays=sub,
                                       formation=formation, analyte=analyte)
    d = design.doses
    a = {k: d[k] for k in _DENSE_ARRAYS} if arrays is None else {k: arrays[f"dose_{k}"] for k in _DENSE_ARRAYS}
    obs_subject = design.obs_subject if arrays is None else arrays["obs_subject"]
    gathered = {}
    for name, value in params.items():
        if hasattr(value, "ndim") and getattr(value, "ndim", 0) >= 1:
            gathered[name] = value[..., obs_subject][..., None]
        else:
            gathered[name] = value
    oral = a["oral"] if spec.absorption is not None and d["oral"].any() else None
    ss = a["ss"] if d["ss"].any() else None
    return concentration(
        a["dt"],
        a["amt"],
        gathered,
        n_cmt=spec.n_cmt,
        dur=a["dur"] if (d["dur"] > 0).any() else None,
        oral=oral,
        ss=ss,
        ii=a["ii"] if ss is not None else None,
        formation=formation,
        analyte=None if analyte is None else analyte[:, None],
    )


#: Arrays of the ODE design, in the order :class:`~poppk.model.ode_op.OdeConcentration` takes them.
_ODE_ARRAYS = ("obs_ptr", "obs_time", "obs_out", "dose_ptr", "dose_time", "dose_amt", "dose_dur", "dose_oral",
               "seg_ptr", "seg_time", "seg_order")


def _predict_ode(spec: ModelSpec, design: ModelDesign, params: Mapping[str, Any],
                 arrays: Mapping[str, Any] | None) -> Any:
    """Concentrations of a nonlinear-elimination model (Op with tensors, solver with arrays)."""
    from poppk.pk.ode import parameter_names

    ode = design.ode
    if ode is None or not uses_ode(spec):
        raise ModelSpecError(f"the spec is {'not ' if not uses_ode(spec) else ''}integrated by the ODE solver but "
                             f"the design was built for {'an ODE' if ode is not None else 'a closed-form'} model; "
                             "build it with build_design(spec, data) for this spec")
    names = parameter_names(spec.n_cmt, spec.elimination, ode.has_oral)
    missing = [n for n in names if n not in params]
    if missing:
        raise ModelSpecError(f"predictions of this model need parameters {names}; missing {missing}")
    varying = varying_parameters(spec)
    if varying and OFFSETS not in params:
        raise ModelSpecError(f"the model's parameters {varying} change over time: predictions need their "
                             f"per-segment log offsets under {OFFSETS!r} (Fit.parameter_draws gives them)")
    offsets = params.get(OFFSETS) if varying else None
    tensor = arrays is not None or any(not isinstance(params[n], (np.ndarray, float, int, np.floating))
                                       for n in names) or (offsets is not None and not isinstance(offsets, np.ndarray))
    if tensor:
        import pytensor.tensor as pt

        from poppk.model.ode_op import OdeConcentration

        a = [pt.as_tensor_variable(ode_arr) for ode_arr in
             ((arrays[f"ode_{k}"] for k in _ODE_ARRAYS) if arrays is not None
              else (getattr(ode, k) for k in _ODE_ARRAYS))]
        n_sub = a[0].shape[0] - 1
        theta = pt.stack([pt.broadcast_to(pt.as_tensor_variable(params[n]), (n_sub,)) for n in names], axis=1)
        op = OdeConcentration(spec.n_cmt, spec.elimination, ode.has_oral, ODE_RTOL, ODE_ATOL, ODE_MAX_STEPS,
                              varying)
        return op(theta, np.zeros((ode.n_segments, 0)) if offsets is None else offsets, *a)[0]
    return _solve_draws(spec, ode, names, params, varying, offsets)


def _solve_draws(spec: ModelSpec, ode: Any, names: tuple[str, ...], params: Mapping[str, Any],
                 varying: tuple[str, ...], offsets: Any) -> np.ndarray:
    """NumPy concentrations ``(..., n_obs)`` for parameters ``(..., n_subjects)``, one solve per draw."""
    from poppk.pk.ode import run_solver, slot_matrix, solver_arguments, varying_columns

    vals = [np.asarray(params[n], dtype=np.float64) for n in names]
    shapes = [v.shape[:-1] if v.ndim else () for v in vals]
    if offsets is not None:
        offsets = np.asarray(offsets, dtype=np.float64)
        shapes.append(offsets.shape[:-2])
    lead = np.broadcast_shapes(*shapes)
    cols = [np.broadcast_to(v if v.ndim else v[None], lead + (ode.n_subjects,)).reshape(-1, ode.n_subjects)
            for v in vals]
    off = None if offsets is None else np.broadcast_to(offsets, lead + offsets.shape[-2:]).reshape(
        (-1,) + offsets.shape[-2:])
    tv = varying_columns(names, varying)
    pidx, lower = solver_arguments(names)
    n = cols[0].shape[0] if cols else 1
    out = np.empty((n, ode.n_obs))
    for d in range(n):
        theta = np.stack([c[d] for c in cols], axis=1)
        conc, _, _, status = run_solver(ode, slot_matrix(theta, pidx), pidx, lower, n_cmt=spec.n_cmt,
                                        elimination=spec.elimination, rtol=ODE_RTOL, atol=ODE_ATOL,
                                        max_steps=ODE_MAX_STEPS, jacobian=False,
                                        offsets=None if off is None else off[d], varying=tv)
        for i in np.flatnonzero(status != 0):
            conc[ode.obs_out[ode.obs_ptr[i]:ode.obs_ptr[i + 1]]] = np.nan
        out[d] = conc
    return out.reshape(lead + (ode.n_obs,))


def predict_draws(
    spec: ModelSpec,
    design: ModelDesign,
    params: Mapping[str, np.ndarray],
    *,
    chunk_elements: int = 4_000_000,
    transform: Callable[[np.ndarray, slice], np.ndarray] | None = None,
) -> np.ndarray:
    """NumPy predictions for many draws, chunked along the first axis.

    Parameters
    ----------
    params
        ``{name: array (n_draws, n_subjects)}`` (or scalars).
    chunk_elements
        Upper bound on ``draws × n_obs × max_doses`` held at once.
    transform
        Optional ``f(ipred_chunk, draw_slice) -> array`` applied to each chunk
        (e.g. to compute log-likelihoods without storing predictions).

    Returns
    -------
    ndarray of shape ``(n_draws, n_obs)`` (or whatever ``transform`` returns,
    concatenated along axis 0).
    """
    def has_draws(k: str, v: Any) -> bool:  # offsets (segments × varying) have a draw axis only as 3-D
        return np.ndim(v) >= (3 if k == OFFSETS else 1)

    n = max((np.shape(v)[0] for k, v in params.items() if has_draws(k, v)), default=1)
    per_draw = max(design.n_obs * design.doses["dt"].shape[1], 1)
    step = max(1, chunk_elements // per_draw)
    out = []
    for start in range(0, n, step):
        sl = slice(start, min(n, start + step))
        chunk = {k: (v[sl] if has_draws(k, v) else v) for k, v in params.items()}
        pred = np.asarray(predict_design(spec, design, chunk))
        out.append(transform(pred, sl) if transform is not None else pred)
    return np.concatenate(out, axis=0)
