"""A tiny array-backend shim so that the PK kernel is written once.

The closed-form solutions in :mod:`poppk.pk` are written against an ``ops``
object instead of calling NumPy or PyTensor directly.  Two backends exist:

``NUMPY``
    Plain NumPy (float64).  Used for simulation of virtual populations.
``PYTENSOR``
    PyTensor tensors, used inside the PyMC likelihood.  ``where`` is
    :func:`pytensor.tensor.switch`.  PyTensor is imported lazily, on first use,
    so the NumPy path never needs it.

:func:`get_ops` picks the backend from the inputs: PYTENSOR if any argument is
a PyTensor ``Variable``, NUMPY otherwise.  PyTensor is never imported by
:func:`get_ops` itself: if it has not been imported yet, no argument can be one
of its variables.

Examples
--------
>>> import numpy as np
>>> from poppk.pk.ops import get_ops
>>> ops = get_ops(np.array([1.0, 2.0]))
>>> ops.name
'numpy'
>>> float(ops.sum(ops.exp(ops.as_array([0.0, 0.0])), axis=-1))
2.0
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

__all__ = ["NUMPY", "PYTENSOR", "Ops", "get_ops", "is_tensor", "concrete_value"]


class Ops:
    """Interface shared by the backends (documentation only; see NUMPY/PYTENSOR)."""

    name: str


class _NumpyOps(Ops):
    """NumPy backend (float64)."""

    name = "numpy"
    pi = np.pi

    # elementwise maths -------------------------------------------------
    exp = staticmethod(np.exp)
    expm1 = staticmethod(np.expm1)
    log = staticmethod(np.log)
    log1p = staticmethod(np.log1p)
    sqrt = staticmethod(np.sqrt)
    square = staticmethod(np.square)
    abs = staticmethod(np.abs)
    cos = staticmethod(np.cos)
    arccos = staticmethod(np.arccos)
    ceil = staticmethod(np.ceil)
    floor = staticmethod(np.floor)
    minimum = staticmethod(np.minimum)
    maximum = staticmethod(np.maximum)
    gt = staticmethod(np.greater)
    ge = staticmethod(np.greater_equal)
    lt = staticmethod(np.less)
    le = staticmethod(np.less_equal)
    eq = staticmethod(np.equal)
    logical_and = staticmethod(np.logical_and)
    logical_or = staticmethod(np.logical_or)
    logical_not = staticmethod(np.logical_not)

    @staticmethod
    def where(cond: Any, a: Any, b: Any) -> np.ndarray:
        return np.where(cond, a, b)

    @staticmethod
    def sum(x: Any, axis: int | None = None) -> np.ndarray:
        return np.sum(x, axis=axis)

    @staticmethod
    def as_array(x: Any, dtype: Any = float) -> np.ndarray:
        return np.asarray(x, dtype=dtype)

    @staticmethod
    def as_bool(x: Any) -> np.ndarray:
        return np.asarray(x, dtype=bool)

    @staticmethod
    def zeros_like(x: Any) -> np.ndarray:
        return np.zeros_like(np.asarray(x, dtype=float))

    @staticmethod
    def ndim(x: Any) -> int:
        return np.ndim(x)

    @staticmethod
    def pad_left(x: Any, n: int) -> np.ndarray:
        """Prepend ``n`` length-1 axes."""
        x = np.asarray(x)
        return x.reshape((1,) * n + x.shape)

    @staticmethod
    def stack_broadcast(xs: list[Any]) -> np.ndarray:
        """Broadcast ``xs`` to a common shape and stack them on a new axis 0."""
        return np.stack(np.broadcast_arrays(*xs), axis=0)

    def __repr__(self) -> str:
        return "NUMPY"


def _pt():
    import pytensor.tensor as pt

    return pt


class _PytensorOps(Ops):
    """PyTensor backend; PyTensor is imported on first use."""

    name = "pytensor"
    pi = np.pi

    def __getattr__(self, item: str):
        # Elementwise functions that have the same name in pytensor.tensor.
        if item in {
            "exp", "expm1", "log", "log1p", "sqrt", "square", "abs", "cos", "arccos",
            "ceil", "floor", "minimum", "maximum", "gt", "ge", "lt", "le", "eq",
        }:
            return getattr(_pt(), item)
        raise AttributeError(item)

    @staticmethod
    def logical_and(a: Any, b: Any):
        return _pt().and_(a, b)

    @staticmethod
    def logical_or(a: Any, b: Any):
        return _pt().or_(a, b)

    @staticmethod
    def logical_not(a: Any):
        return _pt().invert(_pt().as_tensor_variable(a))

    @staticmethod
    def where(cond: Any, a: Any, b: Any):
        return _pt().switch(cond, a, b)

    @staticmethod
    def sum(x: Any, axis: int | None = None):
        return _pt().sum(x, axis=axis)

    @staticmethod
    def as_array(x: Any, dtype: Any = float):
        pt = _pt()
        if is_tensor(x):
            if dtype is float and not x.dtype.startswith("float"):
                return pt.cast(x, "float64")
            return x
        return pt.as_tensor_variable(np.asarray(x, dtype=dtype))

    @staticmethod
    def as_bool(x: Any):
        pt = _pt()
        if is_tensor(x):
            return x if x.dtype == "bool" else pt.neq(x, 0)
        return pt.as_tensor_variable(np.asarray(x, dtype=bool))

    @staticmethod
    def zeros_like(x: Any):
        return _pt().zeros_like(x, dtype="float64")

    @staticmethod
    def ndim(x: Any) -> int:
        return _pt().as_tensor_variable(x).ndim

    @staticmethod
    def pad_left(x: Any, n: int):
        return _pt().shape_padleft(_pt().as_tensor_variable(x), n) if n else x

    @staticmethod
    def stack_broadcast(xs: list[Any]):
        pt = _pt()
        return pt.stack(pt.broadcast_arrays(*xs), axis=0)

    def __repr__(self) -> str:
        return "PYTENSOR"


NUMPY = _NumpyOps()
PYTENSOR = _PytensorOps()


def is_tensor(*xs: Any) -> bool:
    """True if any argument is a PyTensor ``Variable`` (without importing PyTensor)."""
    basic = sys.modules.get("pytensor.graph.basic")
    return basic is not None and any(isinstance(x, basic.Variable) for x in xs)


def get_ops(*arrays: Any) -> Ops:
    """The backend for a set of inputs: PYTENSOR if any is a PyTensor Variable.

    ``None`` entries are ignored; mappings are searched through their values.
    """
    for a in arrays:
        if isinstance(a, dict):
            if any(is_tensor(v) for v in a.values()):
                return PYTENSOR
        elif is_tensor(a):
            return PYTENSOR
    return NUMPY


def concrete_value(x: Any) -> np.ndarray | None:
    """``x`` as a NumPy array if its value is known now, else ``None``.

    NumPy arrays, Python scalars and PyTensor constants are concrete; symbolic
    PyTensor variables are not.  Used to validate data eagerly when possible.
    """
    if x is None:
        return None
    if is_tensor(x):
        data = getattr(x, "data", None)  # TensorConstant
        return None if data is None else np.asarray(data)
    return np.asarray(x)
