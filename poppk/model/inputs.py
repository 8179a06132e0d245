"""The numeric inputs of a model graph: constants, or named shared variables.

:func:`poppk.model.build.build_model` takes every number that comes from the
data, the Laplace-EM pass or the spec's priors through a :class:`GraphInputs`.
By default (``shared=False``) each becomes a constant of the graph, as a
hand-written PyMC model would have it.  With ``shared=True`` each becomes a
PyTensor shared variable with no static shape (scalars are packed into one
vector, ``poppk_scalars``), so the compiled log density takes the data as
arguments: :mod:`poppk.model.compile_cache` compiles a model structure once and
then feeds it the arrays of another dataset, other covariate values or other
prior hyper-parameters.

Which branches the graph has (an infusion or steady-state term, BLQ records,
the recursion width, ...) is decided from the NumPy values at build time in
both modes; :func:`poppk.model.graph_key.structure_key` lists those
decisions.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

__all__ = ["GraphInputs", "SCALARS"]

#: Name of the shared vector that holds every scalar input in shared mode.
SCALARS = "poppk_scalars"


class GraphInputs:
    """Collects the numeric inputs of one model graph, in build order.

    Parameters
    ----------
    shared
        ``False``: inputs are graph constants.  ``True``: shared variables
        (arrays, free in their first axis only) and elements of one shared
        vector (scalars).
    overrides
        ``{input name: value}`` used instead of the value the build passes
        (sensitivity checks and tests of the compiled inputs).

    Examples
    --------
    >>> g = GraphInputs(shared=False)
    >>> float(g.scalar("prior/log_CL/sigma", 1.0).eval())
    1.0
    >>> sorted(g.values())
    ['poppk_scalars']
    """

    def __init__(self, shared: bool = False, overrides: Mapping[str, Any] | None = None) -> None:
        self.shared = bool(shared)
        self._overrides = dict(overrides or {})
        self._arrays: dict[str, np.ndarray] = {}
        self._variables: dict[str, Any] = {}
        self._scalar_names: list[str] = []
        self._scalar_values: list[float] = []
        self._scalar_vector: Any = None

    def array(self, name: str, value: Any, dtype: Any = np.float64) -> Any:
        """An array input (shape free in shared mode)."""
        import pytensor
        import pytensor.tensor as pt

        if name in self._arrays:
            raise ValueError(f"graph input {name!r} is defined twice")
        arr = np.ascontiguousarray(np.asarray(self._overrides.get(name, value), dtype=dtype))
        self._arrays[name] = arr
        if not self.shared:
            return pt.as_tensor_variable(arr)
        # the first axis (subjects, observations, ...) is free; the others are fixed and part
        # of the signature (fixed sizes compile to a gradient about 1.4x faster on the benchmark)
        var = pytensor.shared(arr, name=name, shape=(None,) + arr.shape[1:] if arr.ndim else ())
        self._variables[name] = var
        return var

    def scalar(self, name: str, value: float) -> Any:
        """A float scalar input (an element of ``poppk_scalars`` in shared mode)."""
        import pytensor
        import pytensor.tensor as pt

        if name in self._scalar_names:
            raise ValueError(f"graph input {name!r} is defined twice")
        value = float(self._overrides.get(name, value))
        self._scalar_names.append(name)
        self._scalar_values.append(value)
        if not self.shared:
            return pt.as_tensor_variable(np.float64(value))
        if self._scalar_vector is None:
            self._scalar_vector = pytensor.shared(np.zeros(0), name=SCALARS, shape=(None,))
            self._variables[SCALARS] = self._scalar_vector
        vec = self._scalar_vector
        vec.set_value(np.asarray(self._scalar_values, dtype=np.float64))
        return vec[len(self._scalar_names) - 1]

    def vector(self, name: str, values: Any) -> Any:
        """A short float vector of scalar inputs (``name[0]``, ``name[1]``, ...)."""
        import pytensor.tensor as pt

        return pt.stack([self.scalar(f"{name}[{i}]", v) for i, v in enumerate(np.ravel(values))])

    def values(self) -> dict[str, np.ndarray]:
        """``{shared variable name: value}`` (scalars packed into ``poppk_scalars``)."""
        out = dict(self._arrays)
        out[SCALARS] = np.asarray(self._scalar_values, dtype=np.float64)
        return out

    @property
    def names(self) -> tuple[str, ...]:
        """Every input name in build order (arrays and scalars)."""
        return tuple(self._arrays) + tuple(self._scalar_names)

    def signature(self) -> tuple[tuple[Any, ...], ...]:
        """``(name, dtype, sizes after the first axis)`` of every input: what a graph compiled
        in shared mode fixes (two builds with equal signatures can share it)."""
        arrays = tuple((k, v.dtype.str, v.shape[1:] if v.ndim else None) for k, v in self._arrays.items())
        return arrays + tuple((k, "<f8", None) for k in self._scalar_names)

    @property
    def variables(self) -> dict[str, Any]:
        """``{name: shared variable}`` (empty in constant mode)."""
        return dict(self._variables)
