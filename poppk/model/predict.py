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

from poppk.model.design import ModelDesign
from poppk.model.spec import ModelSpec
from poppk.pk import concentration
from poppk.pk.recursion import concentration_recursive

__all__ = ["predict_design", "predict_draws"]


def predict_design(spec: ModelSpec, design: ModelDesign, params: Mapping[str, Any]) -> Any:
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

    Returns
    -------
    Array of shape ``(..., n_obs)``.
    """
    if design.plan is not None:
        return concentration_recursive(design.plan, params, n_cmt=spec.n_cmt)
    d = design.doses
    gathered = {}
    for name, value in params.items():
        if hasattr(value, "ndim") and getattr(value, "ndim", 0) >= 1:
            gathered[name] = value[..., design.obs_subject][..., None]
        else:
            gathered[name] = value
    oral = d["oral"] if spec.absorption is not None and d["oral"].any() else None
    ss = d["ss"] if d["ss"].any() else None
    return concentration(
        d["dt"],
        d["amt"],
        gathered,
        n_cmt=spec.n_cmt,
        dur=d["dur"] if (d["dur"] > 0).any() else None,
        oral=oral,
        ss=ss,
        ii=d["ii"] if ss is not None else None,
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
