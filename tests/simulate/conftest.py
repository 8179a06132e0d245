"""Fixtures of the simulation tests (helpers live in _sim_helpers.py)."""

from __future__ import annotations

import pytest

from _sim_helpers import load_trial_data, load_trial_truth


@pytest.fixture(scope="session")
def trial_data():
    return load_trial_data()


@pytest.fixture(scope="session")
def trial_truth():
    return load_trial_truth()
