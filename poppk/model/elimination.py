"""Elimination models of a :class:`~poppk.model.spec.ModelSpec`: which ones exist, what they need.

``ModelSpec(elimination=...)`` chooses how drug leaves the central compartment:

``"linear"`` (default)
    ``CL·C``: the closed-form (and recursive) kernel of :mod:`poppk.pk`, the fast path.
``"michaelis-menten"``
    ``VMAX·C/(KM + C)`` (parameters ``VMAX``, amount/time, and ``KM``,
    concentration) in place of ``CL``: saturable elimination.
``"linear+michaelis-menten"``
    both (``CL``, ``VMAX``, ``KM``), e.g. target-mediated clearance of an antibody
    on top of its linear catabolism.
``"time-dependent"``
    ``CL(t)·C`` with ``CL(t) = CL·(1 + TDA·exp(−KDES·t))``, ``t`` the time since
    the subject's first dose (``TDA`` dimensionless, ``KDES`` 1/time).  Like every
    structural parameter, ``TDA`` is log-normal, so ``TDA > 0``: clearance *falls*
    over time from ``CL·(1 + TDA)`` to ``CL``, the case of antibody–drug
    conjugates and of antibodies whose clearance drops as the disease responds.

The three nonlinear models have no closed form; they are integrated by the
ODE solver of :mod:`poppk.pk.ode` (1 or 2 compartments, bolus, infusion and
first-order absorption doses), with forward sensitivities for the gradient
(:mod:`poppk.model.ode_op`).  The parameters get typical values, IIV and
covariates like any other.  What the ODE path does not cover is refused here
(spec) or by :func:`poppk.model.design.build_design` (data): three
compartments, formed analytes, an absorption lag, steady-state dose records.

Sampling safeguards: each subject's integration is capped at
:data:`ODE_MAX_STEPS` step attempts.  A point of the parameter space where
the (explicit) solver would need more — a stiff region, e.g. ``VMAX/(KM·V1)``
thousands of times faster than the spacing of the doses, which warm-up can
visit — gives NaN concentrations, hence a log density of −inf, and the
sampler rejects it at the cost of the cap rather than grinding through it.
"""

from __future__ import annotations

from typing import Any

from poppk.errors import ModelSpecError

__all__ = [
    "ELIMINATION_MODELS",
    "ODE_RTOL",
    "ODE_ATOL",
    "ODE_MAX_STEPS",
    "elimination_parameters",
    "check_elimination",
    "elimination_units",
    "uses_ode",
]

ELIMINATION_MODELS = ("linear", "michaelis-menten", "linear+michaelis-menten", "time-dependent")

#: Relative tolerance of the ODE solver inside the likelihood (far below any residual error).
ODE_RTOL = 1e-6
#: Absolute tolerance, as a fraction of the subject's largest dose.  Under proportional (or
#: exponential) error an observation at 1e-15 of the peak weighs as much as one at the peak, so
#: predictions and their sensitivities must be resolved far below any concentration in the data:
#: at 1e-9, on Michaelis-Menten seed 3 of benchmarks/bench_ode_fit.py (a subject observed down to
#: ~1e-15 mg/L), the gradient was 10-40% off the log density's own slope, NUTS warm-up shrank the
#: step size to ~1e-3-1e-4 and every draw ran to the maximum tree depth.  ~10-20% more steps.
ODE_ATOL = 1e-15
#: Step attempts allowed per subject and evaluation; beyond, the point is rejected (NaN).
ODE_MAX_STEPS = 4000

_PARAMS = {
    "linear": ("CL",),
    "michaelis-menten": ("VMAX", "KM"),
    "linear+michaelis-menten": ("CL", "VMAX", "KM"),
    "time-dependent": ("CL", "TDA", "KDES"),
}


def uses_ode(spec: Any) -> bool:
    """True when ``spec`` is integrated by the ODE solver: any elimination but ``"linear"``, or
    parameters that change over time (time-varying covariates, inter-occasion variability)."""
    return (getattr(spec, "elimination", "linear") != "linear" or bool(getattr(spec, "time_varying", ()))
            or bool(getattr(spec, "iov", ())))


def elimination_parameters(names: tuple[str, ...], elimination: str) -> tuple[str, ...]:
    """Structural parameter names with ``CL`` replaced by those of ``elimination``.

    Examples
    --------
    >>> elimination_parameters(("CL", "V1", "Q", "V2"), "michaelis-menten")
    ('VMAX', 'KM', 'V1', 'Q', 'V2')
    >>> elimination_parameters(("CL", "V1"), "time-dependent")
    ('CL', 'TDA', 'KDES', 'V1')
    """
    if elimination not in _PARAMS:
        raise ModelSpecError(
            f"elimination {elimination!r} is not one of {ELIMINATION_MODELS}"
        )
    if elimination == "linear":
        return names
    i = names.index("CL")
    return names[:i] + _PARAMS[elimination] + names[i + 1:]


def check_elimination(spec: Any) -> None:
    """Refuse, with the reason and what is valid, a spec the ODE path does not cover."""
    elim = spec.elimination
    if elim not in ELIMINATION_MODELS:
        raise ModelSpecError(f"elimination {elim!r} is not one of {ELIMINATION_MODELS}")
    if not uses_ode(spec):
        return
    where = (f"elimination={elim!r}" if elim != "linear" else "time-varying parameters (time_varying/iov)") \
        + " (integrated by the ODE solver)"
    if spec.structure not in ("1cmt", "2cmt"):
        raise ModelSpecError(f"{where} supports structure '1cmt' or '2cmt', got {spec.structure!r}; "
                             "use elimination='linear' for a 3-compartment model")
    if spec.lag:
        raise ModelSpecError(f"{where} has no absorption lag time (ALAG1); use lag=False")
    if spec.analytes:
        raise ModelSpecError(f"{where} does not model formed analytes; use analytes=() "
                             "(or elimination='linear' for a parent–metabolite model)")


def elimination_units(time: str, amount: str, volume: str) -> dict[str, str]:
    """Unit labels of the elimination parameters."""
    return {"VMAX": f"{amount}/{time}", "KM": f"{amount}/{volume}", "TDA": "1", "KDES": f"1/{time}"}
