"""Write every check of a fit to a directory: tables as CSV, figures as PNG/SVG.

:func:`write_checks` is what ``poppk check FIT_DIR --out DIR`` runs.  Every
file is written through :mod:`poppk.io` (a temporary name in the output
directory renamed into place), so a reader never sees a half-written file.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from poppk import defaults
from poppk.diagnostics._common import DiagnosticsError
from poppk.io import atomic_write_text, atomic_writer
from poppk.model.time_varying import has_time_variation

_LOG = logging.getLogger("poppk.checks")

__all__ = ["write_checks", "FIGURE_FORMATS"]

#: Figure formats :func:`write_checks` accepts.
FIGURE_FORMATS = ("png", "svg", "pdf")


def _csv(table: pd.DataFrame, path: Path, index: bool = False) -> Path:
    return atomic_write_text(path, table.to_csv(index=index))


def _fig(fig: Any, path: Path, fmt: str, dpi: int) -> Path:
    return atomic_writer(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=dpi))


def _by_analyte(table: pd.DataFrame, whole: bool = True, spec: Any = None) -> list[tuple[Any, pd.DataFrame]]:
    """``(analyte name, its rows)`` of a multi-analyte table; ``whole=False`` gives ``[(None, table)]``
    for a one-analyte one (and ``[]`` with ``whole=True``: the whole table is drawn already)."""
    if "ANALYTE" not in table.columns:
        return [] if whole else [(None, table)]
    from poppk.model.analytes import analyte_unit

    out = []
    for name in pd.unique(table["ANALYTE"]):
        part = table[table["ANALYTE"] == name].copy()
        part.attrs = {**table.attrs, "concentration_unit": analyte_unit(spec, name)} if spec is not None else dict(table.attrs)
        out.append((name, part))
    return out


def write_checks(
    fit: Any,
    out_dir: str | os.PathLike[str],
    formats: Sequence[str] = ("png",),
    *,
    n_draws: int = defaults.CHECK_DRAWS,
    seed: int = 0,
    stratify: Any = None,
    bins: Any = "auto",
    n_bins: int = 10,
    dpi: int = 130,
    loo: bool = True,
    predictive: bool = True,
) -> list[Path]:
    """Compute every diagnostic of ``fit`` and write tables and figures to ``out_dir``.

    Parameters
    ----------
    fit
        A :class:`~poppk.model.Fit`.
    out_dir
        Output directory (created if needed; existing files of the same
        names are replaced).
    formats
        Figure formats, any of ``"png"``, ``"svg"``, ``"pdf"``.
    n_draws
        Replicate studies simulated (new subjects) for the VPCs and NPDE.
    seed
        Seed of the simulations.
    stratify
        Also write a VPC stratified by this covariate (see
        :func:`~poppk.diagnostics.vpc_table`).
    bins, n_bins
        VPC binning (see :func:`~poppk.diagnostics.vpc_table`; default
        ``"auto"``: one bin per distinct time for nominal designs with at
        most 20 sampling times, else ``n_bins`` bins: Jenks breaks of log
        time after dose, quantiles of time after first dose).
    dpi
        Resolution of raster figures.
    loo
        Compute PSIS-LOO: per subject (plain, and with the random effects
        integrated out, see :func:`~poppk.diagnostics.loo`) and per
        observation.
    predictive
        Add ArviZ's predictive groups to ``fit.idata`` when missing
        (:func:`~poppk.diagnostics.predictive.add_predictive_groups`, a saved
        fit has them) and write the LOO-PIT (randomised for BLQ records) and
        the prior predictive VPC.

    Returns
    -------
    list of pathlib.Path
        The files written, tables first.

    Notes
    -----
    Tables: ``vpc.csv``, ``vpc_tad.csv``, ``pcvpc.csv``, ``pcvpc_tad.csv``
    (and ``vpc_<stratify>.csv``), ``gof.csv`` (per observation: PRED, IPRED,
    IWRES, EPRED, PWRES, NPDE), ``npde_tests.csv``, ``shrinkage.csv``,
    ``eta.csv``, ``eta_covariates.csv``, ``eta_distribution.csv``,
    ``individual_fits.csv``, ``loo_summary.csv``, ``loo_subject.csv``,
    ``pareto_k.csv``, ``loo_pit.csv``, ``loo_pit_ecdf.csv``, ``prior_vpc.csv``.  Figures: ``vpc``, ``vpc_log``, ``vpc_tad_log``,
    ``pcvpc``, ``pcvpc_tad`` (and ``vpc_<stratify>_log``), ``gof``, ``gof_log``,
    ``npde``, ``individual_fits_NN`` (16 subjects a page), ``eta_distributions``,
    ``eta_covariates``, ``pareto_k``, ``pareto_k_integrated``, ``loo_pit``, ``prior_vpc_log``.
    """
    from poppk import plots
    from poppk.diagnostics import (
        eta_covariate_table,
        eta_distribution_table,
        eta_table,
        gof_table,
        individual_fit_table,
        npde_tests,
        shrinkage_table,
        simulate_observations,
        vpc_observations,
        vpc_table,
    )
    from poppk.diagnostics.loo import loo as psis_loo
    from poppk.diagnostics.loo import loo_pointwise, pareto_k_summary

    bad = [f for f in formats if f not in FIGURE_FORMATS]
    if bad or not formats:
        raise DiagnosticsError(f"figure formats {bad or list(formats)}: choose from {FIGURE_FORMATS}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables: list[Path] = []
    figures: list[Path] = []

    def save(fig: Any, name: str) -> None:
        for i, fmt in enumerate(formats):
            figures.append(_fig(fig, out / f"{name}.{fmt}", fmt, dpi))
            if i == 0 and len(formats) > 1:
                # laid out by the first save: the other formats keep those positions instead of
                # running the (constrained) layout again, a third of each save
                fig.set_layout_engine("none")

    from poppk.progress import step

    with step(f"{n_draws} replicate studies for the VPCs and NPDE", "poppk.checks"):
        sims = simulate_observations(fit, n_draws=n_draws, new_subjects=True, seed=seed)

    # VPCs
    variants: list[tuple[str, dict[str, Any], Iterable[tuple[str, bool]]]] = [
        ("vpc", {"time": "tafd"}, (("vpc", False), ("vpc_log", True))),
        ("vpc_tad", {"time": "tad"}, (("vpc_tad_log", True),)),
        ("pcvpc", {"time": "tafd", "pred_corrected": True}, (("pcvpc", False),)),
        ("pcvpc_tad", {"time": "tad", "pred_corrected": True}, (("pcvpc_tad", False),)),
    ]
    if stratify is not None:
        label = stratify if isinstance(stratify, str) else getattr(stratify, "__name__", "stratified")
        variants.append((f"vpc_{label}", {"time": "tafd", "stratify": stratify}, ((f"vpc_{label}_log", True),)))
    for name, kw, figs in variants:
        with step(name.upper().replace("_TAD", " (time after dose)"), "poppk.checks"):
            tab = vpc_table(fit, simulations=sims, bins=bins, n_bins=n_bins, **kw)
            tables.append(_csv(tab, out / f"{name}.csv"))
            obs = vpc_observations(fit, bins=bins, n_bins=n_bins, **kw)
            for fig_name, log in figs:
                save(plots.plot_vpc(tab, obs, log_y=log), fig_name)

    # GOF and NPDE
    _LOG.info("   GOF, NPDE, shrinkage, random effects, individual fits")
    gof = gof_table(fit, simulations=sims, seed=seed)
    tables.append(_csv(gof, out / "gof.csv"))
    tests = npde_tests(gof)
    tables.append(_csv(tests, out / "npde_tests.csv", index=True))
    save(plots.plot_gof(gof), "gof")
    save(plots.plot_gof(gof, log=True, title="Goodness of fit (log scale)"), "gof_log")
    save(plots.plot_npde(gof, tests), "npde")
    for name, part in _by_analyte(gof, spec=fit.spec):  # a multi-analyte model: each analyte on its own scale
        save(plots.plot_gof(part, log=True, title=f"Goodness of fit, {name} (log scale)"), f"gof_log_{name}")

    # shrinkage and random effects
    tables.append(_csv(shrinkage_table(fit), out / "shrinkage.csv", index=True))
    if fit.spec.iiv:
        eta = eta_table(fit)
        tables.append(_csv(eta, out / "eta.csv", index=True))
        ecov = eta_covariate_table(eta)
        tables.append(_csv(ecov, out / "eta_covariates.csv"))
        tables.append(_csv(eta_distribution_table(eta), out / "eta_distribution.csv", index=True))
        save(plots.plot_eta_distributions(eta), "eta_distributions")
        if eta.attrs.get("covariates"):
            save(plots.plot_eta_covariates(eta, ecov), "eta_covariates")

    # individual fits, 16 subjects a page
    curves, points = individual_fit_table(fit, seed=seed)
    tables.append(_csv(curves, out / "individual_fits.csv"))
    ids = list(pd.unique(curves["ID"]))
    for name, c_part in _by_analyte(curves, whole=False, spec=fit.spec):
        p_part = points if name is None else points[points["ANALYTE"] == name].copy()
        tag, what = ("", "") if name is None else (f"_{name}", f", {name}")
        for page, start in enumerate(range(0, len(ids), 16), start=1):
            chunk = ids[start:start + 16]
            fig = plots.plot_individual_fits(c_part, p_part, chunk, log_y=name is not None,
                                             title=f"Individual fits{what} (page {page})")
            save(fig, f"individual_fits{tag}_{page:02d}")

    # PSIS-LOO: per subject (plain and with the random effects integrated out), per observation
    if loo:
        rows = []
        runs = [("subject", "psis"), ("subject", "integrated"), ("observation", "psis")]
        if not fit.spec.iiv or has_time_variation(fit.spec):  # the η integration covers neither case
            runs.remove(("subject", "integrated"))
        per_subject = None
        for by, method in runs:
            _LOG.info("   PSIS-LOO per %s%s", by, "" if method == "psis" else f" ({method})")
            res = psis_loo(fit, by, method=method, seed=seed)
            pw = loo_pointwise(res)
            label = by if method == "psis" else f"{by} ({method})"
            rows.append({"by": label, "elpd_loo": float(res["elpd_loo"]), "se": float(res["se"]),
                         "p_loo": float(res["p_loo"]), "n_units": int(res["n_data_points"]),
                         "n_k_gt_0.7": int((pw["pareto_k"] > 0.7).sum()),
                         "max_k": float(np.nanmax(pw["pareto_k"]))})
            if by != "subject":
                continue
            suffix = "" if method == "psis" else "_integrated"
            if per_subject is None:
                per_subject = pw.drop(columns="k_category")
                tables.append(_csv(pareto_k_summary(res), out / "pareto_k.csv", index=True))
            else:
                per_subject[f"elpd_loo_i{suffix}"] = pw["elpd_loo_i"].to_numpy()
                per_subject[f"pareto_k{suffix}"] = pw["pareto_k"].to_numpy()
            what = "integrated over η" if method == "integrated" else "plain PSIS"
            save(plots.plot_pareto_k(pw, title=f"Leave-one-subject-out Pareto k ({what}): "
                                                f"{int((pw['pareto_k'] > 0.7).sum())} of {len(pw)} above 0.7"),
                 f"pareto_k{suffix}")
        if per_subject is not None:
            tables.append(_csv(per_subject, out / "loo_subject.csv"))
        tables.append(_csv(pd.DataFrame(rows), out / "loo_summary.csv"))

    # ArviZ's predictive groups: LOO-PIT of the replicates, and the prior predictive VPC
    if predictive:
        from poppk.diagnostics.predictive import add_predictive_groups, loo_pit, pit_table, prior_fit
        from poppk.diagnostics.prior_check import prior_vpc_table

        _LOG.info("   LOO-PIT and the prior predictive VPC")
        add_predictive_groups(fit, seed=seed)
        hist, ecdf = pit_table(loo_pit(fit, seed=seed))
        tables.append(_csv(hist, out / "loo_pit.csv"))
        tables.append(_csv(ecdf, out / "loo_pit_ecdf.csv"))
        save(plots.plot_loo_pit(hist, ecdf), "loo_pit")
        n_prior = int(fit.idata.prior.sizes["draw"]) if "prior" in fit.idata.groups() else 200
        prior = prior_fit(fit, n_draws=n_prior, seed=seed)
        ptab = prior_vpc_table(prior=prior, seed=seed, bins=bins, n_bins=n_bins)
        tables.append(_csv(ptab, out / "prior_vpc.csv"))
        save(plots.plot_vpc(ptab, vpc_observations(prior, bins=bins, n_bins=n_bins), log_y=True), "prior_vpc_log")
    return tables + figures
