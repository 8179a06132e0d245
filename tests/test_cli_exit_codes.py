"""Exit codes of ``poppk fit`` and ``poppk run``: 0 success, 2 bad input, 3 a fit that did not converge.

The fit is replaced by a stand-in whose convergence report is chosen (no MCMC).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import poppk.model
from _studies import simulate_study
from poppk.cli import EXIT_ERROR, EXIT_UNCONVERGED, build_parser, main
from poppk.model.convergence import ConvergenceReport

SPEC = """\
[model]
structure = "1cmt"
typical = { CL = 1.0, V1 = 10.0 }
iiv = ["CL", "V1"]
error = "proportional"
units = { time = "h" }
"""
PROBLEM = "R-hat > 1.01 for CL, omega_corr[CL,V1]"


class _StandIn:
    """What ``fit`` returns, with a chosen convergence report."""

    def __init__(self, ok: bool) -> None:
        self.report = ConvergenceReport(table=pd.DataFrame({"r_hat": [1.0 if ok else 1.2]}, index=["CL"]),
                                        divergences=0, max_treedepth_hits=0, mean_steps=7.0,
                                        problems=() if ok else (PROBLEM,))
        self.saved: list[Path] = []

    def convergence(self) -> ConvergenceReport:
        return self.report

    def summary(self) -> pd.DataFrame:
        cols = ["median", "lower", "upper", "rse", "r_hat", "ess_bulk"]
        return pd.DataFrame([[1.0] * len(cols)], index=["CL"], columns=cols)

    def save(self, path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.saved.append(path)
        return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    df, _ = simulate_study(n_subjects=6)
    data = tmp_path / "study.csv"
    df.to_csv(data, index=False)
    spec = tmp_path / "model.toml"
    spec.write_text(SPEC)
    return {"data": data, "spec": spec, "dir": tmp_path}


def _use_fit(monkeypatch: pytest.MonkeyPatch, ok: bool) -> list[_StandIn]:
    made: list[_StandIn] = []

    def fake_fit(*args, **kwargs):
        made.append(_StandIn(ok))
        if kwargs.get("file") is not None:  # fit(..., file=) saves the new fit there, as the real one does
            made[-1].save(kwargs["file"])
        return made[-1]

    monkeypatch.setattr(poppk.model, "fit", fake_fit)
    return made


def _fit_args(files: dict[str, Path], *extra: str) -> list[str]:
    return ["fit", str(files["data"]), "--model", str(files["spec"]), "--out", str(files["dir"] / "fit"),
            "--quiet", *extra]


def test_fit_exit_codes(files, monkeypatch, capsys):
    _use_fit(monkeypatch, ok=True)
    assert main(_fit_args(files)) == 0
    made = _use_fit(monkeypatch, ok=False)
    assert main(_fit_args(files)) == EXIT_UNCONVERGED == 3
    assert made[0].saved == [files["dir"] / "fit"]  # written all the same
    err = capsys.readouterr().err
    assert "did not converge" in err and "omega_corr[CL,V1]" in err and "--allow-unconverged" in err
    assert main(_fit_args(files, "--allow-unconverged")) == 0


def test_fit_backend_option_reaches_fit(files, monkeypatch):
    seen: list[str] = []

    def fake_fit(*args, **kwargs):
        seen.append(kwargs["backend"])
        return _StandIn(True)

    monkeypatch.setattr(poppk.model, "fit", fake_fit)
    assert main(_fit_args(files)) == 0 and main(_fit_args(files, "--backend", "jax")) == 0
    assert seen == ["numba", "jax"]


def test_bad_input_is_still_2(files, monkeypatch):
    _use_fit(monkeypatch, ok=False)  # the data are refused before any fit
    bad = files["dir"] / "bad.csv"
    pd.read_csv(files["data"]).drop(columns="TIME").to_csv(bad, index=False)
    assert main(["fit", str(bad), "--model", str(files["spec"]), "--out", str(files["dir"] / "f")]) == EXIT_ERROR


def _analysis(files: dict[str, Path], extra_fit: str = "") -> Path:
    path = files["dir"] / "analysis.toml"
    path.write_text(f'[data]\npath = "{files["data"].name}"\n\n{SPEC}\n[fit]\ndraws = 100\n{extra_fit}\n'
                    "[checks]\nenabled = false\n\n[simulate]\nenabled = false\n\n[report]\nenabled = false\n")
    return path


def test_run_exit_codes(files, monkeypatch, capsys):
    out = str(files["dir"] / "out")
    _use_fit(monkeypatch, ok=True)
    assert main(["run", str(_analysis(files)), "--out", out]) == 0
    made = _use_fit(monkeypatch, ok=False)
    assert main(["run", str(_analysis(files)), "--out", out]) == EXIT_UNCONVERGED
    assert made[0].saved == [Path(out) / "fits" / "model"]
    text = capsys.readouterr().err
    assert "fit 'model' did not converge" in text and "omega_corr[CL,V1]" in text
    assert main(["run", str(_analysis(files)), "--out", out, "--allow-unconverged"]) == 0
    assert main(["run", str(_analysis(files, "allow_unconverged = true")), "--out", out]) == 0
    assert main(["run", str(_analysis(files)), "--out", out, "--quick"]) == 0  # a smoke test, not inference


def test_bad_allow_unconverged_value_is_bad_input(files, monkeypatch):
    _use_fit(monkeypatch, ok=True)
    assert main(["run", str(_analysis(files, 'allow_unconverged = "yes"'))]) == EXIT_ERROR


def test_help_documents_the_exit_codes():
    text = build_parser().format_help()
    assert "exit codes:" in text
    for code in ("0  success", "2  bad input", "3  a fit did not converge", "allow_unconverged"):
        assert code in text
