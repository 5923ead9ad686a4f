"""Hand-worked golden cases: both settlement paths must reproduce them to the fen."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
import yaml

from gongji.core.money import parse_yuan
from gongji.rules.cascade import LAYERS, EpisodeInput, explain_person_year, settle_frame
from gongji.rules.params import load_parameter_book

HERE = Path(__file__).parent
CASES = yaml.safe_load((HERE / "golden_cases.yaml").read_text(encoding="utf-8"))
BOOK = load_parameter_book(HERE / "golden_params")


def episodes_of(case: dict) -> list[EpisodeInput]:
    person = case["person"]
    return [
        EpisodeInput(
            episode_id=ep["id"],
            person_key=case["id"],
            scheme=person["scheme"],
            assistance_category=person["category"],
            inclusive_enrolled=person["enrolled"],
            region=person["region"],
            hospital_level=ep["level"],
            admission_date=ep["admission"],
            discharge_date=ep["discharge"],
            icd10="C34.9",
            class_a=parse_yuan(ep["a"]),
            class_b=parse_yuan(ep["b"]),
            out_of_catalogue=parse_yuan(ep["out"]),
        )
        for ep in case["episodes"]
    ]


def expected_of(case: dict) -> list[dict[str, int]]:
    return [{key: parse_yuan(value) for key, value in ep["expect"].items()} for ep in case["episodes"]]


def test_there_are_at_least_twenty_worked_cases():
    assert len(CASES) >= 20
    assert all(case["working"].strip() for case in CASES)


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_explain_path_matches_hand_working(case):
    settled = explain_person_year(episodes_of(case), BOOK)
    for settlement, expected, episode in zip(settled, expected_of(case), episodes_of(case)):
        got = {key: settlement.amounts[key] for key in (*LAYERS, "residual")}
        assert got == expected, settlement.episode_id
        assert sum(got.values()) == episode.total


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_vectorised_path_matches_hand_working(case):
    frame = pl.DataFrame([vars(ep) for ep in episodes_of(case)], schema_overrides={"hospital_level": pl.Int8})
    settled = settle_frame(frame, BOOK)
    assert settled["episode_id"].to_list() == [ep["id"] for ep in case["episodes"]]
    for row, expected in zip(settled.iter_rows(named=True), expected_of(case)):
        assert {key: row[key] for key in expected} == expected, row["episode_id"]


def test_explanation_names_parameters_with_sources():
    case = next(c for c in CASES if c["id"].startswith("14-"))
    settlement = explain_person_year(episodes_of(case), BOOK)[0]
    assert [line.layer for line in settlement.lines] == list(LAYERS)
    for line in settlement.lines:
        assert line.arithmetic, line.layer
        assert all(p.source for p in line.parameters if p.value), line.layer
        assert line.amount == settlement.amounts[line.layer]
    basic = settlement.lines[0]
    assert any("¥800.00" in p.value for p in basic.parameters)
    assert "¥50,000.00" in basic.arithmetic[-1].render()
    assert settlement.parameter_set == "golden-city-2024"


def test_year_boundary_uses_each_years_parameters():
    case = next(c for c in CASES if c["id"].startswith("18-"))
    assert explain_person_year(episodes_of(case), BOOK)[0].parameter_set == "golden-city-2025"
    earlier = [
        EpisodeInput(**{**vars(ep), "admission_date": dt.date(2024, 2, 20), "discharge_date": dt.date(2024, 3, 1)})
        for ep in episodes_of(case)
    ]
    assert explain_person_year(earlier, BOOK)[0].amounts["inclusive"] == 0
