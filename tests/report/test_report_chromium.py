"""report.html renders in headless Chromium: every section and figure, no blocked resource, nothing unescaped.

Skipped when ``/usr/bin/chromium`` is absent (Debian: ``apt-get install -y chromium``).
"""

from __future__ import annotations

import html
import re
import subprocess
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from poppk.report import export_covariate_report

from _report_fixtures import EVIL, EVIL_COV, comparison_table, covariate_fit, strategy_table

CHROMIUM = Path("/usr/bin/chromium")
SECTIONS = ("provenance", "model", "convergence", "parameters", "covariates", "strategies", "comparison", "methods")


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
    paths = export_covariate_report(covariate_fit(), out, strategy_table=strategy_table(),
                                    comparison_table=comparison_table(), figures={EVIL: fig}, title=EVIL)
    return paths["html"]


def test_dom_has_every_section_and_figure(report, tmp_path):
    res = _chromium(tmp_path, "--enable-logging=stderr", "--log-level=0", "--dump-dom", report.resolve().as_uri())
    assert res.returncode == 0, res.stderr[-2000:]
    dom = res.stdout
    assert "</html>" in dom
    for sid in SECTIONS:
        assert f'id="{sid}"' in dom, sid
    imgs = re.findall(r"<img\b[^>]*>", dom)
    assert len(imgs) == 2  # forest plot + the extra figure
    assert all('src="data:image/png;base64,' in tag for tag in imgs)
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
