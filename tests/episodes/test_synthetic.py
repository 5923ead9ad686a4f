"""The synthetic generator: reproducible, well-typed, valid IDs, plausible mixes, file formats."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from gongji.core.errors import InvalidInput
from gongji.core.identity import normalise_id_number
from gongji.episodes.synthetic import generate_episodes, write_episodes
from gongji.rules.cascade import ASSISTANCE_CATEGORIES, EPISODE_SCHEMA, SCHEMES


@pytest.fixture(scope="module")
def episodes() -> pl.DataFrame:
    return generate_episodes(20_000, seed=11)


def test_same_seed_same_frame_other_seed_other_frame():
    assert generate_episodes(500, seed=7).equals(generate_episodes(500, seed=7))
    assert not generate_episodes(500, seed=7).equals(generate_episodes(500, seed=8))


def test_schema_with_and_without_id_numbers(episodes):
    assert episodes.schema == pl.Schema({**EPISODE_SCHEMA, "id_number": pl.String})
    bare = generate_episodes(300, seed=1, with_id_numbers=False)
    assert bare.schema == pl.Schema({**EPISODE_SCHEMA, "person_key": pl.Int64})
    assert generate_episodes(0).height == 0


def test_episode_ids_unique_and_numbered(episodes):
    assert episodes["episode_id"].head(2).to_list() == ["E00000001", "E00000002"]
    assert episodes["episode_id"].is_unique().all()


def test_id_numbers_are_valid_and_carry_region_and_birth_range(episodes):
    ids = episodes["id_number"].unique()
    for number in ids.to_list():
        assert normalise_id_number(number) == number
    assert ids.str.starts_with("330100").all()
    years = ids.str.slice(6, 4).cast(pl.Int32)
    assert years.min() >= 1940 and years.max() <= 2020
    assert episodes.select((pl.col("person_key") == pl.col("id_number")).all()).item()


def test_other_region():
    frame = generate_episodes(200, seed=2, region="510100")
    assert frame["id_number"].str.starts_with("510100").all()
    assert (frame["region"] == "510100").all()


@pytest.mark.parametrize("region", ["3301", "990100", "33010x"])
def test_bad_region_named(region):
    with pytest.raises(InvalidInput) as raised:
        generate_episodes(10, region=region)
    assert raised.value.field == "region"


def test_person_attributes_constant_per_person(episodes):
    per_person = episodes.group_by("person_key").agg(
        pl.col("scheme", "assistance_category", "inclusive_enrolled", "region").n_unique(),
        pl.len().alias("episodes"),
    )
    assert per_person.select(pl.exclude("person_key", "episodes").max()).row(0) == (1, 1, 1, 1)
    assert per_person["episodes"].min() >= 1 and per_person["episodes"].max() <= 5


def test_amounts_are_fen_and_split_plausibly(episodes):
    total = episodes["class_a"] + episodes["class_b"] + episodes["out_of_catalogue"]
    assert (episodes.select(pl.col("class_a", "class_b", "out_of_catalogue").min()).row(0)) >= (0, 0, 0)
    assert total.min() > 0
    share_a = episodes["class_a"] / total
    share_b = episodes["class_b"] / total
    assert share_a.min() >= 0.549 and share_a.max() <= 0.751
    assert share_b.min() >= 0.149 and share_b.max() <= 0.301
    median_by_disease = (
        episodes.with_columns(total.alias("total")).group_by("icd10").agg(pl.col("total").median()).sort("total")
    )
    assert median_by_disease["icd10"][-1] == "C92.0"
    assert median_by_disease.height == 12


def test_stays_within_2024_and_do_not_overlap(episodes):
    stay = (episodes["discharge_date"] - episodes["admission_date"]).dt.total_days()
    assert stay.min() >= 1 and stay.max() <= 30
    assert episodes["admission_date"].min() >= dt.date(2024, 1, 1)
    assert episodes["discharge_date"].max() <= dt.date(2024, 12, 31)
    overlaps = (
        episodes.sort("person_key", "admission_date")
        .with_columns(previous=pl.col("discharge_date").shift(1).over("person_key"))
        .filter(pl.col("admission_date") <= pl.col("previous"))
    )
    assert overlaps.height == 0


def test_mixes_close_to_targets(episodes):
    persons = episodes.unique("person_key")
    shares = persons["scheme"].value_counts(normalize=True)
    expected = {"employee": 0.35, "retiree": 0.10, "resident": 0.55}
    for scheme, share in shares.iter_rows():
        assert abs(share - expected[scheme]) < 0.03
    assert set(persons["assistance_category"]) <= set(ASSISTANCE_CATEGORIES)
    assert abs((persons["assistance_category"] == "none").mean() - 0.90) < 0.03
    assert abs(persons["inclusive_enrolled"].mean() - 0.30) < 0.03
    levels = episodes["hospital_level"].value_counts(normalize=True).sort("hospital_level")["proportion"]
    assert max(abs(a - b) for a, b in zip(levels, [0.20, 0.35, 0.45], strict=True)) < 0.03
    assert set(persons["scheme"]) == set(SCHEMES)


def test_csv_in_yuan_with_id_number_only(tmp_path):
    frame = generate_episodes(50, seed=4)
    path = tmp_path / "episodes.csv"
    write_episodes(frame, path)
    text = pl.read_csv(path, infer_schema=False)
    assert "person_key" not in text.columns and "id_number" in text.columns
    for column in ("class_a", "class_b", "out_of_catalogue"):
        assert text[column].str.contains(r"^\d+\.\d{2}$").all()
    first = frame.row(0, named=True)
    assert text["class_a"][0] == f"{first['class_a'] // 100}.{first['class_a'] % 100:02d}"
    assert text["admission_date"][0] == first["admission_date"].isoformat()


def test_parquet_in_fen_with_both_keys(tmp_path):
    frame = generate_episodes(50, seed=4)
    path = tmp_path / "episodes.parquet"
    write_episodes(frame, path)
    stored = pl.read_parquet(path)
    assert {"id_number", "person_key"} <= set(stored.columns)
    assert stored["class_a"].dtype == pl.Int64
    assert stored.select(frame.columns).equals(frame)


def test_writing_needs_id_numbers(tmp_path):
    with pytest.raises(InvalidInput):
        write_episodes(generate_episodes(5, with_id_numbers=False), tmp_path / "x.csv")
