"""Benchmark: cost of the compiled ODE solver (poppk.pk.ode) against the closed form.

Run by hand (not a test):

    .venv/bin/python benchmarks/bench_ode.py [--subjects 120] [--repeat 7] [--rtol 1e-8,1e-6]
        [--no-pytensor]

The design replicates the public benchmark (../shared/benchmarks/README.md; not read
here): 120 subjects, 2-compartment model, seven 1-hour infusions every 24 h (10, 30, 60
or 120 mg), 39 observations per subject at the benchmark's sampling times (24-216 h).
Individual parameters are log-normal around CL 4, V1 70, Q 4, V2 50 (L/h, L), ω = 0.3.

Prints, per subject, the best-of-``--repeat`` time of

* the closed-form kernel (:func:`poppk.pk.concentration`, NumPy, on the padded dose
  matrix; the matrix is built once, outside the timing) and, unless ``--no-pytensor``,
  its value and gradient compiled by PyTensor in NUMBA mode (what nutpie runs) with
  respect to the four per-subject parameter vectors (the reduction is a weighted sum);
* the ODE solver for linear, Michaelis–Menten and time-dependent elimination, without
  and with forward sensitivities (the "gradient": solve + Jacobian), at each ``--rtol``;

and the ratio of each ODE time to the closed form's.  It also prints the ODE's largest
relative error against the closed form (linear elimination, observations above 1e-5 of
the subject's largest concentration), so that speed is read with its accuracy.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

OBS_TIMES = np.array([
    24.0, 48.0, 72.0, 72.25, 72.5, 72.75, 73.0, 73.5, 74.0, 74.5, 75.0, 76.0, 78.0, 80.0, 84.0,
    88.0, 92.0, 96.0, 120.0, 144.0, 144.25, 144.5, 144.75, 145.0, 145.5, 146.0, 146.5, 147.0,
    148.0, 150.0, 152.0, 156.0, 160.0, 164.0, 168.0, 180.0, 192.0, 204.0, 216.0,
])
DOSE_TIMES = 24.0 * np.arange(7)


def design(n_sub: int, seed: int = 1) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    amt = np.array([10.0, 30.0, 60.0, 120.0])[np.arange(n_sub) % 4]
    d = dict(
        obs_subject=np.repeat(np.arange(n_sub), OBS_TIMES.size),
        obs_time=np.tile(OBS_TIMES, n_sub),
        dose_subject=np.repeat(np.arange(n_sub), DOSE_TIMES.size),
        dose_time=np.tile(DOSE_TIMES, n_sub),
        dose_amt=np.repeat(amt, DOSE_TIMES.size),
        dose_dur=np.ones(n_sub * DOSE_TIMES.size),
    )
    typical = {"CL": 4.0, "V1": 70.0, "Q": 4.0, "V2": 50.0}
    p = {k: v * np.exp(0.3 * rng.standard_normal(n_sub)) for k, v in typical.items()}
    return d, p


def best(f, repeat: int) -> float:
    f()  # warm-up (and compilation)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, default=120)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--rtol", default="1e-8,1e-6")
    ap.add_argument("--no-pytensor", action="store_true")
    args = ap.parse_args()

    from poppk.pk import concentration, padded_dose_matrix
    from poppk.pk.ode import ode_design, parameter_names, solve_ode

    n = args.subjects
    d, p = design(n)
    n_obs = d["obs_time"].size
    m = padded_dose_matrix(d["obs_subject"], d["obs_time"], None, np.ones(n_obs), d["dose_subject"],
                           d["dose_time"], None, np.zeros(d["dose_time"].size), d["dose_amt"], d["dose_dur"],
                           None, None, None)
    sub = d["obs_subject"]
    per_obs = {k: v[sub][:, None] for k, v in p.items()}

    def closed():
        return concentration(m["dt"], m["amt"], per_obs, n_cmt=2, dur=m["dur"])

    ref = closed()
    rows = []
    t_closed = best(closed, args.repeat)
    rows.append(("closed form, NumPy, value", t_closed, None))
    t_closed_grad = None
    if not args.no_pytensor:
        import pytensor
        import pytensor.tensor as pt

        th = {k: pt.dvector(k) for k in p}
        w = pt.dvector("w")
        conc = concentration(m["dt"], m["amt"], {k: v[sub][:, None] for k, v in th.items()}, n_cmt=2, dur=m["dur"])
        out = pt.dot(w, conc)
        grads = pytensor.grad(out, list(th.values()))
        t0 = time.perf_counter()
        fn = pytensor.function([*th.values(), w], [out, *grads], mode="NUMBA")
        compile_s = time.perf_counter() - t0
        wv = np.random.default_rng(2).standard_normal(n_obs)
        t_closed_grad = best(lambda: fn(*p.values(), wv), args.repeat)
        rows.append((f"closed form, PyTensor NUMBA, value+grad (compiled in {compile_s:.0f} s)", t_closed_grad, None))

    ode_d = ode_design(**d, n_subjects=n)
    cases = [
        ("linear", p),
        ("michaelis-menten", {"VMAX": p["CL"] * 2.0, "KM": np.full(n, 2.0), **{k: p[k] for k in ("V1", "Q", "V2")}}),
        ("time-dependent", {"CL": p["CL"], "TDA": np.full(n, 0.5), "KDES": np.full(n, 0.02),
                            **{k: p[k] for k in ("V1", "Q", "V2")}}),
    ]
    for rtol in (float(r) for r in args.rtol.split(",")):
        for elim, pp in cases:
            theta = np.stack([pp[k] for k in parameter_names(2, elim)], axis=1)
            for jac in (False, True):
                t = best(lambda: solve_ode(ode_d, theta, n_cmt=2, elimination=elim, rtol=rtol, jacobian=jac),
                         args.repeat)
                what = "value+Jacobian" if jac else "value"
                err = None
                if elim == "linear" and not jac:
                    c = solve_ode(ode_d, theta, n_cmt=2, rtol=rtol)
                    peak = np.array([ref[sub == i].max() for i in range(n)])[sub]
                    big = ref > 1e-5 * peak
                    err = float(np.max(np.abs(c[big] / ref[big] - 1)))
                rows.append((f"ODE {elim}, rtol={rtol:g}, {what}", t, err))

    print(f"{n} subjects, 2-cmt, {DOSE_TIMES.size} 1-h infusions, {OBS_TIMES.size} observations each; "
          f"best of {args.repeat}")
    print(f"{'':<66} {'us/subject':>11} {'x NumPy CF':>11} {'x CF grad':>10} {'max rel err':>12}")
    for name, t, err in rows:
        us = t / n * 1e6
        r1 = t / t_closed
        r2 = f"{t / t_closed_grad:10.1f}" if t_closed_grad else f"{'':>10}"
        e = f"{err:12.1e}" if err is not None else ""
        print(f"{name:<66} {us:11.1f} {r1:11.1f} {r2} {e}")


if __name__ == "__main__":
    main()
