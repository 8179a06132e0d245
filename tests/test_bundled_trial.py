"""The bundled simulated IMGN853-like phase-1 trial (data/imgn853_phase1*.csv).

Checks that the shipped files are what the generator makes, that poppk reads
them, that the AIBW doses are right, that the concentrations agree with an
independent ODE solution, and that the ocular-AE model points the documented
way.
"""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.integrate import solve_ivp

from poppk.data import read_nonmem

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / "data"
DATA_CSV = DATA_DIR / "imgn853_phase1.csv"
TRUTH_CSV = DATA_DIR / "imgn853_phase1_truth.csv"
GENERATOR = DATA_DIR / "generate_trial.py"


def _load_generator():
    spec = importlib.util.spec_from_file_location("generate_trial_under_test", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gt():
    return _load_generator()


@pytest.fixture(scope="module")
def shipped():
    records = pd.read_csv(DATA_CSV, na_values=["."], keep_default_na=False)
    truth = pd.read_csv(TRUTH_CSV, na_values=["."], keep_default_na=False)
    return records, truth


@pytest.fixture(scope="module")
def regenerated(gt):
    return gt.generate_trial()


@pytest.fixture(scope="module")
def data():
    return read_nonmem(DATA_CSV)


def _assert_same_table(file_frame: pd.DataFrame, memory_frame: pd.DataFrame) -> None:
    assert list(file_frame.columns) == list(memory_frame.columns)
    assert len(file_frame) == len(memory_frame)
    for col in memory_frame.columns:
        mem = memory_frame[col]
        if mem.dtype.kind in "OSUT" or isinstance(mem.dtype, pd.StringDtype) or str(mem.dtype) == "str":
            assert file_frame[col].astype(str).tolist() == mem.astype(str).tolist(), col
        else:
            a = file_frame[col].to_numpy(dtype=float, na_value=np.nan)
            b = mem.to_numpy(dtype=float, na_value=np.nan)
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-9, equal_nan=True, err_msg=col)


# --------------------------------------------------------------------------- regeneration


def test_importable_without_package(gt):
    assert "generate_trial_under_test" not in sys.modules  # loaded by path only
    assert callable(gt.generate_trial)
    assert gt.DEFAULT_SEED == 20260101


def test_shipped_files_equal_regeneration(shipped, regenerated):
    _assert_same_table(shipped[0], regenerated[0])
    _assert_same_table(shipped[1], regenerated[1])


def test_generation_is_deterministic(gt, regenerated):
    again = gt.generate_trial(seed=gt.DEFAULT_SEED)
    pd.testing.assert_frame_equal(again[0], regenerated[0])
    pd.testing.assert_frame_equal(again[1], regenerated[1])
    other = gt.generate_trial(seed=gt.DEFAULT_SEED + 1)
    assert not np.allclose(other[1]["WT"], regenerated[1]["WT"])


def test_files_are_small():
    assert DATA_CSV.stat().st_size < 1_000_000
    assert TRUTH_CSV.stat().st_size < 1_000_000


def test_script_writes_files(tmp_path, shipped, gt):
    assert gt.main(["--out", str(tmp_path)]) == 0
    _assert_same_table(pd.read_csv(tmp_path / gt.DATA_FILE, na_values=["."], keep_default_na=False),
                       shipped[0])


# --------------------------------------------------------------------------- reading


def test_read_nonmem(data, shipped):
    truth = shipped[1]
    assert data.n_subjects == 80 == len(truth)
    for name in ("WT", "HT", "AGE", "ALB", "SEX"):
        assert name in data.covariate_names
    assert set(data.covariates["SEX"]) == {"F"}
    # doses: one record per cycle, no ADDL
    assert data.n_dose_records == len(data.doses) == int(truth["N_CYCLES"].sum())
    per_subject = data.doses.groupby("ID").size()
    np.testing.assert_array_equal(per_subject.loc[truth["ID"]].to_numpy(), truth["N_CYCLES"])
    # infusions: 2 h first, 1 h afterwards (DUR derived from RATE)
    first = data.doses.groupby("ID").head(1)
    later = data.doses.drop(first.index)
    np.testing.assert_allclose(first["DUR"], 2 / 24, rtol=1e-9)
    np.testing.assert_allclose(later["DUR"], 1 / 24, rtol=1e-9)
    # BLQ: some, all with LLOQ 0.1, fitted DV = LLOQ
    obs = data.observations
    assert obs["BLQ"].sum() > 0
    np.testing.assert_allclose(obs["LLOQ"], 0.1)
    np.testing.assert_allclose(obs.loc[obs["BLQ"], "DV"], 0.1)
    assert (obs.loc[~obs["BLQ"], "DV"] >= 0.1).all()
    # the pre-first-dose samples are excluded (MDV = 1), one per patient at time 0
    assert len(data.excluded) == 80
    assert (data.excluded["TIME"] == 0).all()


def test_with_size_descriptors(data):
    sized = data.with_size_descriptors(female_code=None)
    for name in ("TBW", "IBW", "AIBW", "LBW", "BSA", "BMI"):
        assert name in sized.covariates.columns
        assert np.isfinite(sized.covariates[name].to_numpy(dtype=float)).all()


def test_aibw_cohorts_dosed_on_aibw(data, shipped):
    cov = data.with_size_descriptors(ibw_method="label").covariates
    first = data.doses.groupby("ID").head(1).set_index("ID")["AMT"]
    aibw = cov["AIBW"].loc[first.index]
    wt = cov["WT"].loc[first.index]
    mgkg = cov["MGKG"].loc[first.index]
    on_aibw = (cov["BASIS"].loc[first.index] == "AIBW").to_numpy()
    assert on_aibw.sum() >= 12
    assert set(mgkg[on_aibw]) == {5.0, 6.0}
    np.testing.assert_allclose(first[on_aibw], mgkg[on_aibw] * aibw[on_aibw], atol=0.05 + 1e-9)
    np.testing.assert_allclose(first[~on_aibw], mgkg[~on_aibw] * wt[~on_aibw], atol=0.05 + 1e-9)
    ratio = (first[on_aibw] / aibw[on_aibw]).to_numpy()
    assert np.all(np.isclose(ratio, 5.0, rtol=2e-3) | np.isclose(ratio, 6.0, rtol=2e-3))
    # every later dose equals the first (no dose changes)
    assert (data.doses.groupby("ID")["AMT"].nunique() == 1).all()
    # the label IBW formula for women, 0.9*HT - 92
    np.testing.assert_allclose(cov["IBW"], 0.9 * cov["HT"] - 92.0, rtol=1e-12)
    # the truth file agrees
    truth = shipped[1].set_index("ID")
    np.testing.assert_allclose(truth.loc[first.index, "DOSE_MG"], first)
    np.testing.assert_allclose(truth.loc[first.index, "AIBW"], aibw, atol=1e-6)


def test_heavy_patients_present(shipped):
    truth = shipped[1]
    assert truth["WT"].max() > 110
    assert truth["WT"].min() < 55
    assert 60 <= truth["WT"].median() <= 80


# --------------------------------------------------------------------------- PK truth


def _ode_concentration(t_obs, dose_time, amt, dur, p):
    """Central concentration of the 2-cmt model by numerical integration."""
    k10, k12, k21 = p["CL"] / p["V1"], p["Q"] / p["V1"], p["Q"] / p["V2"]

    def rhs(t, a, rate):
        return [rate - (k10 + k12) * a[0] + k21 * a[1], k12 * a[0] - k21 * a[1]]

    breaks = np.unique(np.r_[0.0, dose_time, dose_time + dur, t_obs.max()])
    state = np.zeros(2)
    out = np.full(len(t_obs), np.nan)
    for lo, hi in zip(breaks[:-1], breaks[1:]):
        mid = 0.5 * (lo + hi)
        rate = float(np.sum(np.where((dose_time <= mid) & (mid < dose_time + dur), amt / dur, 0.0)))
        sol = solve_ivp(rhs, (lo, hi), state, args=(rate,), method="DOP853",
                        rtol=1e-11, atol=1e-11, dense_output=True)
        inside = (t_obs > lo) & (t_obs <= hi)
        if inside.any():
            out[inside] = sol.sol(t_obs[inside])[0] / p["V1"]
        state = sol.y[:, -1]
    return out


def test_error_free_concentrations_match_ode(gt, shipped):
    records, truth = shipped
    clean, clean_truth = gt.generate_trial(residual_error=False)
    # same schedule, same patients (common random numbers)
    np.testing.assert_array_equal(clean["TIME"].to_numpy(), records["TIME"].to_numpy())
    pd.testing.assert_frame_equal(clean_truth, gt.generate_trial()[1])

    heaviest = int(truth.loc[truth["WT"].idxmax(), "ID"])
    expansion = int(truth.loc[truth["BASIS"] == "AIBW", "ID"].iloc[0])
    for pid in sorted({1, heaviest, expansion}):
        rec = records[records["ID"] == pid]
        doses = rec[rec["EVID"] == 1]
        dose_time = doses["TIME"].to_numpy()
        amt = doses["AMT"].to_numpy()
        dur = amt / doses["RATE"].to_numpy()
        p = truth.set_index("ID").loc[pid, ["CL", "V1", "Q", "V2"]].to_dict()

        mine = clean[(clean["ID"] == pid) & (clean["EVID"] == 0) & (clean["MDV"] == 0)]
        quantified = mine["BLQ"] == 0
        t = mine.loc[quantified, "TIME"].to_numpy()
        ode = _ode_concentration(t, dose_time, amt, dur, p)
        # error-free DV is the kernel's prediction rounded to 3 decimals
        np.testing.assert_allclose(mine.loc[quantified, "DV"].to_numpy(), ode,
                                   rtol=1e-6, atol=5.1e-4)
        assert len(t) >= 12

        # the noisy DV in the file scatters around the same curve (15% + 0.05)
        noisy = rec[(rec["EVID"] == 0) & (rec["MDV"] == 0) & (rec["BLQ"] == 0)]
        z = (noisy["DV"].to_numpy() - _ode_concentration(noisy["TIME"].to_numpy(), dose_time, amt,
                                                         dur, p))
        sd = np.sqrt(0.05**2 + (0.15 * noisy["DV"].to_numpy()) ** 2)
        assert np.all(np.abs(z / sd) < 6)

        # CMAX1 is the end of the first infusion and the maximum over cycle 1
        t_eoi = dose_time[0] + dur[0]
        grid = np.linspace(1e-4, dose_time[1] - 1e-6, 2000)
        cycle1 = _ode_concentration(np.r_[grid, t_eoi], dose_time[:1], amt[:1], dur[:1], p)
        cmax1 = truth.set_index("ID").loc[pid, "CMAX1"]
        np.testing.assert_allclose(cmax1, cycle1[-1], rtol=1e-7)
        assert cycle1[:-1].max() <= cmax1 * (1 + 1e-9)


def test_truth_parameters_follow_the_model(shipped, gt):
    truth = shipped[1]
    p = gt.TRUE_PARAMETERS
    size = truth["WT"] / 70.0
    np.testing.assert_allclose(
        truth["CL"], 0.45 * size**0.45 * (truth["ALB"] / 4.0) ** -0.5 * np.exp(truth["ETA_CL"]),
        rtol=1e-6)
    np.testing.assert_allclose(truth["V1"], 2.8 * size**0.5 * np.exp(truth["ETA_V1"]), rtol=1e-6)
    np.testing.assert_allclose(truth["Q"], 0.6 * size**0.5, rtol=1e-6)
    np.testing.assert_allclose(truth["V2"], 2.0 * size**0.5, rtol=1e-6)
    assert (p["CL"], p["V1"], p["Q"], p["V2"]) == (0.45, 2.8, 0.6, 2.0)
    # the random effects look like their distribution (loose: 80 patients)
    assert 0.2 < truth["ETA_CL"].std() < 0.4
    assert 0.13 < truth["ETA_V1"].std() < 0.27


def test_size_exponent_variants(gt, regenerated):
    base = regenerated[1]
    records, truth = gt.generate_trial(cl_size_exponent=0.95, v_size_exponent=1.0)
    # the same patients and random effects; only the parameters move
    for col in ("WT", "HT", "ALB", "ETA_CL", "ETA_V1", "DOSE_MG", "N_CYCLES"):
        np.testing.assert_array_equal(truth[col], base[col])
    np.testing.assert_array_equal(records["TIME"], regenerated[0]["TIME"])
    size = truth["WT"] / 70.0
    np.testing.assert_allclose(truth["V1"], 2.8 * size * np.exp(truth["ETA_V1"]), rtol=1e-6)
    np.testing.assert_allclose(
        truth["CL"], 0.45 * size**0.95 * (truth["ALB"] / 4.0) ** -0.5 * np.exp(truth["ETA_CL"]),
        rtol=1e-6)
    # with V proportional to WT, TBW dosing gives weight-independent Cmax
    tbw = truth["BASIS"] == "TBW"
    rel = truth.loc[tbw, "CMAX1"] / truth.loc[tbw, "MGKG"] * np.exp(truth.loc[tbw, "ETA_V1"])
    assert rel.std() / rel.mean() < 0.01


# --------------------------------------------------------------------------- ocular AE


def test_ae_column_matches_truth(data, shipped):
    records, truth = shipped
    per_patient = records.groupby("ID")["AE_OCULAR"].agg(["min", "max"])
    assert (per_patient["min"] == per_patient["max"]).all()
    np.testing.assert_array_equal(per_patient.loc[truth["ID"], "min"], truth["AE_OCULAR"])
    np.testing.assert_array_equal(data.covariates.loc[truth["ID"], "AE_OCULAR"], truth["AE_OCULAR"])
    logit = -1.0 + 8.0 * np.log(truth["CMAX1"] / 120.0)
    np.testing.assert_allclose(truth["P_AE_OCULAR"], 1 / (1 + np.exp(-logit)), atol=1e-8)


def test_ae_expected_incidence_as_documented(gt):
    documented = {(5.0, "TBW"): 0.385, (5.0, "AIBW"): 0.202, (6.0, "AIBW"): 0.411,
                  (7.0, "TBW"): 0.786, (3.3, "TBW"): 0.056}
    for (mgkg, basis), value in documented.items():
        assert gt.expected_ae_incidence(mgkg, basis) == pytest.approx(value, abs=0.002)
    assert gt.expected_ae_incidence(5.0, "TBW") > 1.5 * gt.expected_ae_incidence(5.0, "AIBW")


def test_ae_higher_on_tbw_than_aibw_over_seeds(gt):
    observed = {"TBW": [], "AIBW": []}
    expected = {"TBW": [], "AIBW": []}
    for seed in range(20):
        _, truth = gt.generate_trial(seed=seed)
        five = truth[truth["MGKG"] == 5.0]
        for basis, grp in five.groupby("BASIS"):
            observed[basis].append(grp["AE_OCULAR"].mean())
            expected[basis].append(grp["P_AE_OCULAR"].mean())
    assert np.mean(observed["TBW"]) > np.mean(observed["AIBW"]) + 0.08
    assert np.mean(expected["TBW"]) > np.mean(expected["AIBW"]) + 0.1
    # incidence rises with dose level on TBW
    _, truth = gt.generate_trial(seed=0)
    by_level = truth[truth["BASIS"] == "TBW"].groupby("MGKG")["P_AE_OCULAR"].mean()
    assert by_level.is_monotonic_increasing
