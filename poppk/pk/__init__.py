"""Closed-form compartment solutions and dose superposition.

Pure maths on arrays: NumPy arrays for simulation, PyTensor tensors inside the
PyMC likelihood (the backend is picked from the inputs, see
:mod:`poppk.pk.ops`).  Imports neither pandas nor pymc; PyTensor is imported
only when tensors are passed in.

- :func:`concentration` -- the kernel: concentrations from a dose matrix.
- :func:`disposition`, :func:`micro_constants`, :func:`half_lives` --
  macro/micro constants of 1-, 2- and 3-compartment models.
- :func:`padded_dose_matrix` -- builds the per-observation dose matrix that
  :func:`concentration` consumes (shared by fitting and simulation).
- :mod:`poppk.pk.exposure` -- exposure metrics of the kernel in closed form
  (intravenous AUC, AUC by quadrature, Cmax, time above a threshold), used by
  :mod:`poppk.simulate`.
"""

from __future__ import annotations

from poppk.pk.disposition import (
    PARAMETERS,
    disposition,
    half_lives,
    micro_constants,
    required_parameters,
)
from poppk.pk.dosing import padded_dose_matrix
from poppk.pk.kernel import concentration
from poppk.pk.ops import NUMPY, PYTENSOR, get_ops

__all__ = [
    "concentration",
    "disposition",
    "micro_constants",
    "half_lives",
    "required_parameters",
    "PARAMETERS",
    "padded_dose_matrix",
    "get_ops",
    "NUMPY",
    "PYTENSOR",
]
