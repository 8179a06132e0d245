"""Tests of poppk.bodysize against published worked values and hand calculations.

Expected numbers are computed by hand (written out in the comments) and never
by calling the function under test.
"""

from __future__ import annotations

import doctest
import math
import warnings

import numpy as np
import pytest

import poppk.bodysize as bs
from poppk.bodysize import (
    DESCRIPTORS,
    UNITS,
    aibw,
    bmi,
    bsa,
    ibw,
    lbw,
    parse_sex,
    size_descriptors,
)
from poppk.errors import BodySizeError


# --------------------------------------------------------------------------
# module constants, doctests
# --------------------------------------------------------------------------


def test_constants() -> None:
    assert DESCRIPTORS == ("TBW", "IBW", "AIBW", "LBW", "BSA", "BMI")
    assert UNITS == {
        "TBW": "kg",
        "IBW": "kg",
        "AIBW": "kg",
        "LBW": "kg",
        "BSA": "m2",
        "BMI": "kg/m2",
    }
    assert issubclass(BodySizeError, ValueError)


def test_docstring_examples_run() -> None:
    import importlib

    attempted = 0
    for name in ("inputs", "formulas", "descriptors"):
        result = doctest.testmod(importlib.import_module(f"poppk.bodysize.{name}"), optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.failed == 0, name
        attempted += result.attempted
    assert attempted >= 10


# --------------------------------------------------------------------------
# ELAHERE label worked example
# --------------------------------------------------------------------------


def test_label_worked_example_female_165cm_80kg() -> None:
    # IBW = 0.9 * 165 - 92 = 148.5 - 92 = 56.5 kg
    # AIBW = 56.5 + 0.4 * (80 - 56.5) = 56.5 + 0.4 * 23.5 = 56.5 + 9.4 = 65.9 kg
    i = ibw(165, "F", method="label")
    assert float(i) == pytest.approx(56.5, abs=1e-9)
    assert float(aibw(80, i)) == pytest.approx(65.9, abs=1e-9)
    d = size_descriptors(80, 165, "F", ibw_method="label")
    assert float(d["IBW"]) == pytest.approx(56.5, abs=1e-9)
    assert float(d["AIBW"]) == pytest.approx(65.9, abs=1e-9)


def test_label_male() -> None:
    # 0.9 * 180 - 88 = 162 - 88 = 74 kg; AIBW(90 kg) = 74 + 0.4 * 16 = 80.4 kg
    assert float(ibw(180, "M", method="label")) == pytest.approx(74.0)
    assert float(aibw(90, 74.0)) == pytest.approx(80.4)


# --------------------------------------------------------------------------
# IBW
# --------------------------------------------------------------------------


def test_devine_male_180cm() -> None:
    # 180 / 2.54 = 70.866142 in; 70.866142 - 60 = 10.866142
    # 50 + 2.3 * 10.866142 = 50 + 24.992126 = 74.992126 kg
    assert float(ibw(180, "M")) == pytest.approx(74.992126, abs=1e-5)


def test_devine_female_165cm() -> None:
    # 165 / 2.54 = 64.960630 in; 45.5 + 2.3 * 4.960630 = 45.5 + 11.409449 = 56.909449
    assert float(ibw(165, "F", method="devine")) == pytest.approx(56.909449, abs=1e-5)


@pytest.mark.parametrize(
    ("method", "height", "sex", "expected"),
    [
        # Robinson F: 49 + 1.7 * (64.960630 - 60) = 49 + 8.433071 = 57.433071
        ("robinson", 165, "F", 57.433071),
        # Robinson M: 52 + 1.9 * 10.866142 = 52 + 20.645669 = 72.645669
        ("robinson", 180, "M", 72.645669),
        # Miller M: 56.2 + 1.41 * 10.866142 = 56.2 + 15.321260 = 71.521260
        ("miller", 180, "M", 71.521260),
        # Miller F: 53.1 + 1.36 * 4.960630 = 53.1 + 6.746457 = 59.846457
        ("miller", 165, "F", 59.846457),
        # Hamwi M: 48 + 2.7 * 10.866142 = 48 + 29.338583 = 77.338583
        ("hamwi", 180, "M", 77.338583),
        # Hamwi F: 45.5 + 2.2 * 4.960630 = 45.5 + 10.913386 = 56.413386
        ("hamwi", 165, "F", 56.413386),
    ],
)
def test_ibw_other_methods(method: str, height: float, sex: str, expected: float) -> None:
    assert float(ibw(height, sex, method=method)) == pytest.approx(expected, abs=1e-5)


def test_ibw_exactly_five_feet_is_base() -> None:
    # 152.4 cm = 60 in -> base values 50 (M) and 45.5 (F)
    np.testing.assert_allclose(ibw(152.4, ["M", "F"]), [50.0, 45.5])


def test_ibw_short_height_is_extrapolated_not_clipped() -> None:
    # 150 cm = 59.055118 in; 45.5 + 2.3 * (-0.944882) = 45.5 - 2.173228 = 43.326772
    assert float(ibw(150, "F")) == pytest.approx(43.326772, abs=1e-5)


def test_ibw_non_positive_raises() -> None:
    # Devine F reaches 0 at 60 - 45.5/2.3 = 40.217 in = 102.15 cm; 100 cm -> -0.95 kg
    with pytest.raises(BodySizeError, match=r"height 100 cm.*IBW .*<= 0.*devine"):
        ibw(100, "F")
    # label F: 0.9 * 90 - 92 = -11 kg; error suggests inches
    with pytest.raises(BodySizeError, match=r"height_unit='in'") as exc:
        ibw([160, 90], ["F", "F"], method="label")
    assert "index 1" in str(exc.value)
    assert "-11" in str(exc.value)


def test_ibw_inches_equal_cm() -> None:
    cm = np.array([150.0, 165.0, 180.0, 195.0])
    sex = ["F", "F", "M", "M"]
    for method in bs.IBW_METHODS:
        np.testing.assert_allclose(
            ibw(cm / 2.54, sex, method=method, height_unit="in"), ibw(cm, sex, method=method)
        )
        np.testing.assert_allclose(
            ibw(cm / 2.54, sex, method=method, height_unit="inches"), ibw(cm, sex, method=method)
        )
    np.testing.assert_allclose(ibw(cm / 100, sex, height_unit="m"), ibw(cm, sex))
    # 70.866142 in -> same Devine value as 180 cm
    assert float(ibw(70.866142, "M", height_unit="inch")) == pytest.approx(74.992126, abs=1e-5)
    assert float(ibw(180, "M", height_unit="CM")) == pytest.approx(74.992126, abs=1e-5)


def test_ibw_method_case_insensitive() -> None:
    assert float(ibw(180, "M", method="Devine")) == pytest.approx(74.992126, abs=1e-5)


# --------------------------------------------------------------------------
# AIBW
# --------------------------------------------------------------------------


def test_aibw_factors() -> None:
    # factor 0 -> IBW, factor 1 -> TBW, factor 0.5 -> midpoint (60 + 100) / 2 = 80
    assert float(aibw(100, 60, factor=0.0)) == pytest.approx(60.0)
    assert float(aibw(100, 60, factor=1.0)) == pytest.approx(100.0)
    assert float(aibw(100, 60, factor=0.5)) == pytest.approx(80.0)
    # TBW < IBW is not capped: 60 + 0.4 * (50 - 60) = 56
    assert float(aibw(50, 60)) == pytest.approx(56.0)


@pytest.mark.parametrize("factor", [-0.1, 1.5, float("nan")])
def test_aibw_factor_out_of_range(factor: float) -> None:
    with pytest.raises(BodySizeError, match=r"factor .*\[0, 1\]"):
        aibw(80, 56.5, factor=factor)


@pytest.mark.parametrize("factor", ["0.4", True, None, [0.4]])
def test_aibw_factor_not_a_number(factor: object) -> None:
    with pytest.raises(BodySizeError, match="factor"):
        aibw(80, 56.5, factor=factor)  # type: ignore[arg-type]


def test_aibw_bad_ibw() -> None:
    with pytest.raises(BodySizeError, match=r"ibw -3 kg at index 1 is not positive"):
        aibw([80, 90], [50, -3])
    with pytest.raises(BodySizeError, match=r"ibw at index 0 is missing \(NaN\)"):
        aibw([80, 90], [np.nan, 50])


def test_aibw_shapes() -> None:
    with pytest.raises(BodySizeError, match=r"do not broadcast.*weight \(3,\).*ibw \(2,\)"):
        aibw([80, 90, 100], [50, 60])


# --------------------------------------------------------------------------
# LBW
# --------------------------------------------------------------------------


def test_janmahasatian_100kg_170cm() -> None:
    # BMI = 100 / 1.7^2 = 100 / 2.89 = 34.602076
    # male:   9270 * 100 / (6680 + 216 * 34.602076) = 927000 / 14154.048443 = 65.493629
    # female: 9270 * 100 / (8780 + 244 * 34.602076) = 927000 / 17222.906574 = 53.823668
    np.testing.assert_allclose(lbw(100, 170, ["M", "F"]), [65.493629, 53.823668], atol=1e-5)


def test_james_70kg_170cm() -> None:
    # (70/170)^2 = 0.169550
    # male:   1.1 * 70 - 128 * 0.169550 = 77 - 21.702422 = 55.297578
    # female: 1.07 * 70 - 148 * 0.169550 = 74.9 - 25.093426 = 49.806574
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = lbw(70, 170, ["M", "F"], method="james")
    np.testing.assert_allclose(got, [55.297578, 49.806574], atol=1e-5)


def test_james_warns_past_maximum() -> None:
    # maximum where d/dWT (a WT - c WT^2/H^2) = 0 -> WT = a H^2 / (2c)
    # male 170 cm:   1.1 * 28900 / 256 = 124.18 kg; female 1.07 * 28900 / 296 = 104.47 kg
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lbw([120, 100], 170, ["M", "F"], method="james")  # below both maxima: silent
    with pytest.warns(UserWarning, match=r"past its maximum for 1 of 2.*index 1.*female.*104\.5"):
        lbw([120, 110], 170, ["M", "F"], method="james")
    with pytest.warns(UserWarning, match=r"male.*124\.2"):
        lbw(130, 170, "M", method="james")
    # the warning points at the caller, not at poppk internals
    with pytest.warns(UserWarning) as rec:
        lbw(130, 170, "M", method="james")
    assert rec[0].filename == __file__


def test_james_non_positive_raises() -> None:
    # male 150 cm zero at 2 * 1.1 * 22500 / 256 = 193.4 kg; 250 kg -> negative
    with pytest.raises(BodySizeError, match=r"weight 250 kg .*James LBW .*<= 0"):
        lbw(250, 150, "M", method="james")


def test_janmahasatian_no_warning_when_obese() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert float(lbw(200, 160, "F")) > 0


def test_lbw_inches_equal_cm() -> None:
    for method in bs.LBW_METHODS:
        np.testing.assert_allclose(
            lbw([60, 90], np.array([160, 185]) / 2.54, ["F", "M"], method=method, height_unit="in"),
            lbw([60, 90], [160, 185], ["F", "M"], method=method),
        )


# --------------------------------------------------------------------------
# BSA, BMI
# --------------------------------------------------------------------------


def test_bsa_70kg_170cm() -> None:
    # Mosteller: sqrt(170 * 70 / 3600) = sqrt(11900 / 3600) = sqrt(3.305556) = 1.818119
    assert float(bsa(70, 170, method="mosteller")) == pytest.approx(1.818119, abs=1e-6)
    # DuBois: 0.007184 * 70^0.425 * 170^0.725
    #   ln 70 = 4.248495 -> * 0.425 = 1.805611 -> exp = 6.083759
    #   ln 170 = 5.135798 -> * 0.725 = 3.723454 -> exp = 41.406942
    #   0.007184 * 6.083759 * 41.406942 = 1.809708
    assert 0.007184 * 70**0.425 * 170**0.725 == pytest.approx(1.809708, abs=1e-6)  # sanity
    assert float(bsa(70, 170)) == pytest.approx(1.809708, abs=1e-6)
    assert float(bsa(70, 170, method="dubois")) == pytest.approx(1.809708, abs=1e-6)
    # Haycock: 0.024265 * 70^0.5378 * 170^0.3964 = 0.024265 * 9.834451 * 7.650625 = 1.825677
    assert float(bsa(70, 170, method="haycock")) == pytest.approx(1.825677, abs=1e-5)
    # Gehan-George: 0.0235 * 70^0.51456 * 170^0.42246 = 0.0235 * 8.891011 * 8.764666 = 1.831289
    assert float(bsa(70, 170, method="gehan_george")) == pytest.approx(1.831289, abs=1e-5)
    assert float(bsa(70, 170, method="Gehan-George")) == pytest.approx(1.831289, abs=1e-5)


def test_bsa_inches_equal_cm() -> None:
    for method in bs.BSA_METHODS:
        assert float(bsa(70, 170 / 2.54, method=method, height_unit="in")) == pytest.approx(
            float(bsa(70, 170, method=method))
        )


def test_bmi() -> None:
    # 70 / 1.7^2 = 70 / 2.89 = 24.221453 ; 100 / 2.89 = 34.602076
    np.testing.assert_allclose(bmi([70, 100], 170), [24.221453, 34.602076], atol=1e-6)
    # 5 ft 7 in = 67 in = 170.18 cm: 70 / 1.7018^2 = 70 / 2.896123 = 24.170240
    assert float(bmi(70, 67, height_unit="in")) == pytest.approx(24.170240, abs=1e-5)
    assert float(bmi(70, 1.7, height_unit="m")) == pytest.approx(24.221453, abs=1e-6)


# --------------------------------------------------------------------------
# vectorisation, return types
# --------------------------------------------------------------------------


def test_scalar_inputs_give_0d_float_arrays() -> None:
    for out in (
        ibw(180, "M"),
        aibw(80, 60),
        lbw(80, 180, "M"),
        lbw(80, 180, "M", method="james"),
        bsa(80, 180),
        bmi(80, 180),
    ):
        assert isinstance(out, np.ndarray)
        assert out.shape == ()
        assert out.dtype == np.float64
    s = parse_sex("F")
    assert isinstance(s, np.ndarray) and s.shape == () and s.dtype == bool


def test_broadcasting() -> None:
    # one height against three weights, one sex
    out = bmi([50, 70, 100], 170)
    assert out.shape == (3,)
    # column of weights against row of heights -> 2-D grid
    grid = bsa(np.array([[60.0], [80.0]]), [160, 170, 180], method="mosteller")
    assert grid.shape == (2, 3)
    # sqrt(180 * 80 / 3600) = sqrt(4) = 2
    assert grid[1, 2] == pytest.approx(2.0)
    # scalar sex broadcast over heights
    np.testing.assert_allclose(ibw([152.4, 152.4], "F"), [45.5, 45.5])
    # pandas-free array-likes: tuples and numpy integer arrays
    np.testing.assert_allclose(bmi((70, 100), np.array([170, 170])), [24.221453, 34.602076], atol=1e-6)


def test_shapes_that_do_not_broadcast() -> None:
    with pytest.raises(BodySizeError, match=r"do not broadcast.*height \(3,\).*sex \(2,\)"):
        ibw([160, 170, 180], ["F", "M"])
    with pytest.raises(BodySizeError, match="do not broadcast"):
        bsa([60, 70], [160, 170, 180])
    with pytest.raises(BodySizeError, match="do not broadcast"):
        lbw([60, 70], [160, 170, 180], "F")
    with pytest.raises(BodySizeError, match="do not broadcast"):
        size_descriptors([60, 70], 170, ["F", "M", "F"])


def test_size_descriptors() -> None:
    w = [80, 100, 70]
    h = [165, 170, 170]
    sex = ["F", "M", "F"]
    d = size_descriptors(w, h, sex, ibw_method="label")
    assert list(d) == ["IBW", "AIBW", "LBW", "BSA", "BMI"]
    for v in d.values():
        assert isinstance(v, np.ndarray) and v.shape == (3,) and v.dtype == np.float64
    # IBW label: 0.9*165-92 = 56.5; 0.9*170-88 = 65; 0.9*170-92 = 61
    np.testing.assert_allclose(d["IBW"], [56.5, 65.0, 61.0])
    # AIBW: 65.9; 65 + 0.4*35 = 79; 61 + 0.4*9 = 64.6
    np.testing.assert_allclose(d["AIBW"], [65.9, 79.0, 64.6])
    # consistent with the individual functions
    np.testing.assert_allclose(d["LBW"], lbw(w, h, sex))
    np.testing.assert_allclose(d["BSA"], bsa(w, h))
    np.testing.assert_allclose(d["BMI"], bmi(w, h))
    # index 1 LBW (male, 100 kg, 170 cm) = 65.493629 by hand above
    assert d["LBW"][1] == pytest.approx(65.493629, abs=1e-5)


def test_size_descriptors_broadcasts_to_common_shape() -> None:
    d = size_descriptors(70, 170, ["F", "M"])
    for v in d.values():
        assert v.shape == (2,)
    np.testing.assert_allclose(d["BSA"], [1.809708, 1.809708], atol=1e-6)


def test_size_descriptors_options() -> None:
    d = size_descriptors(
        [70], [170 / 2.54], [2], ibw_method="devine", lbw_method="james",
        bsa_method="mosteller", aibw_factor=0.0, height_unit="in", female_code=2,
    )
    # female 170 cm Devine: 45.5 + 2.3 * (66.929134 - 60) = 45.5 + 15.937008 = 61.437008
    assert d["IBW"][0] == pytest.approx(61.437008, abs=1e-5)
    assert d["AIBW"][0] == pytest.approx(61.437008, abs=1e-5)  # factor 0 -> IBW
    assert d["LBW"][0] == pytest.approx(49.806574, abs=1e-5)  # James female, above
    assert d["BSA"][0] == pytest.approx(1.818119, abs=1e-6)
    with pytest.raises(BodySizeError, match=r"aibw_factor 2 is outside"):
        size_descriptors(70, 170, "F", aibw_factor=2)
    with pytest.warns(UserWarning, match="past its maximum"):
        size_descriptors(130, 170, "M", lbw_method="james")


# --------------------------------------------------------------------------
# sex parsing
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code", ["F", "f", "FEMALE", "Female", "female", "W", "w", "WOMAN", "Woman", " F ", b"F"]
)
def test_parse_sex_female_words(code: object) -> None:
    assert bool(parse_sex(code)) is True


@pytest.mark.parametrize("code", ["M", "m", "MALE", "Male", "male", "MAN", "man", "\tM\n"])
def test_parse_sex_male_words(code: str) -> None:
    assert bool(parse_sex(code)) is False


def test_parse_sex_array_and_object_mix() -> None:
    got = parse_sex(np.array(["F", "M", "woman", "man"]))
    np.testing.assert_array_equal(got, [True, False, True, False])
    got2 = parse_sex([["F", "M"], ["M", "F"]])
    assert got2.shape == (2, 2)
    np.testing.assert_array_equal(got2, [[True, False], [False, True]])


def test_parse_sex_numeric_codes() -> None:
    # 1/2 coding, 2 = female
    np.testing.assert_array_equal(parse_sex([1, 2, 2], female_code=2), [False, True, True])
    # 0/1 coding, 1 = female; floats and numeric strings too
    np.testing.assert_array_equal(parse_sex([0.0, 1.0], female_code=1), [False, True])
    np.testing.assert_array_equal(parse_sex(["0", " 1 ", "1.0"], female_code="1"), [False, True, True])
    np.testing.assert_array_equal(parse_sex(np.array([0, 1, 1]), female_code=0), [True, False, False])
    # a single code that is not female_code: all male
    np.testing.assert_array_equal(parse_sex([1, 1], female_code=2), [False, False])
    # booleans are the numbers 0/1: re-parse parse_sex output with female_code=True
    once = parse_sex(["F", "M"])
    np.testing.assert_array_equal(parse_sex(once, female_code=True), once)
    # ibw passes female_code through
    np.testing.assert_allclose(ibw(152.4, [1, 2], female_code=2), [50.0, 45.5])


def test_parse_sex_numeric_without_female_code() -> None:
    with pytest.raises(BodySizeError, match=r"sex code 1 at index 2 is numeric.*female_code"):
        parse_sex(["F", "M", 1])
    with pytest.raises(BodySizeError, match=r"sex code '2'.*ambiguous"):
        parse_sex("2")
    with pytest.raises(BodySizeError, match=r"sex code True .*numeric"):
        parse_sex(True)


def test_parse_sex_more_than_two_codes() -> None:
    with pytest.raises(BodySizeError, match=r"more than two distinct numeric sex codes: 0 at index 0, 1 at index 1, 2 at index 3"):
        parse_sex([0, 1, 1, 2], female_code=1)


def test_parse_sex_female_code_not_present() -> None:
    with pytest.raises(BodySizeError, match=r"codes 1 and 2 .*female_code=0 is neither"):
        parse_sex([1, 2], female_code=0)


@pytest.mark.parametrize("bad", ["F", "x", float("nan"), [1]])
def test_parse_sex_bad_female_code(bad: object) -> None:
    with pytest.raises(BodySizeError, match=r"female_code .* not a finite number"):
        parse_sex([1, 2], female_code=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "shown"),
    [(None, "None"), (float("nan"), "nan"), ("", "''"), (".", "'.'"), ("NA", "'NA'"), ("  ", "'  '")],
)
def test_parse_sex_missing(value: object, shown: str) -> None:
    with pytest.raises(BodySizeError, match=r"sex at index 1 is missing") as exc:
        parse_sex(["F", value, "M"])
    assert shown in str(exc.value)
    assert "'F', 'FEMALE', 'W', 'WOMAN'" in str(exc.value)  # says what is valid


def test_parse_sex_missing_with_female_code() -> None:
    with pytest.raises(BodySizeError, match=r"index 2 is missing"):
        parse_sex([1.0, 2.0, np.nan], female_code=2)


@pytest.mark.parametrize("value", ["X", "U", "Fem", "boy", "inf", 3 + 4j, object])
def test_parse_sex_unknown(value: object) -> None:
    with pytest.raises(BodySizeError, match=r"sex code .* at index 0 is not recognised; valid: ") as exc:
        parse_sex([value, "F"], female_code=1)
    assert repr(value) in str(exc.value)


def test_parse_sex_scalar_error_has_no_index() -> None:
    with pytest.raises(BodySizeError) as exc:
        parse_sex("X")
    assert "index" not in str(exc.value)
    assert "'X'" in str(exc.value)


def test_parse_sex_2d_index() -> None:
    with pytest.raises(BodySizeError, match=r"'Q' at index \(1, 0\)"):
        parse_sex([["F", "M"], ["Q", "F"]])


# --------------------------------------------------------------------------
# weight / height validation
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weight", "pattern"),
    [
        (0, r"weight 0 kg at index 1 is not positive"),
        (-5, r"weight -5 kg at index 1 is not positive"),
        (np.nan, r"weight at index 1 is missing \(NaN\)"),
        (None, r"weight at index 1 is missing \(NaN\)"),
        (np.inf, r"weight inf kg at index 1 is not finite"),
        (0.2, r"weight 0.2 kg at index 1 is outside the plausible range 0.3-400 kg"),
        (450, r"weight 450 kg at index 1 is outside the plausible range 0.3-400 kg.*grams or pounds"),
        ("heavy", r"weight 'heavy' at index 1 is not a number"),
    ],
)
def test_weight_errors(weight: object, pattern: str) -> None:
    with pytest.raises(BodySizeError, match=pattern):
        bmi([70, weight, 80], 170)


def test_weight_error_counts_others() -> None:
    with pytest.raises(BodySizeError, match=r"weight -1 kg at index 0 is not positive \(2 more invalid values\)"):
        bsa([-1, 70, -2, 0], 170)


def test_weight_error_every_function() -> None:
    for call in (
        lambda: aibw(-1, 60),
        lambda: lbw(-1, 170, "F"),
        lambda: bsa(-1, 170),
        lambda: bmi(-1, 170),
        lambda: size_descriptors(-1, 170, "F"),
    ):
        with pytest.raises(BodySizeError, match=r"weight -1 kg is not positive"):
            call()


@pytest.mark.parametrize(
    ("height", "unit", "pattern"),
    [
        (0, "cm", r"height 0 cm at index 1 is not positive"),
        (-170, "cm", r"height -170 cm at index 1 is not positive"),
        (np.nan, "cm", r"height at index 1 is missing \(NaN\)"),
        (1.7, "cm", r"height 1.7 cm at index 1 is outside the plausible range 30-250 cm.*metres.*height_unit='m'"),
        (20, "cm", r"height 20 cm at index 1 is outside .*check height_unit"),
        (1700, "cm", r"height 1700 cm at index 1 .*millimetres"),
        (260, "cm", r"height 260 cm at index 1 is outside the plausible range 30-250 cm"),
        (170, "in", r"height 170 in \(431.8 cm\) at index 1 .*looks like centimetres.*height_unit='cm'"),
        (170, "m", r"height 170 m \(17000 cm\) at index 1 .*looks like centimetres"),
        (5, "in", r"height 5 in \(12.7 cm\) at index 1 is outside"),
    ],
)
def test_height_errors(height: float, unit: str, pattern: str) -> None:
    ok = {"cm": 170, "in": 67, "m": 1.7}[unit]
    with pytest.raises(BodySizeError, match=pattern):
        bmi(70, [ok, height], height_unit=unit)


def test_height_error_every_function() -> None:
    for call in (
        lambda: ibw(1.65, "F"),
        lambda: lbw(70, 1.65, "F"),
        lambda: bsa(70, 1.65),
        lambda: bmi(70, 1.65),
        lambda: size_descriptors(70, 1.65, "F"),
    ):
        with pytest.raises(BodySizeError, match=r"height 1.65 cm is outside.*height_unit"):
            call()


def test_unknown_height_unit() -> None:
    with pytest.raises(BodySizeError, match=r"unknown height_unit 'ft'.*'cm'.*'in'"):
        bmi(70, 5.5, height_unit="ft")


@pytest.mark.parametrize(
    ("call", "pattern"),
    [
        (lambda: ibw(170, "F", method="broca"), r"unknown IBW method 'broca'; valid methods: devine, robinson, miller, hamwi, label"),
        (lambda: lbw(70, 170, "F", method="boer"), r"unknown LBW method 'boer'; valid methods: janmahasatian, james"),
        (lambda: bsa(70, 170, method="boyd"), r"unknown BSA method 'boyd'; valid methods: dubois, mosteller, haycock, gehan_george"),
        (lambda: size_descriptors(70, 170, "F", ibw_method="x"), r"unknown IBW method 'x'"),
        (lambda: size_descriptors(70, 170, "F", lbw_method="x"), r"unknown LBW method 'x'"),
        (lambda: size_descriptors(70, 170, "F", bsa_method="x"), r"unknown BSA method 'x'"),
        (lambda: ibw(170, "F", method=None), r"unknown IBW method None"),
    ],
)
def test_unknown_methods(call, pattern: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BodySizeError, match=pattern):
        call()


def test_errors_are_value_errors() -> None:
    with pytest.raises(ValueError):
        bmi(-1, 170)


def test_hand_values_are_independent() -> None:
    # guard the hand-computed constants used above against typos
    assert 50 + 2.3 * (180 / 2.54 - 60) == pytest.approx(74.992126, abs=1e-6)
    assert math.sqrt(170 * 70 / 3600) == pytest.approx(1.818119, abs=1e-6)
    assert 9270 * 100 / (6680 + 216 * 100 / 1.7**2) == pytest.approx(65.493629, abs=1e-6)
    assert 9270 * 100 / (8780 + 244 * 100 / 1.7**2) == pytest.approx(53.823668, abs=1e-6)
    assert 1.1 * 70 - 128 * (70 / 170) ** 2 == pytest.approx(55.297578, abs=1e-6)
    assert 1.07 * 70 - 148 * (70 / 170) ** 2 == pytest.approx(49.806574, abs=1e-6)


def test_parse_sex_numeric_arrays_equal_the_element_by_element_reading():
    """A numeric array is read without a loop per patient; results and errors are those of the same codes as a list."""
    rng = np.random.default_rng(4)
    for codes, female in (([1, 2], 2), ([0, 1], 0), ([1], 1), ([2], 1)):
        x = rng.choice(codes, size=(50, 4))
        fast = parse_sex(x, female_code=female)
        slow = parse_sex(x.astype(object).tolist(), female_code=female)
        assert fast.shape == x.shape and np.array_equal(fast, np.asarray(slow))
    assert parse_sex(np.array([True, False]), female_code=True).tolist() == [True, False]
    with pytest.raises(BodySizeError, match=r"more than two distinct numeric sex codes: 1 at index 0, 2 at index 1, "
                                            r"3 at index 3"):
        parse_sex(np.array([1, 2, 2, 3, 1]), female_code=1)
    with pytest.raises(BodySizeError, match="numeric sex codes 1 and 2 are present but female_code=0"):
        parse_sex(np.array([1.0, 2.0]), female_code=0)
    with pytest.raises(BodySizeError, match="sex at index 1 is missing"):
        parse_sex(np.array([1.0, np.nan]), female_code=1)
