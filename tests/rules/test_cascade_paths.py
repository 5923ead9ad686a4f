"""The explain path and the vectorised path are one set of formulas: they agree to the fen.

The populations run against the bundled parameters plus a test-only mid-year
change in Chengdu (1 July 2024), so a person-year can straddle two sets.
"""

from __future__ import annotations

import datetime as dt

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gongji.rules import cascade
from gongji.rules.cascade import (
    ASSISTANCE_CATEGORIES,
    LAYERS,
    SCHEMES,
    EpisodeInput,
    explain_person_year,
    settle_frame,
)

REGIONS = ("000000", "330100", "330106", "510100", "510104", "110000")
amounts = st.integers(min_value=0, max_value=80_000_000)  # up to 800,000 yuan per class


@st.composite
def populations(draw):
    """A few people with several episodes each, spread over 2024–2025 so years and parameter sets change."""
    people = draw(st.integers(min_value=1, max_value=6))
    episodes = []
    for person in range(people):
        scheme = draw(st.sampled_from(SCHEMES))
        category = draw(st.sampled_from(ASSISTANCE_CATEGORIES))
        enrolled = draw(st.booleans())
        region = draw(st.sampled_from(REGIONS))
        for _ in range(draw(st.integers(min_value=1, max_value=6))):
            admission = dt.date(2024, 1, 1) + dt.timedelta(days=draw(st.integers(0, 729)))
            stay = draw(st.integers(0, 40))
            episodes.append(
                EpisodeInput(
                    episode_id=f"E{len(episodes)}",
                    person_key=f"P{person}",
                    scheme=scheme,
                    assistance_category=category,
                    inclusive_enrolled=enrolled,
                    region=region,
                    hospital_level=draw(st.sampled_from((1, 2, 3))),
                    admission_date=admission,
                    discharge_date=admission + dt.timedelta(days=stay),
                    icd10="C34.9",
                    class_a=draw(amounts),
                    class_b=draw(amounts),
                    out_of_catalogue=draw(amounts),
                )
            )
    return draw(st.permutations(episodes))


def as_frame(episodes: list[EpisodeInput]) -> pl.DataFrame:
    return pl.DataFrame([vars(ep) for ep in episodes], schema_overrides={"hospital_level": pl.Int8})


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(episodes=populations())
def test_vectorised_equals_explain(episodes, book_with_midyear_change):
    scalar = explain_person_year(episodes, book_with_midyear_change)
    vector = settle_frame(as_frame(episodes), book_with_midyear_change)
    assert vector["episode_id"].to_list() == [ep.episode_id for ep in episodes]
    for settlement, row in zip(scalar, vector.iter_rows(named=True)):
        assert settlement.amounts == {key: row[key] for key in settlement.amounts}
        assert settlement.parameter_set == row["parameter_set"]


def test_populations_straddle_the_midyear_change(book_with_midyear_change):
    """The mid-year set is really in the book the properties run against."""
    assert book_with_midyear_change.resolve("510104", dt.date(2024, 6, 30)).id == "chengdu-2024"
    assert book_with_midyear_change.resolve("510104", dt.date(2024, 7, 1)).id == "chengdu-2024-07"


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(episodes=populations())
def test_no_layer_pays_more_than_it_was_shown(episodes, book_with_midyear_change):
    """Every layer is non-negative and the residual never goes below zero (no double compensation)."""
    for settlement, episode in zip(explain_person_year(episodes, book_with_midyear_change), episodes):
        parts = [settlement.amounts[layer] for layer in LAYERS]
        assert all(part >= 0 for part in parts)
        assert settlement.residual >= 0
        assert sum(parts) + settlement.residual == episode.total


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(episodes=populations())
def test_chunk_boundaries_do_not_change_results(episodes, book_with_midyear_change):
    """Person-years are never split across NumPy chunks, whatever the chunk size."""
    expected = settle_frame(as_frame(episodes), book_with_midyear_change)
    original = cascade.CHUNK_ROWS
    try:
        cascade.CHUNK_ROWS = 1
        assert settle_frame(as_frame(episodes), book_with_midyear_change).equals(expected)
    finally:
        cascade.CHUNK_ROWS = original


def test_enum_columns_are_accepted_as_well_as_strings():
    episodes = [
        EpisodeInput("E1", "P", "resident", "subsistence", True, "330100", 3, dt.date(2024, 3, 1),
                     dt.date(2024, 3, 9), "C34.9", 5_000_000, 1_000_000, 300_000)
    ]
    frame = as_frame(episodes)
    typed = frame.with_columns(
        pl.col("scheme").cast(pl.Enum(SCHEMES)),
        pl.col("assistance_category").cast(pl.Enum(ASSISTANCE_CATEGORIES)),
    )
    assert settle_frame(typed).equals(settle_frame(frame))


def test_empty_table_settles_to_empty_output():
    frame = pl.DataFrame(schema=cascade.EPISODE_SCHEMA)
    assert settle_frame(frame).columns == list(cascade.OUTPUT_COLUMNS)
    assert settle_frame(frame).height == 0
