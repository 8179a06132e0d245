"""report.html renders in headless Chromium: every section and figure, no blocked resource, nothing unescaped.

Skipped when ``/usr/bin/chromium`` is absent (Debian: ``apt-get install -y chromium``).
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import re
import subprocess
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from poppk.diagnostics import write_checks
from poppk.report import export_covariate_report

from _report_fixtures import EVIL, EVIL_COV, comparison_table, covariate_fit, strategy_table

CHROMIUM = Path("/usr/bin/chromium")
SECTIONS = ("model", "parameters", "convergence", "checks", "comparison", "covariates", "strategies", "provenance",
            "methods")
#: Figures of the checks section and of the covariate section (η against covariates), as write_checks names them.
CHECK_FIGURES = ("vpc", "pcvpc", "vpc_tad_log", "gof", "npde", "loo_pit", "pareto_k_integrated", "prior_vpc_log",
                 "eta_covariates", "eta_distributions")


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--no-first-run", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'profile'}", *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip("chromium not installed")
    out = tmp_path_factory.mktemp("chromium-report")
    fig = Figure(figsize=(3, 2))
    fig.add_subplot().plot([0, 1], [0, 1])
    fit = covariate_fit()
    fit = dataclasses.replace(fit, idata=fit.idata.copy())  # write_checks adds the predictive groups
    checks = out / "checks"
    write_checks(fit, checks, n_draws=40, seed=0)
    paths = export_covariate_report(fit, out, strategy_table=strategy_table(),
                                    comparison_table=comparison_table(), figures={EVIL: fig}, title=EVIL,
                                    checks=checks, simulated=True)
    return paths["html"]


def test_dom_has_every_section_and_figure(report, tmp_path):
    res = _chromium(tmp_path, "--enable-logging=stderr", "--log-level=0", "--dump-dom", report.resolve().as_uri())
    assert res.returncode == 0, res.stderr[-2000:]
    dom = res.stdout
    assert "</html>" in dom
    for sid in SECTIONS:
        assert f'id="{sid}"' in dom, sid
    # sections in reading order: parameters, convergence, checks, comparison, covariates, dosing
    positions = [dom.index(f'id="{sid}"') for sid in SECTIONS]
    assert positions == sorted(positions)
    assert 'class="banner"' in dom and "Simulated data" in dom
    imgs = re.findall(r"<img\b[^>]*>", dom)
    assert len(imgs) == 2 + len(CHECK_FIGURES)  # forest plot + the extra figure + the checks
    assert all('src="data:image/png;base64,' in tag for tag in imgs)
    # every embedded image decodes to a non-empty picture
    from matplotlib.image import imread

    for tag in imgs:
        data = base64.b64decode(re.search(r'src="data:image/png;base64,([^"]+)"', tag).group(1))
        img = imread(io.BytesIO(data))
        assert img.shape[0] > 50 and img.shape[1] > 50 and img[..., :3].std() > 0.01
    # each check figure has its caption saying how to read it
    checks = dom[dom.index('id="checks"'):dom.index('id="comparison"')]
    for title in ("Visual predictive check (VPC)", "Prediction-corrected VPC", "Goodness of fit",
                  "Normalised prediction distribution errors", "LOO-PIT", "Prior predictive VPC"):
        assert title in checks, title
    assert checks.count("How to read it") + checks.count("Read it as") >= 6
    assert "Shrinkage" in checks and "η-shrinkage" in checks
    covs = dom[dom.index('id="covariates"'):dom.index('id="strategies"')]
    assert "Random effects against covariates" in covs
    # terms used in tables are defined
    assert "<dt>CrI</dt>" in dom and "<dt>variance ratio</dt>" in dom
    # no element made from user strings; they are text
    assert "<script" not in dom.lower()
    assert "<img src=x" not in dom.lower() and EVIL_COV not in dom
    assert html.escape(EVIL, quote=False) in dom
    # the page logged nothing to the console: no resource blocked by its Content-Security-Policy
    # (it allows data: images and the inline style sheet only), no load error
    console = [line for line in res.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console
    assert "Content Security Policy" not in res.stderr and "net::ERR_" not in res.stderr


def test_screenshot_is_rendered(report, tmp_path):
    shot = tmp_path / "report.png"
    res = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,3000", report.resolve().as_uri())
    assert res.returncode == 0, res.stderr[-2000:]
    from matplotlib.image import imread

    img = imread(shot)
    assert img.shape[:2] == (3000, 1200)
    assert (img[..., :3] < 0.5).any()  # something dark (text, figures) was drawn
