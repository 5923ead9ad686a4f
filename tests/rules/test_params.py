"""Parameter files are validated at load; errors name the file and the key."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
import yaml

from gongji.core.errors import InvalidInput
from gongji.rules.params import ParameterError, load_parameter_book

BUNDLED = Path(__file__).resolve().parents[2] / "src" / "gongji" / "data" / "params"


def copy_bundled(tmp_path: Path) -> Path:
    target = tmp_path / "params"
    shutil.copytree(BUNDLED, target)
    return target


def edit(path: Path, change) -> None:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(document)
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")


def test_bundled_book_has_national_default_and_two_differing_regions():
    book = load_parameter_book()
    regions = {s.region for s in book.sets}
    assert {"000000", "330100", "510100"} <= regions
    hangzhou = book.resolve("330100", dt.date(2024, 6, 1))
    chengdu = book.resolve("510100", dt.date(2024, 6, 1))
    assert hangzhou.basic["resident"].rate.by_level != chengdu.basic["resident"].rate.by_level
    assert hangzhou.inclusive.deductible.value != chengdu.inclusive.deductible.value


def test_resolution_prefers_the_most_specific_region_then_latest_date():
    book = load_parameter_book()
    assert book.resolve("330106", dt.date(2024, 6, 1)).id == "hangzhou-2024"
    assert book.resolve("330106", dt.date(2025, 6, 1)).id == "hangzhou-2025"
    assert book.resolve("440300", dt.date(2025, 6, 1)).id == "national-2024"
    with pytest.raises(InvalidInput) as error:
        book.resolve("440300", dt.date(2023, 12, 31))
    assert error.value.field == "discharge_date"


def test_user_directory_is_used(tmp_path):
    directory = copy_bundled(tmp_path)
    edit(directory / "national-2024.yaml", lambda d: d["basic"]["resident"]["rate"]["by_level"].update({3: "61%"}))
    book = load_parameter_book(directory)
    assert book.resolve("000000", dt.date(2024, 6, 1)).basic["resident"].rate.by_level[3] == 6100


@pytest.mark.parametrize(
    ("change", "file_and_key"),
    [
        (lambda d: d["basic"]["employee"]["rate"]["by_level"].update({1: "90"}),
         "national-2024.yaml: basic.employee.rate.by_level.1"),
        (lambda d: d["basic"]["employee"]["rate"]["by_level"].update({1: "120%"}),
         "national-2024.yaml: basic.employee.rate.by_level.1"),
        (lambda d: d["basic"]["employee"]["annual_cap"].update({"value": "12.345"}),
         "national-2024.yaml: basic.employee.annual_cap.value"),
        (lambda d: d["assistance"].pop("monitored"), "national-2024.yaml: (top)"),
        (lambda d: d["basic"]["retiree"]["later_admission_share"].update({"source": "nowhere"}),
         "source 'nowhere' is not defined"),
        (lambda d: d["critical_illness"]["resident"]["bands"]["bands"].reverse(),
         "national-2024.yaml: critical_illness.resident.bands: Value error, only the last band"),
        (lambda d: d["basic"]["employee"]["deductible"]["by_level"].pop(2),
         "national-2024.yaml: basic.employee.deductible"),
    ],
)
def test_errors_name_file_and_key(tmp_path, change, file_and_key):
    directory = copy_bundled(tmp_path)
    edit(directory / "national-2024.yaml", change)
    with pytest.raises(ParameterError) as error:
        load_parameter_book(directory)
    assert file_and_key in str(error.value)


def test_unknown_parent_and_missing_directory(tmp_path):
    directory = copy_bundled(tmp_path)
    edit(directory / "sichuan-chengdu-2024.yaml", lambda d: d.update({"extends": "atlantis"}))
    with pytest.raises(ParameterError, match="sichuan-chengdu-2024.yaml: extends: unknown parameter set 'atlantis'"):
        load_parameter_book(directory)
    with pytest.raises(ParameterError, match="not found"):
        load_parameter_book(tmp_path / "nowhere")
