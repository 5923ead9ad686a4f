"""Parameter books for rule tests: the bundled set, plus a test-only mid-year change in Chengdu."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

import pytest

from gongji.rules.params import ParameterBook, load_parameter_book

MIDYEAR = Path(__file__).parent / "midyear_params"


def midyear_book(directory: Path) -> ParameterBook:
    """The bundled sets with `chengdu-2024-07` added (caps raised, deductibles lowered from 1 July 2024)."""
    bundled = Path(str(resources.files("gongji.data").joinpath("params")))
    for source in (*bundled.glob("*.yaml"), *MIDYEAR.glob("*.yaml")):
        shutil.copy(source, directory / source.name)
    return load_parameter_book(directory)


@pytest.fixture(scope="session")
def book_with_midyear_change(tmp_path_factory) -> ParameterBook:
    return midyear_book(tmp_path_factory.mktemp("midyear"))
