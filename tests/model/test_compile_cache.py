"""Compile once per model structure: keys, reuse across datasets, and every data input swapped.

The structure-key tests are fast.  The others compile small models (numba, about
half a minute each here) and are marked slow; one module-level compile serves them.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from _studies import simulate_study
from poppk.data import read_nonmem
from poppk.model import CovariateEffect, ModelSpec, Prior, build_design, build_model, laplace_init
from poppk.model.compile_cache import (
    _CACHE,
    _instantiate,
    _rename,
    cache_info,
    compile_nutpie,
    logp_and_gradient,
    structure_key,
)
from poppk.model.fit import population_variables
from poppk.model.inputs import GraphInputs


def _spec(**kw) -> ModelSpec:
    base = dict(
        structure="1cmt",
        typical={"CL": 1.0, "V1": 10.0},
        covariates=(CovariateEffect("CL", "WT", "power"),),
        iiv=("CL", "V1"),
        error="combined",
        blq="m3",
        units={"time": "h"},
    )
    base.update(kw)
    return ModelSpec(**base)


def _data(n: int, seed: int, dose: float = 100.0):
    df, _ = simulate_study(n_subjects=n, seed=seed, dose=dose, lloq=0.3, infusion=0.5, n_doses=2,
                           sigma_add=0.05, wt_exponent=0.75)
    return read_nonmem(df)


def _problem(spec: ModelSpec, data):
    spec = spec.resolved(data.covariates)
    design = build_design(spec, data)
    init = laplace_init(spec, design)
    ip = {f"log_{p}": v for p, v in init.log_typical.items()}
    ip.update(init.betas)
    ip.update({f"omega_{p}": v for p, v in init.omega.items()})
    ip.update({f"sigma_{k}": v for k, v in init.sigma.items()})
    ip["z"] = np.zeros((design.n_subjects, len(spec.iiv)))
    return spec, design, init, ip, population_variables(spec) + ["theta"]


def _forget(spec: ModelSpec, design) -> None:
    """Drop every cache entry of this structure (entries are keyed by the structure key and more)."""
    key = structure_key(spec, design)
    for k in [k for k in _CACHE if k[0] == key]:
        _CACHE.pop(k)


def _point(compiled, seed: int) -> np.ndarray:
    return compiled.initial_point_func(seed) + 0.05 * np.random.default_rng(seed).standard_normal(compiled.n_dim)


def _reference_logp(spec, design, init, compiled, x, overrides=None) -> float:
    """The log density of the model built with constants (PyMC's C backend, nothing cached)."""
    model = build_model(spec, design=design, init=init, inputs=GraphInputs(shared=False, overrides=overrides))
    names, slices, shapes = compiled.shape_info
    value_names = {v.name for v in model.value_vars}
    point = {n: x[s].reshape(sh) for n, s, sh in zip(names, slices, shapes) if n in value_names}
    assert set(point) == value_names
    return float(model.compile_logp()(point))


# ------------------------------------------------------------------- fast: the key

def test_the_key_ignores_numbers_and_sees_structure():
    a = _problem(_spec(), _data(12, 1))
    b = _problem(_spec(typical={"CL": Prior.lognormal(3.0, 0.5), "V1": 30.0}), _data(9, 2, dose=50.0))
    assert structure_key(a[0], a[1]) == structure_key(b[0], b[1])
    # another size descriptor with the same form: the same graph (coefficients renamed on the way out)
    data = _data(12, 1)
    c_spec = _spec(covariates=(CovariateEffect("CL", "HT", "power"),)).resolved(data.covariates)
    assert structure_key(c_spec, build_design(c_spec, data)) == structure_key(a[0], a[1])
    assert _rename(a[0], c_spec) == {"beta_CL_WT": "beta_CL_HT"}
    for other in (
        _spec(error="proportional"),
        _spec(iiv=("CL",)),
        _spec(parametrization="noncentered"),
        _spec(covariates=(CovariateEffect("V1", "WT", "power"),)),
        _spec(covariates=(CovariateEffect("CL", "WT", "exponential"),)),
        _spec(typical={"CL": 1.0, "V1": Prior.fixed(10.0)}),
        _spec(structure="2cmt", typical={"CL": 1.0, "V1": 10.0, "Q": 2.0, "V2": 20.0}),
    ):
        o = other.resolved(data.covariates)
        assert structure_key(o, build_design(o, data)) != structure_key(a[0], a[1]), other


def test_the_key_sees_the_design_branches():
    spec = _spec()
    with_blq = _data(12, 1)
    df, _ = simulate_study(n_subjects=12, seed=1, infusion=0.5, n_doses=2, sigma_add=0.05, wt_exponent=0.75)
    without_blq = read_nonmem(df)
    df3, _ = simulate_study(n_subjects=12, seed=1, lloq=0.3, infusion=0.5, n_doses=3, sigma_add=0.05, wt_exponent=0.75)
    three_doses = read_nonmem(df3)
    keys = set()
    for data in (with_blq, without_blq, three_doses):
        s = spec.resolved(data.covariates)
        keys.add(structure_key(s, build_design(s, data)))
    assert len(keys) == 3  # BLQ records (M3 term) and the recursion width change the graph


def test_two_builds_of_one_structure_declare_the_same_inputs():
    sigs = []
    for n, seed in ((12, 1), (7, 3)):
        spec, design, init, _, _ = _problem(_spec(), _data(n, seed))
        inputs = GraphInputs(shared=False)
        build_model(spec, design=design, init=init, inputs=inputs)
        sigs.append(inputs.signature())
        assert {"dv", "blq", "lloq", "cov0", "laplace_info", "laplace_h", "poppk_scalars"} <= set(inputs.values())
    assert sigs[0] == sigs[1]


def test_shared_and_constant_builds_agree_at_a_point():
    spec, design, init, _, _ = _problem(_spec(), _data(10, 4))
    m_const = build_model(spec, design=design, init=init)
    m_shared = build_model(spec, design=design, init=init, inputs=GraphInputs(shared=True))
    point = {k: v + 0.1 for k, v in m_const.initial_point().items()}
    assert float(m_const.compile_logp()(point)) == pytest.approx(float(m_shared.compile_logp()(point)), abs=1e-10)


# ------------------------------------------------------------- slow: compiled reuse

@pytest.fixture(scope="module")
def compiled_pair(tmp_path_factory):
    """Two datasets of one structure (different sizes, doses, priors): compiled once, then reused.

    The compile writes its graphs to a store of its own (``POPPK_COMPILE_CACHE``), which
    the new-process test reads.
    """
    store = tmp_path_factory.mktemp("compile_store")
    a = _problem(_spec(), _data(12, 1))
    b = _problem(_spec(typical={"CL": Prior.lognormal(2.5, 0.7), "V1": 15.0}), _data(9, 2, dose=60.0))
    _forget(a[0], a[1])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POPPK_COMPILE_CACHE", str(store))
        before = cache_info()
        ca, info_a = compile_nutpie(a[0], a[1], a[2], initial_points=a[3], var_names=a[4])
        cb, info_b = compile_nutpie(b[0], b[1], b[2], initial_points=b[3], var_names=b[4])
    return {"a": (a, ca, info_a), "b": (b, cb, info_b), "before": before, "after": cache_info(), "store": store}


_NEW_PROCESS = """
import json, os, sys
import numpy as np
sys.path[:0] = sys.argv[1].split(os.pathsep)
from test_compile_cache import _data, _problem, _spec
from poppk.model.compile_cache import compile_nutpie, logp_and_gradient
a = _problem(_spec(), _data(12, 1))
c, info = compile_nutpie(a[0], a[1], a[2], initial_points=a[3], var_names=a[4])
x = np.asarray(json.loads(sys.argv[2]))
lp, grad = logp_and_gradient(c, x)
print(json.dumps({"source": info.get("source"), "compile_s": info["compile_s"], "logp": lp, "grad": grad.tolist(),
                  "rebuilt": c.logp_func is not None}))
"""


@pytest.mark.slow
def test_a_new_process_loads_the_structure_from_the_disk_store(compiled_pair):
    """A new Python process finds the structure in the store: no rewriting, numba's cache
    serves the machine code, and the log density and gradient are the first process's."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    (a, ca, info_a) = compiled_pair["a"]
    assert info_a["source"] == "compiled" and list(compiled_pair["store"].glob("*.pkl"))
    x = _point(ca, 5)
    lp, grad = logp_and_gradient(ca, x)
    env = {**os.environ, "POPPK_COMPILE_CACHE": str(compiled_pair["store"])}
    here = Path(__file__).resolve().parent
    out = subprocess.run([sys.executable, "-c", _NEW_PROCESS, os.pathsep.join([str(here), str(here.parent)]), json.dumps(x.tolist())], env=env,
                         capture_output=True, text=True, check=True, timeout=600)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["source"] == "disk"
    # numba's cache had the functions: the PyTensor functions were not rebuilt from the graphs
    assert res["rebuilt"] is False
    assert res["logp"] == pytest.approx(lp, rel=1e-12)
    np.testing.assert_allclose(res["grad"], grad, rtol=1e-12, atol=1e-12)
    # the first compile's own time in this session, as the yardstick (machines differ)
    assert res["compile_s"] < 0.5 * info_a["compile_s"], (res["compile_s"], info_a["compile_s"])


@pytest.mark.slow
def test_the_store_says_where_numbas_cache_holds_the_functions(compiled_pair, monkeypatch):
    (_, ca, info_a) = compiled_pair["a"]
    assert info_a["source"] == "compiled" and ca.logp_func is not None
    from poppk.model import compile_store

    monkeypatch.setenv("POPPK_COMPILE_CACHE", str(compiled_pair["store"]))
    entries = list(compiled_pair["store"].glob("*.numba.pkl"))
    assert len(entries) == 1
    found = compile_store.load(entries[0].name.removesuffix(".pkl"))
    assert set(found) == {"logp", "expand"}
    for source, name, key in found.values():
        assert f"def {name}(" in source and key


def test_a_function_not_in_numbas_cache_is_a_miss(tmp_path):
    """A store entry that names a function numba's cache does not hold: ``None`` (the caller
    compiles), not an error and not a compile of the source without its kernels."""
    from poppk.model.compile_cache import _load_direct

    source = "def numba_funcified_fgraph(x):\n    return some_kernel(x)\n"
    assert _load_direct((source, "numba_funcified_fgraph", f"poppk_test_absent_{tmp_path.name}"),
                        [np.zeros(3)]) is None


@pytest.mark.slow
def test_a_second_dataset_reuses_the_compiled_model(compiled_pair):
    (_, ca, info_a), (b, cb, info_b) = compiled_pair["a"], compiled_pair["b"]
    assert info_b["cache"] == "hit"
    assert compiled_pair["after"]["hits"] == compiled_pair["before"]["hits"] + 1
    assert cb.compiled_logp_func is ca.compiled_logp_func  # the same machine code
    assert cb.n_dim == ca.n_dim - 3 * 2  # 3 subjects fewer, 2 random effects each
    assert list(cb.coords["id"]) == [str(s) for s in b[1].subject_ids]


@pytest.mark.slow
def test_the_reused_model_gives_the_uncached_log_density(compiled_pair):
    """The hit on dataset B equals a fresh compile of B, and differs from dataset A's."""
    (a, ca, _), (b, cb, _) = compiled_pair["a"], compiled_pair["b"]
    fresh, info = compile_nutpie(b[0], b[1], b[2], initial_points=b[3], var_names=b[4], cache=False)
    assert info["cache"] == "off"
    for seed in (1, 2):
        x = _point(cb, seed)
        lp, grad = logp_and_gradient(cb, x)
        lp_fresh, grad_fresh = logp_and_gradient(fresh, x)
        assert lp == pytest.approx(lp_fresh, abs=1e-10)
        np.testing.assert_allclose(grad, grad_fresh, rtol=0, atol=1e-10)
        assert lp == pytest.approx(_reference_logp(b[0], b[1], b[2], cb, x), rel=1e-12)
    # the same numbers of A at a point of A's size give A's density, not B's
    xa = _point(ca, 1)
    assert logp_and_gradient(ca, xa)[0] == pytest.approx(_reference_logp(a[0], a[1], a[2], ca, xa), rel=1e-12)


@pytest.mark.slow
def test_every_input_reaches_the_compiled_density(compiled_pair):
    """Perturb each float input (data, covariates, references, Laplace terms, hyper-parameters)
    and the observations' subjects: the compiled density follows, as the model built on the
    perturbed numbers gives it."""
    (b, cb, _) = compiled_pair["b"]
    spec, design, init = b[0], b[1], b[2]
    entry = next(c for c in _CACHE.values() if c.logp_cfunc is cb.compiled_logp_func)
    inputs = GraphInputs(shared=False)
    build_model(spec, design=design, init=init, inputs=inputs)
    values = inputs.values()
    x = _point(cb, 3)
    base = logp_and_gradient(cb, x)[0]
    rng = np.random.default_rng(0)
    checked = []
    for name, value in values.items():
        if name not in entry.shared_vars:  # built but unused (e.g. dosing intervals without steady state)
            continue
        if name == "poppk_scalars":
            cases = [(f"{name}[{i}]", i) for i in range(len(value))]
        elif value.dtype.kind == "f":
            cases = [(name, None)]
        elif name == "obs_subject" or name.endswith("obs_subject"):
            cases = [(name, "permute")]
        else:
            continue
        for label, how in cases:
            new = dict(values)
            if how == "permute":
                new[name] = np.sort(rng.permutation(value))[::-1].copy() if value.size > 1 else value
            elif how is None:
                new[name] = value * (1.0 + 0.05 * rng.random(value.shape))
            else:
                new[name] = value.copy()
                new[name][how] = new[name][how] * 1.1 + 0.01  # stays positive, moves zeros too
            model = _instantiate(entry, new, {name: b[3][name] for name, _, _ in entry.free_vars}, design, spec,
                                 _rename(entry.spec, spec), "z")
            lp = logp_and_gradient(model, x)[0]
            overrides = {name: new[name]}
            if isinstance(how, int):
                scalar_names = [n for n in inputs.names if n not in values]
                overrides = {scalar_names[how]: new[name][how]}
            ref = _reference_logp(spec, design, init, cb, x, overrides=overrides)
            assert lp == pytest.approx(ref, rel=1e-11), label
            if np.isfinite(ref) and label not in ("subject_index",):
                assert lp != base, f"{label} does not reach the compiled density"
            checked.append(label)
    assert {"dv", "lloq", "cov0", "laplace_info", "laplace_h"} <= set(checked)


@pytest.mark.slow
def test_another_structure_compiles_its_own(compiled_pair):
    a = _problem(_spec(error="proportional", covariates=()), _data(8, 5))
    _forget(a[0], a[1])  # another test of the session may have compiled this structure already
    before = cache_info()
    _, info = compile_nutpie(a[0], a[1], a[2], initial_points=a[3], var_names=a[4])
    assert info["cache"] == "miss"
    after = cache_info()
    assert after["misses"] == before["misses"] + 1 and after["size"] == before["size"] + 1


@pytest.mark.slow
def test_a_refit_on_other_data_reuses_and_matches_an_uncached_fit():
    """fit() end to end: the second dataset hits the cache, and its posterior is the one
    fit(cache=False) (the data as constants, nothing cached) gives, within Monte Carlo error."""
    import arviz as az

    from poppk.model import fit

    spec = ModelSpec(structure="1cmt", typical={"CL": 1.0, "V1": 10.0}, iiv=("CL", "V1"), error="proportional",
                     units={"time": "h"})
    df1, _ = simulate_study(n_subjects=10, seed=11)
    df2, _ = simulate_study(n_subjects=14, seed=12, truth={"CL": 4.0, "V1": 20.0})
    kw = dict(draws=500, tune=300, chains=2, seed=5, progress=False, log_likelihood=False, warn=False)
    d1 = read_nonmem(df1)
    resolved = spec.resolved(d1.covariates)
    _forget(resolved, build_design(resolved, d1))  # so that the first fit compiles, whatever ran before
    first = fit(spec, d1, **kw)
    hits = cache_info()["hits"]
    cached = fit(spec, read_nonmem(df2), **kw)
    assert cache_info()["hits"] == hits + 1
    assert cached.settings["timings"]["compile_s"] < first.settings["timings"]["compile_s"]
    fresh = fit(spec, read_nonmem(df2), cache=False, **kw)
    assert cache_info()["hits"] == hits + 1  # cache=False neither reads nor fills it
    for v in ("CL", "V1", "omega_CL", "omega_V1", "sigma_prop"):
        a, b = cached.idata.posterior[v], fresh.idata.posterior[v]
        se = np.hypot(float(az.mcse(a.to_dataset())[v]), float(az.mcse(b.to_dataset())[v]))
        assert abs(float(a.mean()) - float(b.mean())) < 4 * se, v
    # the second dataset's posterior is its own (CL near 4, not the first dataset's 2)
    assert float(cached.idata.posterior["CL"].median()) > 3.0
    assert float(first.idata.posterior["CL"].median()) < 3.0
    assert dataclasses.asdict(cached.spec) == dataclasses.asdict(fresh.spec)
    assert set(cached.settings) == set(fresh.settings)
