"""Model predictions on a design, on either backend.

:func:`predict_design` evaluates the PK kernel at every observation of a
:class:`~poppk.model.design.ModelDesign` given per-subject parameters. The
PyMC likelihood calls it with tensors; post-sampling code calls it with NumPy
arrays carrying leading (chain, draw) dimensions, in chunks so memory stays
bounded.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from poppk.errors import ModelSpecError
from poppk.model.design import ModelDesign
from poppk.model.spec import ModelSpec
from poppk.pk import concentration
from poppk.pk.recursion import concentration_recursive, plan_arrays

__all__ = ["predict_design", "predict_draws", "prediction_arrays", "prediction_structure"]


#: Dose-matrix arrays the dense kernel reads (and ``obs_subject``).
_DENSE_ARRAYS = ("dt", "amt", "dur", "oral", "ss", "ii")


def prediction_arrays(design: ModelDesign) -> dict[str, np.ndarray]:
    """The arrays of ``design`` that :func:`predict_design` reads, by name: the graph
    inputs of a compiled model (pass them back as ``arrays=``)."""
    extra = {} if design.obs_analyte is None else {"obs_analyte": design.obs_analyte}
    if design.plan is not None:
        return {**{f"plan_{k}": v for k, v in plan_arrays(design.plan).items()}, **extra}
    out = {f"dose_{k}": design.doses[k] for k in _DENSE_ARRAYS}
    out["obs_subject"] = design.obs_subject
    return {**out, **extra}


def prediction_structure(spec: ModelSpec, design: ModelDesign) -> tuple[Any, ...]:
    """What in ``design`` shapes the prediction graph beyond array sizes (recursion width,
    steady-state, infusion and oral terms): part of a compiled model's key."""
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
        may have leading dimensions, e.g. draws), natural scale.
    arrays
        PyTensor variables standing for :func:`prediction_arrays` (graph inputs);
        ``design`` then only decides the structure (:func:`prediction_structure`).

    Returns
    -------
    Array of shape ``(..., n_obs)``.
    """
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
    n = max((np.shape(v)[0] for v in params.values() if np.ndim(v) >= 1), default=1)
    per_draw = max(design.n_obs * design.doses["dt"].shape[1], 1)
    step = max(1, chunk_elements // per_draw)
    out = []
    for start in range(0, n, step):
        sl = slice(start, min(n, start + step))
        chunk = {k: (v[sl] if np.ndim(v) >= 1 else v) for k, v in params.items()}
        pred = np.asarray(predict_design(spec, design, chunk))
        out.append(transform(pred, sl) if transform is not None else pred)
    return np.concatenate(out, axis=0)
