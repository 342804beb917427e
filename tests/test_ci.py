"""What CI runs differently from a developer machine (CI set in the environment, as `.ci/run` does)."""

from __future__ import annotations

import os


def test_property_tests_are_derandomised_exactly_under_ci():
    """conftest loads hypothesis's "ci" profile when CI is set; the fuzz tests' settings inherit it."""
    from hypothesis import settings

    from tests.test_faults_fuzz import FUZZ

    ci = bool(os.environ.get("CI"))
    assert settings.default.derandomize is ci and FUZZ.derandomize is ci
    assert FUZZ.database is None and FUZZ.max_examples == 120  # the fuzz tests' own settings still hold
