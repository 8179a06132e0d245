"""A population table's numeric SEX codes are read with the data's female code (issue 15).

``poppk run`` applied ``[data] female_code`` to the trial but refused SEX 0/1 in the
table given by ``[simulate] population`` (and ``poppk simulate --population table:...``).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from poppk.bodysize import ibw
from poppk.data import read_nonmem
from poppk.errors import ConfigError
from poppk.simulate.population import parse_population

TRIAL = pd.DataFrame({"ID": [1, 1, 2, 2], "TIME": [0, 1, 0, 1], "AMT": [100, 0, 100, 0], "EVID": [1, 0, 1, 0],
                      "DV": [None, 5.0, None, 4.0], "WT": [60.0] * 2 + [80.0] * 2,
                      "HT": [160.0] * 2 + [180.0] * 2, "SEX": [1] * 2 + [0] * 2})


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "population.csv"
    pd.DataFrame({"WT": [70.0, 90.0], "HT": [165.0, 185.0], "SEX": [1, 0]}).to_csv(path, index=False)
    return path


def test_population_table_uses_the_fitted_data_female_code(table):
    data = read_nonmem(TRIAL, sex_female_code=1, time_unit="h").with_size_descriptors()
    fit_like = SimpleNamespace(data=data, spec=None)  # what run_simulation passes: the fit
    for source in (fit_like, data):
        pop = parse_population(f"table:{table}", source)
        expected = ibw([165.0, 185.0], ["F", "M"])  # SEX 1 = female, as [data] female_code says
        np.testing.assert_allclose(pop["IBW"], expected)
    # female_code given to with_size_descriptors only is remembered too
    later = read_nonmem(TRIAL, time_unit="h").with_size_descriptors(female_code=1)
    np.testing.assert_allclose(parse_population(str(table), later)["IBW"], expected)
    # an explicit female_code still wins
    swapped = parse_population(f"table:{table}", fit_like, female_code=0)
    np.testing.assert_allclose(swapped["IBW"], ibw([165.0, 185.0], ["M", "F"]))


def test_without_any_female_code_numeric_codes_are_still_refused(table):
    with pytest.raises(ConfigError, match="female_code"):
        parse_population(f"table:{table}", read_nonmem(TRIAL, time_unit="h"))
