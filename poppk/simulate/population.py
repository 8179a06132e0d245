"""Virtual populations: covariate vectors of simulated patients.

A :class:`VirtualPopulation` is a frozen table of baseline covariates, one row
per virtual patient (index ``patient`` = 0..n-1), always with the body-size
descriptors ``TBW, IBW, AIBW, LBW, BSA, BMI`` derived by
:func:`poppk.bodysize.size_descriptors`.  Three constructors:

* :func:`resample_population` -- bootstrap whole covariate vectors of an
  observed population (the joint structure of weight, height, sex, albumin...
  is kept because rows are drawn whole);
* :func:`sample_population` -- draw from a parametric description: sex, then
  (log weight, height) bivariate normal by sex with a given correlation,
  truncated to plausible ranges; age and albumin independent truncated
  normals;
* :func:`population_from_table` -- a user's covariate table.

The covariate vectors are fixed across posterior draws in a simulation: the
between-patient spread of covariates is part of the between-patient
variability that the simulation reports.  A resampled population (it records
its ``SOURCE_ID``) is by default re-weighted per draw by a Bayesian bootstrap
of its source subjects (``population_uncertainty`` of
:func:`~poppk.simulate.engine.simulate_strategies`,
:mod:`poppk.simulate.weighting`): the trial's patients are a sample of the
population the dose will be used in, and the interval carries that
uncertainty.  A sampled population or a user's table is taken as the
population itself.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from poppk.bodysize import DESCRIPTORS, IBW_METHODS, size_descriptors
from poppk.errors import BodySizeError, ConfigError

__all__ = [
    "VirtualPopulation",
    "resample_population",
    "sample_population",
    "population_from_table",
    "parse_population",
    "DEFAULT_SAMPLING",
]

#: Defaults of :func:`sample_population` (adult, roughly NHANES-like; by sex).
DEFAULT_SAMPLING: dict[str, Any] = {
    "weight_median": {"F": 72.0, "M": 86.0},  # kg
    "weight_cv": {"F": 0.25, "M": 0.21},  # CV of the log-normal
    "height_mean": {"F": 162.0, "M": 176.0},  # cm
    "height_sd": {"F": 7.0, "M": 7.5},  # cm
    "wt_ht_correlation": 0.45,  # between log WT and HT, within sex
    "weight_range": (40.0, 200.0),  # kg
    "height_range": (140.0, 205.0),  # cm
    "age": (60.0, 10.0, 18.0, 90.0),  # mean, sd, lower, upper (years)
    "albumin": (3.8, 0.5, 1.5, 5.5),  # mean, sd, lower, upper (g/dL)
}

_DESCRIPTOR_OPTIONS = ("ibw_method", "lbw_method", "bsa_method", "aibw_factor", "height_unit", "female_code")


def _options(**kw: Any) -> tuple[tuple[str, Any], ...]:
    return tuple((k, kw[k]) for k in _DESCRIPTOR_OPTIONS if k in kw)


@dataclass(frozen=True, eq=False, repr=False)
class VirtualPopulation:
    """A frozen table of virtual patients' baseline covariates.

    Build one with :func:`resample_population`, :func:`sample_population` or
    :func:`population_from_table`.  The table has one row per patient (index
    ``patient``, 0..n-1) and at least the columns ``TBW``, ``IBW``, ``AIBW``,
    ``LBW``, ``BSA`` and ``BMI``.

    Attributes
    ----------
    source
        How it was made (``"resampled from 40 subjects"``, ``"sampled"``,
        ``"table"``).
    seed
        The seed used (``None`` for a table).
    options
        The body-size options used to derive the descriptors (IBW method,
        AIBW factor, ...), as ``(name, value)`` pairs.

    Examples
    --------
    >>> pop = sample_population(5, seed=1, female_fraction=1.0)
    >>> len(pop), pop["AIBW"].shape
    (5, (5,))
    """

    _table: pd.DataFrame
    source: str = "table"
    seed: int | None = None
    options: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        table = self._table.copy()
        if len(table) == 0:
            raise ConfigError("a virtual population needs at least one patient")
        missing = [c for c in DESCRIPTORS if c not in table.columns]
        if missing:
            raise ConfigError(
                f"a virtual population needs the body-size columns {list(DESCRIPTORS)}; missing {missing} "
                "(build it with population_from_table, which derives them from WT, HT and SEX)"
            )
        for c in DESCRIPTORS:
            values = pd.to_numeric(table[c], errors="coerce").to_numpy(dtype=float)
            if not np.all(np.isfinite(values) & (values > 0)):
                i = int(np.flatnonzero(~(np.isfinite(values) & (values > 0)))[0])
                raise ConfigError(f"patient {i}: {c} = {table[c].iloc[i]!r} is not a positive number")
        table.index = pd.RangeIndex(len(table), name="patient")
        object.__setattr__(self, "_table", table)
        object.__setattr__(self, "options", tuple(self.options))

    # ----------------------------------------------------------------- access
    @property
    def covariates(self) -> pd.DataFrame:
        """The covariate table (a copy), index ``patient``."""
        return self._table.copy()

    @property
    def n(self) -> int:
        """Number of virtual patients."""
        return len(self._table)

    def __len__(self) -> int:
        return self.n

    @property
    def columns(self) -> tuple[str, ...]:
        """Column names."""
        return tuple(self._table.columns)

    def __contains__(self, name: object) -> bool:
        return name in self._table.columns

    def __getitem__(self, name: str) -> np.ndarray:
        """One column as a NumPy array (a copy)."""
        if name not in self._table.columns:
            raise KeyError(
                f"the virtual population has no column {name!r}; columns: {list(self._table.columns)}"
            )
        return self._table[name].to_numpy().copy()

    def option(self, name: str, default: Any = None) -> Any:
        """A body-size option used to derive the descriptors (e.g. ``"ibw_method"``)."""
        return dict(self.options).get(name, default)

    def subset(self, indices: Sequence[int] | np.ndarray | slice) -> "VirtualPopulation":
        """A new population of the patients at ``indices`` (renumbered from 0)."""
        table = self._table.iloc[indices]
        return dataclasses.replace(self, _table=table.reset_index(drop=True), source=f"subset of {self.source}")

    def summary(self) -> pd.DataFrame:
        """Median, 5th and 95th percentile, min and max of every numeric column."""
        num = self._table.select_dtypes("number")
        q = num.quantile([0.05, 0.5, 0.95]).T
        q.columns = ["p05", "median", "p95"]
        q["min"] = num.min()
        q["max"] = num.max()
        return q[["median", "p05", "p95", "min", "max"]]

    def __repr__(self) -> str:
        w = self._table["TBW"].to_numpy(dtype=float)
        return (
            f"VirtualPopulation(n={self.n}, source={self.source!r}, seed={self.seed}, "
            f"TBW median {np.median(w):.1f} kg [{w.min():.1f}-{w.max():.1f}], columns={list(self._table.columns)})"
        )


# --------------------------------------------------------------------------
# descriptors
# --------------------------------------------------------------------------


def _find(table: pd.DataFrame, name: str, aliases: Sequence[str]) -> str | None:
    upper = {str(c).upper(): c for c in table.columns}
    for cand in (name, *aliases):
        if cand.upper() in upper:
            return upper[cand.upper()]
    return None


def _add_descriptors(
    table: pd.DataFrame,
    *,
    weight: str,
    height: str,
    sex: str,
    recompute: bool | None,
    ibw_method: str,
    aibw_factor: float,
    lbw_method: str,
    bsa_method: str,
    height_unit: str,
    female_code: Any,
) -> pd.DataFrame:
    """Derive TBW, IBW, AIBW, LBW, BSA, BMI (all of them, or only missing ones)."""
    table = table.copy()
    have_all = all(c in table.columns for c in DESCRIPTORS)
    if recompute is None:
        recompute = not have_all
    if not recompute:
        if not have_all:
            raise ConfigError(
                f"recompute_descriptors=False but the table lacks {[c for c in DESCRIPTORS if c not in table.columns]}"
            )
        return table
    w = _find(table, weight, ("WT", "TBW", "WEIGHT", "BW"))
    h = _find(table, height, ("HT", "HEIGHT", "HGT"))
    s = _find(table, sex, ("SEX", "GENDER"))
    missing = [n for n, c in (("weight", w), ("height", h), ("sex", s)) if c is None]
    if missing:
        raise ConfigError(
            f"cannot derive body-size descriptors: no {', '.join(missing)} column among {list(table.columns)} "
            f"(name them with weight=, height=, sex=)"
        )
    wt = pd.to_numeric(table[w], errors="coerce").to_numpy(dtype=float)
    ht = pd.to_numeric(table[h], errors="coerce").to_numpy(dtype=float)
    sx = table[s].to_numpy(dtype=object)
    try:
        d = size_descriptors(
            wt, ht, sx, ibw_method=ibw_method, lbw_method=lbw_method, bsa_method=bsa_method,
            aibw_factor=aibw_factor, height_unit=height_unit, female_code=female_code,
        )
    except BodySizeError as err:
        raise ConfigError(f"virtual population: {err}") from err
    table["TBW"] = wt
    for k, v in d.items():
        table[k] = v
    return table


# --------------------------------------------------------------------------
# constructors
# --------------------------------------------------------------------------


def population_from_table(
    table: pd.DataFrame | Mapping[str, Any],
    *,
    weight: str = "WT",
    height: str = "HT",
    sex: str = "SEX",
    female_code: Any = None,
    ibw_method: str = "devine",
    aibw_factor: float = 0.4,
    lbw_method: str = "janmahasatian",
    bsa_method: str = "dubois",
    height_unit: str = "cm",
    recompute_descriptors: bool | None = None,
    source: str = "table",
) -> VirtualPopulation:
    """A virtual population from a covariate table (one row per patient).

    The table is taken as the population itself: a simulation weighs its
    rows equally in every draw (no Bayesian bootstrap), unless the table
    has a ``SOURCE_ID`` column (as a saved :func:`resample_population`
    has), which marks it as a resample of those subjects (pass
    ``population_uncertainty=None`` to the simulation to hold it fixed).

    Parameters
    ----------
    table
        DataFrame (or mapping of column to values) with weight, height and sex
        columns, plus any other covariates the model uses (e.g. ``ALB``).
    weight, height, sex
        Column names (case-insensitive; ``WT``/``TBW``, ``HT``, ``SEX`` are
        found by default).
    female_code
        Code meaning female when sex is numeric (see
        :func:`poppk.bodysize.parse_sex`).
    ibw_method, aibw_factor, lbw_method, bsa_method, height_unit
        Passed to :func:`poppk.bodysize.size_descriptors`; ``ibw_method="label"``
        is the metric formula of the mirvetuximab soravtansine label.
    recompute_descriptors
        ``None`` (default): derive the descriptors unless the table already
        has all of them (e.g. ``PKData.covariates`` after
        ``with_size_descriptors``, which keeps them consistent with the fit);
        ``True``: always derive; ``False``: require them.

    Returns
    -------
    VirtualPopulation

    Examples
    --------
    >>> import pandas as pd
    >>> pop = population_from_table(pd.DataFrame({"WT": [80.0], "HT": [165.0], "SEX": ["F"]}), ibw_method="label")
    >>> round(float(pop["AIBW"][0]), 2)
    65.9
    """
    df = table.copy() if isinstance(table, pd.DataFrame) else pd.DataFrame(dict(table))
    opts = dict(ibw_method=ibw_method, aibw_factor=aibw_factor, lbw_method=lbw_method,
                bsa_method=bsa_method, height_unit=height_unit, female_code=female_code)
    if ibw_method not in IBW_METHODS:
        raise ConfigError(f"unknown ibw_method {ibw_method!r}; valid: {', '.join(IBW_METHODS)}")
    df = df.reset_index(drop=not _index_is_id(df))
    out = _add_descriptors(df, weight=weight, height=height, sex=sex, recompute=recompute_descriptors, **opts)
    return VirtualPopulation(out, source=source, seed=None, options=_options(**opts))


def _index_is_id(df: pd.DataFrame) -> bool:
    return df.index.name is not None and df.index.name not in df.columns


def resample_population(
    covariates: Any,
    n: int,
    seed: int = 0,
    *,
    weight: str = "WT",
    height: str = "HT",
    sex: str = "SEX",
    female_code: Any = None,
    ibw_method: str = "devine",
    aibw_factor: float = 0.4,
    lbw_method: str = "janmahasatian",
    bsa_method: str = "dubois",
    height_unit: str = "cm",
    recompute_descriptors: bool | None = None,
) -> VirtualPopulation:
    """Bootstrap ``n`` whole covariate vectors of an observed population.

    Rows are drawn with replacement, so every virtual patient has a real
    patient's combination of weight, height, sex, albumin, ... (the joint
    structure is kept).  A column ``SOURCE_ID`` records which subject was
    drawn; with it, :func:`~poppk.simulate.engine.simulate_strategies`
    by default weighs the source subjects by a fresh Bayesian bootstrap
    (Dirichlet(1, ..., 1) weights) per posterior draw, so that the answer
    carries the uncertainty of the covariate distribution the trial's few
    subjects leave (``population_uncertainty``).

    Parameters
    ----------
    covariates
        A covariate DataFrame (one row per subject, e.g. ``PKData.covariates``),
        a :class:`~poppk.data.PKData`, a fit (its ``.data``) or a
        :class:`VirtualPopulation`.
    n
        Number of virtual patients.
    seed
        Random seed.
    weight, height, sex, female_code, ibw_method, aibw_factor, lbw_method, bsa_method, height_unit, recompute_descriptors
        As :func:`population_from_table`.  By default descriptors already in
        the table (those the model was fitted with) are kept; numeric sex
        codes need ``female_code`` only when descriptors are derived.

    Returns
    -------
    VirtualPopulation
    """
    if isinstance(covariates, VirtualPopulation):
        table = covariates.covariates
    elif hasattr(covariates, "data") and hasattr(getattr(covariates, "data"), "covariates"):
        table = covariates.data.covariates
        female_code = female_code if female_code is not None else getattr(covariates.data, "sex_female_code", None)
    elif hasattr(covariates, "covariates") and isinstance(getattr(covariates, "covariates"), pd.DataFrame):
        table = covariates.covariates
        female_code = female_code if female_code is not None else getattr(covariates, "sex_female_code", None)
    elif isinstance(covariates, pd.DataFrame):
        table = covariates
    else:
        raise ConfigError(
            f"resample_population needs a covariate DataFrame, PKData, Fit or VirtualPopulation; got {type(covariates).__name__}"
        )
    n = _check_n(n)
    if len(table) == 0:
        raise ConfigError("resample_population: the covariate table is empty")
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(table), size=n)
    ids = table.index.to_numpy()[rows]
    drawn = table.iloc[rows].reset_index(drop=True)
    drawn.insert(0, "SOURCE_ID", ids)
    pop = population_from_table(
        drawn, weight=weight, height=height, sex=sex, female_code=female_code, ibw_method=ibw_method,
        aibw_factor=aibw_factor, lbw_method=lbw_method, bsa_method=bsa_method, height_unit=height_unit,
        recompute_descriptors=recompute_descriptors, source=f"resampled from {len(table)} subjects",
    )
    return dataclasses.replace(pop, seed=int(seed))


def _check_n(n: Any) -> int:
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ConfigError(f"the number of virtual patients must be a positive integer, got {n!r}")
    return int(n)


def _by_sex(value: Any, name: str) -> tuple[float, float]:
    """(female, male) from a number or a {'F': .., 'M': ..} mapping."""
    if isinstance(value, Mapping):
        keys = {str(k).strip().upper()[:1]: float(v) for k, v in value.items()}
        if not {"F", "M"} <= set(keys):
            raise ConfigError(f"{name}: give a number or a mapping with keys 'F' and 'M', got {dict(value)!r}")
        return keys["F"], keys["M"]
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return float(value[0]), float(value[1])
    return float(value), float(value)


def _truncnorm(rng: np.random.Generator, n: int, spec: Any, name: str) -> np.ndarray:
    mean, sd, lo, hi = (float(x) for x in spec)
    if not (sd >= 0 and lo < hi and lo <= mean <= hi):
        raise ConfigError(f"{name}=(mean, sd, lower, upper) must have sd >= 0 and lower <= mean <= upper; got {spec!r}")
    out = np.empty(n)
    todo = np.arange(n)
    for _ in range(1000):
        x = rng.normal(mean, sd, size=todo.size)
        ok = (x >= lo) & (x <= hi)
        out[todo[ok]] = x[ok]
        todo = todo[~ok]
        if todo.size == 0:
            return out
    raise ConfigError(f"{name}: the truncation range [{lo}, {hi}] rejects almost every draw; widen it")


def sample_population(
    n: int,
    seed: int = 0,
    *,
    female_fraction: float = 0.5,
    weight_median: Any = None,
    weight_cv: Any = None,
    height_mean: Any = None,
    height_sd: Any = None,
    wt_ht_correlation: float | None = None,
    weight_range: tuple[float, float] | None = None,
    height_range: tuple[float, float] | None = None,
    age: tuple[float, float, float, float] | None = DEFAULT_SAMPLING["age"],
    albumin: tuple[float, float, float, float] | None = DEFAULT_SAMPLING["albumin"],
    sex_codes: tuple[Any, Any] = ("F", "M"),
    ibw_method: str = "devine",
    aibw_factor: float = 0.4,
    lbw_method: str = "janmahasatian",
    bsa_method: str = "dubois",
) -> VirtualPopulation:
    """Draw a virtual population from a parametric description.

    Sex is Bernoulli(``female_fraction``).  Within each sex, (log WT, HT) is
    bivariate normal: log WT has median ``log(weight_median)`` and SD
    ``sqrt(log(1 + weight_cv²))`` (a log-normal with that CV), HT has mean
    ``height_mean`` and SD ``height_sd``, and their correlation is
    ``wt_ht_correlation``.  Pairs outside ``weight_range`` x ``height_range``
    are redrawn (truncation).  Age and albumin are independent truncated
    normals given as ``(mean, sd, lower, upper)``; ``None`` leaves them out.

    Parameters
    ----------
    n
        Number of virtual patients.
    seed
        Random seed.
    female_fraction
        Probability of being female (1.0 for an ovarian-cancer trial).
    weight_median, weight_cv, height_mean, height_sd
        A number, or ``{"F": ..., "M": ...}`` by sex (defaults in
        :data:`DEFAULT_SAMPLING`; kg and cm).
    wt_ht_correlation
        Correlation of log weight and height within sex (default 0.45).
    weight_range, height_range
        Truncation ranges (kg, cm).
    age, albumin
        ``(mean, sd, lower, upper)`` of columns ``AGE`` (years) and ``ALB``
        (default g/dL -- give the units the model was fitted with), or
        ``None``.
    sex_codes
        Values written to ``SEX`` for (female, male), e.g. ``(1, 0)`` to match
        a dataset with numeric codes and a categorical sex effect.
    ibw_method, aibw_factor, lbw_method, bsa_method
        Passed to :func:`poppk.bodysize.size_descriptors`.

    Returns
    -------
    VirtualPopulation
        Columns ``SEX, WT, HT`` (then ``AGE``, ``ALB``) and the descriptors.

    Examples
    --------
    >>> pop = sample_population(1000, seed=2, female_fraction=1.0)
    >>> bool(60 < np.median(pop["WT"]) < 85)
    True
    """
    n = _check_n(n)
    if not 0.0 <= float(female_fraction) <= 1.0:
        raise ConfigError(f"female_fraction must be in [0, 1], got {female_fraction!r}")
    d = DEFAULT_SAMPLING
    wm = _by_sex(d["weight_median"] if weight_median is None else weight_median, "weight_median")
    wcv = _by_sex(d["weight_cv"] if weight_cv is None else weight_cv, "weight_cv")
    hm = _by_sex(d["height_mean"] if height_mean is None else height_mean, "height_mean")
    hsd = _by_sex(d["height_sd"] if height_sd is None else height_sd, "height_sd")
    rho = float(d["wt_ht_correlation"] if wt_ht_correlation is None else wt_ht_correlation)
    wr = tuple(float(x) for x in (d["weight_range"] if weight_range is None else weight_range))
    hr = tuple(float(x) for x in (d["height_range"] if height_range is None else height_range))
    if not -1.0 < rho < 1.0:
        raise ConfigError(f"wt_ht_correlation must be in (-1, 1), got {rho}")
    for name, pair in (("weight_median", wm), ("weight_cv", wcv), ("height_mean", hm), ("height_sd", hsd)):
        if min(pair) <= 0:
            raise ConfigError(f"{name} must be > 0, got {pair}")
    if not (wr[0] < wr[1] and hr[0] < hr[1]):
        raise ConfigError(f"weight_range and height_range must be (lower, upper); got {wr}, {hr}")

    rng = np.random.default_rng(seed)
    female = rng.random(n) < float(female_fraction)
    wt = np.empty(n)
    ht = np.empty(n)
    for j, mask in enumerate((female, ~female)):
        idx = np.flatnonzero(mask)
        s_lw = np.sqrt(np.log1p(wcv[j] ** 2))
        for _ in range(1000):
            if idx.size == 0:
                break
            z1 = rng.standard_normal(idx.size)
            z2 = rng.standard_normal(idx.size)
            lw = np.log(wm[j]) + s_lw * z1
            h = hm[j] + hsd[j] * (rho * z1 + np.sqrt(1.0 - rho**2) * z2)
            w = np.exp(lw)
            ok = (w >= wr[0]) & (w <= wr[1]) & (h >= hr[0]) & (h <= hr[1])
            wt[idx[ok]] = w[ok]
            ht[idx[ok]] = h[ok]
            idx = idx[~ok]
        if idx.size:
            raise ConfigError("the weight/height truncation ranges reject almost every draw; widen them")
    table = pd.DataFrame({"SEX": np.where(female, sex_codes[0], sex_codes[1]), "WT": wt, "HT": ht})
    if age is not None:
        table["AGE"] = _truncnorm(rng, n, age, "age")
    if albumin is not None:
        table["ALB"] = _truncnorm(rng, n, albumin, "albumin")
    opts = dict(ibw_method=ibw_method, aibw_factor=aibw_factor, lbw_method=lbw_method, bsa_method=bsa_method,
                height_unit="cm", female_code=None)
    sex_for_bodysize = pd.DataFrame({"SEX": np.where(female, "F", "M"), "WT": wt, "HT": ht})
    derived = _add_descriptors(sex_for_bodysize, weight="WT", height="HT", sex="SEX", recompute=True, **opts)
    for c in DESCRIPTORS:
        table[c] = derived[c].to_numpy()
    return VirtualPopulation(table, source="sampled", seed=int(seed), options=_options(**opts))


def parse_population(text: str, source: Any = None, *, seed: int = 0, **options: Any) -> VirtualPopulation:
    """A population from a short text (for the command line).

    ``resample:N`` (bootstrap the covariates of ``source``: a fit, PKData or
    DataFrame), ``sample:N`` or ``sample:N:F`` (parametric, female fraction
    F), or a path to a CSV covariate table (``table:PATH`` or just ``PATH``).
    ``options`` go to the constructor (e.g. ``ibw_method="label"``); a
    table's numeric sex codes are read with the female code of ``source``'s
    data (:attr:`PKData.sex_female_code`) unless ``female_code=`` is given.

    >>> len(parse_population("sample:50:1.0", seed=1))
    50
    """
    t = str(text).strip()
    head, _, rest = t.partition(":")
    head = head.lower()
    try:
        if head == "resample":
            if source is None:
                raise ConfigError("'resample:N' needs the fit (or data) whose covariates are resampled")
            return resample_population(source, int(rest), seed, **options)
        if head == "sample":
            n, _, frac = rest.partition(":")
            kw = dict(options)
            if frac:
                kw["female_fraction"] = float(frac)
            return sample_population(int(n), seed, **kw)
    except ValueError as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(f"population {text!r}: {err}") from None
    path = rest if head == "table" else t
    try:
        table = pd.read_csv(path, na_values=["."])
    except FileNotFoundError:
        raise ConfigError(
            f"population {text!r}: no such file; use 'resample:N', 'sample:N[:female_fraction]' or a CSV path"
        ) from None
    if options.get("female_code") is None:  # the fitted data's sex code ([data] female_code) holds here too
        options = {**options, "female_code": getattr(getattr(source, "data", source), "sex_female_code", None)}
    return population_from_table(table, source=str(path), **options)
