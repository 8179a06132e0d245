"""variance_ratio.png: its x label (with the unit and the interval) is inside the saved figure, not cut off."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402
from matplotlib.image import imread  # noqa: E402

from poppk.plots.strategies import plot_variance_ratio  # noqa: E402


def _summary() -> pd.DataFrame:
    rows = []
    for s, label in (("tbw", "5 mg/kg TBW"), ("aibw", "5 mg/kg AIBW"), ("flat", "400 mg flat")):
        for m in ("cmax_c1", "auc_c1", "ctrough_c1", "auc_ss"):
            rows.append({"strategy": s, "metric": m, "label": label, "var_ratio_median": 0.8,
                         "var_ratio_lo": 0.6, "var_ratio_hi": 1.1, "prob_var_ratio_below_1": 0.9})
    df = pd.DataFrame(rows).set_index(["strategy", "metric"])
    df.attrs.update({"reference": "tbw", "ci": 0.9})
    return df


def test_x_label_is_inside_the_saved_figure():
    ax = plot_variance_ratio(_summary())
    fig = ax.figure
    label = ax.xaxis.label
    assert "no unit" in label.get_text() and "CrI" in label.get_text()
    # saved the way poppk.simulate.outputs saves it: no bbox_inches="tight"
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    fig.canvas.draw()  # lay out at the figure's own dpi before measuring
    renderer = fig.canvas.get_renderer()
    box = label.get_window_extent(renderer)
    width, height = fig.bbox.width, fig.bbox.height
    assert box.y0 >= 0 and box.x0 >= 0 and box.x1 <= width and box.y1 <= height, (box, width, height)
    for tick in ax.get_yticklabels():
        assert tick.get_window_extent(renderer).x0 >= 0
    buf.seek(0)
    assert imread(buf).shape[0] > 0
